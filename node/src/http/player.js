// The lesson page's player: HLS through hls.js where the browser has Media Source Extensions
// (desktop Chromium, Firefox), the browser's own HLS where it has that (Safari, phones), the
// original MP4 otherwise or when the ladder fails. A quality menu lists the rungs; `?t=SECONDS`
// in the page address, or a link with `data-seek`, starts at that moment (search hits in
// subtitles link here). The state is exposed as `window.youkePlayer` for tests and support.
(function () {
  'use strict';
  var video = document.querySelector('video[data-hls], video[data-mp4]');
  if (!video) return;
  var state = window.youkePlayer = { engine: 'none', levels: [], level: -1, errors: [] };
  var master = video.getAttribute('data-hls');
  var mp4 = video.getAttribute('data-mp4');
  var menu = document.getElementById('quality');

  function seekTo(t) {
    if (!(t >= 0)) return;
    if (video.readyState >= 1) { video.currentTime = t; } else {
      video.addEventListener('loadedmetadata', function once() {
        video.removeEventListener('loadedmetadata', once);
        video.currentTime = t;
      });
    }
  }
  function useMp4(why) {
    if (why) state.errors.push(why);
    if (!mp4) return;
    state.engine = 'mp4';
    video.src = mp4;
    if (menu) menu.hidden = true;
  }
  function addOption(value, label) {
    var o = document.createElement('option');
    o.value = String(value);
    o.textContent = label;
    menu.appendChild(o);
  }

  if (master && window.Hls && window.Hls.isSupported()) {
    var Hls = window.Hls;
    // Loading starts once the rung is known: the viewer's remembered choice (画质), or the one
    // a link asks for (`?quality=360`), from the first segment on; else hls.js picks by bandwidth.
    var hls = new Hls({ capLevelToPlayerSize: true, startLevel: -1, autoStartLoad: false });
    var wanted = new URLSearchParams(location.search).get('quality');
    try { wanted = wanted || localStorage.getItem('youke.quality'); } catch (_) {}
    state.engine = 'hls.js';
    state.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, function (_, data) {
      state.levels = data.levels.map(function (l) { return { height: l.height, bitrate: l.bitrate }; });
      var chosen = -1;
      data.levels.forEach(function (l, i) { if (wanted && String(l.height) === String(parseInt(wanted, 10)) && chosen < 0) chosen = i; });
      if (chosen >= 0) { hls.startLevel = chosen; hls.nextLevel = chosen; state.chosen = chosen; }
      hls.startLoad(-1);
      if (!menu) return;
      menu.textContent = '';
      addOption(-1, menu.getAttribute('data-auto') || 'Auto');
      // Highest first, as video sites list them; the values are hls.js's level indices.
      data.levels.map(function (l, i) { return { l: l, i: i }; })
        .sort(function (a, b) { return b.l.height - a.l.height || b.l.bitrate - a.l.bitrate; })
        .forEach(function (e) { addOption(e.i, e.l.height + 'p · ' + Math.round(e.l.bitrate / 1000) + ' kbit/s'); });
      menu.value = String(chosen);
      menu.hidden = false;
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, function (_, data) { state.level = data.level; });
    hls.on(Hls.Events.ERROR, function (_, data) {
      if (!data.fatal) return;
      hls.destroy();
      state.hls = null;
      useMp4('hls.js: ' + data.type + ' ' + data.details);
    });
    if (menu) {
      menu.addEventListener('change', function () {
        // -1 lets hls.js pick by bandwidth; a rung switches at the next segment.
        hls.currentLevel = parseInt(menu.value, 10);
        state.chosen = hls.currentLevel;
        // Remembered for the next lesson (a school's link decides what plays smoothly).
        var level = hls.levels[hls.currentLevel];
        try { if (level) localStorage.setItem('youke.quality', String(level.height)); else localStorage.removeItem('youke.quality'); } catch (_) {}
      });
    }
    hls.loadSource(master);
    hls.attachMedia(video);
  } else if (master && video.canPlayType('application/vnd.apple.mpegurl')) {
    state.engine = 'native-hls';
    video.src = master;
  } else {
    useMp4(master ? 'no HLS support in this browser' : '');
  }

  // A view counts once the lesson has really been watched for a while (the page's ticket says
  // how long: half the lesson, at most 30 s); reported once per page. `state.view` tells how
  // it went.
  var ticket = video.getAttribute('data-view-ticket');
  var lessonId = video.getAttribute('data-lesson');
  var need = parseFloat(video.getAttribute('data-view-after') || '30000') / 1000;
  if (ticket && lessonId) {
    var watched = 0, last = null, reported = false;
    video.addEventListener('seeking', function () { last = null; });
    video.addEventListener('timeupdate', function () {
      var t = video.currentTime;
      if (last !== null && !video.paused) {
        var d = t - last;
        if (d > 0 && d < 2) watched += d;
      }
      last = t;
      state.watched = watched;
      if (reported || watched < need) return;
      reported = true;
      state.view = 'sending';
      var token = document.querySelector('meta[name=csrf-token]');
      fetch('/api/v1/lessons/' + encodeURIComponent(lessonId) + '/views', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token ? token.content : '' },
        body: JSON.stringify({ ticket: ticket })
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (v) { state.view = r.ok ? (v.counted ? 'counted' : 'already counted today') : 'refused: ' + (v.detail || r.status); });
      }).catch(function (e) { state.view = 'failed: ' + e; });
    });
  }

  var start = parseFloat(new URLSearchParams(location.search).get('t'));
  if (start > 0) seekTo(start);
  document.addEventListener('click', function (e) {
    var a = e.target.closest && e.target.closest('[data-seek]');
    if (!a) return;
    e.preventDefault();
    seekTo(parseFloat(a.getAttribute('data-seek')));
    video.play().catch(function () {});
  });
})();
