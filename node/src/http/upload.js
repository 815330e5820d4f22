// The upload page: sends the chosen recording with the tus protocol (/api/v1/uploads/resumable)
// in 8 MiB pieces with a progress bar. A dropped connection is retried with growing pauses from
// the offset the node acknowledged; the upload's address is remembered per file, so choosing the
// same file again after a reload continues where it stopped.
(function () {
  'use strict';
  var zh = document.documentElement.lang.indexOf('zh') === 0;
  function t(z, e) { return zh ? z : e; }
  var PIECE = 8 * 1024 * 1024;
  var BASE = '/api/v1/uploads/resumable';
  var csrf = document.querySelector('meta[name=csrf-token]').content;
  var bar = document.getElementById('bar'), msg = document.getElementById('msg');
  var state = window.youkeUpload = { retries: 0, resumed_from: null, pieces: 0, done: false };

  function b64(s) { return btoa(unescape(encodeURIComponent(s))); }
  function pct(n, total) { return Math.floor(100 * n / total) + '%'; }
  function wait(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // Where the node says the upload stands, or null if it no longer knows it.
  function offsetOf(url) {
    return fetch(url, { method: 'HEAD', credentials: 'same-origin', cache: 'no-store' }).then(function (r) {
      return r.ok ? Number(r.headers.get('Upload-Offset')) : null;
    });
  }

  function size(n) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
  }

  // What the node's refusal means, in the page's language.
  function refusal(status, v) {
    if (status === 507 && v.code === 'no_room') {
      return t('节点磁盘空间不足：文件 ' + size(v.declared_bytes) + '，可用 ' + size(v.room_bytes) + '（剩余 ' + size(v.free_bytes) + '，扣除 ' + v.reserve_percent + '% 预留空间及未完成的上传）。请清理空间或联系管理员。',
        'Not enough disk space on the node: the file is ' + size(v.declared_bytes) + ', there is room for ' + size(v.room_bytes) + ' (' + size(v.free_bytes) + ' free, less the ' + v.reserve_percent + ' % reserve and unfinished uploads). Free some space or ask the admin.');
    }
    if (status === 413) return t('文件超过节点允许的大小', 'The file is larger than the node accepts') + (v.detail ? '（' + v.detail + '）' : '');
    if (status === 503) return t('节点正忙，请稍后再试', 'The node is busy; try again shortly');
    return explain(v, status);
  }
  // portal.js (on every page) puts the API's English reasons in Chinese.
  function explain(v, status) {
    return window.youkeExplain ? window.youkeExplain(v, status) : (v.detail || ('HTTP ' + status));
  }

  function create(f, fields) {
    var meta = ['filename ' + b64(f.name)];
    Object.keys(fields).forEach(function (k) { if (fields[k]) meta.push(k + ' ' + b64(fields[k])); });
    return fetch(BASE, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': String(f.size), 'Upload-Metadata': meta.join(','), 'X-CSRF-Token': csrf }
    }).then(function (r) {
      if (r.status !== 201) return r.json().catch(function () { return {}; }).then(function (v) { throw new Error(refusal(r.status, v)); });
      return r.headers.get('Location');
    });
  }

  // Sends one piece; resolves to {status, offset, lesson, refusal}; a network failure is status 0.
  function piece(url, f, offset) {
    return new Promise(function (resolve) {
      var x = new XMLHttpRequest();
      x.open('PATCH', url);
      x.setRequestHeader('Tus-Resumable', '1.0.0');
      x.setRequestHeader('Upload-Offset', String(offset));
      x.setRequestHeader('Content-Type', 'application/offset+octet-stream');
      x.setRequestHeader('X-CSRF-Token', csrf);
      x.upload.onprogress = function (ev) { bar.value = (offset + ev.loaded) / f.size; };
      x.onload = function () {
        var v = {}; try { v = JSON.parse(x.responseText); } catch (_) {}
        resolve({ status: x.status, offset: Number(x.getResponseHeader('Upload-Offset')), lesson: x.getResponseHeader('Youke-Lesson'), refusal: v });
      };
      x.onerror = x.ontimeout = function () { resolve({ status: 0 }); };
      x.send(f.slice(offset, Math.min(f.size, offset + PIECE)));
    });
  }

  function finished(id, title) {
    var a = document.createElement('a');
    a.href = '/lessons/' + encodeURIComponent(id);
    a.textContent = title || t('查看课程', 'see the lesson');
    msg.replaceChildren(document.createTextNode(t('上传完成：', 'Uploaded: ')), a);
    bar.value = 1;
    state.done = true;
  }

  document.getElementById('up').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = document.getElementById('file').files[0];
    if (!f) return;
    var fields = {};
    ['title', 'teacher', 'grade', 'subject'].forEach(function (k) { fields[k] = document.getElementById(k).value.trim(); });
    var key = 'youke-upload:' + f.name + ':' + f.size + ':' + f.lastModified;
    var button = e.target.querySelector('button[type=submit]');
    button.disabled = true;
    bar.hidden = false; bar.value = 0;
    msg.textContent = t('正在上传…', 'Uploading…');
    var url = localStorage.getItem(key);
    var start = url ? offsetOf(url).then(function (o) { if (o === null) { url = null; return 0; } state.resumed_from = o; return o; }) : Promise.resolve(0);
    start.then(function (offset) {
      return (url ? Promise.resolve(url) : create(f, fields)).then(function (u) {
        url = u;
        localStorage.setItem(key, url);
        var pause = 1000;
        function next(at) {
          if (at >= f.size && state.lesson) return finished(state.lesson, fields.title);
          return piece(url, f, at).then(function (r) {
            if (r.status === 204) {
              state.pieces += 1; pause = 1000;
              if (r.lesson) { state.lesson = r.lesson; localStorage.removeItem(key); return finished(r.lesson, fields.title); }
              msg.textContent = t('正在上传… ', 'Uploading… ') + pct(r.offset, f.size);
              return next(r.offset);
            }
            if (r.status === 0 || r.status === 408 || r.status === 409 || r.status >= 500) {
              // Broken off: wait, ask where the node is, go on from there.
              state.retries += 1;
              msg.textContent = t('连接中断，', 'Connection lost; resuming in ') + Math.round(pause / 1000) + t(' 秒后续传…', ' s…');
              return wait(pause).then(function () {
                pause = Math.min(pause * 2, 30000);
                return offsetOf(url).then(function (o) { return o === null ? Promise.reject(new Error(t('服务器已不再保留这次上传', 'the node no longer holds this upload'))) : next(o); },
                  function () { return next(at); });
              });
            }
            localStorage.removeItem(key);
            throw new Error(explain(r.refusal || {}, r.status));
          });
        }
        return next(offset);
      });
    }).catch(function (err) {
      msg.textContent = t('未能导入：', 'Could not import: ') + err.message;
    }).then(function () { button.disabled = false; });
  });
})();
