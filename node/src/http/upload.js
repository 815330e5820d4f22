// The upload page: sends the chosen recording to PUT /api/v1/uploads with a progress bar.
document.getElementById('up').addEventListener('submit', function (e) {
  e.preventDefault();
  var f = document.getElementById('file').files[0];
  if (!f) return;
  var q = new URLSearchParams({name: f.name});
  ['title', 'teacher', 'grade', 'subject'].forEach(function (k) { var v = document.getElementById(k).value.trim(); if (v) q.set(k, v); });
  var x = new XMLHttpRequest(), bar = document.getElementById('bar'), msg = document.getElementById('msg');
  bar.hidden = false; msg.textContent = '正在上传…';
  x.upload.onprogress = function (ev) { if (ev.lengthComputable) bar.value = ev.loaded / ev.total; };
  x.onload = function () {
    var r = {}; try { r = JSON.parse(x.responseText); } catch (_) {}
    if (x.status === 201) { msg.innerHTML = '上传完成：<a href="/lessons/' + encodeURIComponent(r.id) + '">' + (r.title || '查看课程') + '</a>'; }
    else { msg.textContent = '未能导入：' + (r.detail || x.statusText); }
  };
  x.onerror = function () { msg.textContent = '上传中断，请重试'; };
  x.open('PUT', '/api/v1/uploads?' + q.toString());
  x.setRequestHeader('X-CSRF-Token', document.querySelector('meta[name=csrf-token]').content);
  x.send(f);
});
