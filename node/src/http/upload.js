// The upload page: sends the chosen recording to PUT /api/v1/uploads with a progress bar.
(function () {
  'use strict';
  var zh = document.documentElement.lang.indexOf('zh') === 0;
  function t(z, e) { return zh ? z : e; }
  document.getElementById('up').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = document.getElementById('file').files[0];
    if (!f) return;
    var q = new URLSearchParams({ name: f.name });
    ['title', 'teacher', 'grade', 'subject'].forEach(function (k) { var v = document.getElementById(k).value.trim(); if (v) q.set(k, v); });
    var x = new XMLHttpRequest(), bar = document.getElementById('bar'), msg = document.getElementById('msg');
    bar.hidden = false; msg.textContent = t('正在上传…', 'Uploading…');
    x.upload.onprogress = function (ev) { if (ev.lengthComputable) bar.value = ev.loaded / ev.total; };
    x.onload = function () {
      var r = {}; try { r = JSON.parse(x.responseText); } catch (_) {}
      if (x.status === 201) {
        var a = document.createElement('a');
        a.href = '/lessons/' + encodeURIComponent(r.id);
        a.textContent = r.title || t('查看课程', 'see the lesson');
        msg.replaceChildren(document.createTextNode(t('上传完成：', 'Uploaded: ')), a);
      } else {
        msg.textContent = t('未能导入：', 'Could not import: ') + (r.detail || x.statusText);
      }
    };
    x.onerror = function () { msg.textContent = t('上传中断，请重试', 'The upload broke off; try again'); };
    x.open('PUT', '/api/v1/uploads?' + q.toString());
    x.setRequestHeader('X-CSRF-Token', document.querySelector('meta[name=csrf-token]').content);
    x.send(f);
  });
})();
