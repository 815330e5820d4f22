// Every page's script. Each part acts only when its element is on the page: signing out, the
// lesson page's rating and comment forms, the edit form, and "my lessons" (share buttons and
// replication states that refresh themselves). Changes go to the JSON API with the page's CSRF
// token; messages follow the page's language (<html lang>); replication states come worded by the node.
(function () {
  'use strict';
  var zh = document.documentElement.lang.indexOf('zh') === 0;
  function t(z, e) { return zh ? z : e; }
  var meta = document.querySelector('meta[name=csrf-token]');
  var csrf = meta ? meta.content : '';

  // Sends JSON with the session's CSRF token; resolves to [status, parsed body].
  function send(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.text().then(function (text) {
        var v = {}; try { v = text ? JSON.parse(text) : {}; } catch (_) {}
        return [r.status, v];
      });
    });
  }
  function failure(v, status) { return t('未能保存：', 'Not saved: ') + (v.detail || status); }

  var logout = document.getElementById('logout');
  if (logout) {
    logout.addEventListener('click', function () {
      send('DELETE', '/api/v1/session').then(function () { location.href = '/'; });
    });
  }

  // The lesson page: rating and comment.
  var talk = document.getElementById('discussion');
  if (talk) {
    var lesson = talk.getAttribute('data-lesson');
    var rate = document.getElementById('rate');
    var comment = document.getElementById('comment');
    var msg = talk.querySelector('.msg');
    if (rate) {
      rate.addEventListener('submit', function (e) {
        e.preventDefault();
        send('POST', '/api/v1/lessons/' + encodeURIComponent(lesson) + '/ratings', { score: Number(rate.score.value) })
          .then(function (r) { if (r[0] === 200) location.reload(); else if (msg) msg.textContent = failure(r[1], r[0]); });
      });
    }
    if (comment) {
      comment.addEventListener('submit', function (e) {
        e.preventDefault();
        send('POST', '/api/v1/lessons/' + encodeURIComponent(lesson) + '/comments', { text: comment.text.value })
          .then(function (r) { if (r[0] === 200) location.reload(); else msg.textContent = failure(r[1], r[0]); });
      });
    }
  }

  // The edit form: only the fields that changed are sent.
  var edit = document.getElementById('edit');
  if (edit) {
    var original = {};
    var lists = { knowledge_points: true, tags: true };
    function value(el) {
      if (!lists[el.name]) return el.value.trim();
      return el.value.split(/[、,，;；]/).map(function (s) { return s.trim(); }).filter(Boolean);
    }
    Array.prototype.forEach.call(edit.elements, function (el) { if (el.name) original[el.name] = JSON.stringify(value(el)); });
    edit.addEventListener('submit', function (e) {
      e.preventDefault();
      var change = {};
      Array.prototype.forEach.call(edit.elements, function (el) {
        if (el.name && JSON.stringify(value(el)) !== original[el.name]) change[el.name] = value(el);
      });
      var out = edit.querySelector('.msg');
      send('PATCH', '/api/v1/lessons/' + encodeURIComponent(edit.getAttribute('data-lesson')), change).then(function (r) {
        if (r[0] === 200) {
          Array.prototype.forEach.call(edit.elements, function (el) { if (el.name) original[el.name] = JSON.stringify(value(el)); });
          out.textContent = t('已保存', 'Saved');
        } else {
          out.textContent = failure(r[1], r[0]);
        }
      });
    });
  }

  // My lessons: share buttons, and the replication states refreshed every few seconds.
  var mine = document.getElementById('mine');
  if (mine) {
    var status = document.querySelector('main .msg');
    mine.addEventListener('click', function (e) {
      var b = e.target.closest('button.share');
      if (!b || b.disabled) return;
      b.disabled = true;
      send('POST', '/api/v1/lessons/' + encodeURIComponent(b.getAttribute('data-lesson')) + '/share', { to: b.getAttribute('data-to') })
        .then(function (r) { if (r[0] === 200) location.reload(); else { b.disabled = false; status.textContent = failure(r[1], r[0]); } });
    });
    setInterval(function () {
      fetch('/api/v1/me/lessons', { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.json() : null; }).then(function (v) {
        if (!v) return;
        v.items.forEach(function (item) {
          var row = mine.querySelector('tr[data-lesson="' + item.id + '"] td.replication');
          if (!row || row.getAttribute('data-state') === item.replication.state) return;
          row.setAttribute('data-state', item.replication.state);
          var span = document.createElement('span');
          span.className = 'state-' + item.replication.state;
          span.textContent = item.replication_text;
          row.replaceChildren(span);
        });
      }).catch(function () {});
    }, 2000);
  }
})();
