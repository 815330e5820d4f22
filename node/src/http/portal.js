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
  // The node's answer in the page's language: its words as they are in English; in Chinese,
  // the known messages translated (the rule ids and figures they name kept), else what kind of
  // refusal it was, never English.
  var known = [
    [/^sign in first/, function () { return '请先登录'; }],
    [/^your account's role may not do this/, function () { return '你的账号没有这个权限'; }],
    [/^only the lesson's own teacher or an administrator may change it/, function () { return '只有这节课的教师或管理员可以修改它'; }],
    [/^this lesson is shared to the (\w+) level; it is reviewed there/, function (m) { return '这节课共享到' + ({ city: '全市', province: '全省' }[m[1]] || m[1]) + '，由该级审核'; }],
    [/^a rejection needs a reason/, function () { return '请填写不通过的原因（教师可见）'; }],
    [/^a takedown needs a reason/, function () { return '请填写下架原因'; }],
    [/^this lesson was taken down/, function () { return '这节课已下架，不能再审核'; }],
    [/^no comment /, function () { return '这条评论已不存在'; }],
    [/^there is no lesson (\S+) here to put in a collection/, function () { return '专辑里有本节点没有的课程'; }],
    [/is listed twice$/, function () { return '同一节课不能重复加入专辑'; }],
    [/^this was published by (.+); it is changed there/, function (m) { return '这是' + m[1] + '发布的，只能在那里修改'; }],
    [/^a title of 1 to 200 characters is required/, function () { return '请填写标题（不超过 200 字）'; }],
    [/^audience is all, school or city/, function () { return '通知对象应为全部、学校或市级'; }],
    [/^a notice is at most/, function () { return '通知正文过长'; }],
    [/^the teacher of this lesson does not allow downloading it/, function () { return '这节课的教师没有开放下载'; }],
    [/^a rating needs/, function () { return '评分应为 1 到 5 星'; }],
    [/^a comment needs/, function () { return '评论应为 1 到 2000 字'; }],
    [/^this lesson comes from (.+); its fields are edited there/, function (m) { return '这节课来自' + m[1] + '，请在那里修改'; }],
    [/^this competition requires the course video standard and the lesson fails it: (.*)$/, function (m) {
      return '本评选要求符合课程视频标准，这节课未达标：' + m[1].split('; ').map(function (r) { return r.split(' ')[0] + '（实测 ' + ((r.match(/ is (.*) \(the standard/) || [])[1] || '') + '）'; }).join('；');
    }],
    [/^this competition requires the course video standard and the lesson has not been checked/, function () { return '本评选要求符合课程视频标准，这节课尚未完成检测，请稍候'; }],
    [/^the deadline for entries was (.*) \(China time\)/, function (m) { return '报送已于 ' + m[1] + ' 截止'; }],
    [/^this competition opens for entries on (.*) \(China time\)/, function (m) { return '报送将于 ' + m[1] + ' 开始'; }],
    [/^the results of this competition are published/, function () { return '本评选结果已公布，不再接受报送和评分'; }],
    [/^too many views from this address/, function () { return '操作太频繁，请稍后再试'; }],
    [/^(.+) is not a playable recording/, function (m) { return '“' + m[1] + '”不是可以播放的录像（文件不完整或格式无法识别），请检查文件后重新上传'; }],
    [/^(.+) is \d+ bytes, more than the limit of (\d+) bytes/, function (m) { return '“' + m[1] + '”超过本节点允许的大小（' + Math.round(Number(m[2]) / 1048576) + ' MiB），请压缩后再上传或联系管理员'; }],
    [/^cannot read (.+?): /, function (m) { return '无法读取“' + m[1] + '”，请重新上传'; }],
    [/^FFmpeg failed while/, function () { return '视频处理失败，请联系管理员查看日志'; }],
    [/^the file is empty/, function () { return '文件是空的，请重新选择'; }],
    [/^no upload \S+ of yours here/, function () { return '这次上传已不在节点上（未完成的上传保留一周），请重新上传'; }],
    [/^this upload's data is no longer on the node/, function () { return '这次上传的数据已不在节点上，请重新上传'; }]
  ];
  var kinds = {
    bad_request: '提交的内容有误', unauthorized: '请先登录', forbidden: '没有权限', not_found: '未找到',
    too_many_requests: '操作太频繁，请稍后再试', busy: '节点繁忙，请稍后再试', unavailable: '暂时无法连接上级节点，请稍后再试',
    internal: '节点出错，请联系管理员查看日志'
  };
  function explain(v, status) {
    var detail = (v && v.detail) || '';
    if (!zh) return detail || ('HTTP ' + status);
    if (/[\u4e00-\u9fff]/.test(detail) && !/[a-z]{4,}/.test(detail)) return detail;
    for (var i = 0; i < known.length; i++) {
      var m = detail.match(known[i][0]);
      if (m) return known[i][1](m);
    }
    return kinds[v && v.code] || ('操作未能完成（' + status + '）');
  }
  // The upload page's script explains refusals the same way.
  window.youkeExplain = explain;
  function failure(v, status) { return t('未能保存：', 'Not saved: ') + explain(v, status); }

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

  // Review (审核) and takedown (下架) on the lesson page; moderating comments.
  var moderation = document.getElementById('moderation');
  function lessonUrl(id, rest) { return '/api/v1/lessons/' + encodeURIComponent(id) + rest; }
  if (moderation) {
    var mid = moderation.getAttribute('data-lesson');
    var mmsg = moderation.querySelector('.msg');
    var decide = document.getElementById('decide');
    if (decide) {
      decide.addEventListener('submit', function (e) {
        e.preventDefault();
        var approved = !(e.submitter && e.submitter.name === 'reject');
        var reason = decide.reason.value.trim();
        if (!approved && !reason) { mmsg.textContent = t('请填写不通过的原因', 'Give the reason for rejecting'); decide.reason.focus(); return; }
        send('POST', lessonUrl(mid, '/decision'), { approved: approved, reason: reason })
          .then(function (r) { if (r[0] === 200) location.reload(); else mmsg.textContent = failure(r[1], r[0]); });
      });
    }
    var takedown = document.getElementById('takedown');
    if (takedown) {
      takedown.addEventListener('submit', function (e) {
        e.preventDefault();
        if (!confirm(t('下架后，这节课将从下级各节点撤下，缓存的视频也会删除。确定下架？', 'Taken down, the lesson disappears below this node and cached copies of its video are deleted. Take it down?'))) return;
        send('POST', lessonUrl(mid, '/takedown'), { reason: takedown.reason.value })
          .then(function (r) { if (r[0] === 200) location.reload(); else mmsg.textContent = failure(r[1], r[0]); });
      });
    }
  }
  if (talk) {
    talk.addEventListener('click', function (e) {
      var b = e.target.closest('button.hide-comment, button.delete-comment');
      if (!b) return;
      var del = b.classList.contains('delete-comment');
      if (del && !confirm(t('删除这条评论？', 'Delete this comment?'))) return;
      var url = lessonUrl(talk.getAttribute('data-lesson'), '/comments/' + encodeURIComponent(b.getAttribute('data-comment')) + (del ? '' : '/hide'));
      send(del ? 'DELETE' : 'POST', url).then(function (r) { if (r[0] === 200) location.reload(); else talk.querySelector('.msg').textContent = failure(r[1], r[0]); });
    });
  }
  // The review queue: approve or reject each lesson in place.
  var queue = document.getElementById('review-queue');
  if (queue) {
    queue.addEventListener('click', function (e) {
      var b = e.target.closest('button[data-decision]');
      if (!b) return;
      var row = b.closest('tr');
      var approved = b.getAttribute('data-decision') === 'approve';
      var reason = row.querySelector('input[name=reason]').value.trim();
      var out = row.querySelector('.msg');
      if (!approved && !reason) { out.textContent = t('请填写不通过的原因', 'Give the reason for rejecting'); return; }
      b.disabled = true;
      send('POST', lessonUrl(row.getAttribute('data-lesson'), '/decision'), { approved: approved, reason: reason }).then(function (r) {
        if (r[0] === 200) { out.textContent = approved ? t('已通过', 'Approved') : t('已退回', 'Rejected'); row.classList.add('decided'); }
        else { b.disabled = false; out.textContent = failure(r[1], r[0]); }
      });
    });
  }

  // Collections (专辑): made, edited, reordered, unpublished and deleted by the administrators of
  // the node that publishes them; lessons added from their pages.
  function collectionFields(form) {
    return { title: form.title.value.trim(), description: form.description.value, featured: form.featured.checked, pinned: form.pinned.checked, published: form.published.checked };
  }
  var newCollection = document.getElementById('new-collection');
  if (newCollection) {
    newCollection.addEventListener('submit', function (e) {
      e.preventDefault();
      var body = collectionFields(newCollection); body.lessons = [];
      send('POST', '/api/v1/collections', body).then(function (r) {
        if (r[0] === 200) location.href = '/collections/' + encodeURIComponent(r[1].id);
        else newCollection.querySelector('.msg').textContent = failure(r[1], r[0]);
      });
    });
  }
  var editCollection = document.getElementById('edit-collection');
  if (editCollection) {
    var cid = editCollection.getAttribute('data-collection');
    var list = editCollection.querySelector('ol.collection-lessons');
    var cmsg = editCollection.querySelector('.msg');
    list.addEventListener('click', function (e) {
      var b = e.target.closest('button'); if (!b) return;
      var li = b.closest('li');
      if (b.classList.contains('move-up') && li.previousElementSibling) list.insertBefore(li, li.previousElementSibling);
      else if (b.classList.contains('move-down') && li.nextElementSibling) list.insertBefore(li.nextElementSibling, li);
      else if (b.classList.contains('remove')) li.remove();
      cmsg.textContent = t('顺序已改动，保存后生效', 'Changed; save to keep it');
    });
    editCollection.addEventListener('submit', function (e) {
      e.preventDefault();
      var body = collectionFields(editCollection);
      body.lessons = Array.prototype.map.call(list.querySelectorAll('li'), function (li) { return li.getAttribute('data-lesson'); });
      send('PUT', '/api/v1/collections/' + encodeURIComponent(cid), body).then(function (r) {
        if (r[0] === 200) location.reload(); else cmsg.textContent = failure(r[1], r[0]);
      });
    });
    document.getElementById('delete-collection').addEventListener('click', function () {
      if (!confirm(t('删除这个专辑？下级各节点也将不再显示它。', 'Delete this collection? The nodes below stop showing it too.'))) return;
      send('DELETE', '/api/v1/collections/' + encodeURIComponent(cid)).then(function (r) {
        if (r[0] === 204) location.href = '/collections'; else cmsg.textContent = failure(r[1], r[0]);
      });
    });
  }
  var addTo = document.getElementById('add-to-collection');
  if (addTo) {
    addTo.addEventListener('submit', function (e) {
      e.preventDefault();
      var amsg = addTo.querySelector('.msg');
      var target = addTo.collection.value;
      fetch('/api/v1/collections', { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (v) {
        var c = v.items.filter(function (x) { return x.id === target; })[0];
        if (!c) { amsg.textContent = t('没有这个专辑', 'No such collection'); return; }
        c.lessons.push(addTo.getAttribute('data-lesson'));
        return send('PUT', '/api/v1/collections/' + encodeURIComponent(target), c).then(function (r) {
          if (r[0] === 200) location.reload(); else amsg.textContent = failure(r[1], r[0]);
        });
      }).catch(function (err) { amsg.textContent = failure({}, String(err)); });
    });
  }
  // Notices (通知公告): published, edited and deleted by the administrators of the node.
  var notice = document.getElementById('announcement-form');
  if (notice) {
    var editing = null;
    var nmsg = notice.querySelector('.msg');
    function localTime(ms) {
      var d = new Date(ms - new Date().getTimezoneOffset() * 60000);
      return d.toISOString().slice(0, 16);
    }
    notice.addEventListener('submit', function (e) {
      e.preventDefault();
      var at = notice.publish_at.value ? new Date(notice.publish_at.value).getTime() : 0;
      var body = { title: notice.title.value.trim(), body: notice.body.value, audience: notice.audience.value, publish_at: at };
      var req = editing ? send('PUT', '/api/v1/announcements/' + encodeURIComponent(editing), body) : send('POST', '/api/v1/announcements', body);
      req.then(function (r) { if (r[0] === 200) location.reload(); else nmsg.textContent = failure(r[1], r[0]); });
    });
    document.querySelector('main').addEventListener('click', function (e) {
      var b = e.target.closest('button.edit-announcement, button.delete-announcement'); if (!b) return;
      if (b.classList.contains('delete-announcement')) {
        if (!confirm(t('删除这条通知？', 'Delete this notice?'))) return;
        send('DELETE', '/api/v1/announcements/' + encodeURIComponent(b.getAttribute('data-announcement'))).then(function (r) {
          if (r[0] === 204) location.reload(); else nmsg.textContent = failure(r[1], r[0]);
        });
        return;
      }
      var a = JSON.parse(b.getAttribute('data-announcement'));
      editing = a.id;
      notice.title.value = a.title; notice.body.value = a.body; notice.audience.value = a.audience;
      notice.publish_at.value = a.publish_at ? localTime(a.publish_at) : '';
      document.getElementById('announcement-box').open = true;
      notice.querySelector('button[type=submit]').textContent = t('保存修改', 'Save changes');
      notice.title.focus();
    });
  }

  // The edit form: only the fields that changed are sent.
  var edit = document.getElementById('edit');
  if (edit) {
    var original = {};
    var lists = { knowledge_points: true, tags: true };
    function value(el) {
      if (el.type === 'checkbox') return el.checked;
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
          var review = mine.querySelector('tr[data-lesson="' + item.id + '"] td.review');
          if (review && review.textContent !== item.review_text) review.textContent = item.review_text;
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
  // Competitions: publishing one (a city or province admin), entering a lesson (a teacher),
  // assigning experts and publishing the results (the organizer's admin), scoring (an expert).
  var newComp = document.getElementById('new-competition');
  if (newComp) {
    newComp.addEventListener('submit', function (e) {
      e.preventDefault();
      var out = newComp.querySelector('.msg');
      var rubric = [];
      var bad = null;
      newComp.rubric.value.split('\n').map(function (s) { return s.trim(); }).filter(Boolean).forEach(function (line) {
        var m = /^(.+?)\s+(\d+)$/.exec(line);
        if (m) rubric.push({ name: m[1], max: Number(m[2]) }); else bad = line;
      });
      if (bad) { out.textContent = t('评分标准每行写“名称 分值”：', 'Each rubric line is "name points": ') + bad; return; }
      var closes = newComp.closes_at.value ? Date.parse(newComp.closes_at.value + ':00+08:00') : 0;
      send('POST', '/api/v1/competitions', {
        title: newComp.title.value, description: newComp.description.value, closes_at: closes,
        requires_standard: newComp.requires_standard.checked, rubric: rubric
      }).then(function (r) {
        if (r[0] === 200) location.href = '/competitions/' + encodeURIComponent(r[1].id);
        else out.textContent = failure(r[1], r[0]);
      });
    });
  }
  var contest = document.getElementById('competition');
  if (contest) {
    var cid = encodeURIComponent(contest.getAttribute('data-competition'));
    var cmsg = contest.querySelector('p.msg:last-child');
    var enter = document.getElementById('enter');
    if (enter) {
      enter.addEventListener('submit', function (e) {
        e.preventDefault();
        var out = enter.querySelector('.msg');
        send('POST', '/api/v1/competitions/' + cid + '/entries', { lesson: enter.lesson.value }).then(function (r) {
          if (r[0] === 200) location.reload(); else out.textContent = t('未能报送：', 'Not entered: ') + explain(r[1], r[0]);
        });
      });
    }
    contest.addEventListener('submit', function (e) {
      var f = e.target;
      var lesson = encodeURIComponent(f.getAttribute('data-lesson') || '');
      if (f.classList.contains('assign')) {
        e.preventDefault();
        var experts = Array.prototype.filter.call(f.querySelectorAll('input[name=expert]'), function (b) { return b.checked; }).map(function (b) { return b.value; });
        send('PUT', '/api/v1/competitions/' + cid + '/entries/' + lesson + '/judges', { experts: experts }).then(function (r) {
          if (r[0] === 200) location.reload(); else cmsg.textContent = failure(r[1], r[0]);
        });
      } else if (f.classList.contains('score')) {
        e.preventDefault();
        var scores = {};
        Array.prototype.forEach.call(f.querySelectorAll('input[data-criterion]'), function (i) { scores[i.getAttribute('data-criterion')] = Number(i.value); });
        send('PUT', '/api/v1/competitions/' + cid + '/entries/' + lesson + '/score', { scores: scores, comment: f.comment.value }).then(function (r) {
          if (r[0] === 200) f.querySelector('.total').textContent = t('已评：', 'scored: ') + r[1].total; else cmsg.textContent = failure(r[1], r[0]);
        });
      }
    });
    var publish = document.getElementById('publish-results');
    if (publish) {
      publish.addEventListener('click', function () {
        var awards = Array.prototype.filter.call(contest.querySelectorAll('input.award-name'), function (i) { return i.value.trim(); })
          .map(function (i) { return { lesson: i.getAttribute('data-lesson'), award: i.value.trim() }; });
        publish.disabled = true;
        send('POST', '/api/v1/competitions/' + cid + '/results', { awards: awards }).then(function (r) {
          if (r[0] === 200) location.reload(); else { publish.disabled = false; cmsg.textContent = failure(r[1], r[0]); }
        });
      });
    }
  }
  // The admin console: live node tree and queue (server-sent events), users, tokens, the link.
  var consoleEl = document.getElementById('console');
  if (consoleEl) {
    var tiers = { school: t('学校', 'school'), city: t('市级', 'city'), province: t('省级', 'province') };
    function ago(ms) {
      if (ms === null || ms === undefined) return t('从未', 'never');
      if (ms < 60000) return Math.floor(ms / 1000) + t(' 秒前', ' s ago');
      if (ms < 3600000) return Math.floor(ms / 60000) + t(' 分钟前', ' min ago');
      return Math.floor(ms / 3600000) + t(' 小时前', ' h ago');
    }
    function bytes(n) {
      var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
      var i = 0; var v = n;
      while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
      return i === 0 ? n + ' B' : v.toFixed(1) + ' ' + units[i];
    }
    function cell(text, cls) { var td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; return td; }
    // Depth-first from this node, as the server draws it.
    function rows(tree) {
      var out = []; var seen = {};
      if (!tree.length) return out;
      var stack = [[0, tree[0]]];
      while (stack.length) {
        var top = stack.pop(); var n = top[1];
        if (seen[n.node_id]) continue;
        seen[n.node_id] = true; out.push(top);
        var kids = tree.filter(function (c) { return c.parent_id === n.node_id && !seen[c.node_id]; });
        kids.sort(function (a, b) { return a.name < b.name ? 1 : -1; });
        kids.forEach(function (k) { stack.push([top[0] + 1, k]); });
      }
      return out;
    }
    function draw(live) {
      var body = document.querySelector('#node-tree tbody');
      body.replaceChildren.apply(body, rows(live.tree).map(function (r) {
        var d = r[0]; var n = r[1];
        var top = d === 0 && !n.parent_id;
        var stale = (live.stale || []).indexOf(n.node_id) >= 0;
        var code = top ? 'top' : (stale ? 'stale' : (n.connected ? 'up' : 'down'));
        var tr = document.createElement('tr');
        tr.setAttribute('data-node', n.node_id); tr.setAttribute('data-link', code);
        var name = cell(n.name + ' ', 'depth-' + Math.min(d, 4));
        var tier = document.createElement('span'); tier.className = 'muted'; tier.textContent = tiers[n.tier] || n.tier; name.appendChild(tier);
        tr.appendChild(name);
        var states = { top: t('顶层节点', 'top of the tree'), stale: t('失联，状态未知', 'unknown: out of reach'), up: t('在线', 'up'), down: t('离线', 'down') };
        tr.appendChild(cell(states[code], 'link-' + code));
        tr.appendChild(cell(top ? '—' : ago(n.last_sync_ms_ago)));
        tr.appendChild(cell(String(n.pending_docs), 'docs'));
        tr.appendChild(cell(n.pending_uploads + ' · ' + bytes(n.pending_upload_bytes), 'queue'));
        tr.appendChild(cell(String(n.lessons)));
        tr.appendChild(cell(n.age_ms < 1000 ? t('实时', 'live') : ago(n.age_ms), 'muted'));
        return tr;
      }));
      var queue = document.querySelector('#upload-queue tbody');
      var qrows = live.upload_queue.map(function (u) {
        var tr = document.createElement('tr');
        tr.appendChild(cell((u.priority > 0 ? t('【参评】', '[competition] ') : '') + (u.title || u.hash)));
        tr.appendChild(cell(bytes(u.size))); tr.appendChild(cell(String(u.attempts))); tr.appendChild(cell(u.last_error || '', 'muted'));
        return tr;
      });
      if (!qrows.length) { var tr = document.createElement('tr'); var td = cell(t('队列为空', 'the queue is empty'), 'muted'); td.colSpan = 4; tr.appendChild(td); qrows.push(tr); }
      queue.replaceChildren.apply(queue, qrows);
      document.getElementById('transfers').textContent = live.transfers.map(function (x) {
        return x.peer + ' ' + bytes(x.done) + ' / ' + bytes(x.size) + ' · ' + bytes(Math.round(x.rate)) + '/s' + (x.eta_secs ? ' · ' + Math.ceil(x.eta_secs) + ' s' : '');
      }).join('；');
      var at = document.getElementById('live-at');
      at.setAttribute('data-at', live.at);
      at.textContent = t('已更新 ', 'updated ') + new Date(live.at).toLocaleTimeString();
      var p = document.getElementById('parent-link');
      if (p && live.parent) p.setAttribute('data-state', live.parent.state);
    }
    if (window.EventSource) {
      var events = new EventSource('/api/v1/admin/events');
      events.addEventListener('console', function (e) { try { draw(JSON.parse(e.data)); } catch (_) {} });
    }
    function say(form, r, ok) { form.querySelector('.msg').textContent = r[0] < 300 ? ok : failure(r[1], r[0]); }
    var newUser = document.getElementById('new-user');
    if (newUser) {
      newUser.addEventListener('submit', function (e) {
        e.preventDefault();
        send('POST', '/api/v1/users', { name: newUser.name.value, display: newUser.display.value || newUser.name.value, role: newUser.role.value, password: newUser.password.value })
          .then(function (r) { if (r[0] < 300) location.reload(); else say(newUser, r); });
      });
    }
    consoleEl.addEventListener('change', function (e) {
      var el = e.target; var user = el.getAttribute('data-user');
      if (!user) return;
      var change = el.classList.contains('user-role') ? { role: el.value } : { disabled: el.checked };
      send('PATCH', '/api/v1/users/' + encodeURIComponent(user), change).then(function (r) {
        var m = document.querySelector('#new-user .msg');
        m.textContent = r[0] < 300 ? t('已保存 ', 'Saved ') + user : failure(r[1], r[0]);
      });
    });
    var newToken = document.getElementById('new-token');
    if (newToken) {
      newToken.addEventListener('submit', function (e) {
        e.preventDefault();
        send('POST', '/api/v1/tokens', { role: newToken.getAttribute('data-role'), name: newToken.name.value, expires: newToken.expires.value }).then(function (r) {
          if (r[0] !== 200) { say(newToken, r); return; }
          var out = document.getElementById('token-out');
          out.hidden = false;
          out.textContent = t('一次性令牌（只显示这一次）：\n', 'One-time token (shown this once):\n') + r[1].token;
          say(newToken, r, t('已生成', 'Made'));
        });
      });
    }
    var linkForm = document.getElementById('link-form');
    if (linkForm) {
      var put = function (schedule) {
        send('PUT', '/api/v1/link', { upload_schedule: schedule }).then(function (r) {
          if (r[0] === 200) document.getElementById('schedule-now').textContent = r[1].upload_schedule;
          say(linkForm, r, t('已生效', 'In force'));
        });
      };
      linkForm.addEventListener('submit', function (e) { e.preventDefault(); put(linkForm.schedule.value); });
      document.getElementById('link-reset').addEventListener('click', function () { put(null); });
    }
  }
})();
