// Searches for a lesson and plays it in the portal's player: the search box finds it by a word
// spoken in its subtitles, the hit's moment link opens the player there; HLS through hls.js, a
// quality chosen from the menu, the subtitle track loaded, a transcript line seeking the video;
// then the home, search and lesson pages at a phone's width. Prints what it saw as JSON.
// Usage: node play.mjs '{"base": "http://127.0.0.1:PORT", "query": "勾股定理", "lesson": "ID", "screenshot": "x.png"}'
import { run } from './browser.mjs';

await run(async (page, args) => {
  const seen = {};
  await page.goto(args.base + '/', { waitUntil: 'load' });
  await page.fill('header form[role=search] input[name=q]', args.query);
  await Promise.all([page.waitForURL('**/search?q=**'), page.click('header form[role=search] button[type=submit]')]);
  seen.hits = await page.$$eval('article.hit a.title', (as) => as.map((a) => a.textContent));
  const moment = 'article.hit .moments a[href^="/lessons/' + args.lesson + '?t="]';
  seen.moment_href = await page.getAttribute(moment, 'href');
  await Promise.all([page.waitForURL('**/lessons/**'), page.click(moment)]);
  seen.url = new URL(page.url()).pathname + new URL(page.url()).search;
  await page.waitForFunction(() => window.youkePlayer && (window.youkePlayer.levels.length > 0 || window.youkePlayer.engine === 'mp4'), null, { timeout: 20000 });
  seen.engine = await page.evaluate(() => window.youkePlayer.engine);
  seen.levels = await page.evaluate(() => window.youkePlayer.levels);
  seen.menu = await page.$$eval('#quality option', (os) => os.map((o) => o.textContent));
  seen.h264_in_mse = await page.evaluate(() => window.MediaSource ? MediaSource.isTypeSupported('video/mp4; codecs="avc1.64001f,mp4a.40.2"') : false);

  // Plays (muted, as a page may without a click) until the video has advanced a second and a half.
  await page.evaluate(() => { const v = document.querySelector('video'); v.muted = true; return v.play(); });
  await page.waitForFunction(() => { const v = document.querySelector('video'); return !v.paused && v.readyState >= 3 && v.currentTime > 0; }, null, { timeout: 20000 });
  const t0 = await page.evaluate(() => document.querySelector('video').currentTime);
  await page.waitForFunction((t) => document.querySelector('video').currentTime > t + 1.5, t0, { timeout: 20000 });
  seen.started_at = t0;
  seen.playing = await page.evaluate(() => { const v = document.querySelector('video'); return { paused: v.paused, time: v.currentTime, width: v.videoWidth, height: v.videoHeight }; });

  // The lowest rung from the menu: hls.js switches to it and the picture has its height.
  if (seen.levels.length > 1) {
    const lowest = seen.levels.reduce((best, l, i) => (l.height < seen.levels[best].height ? i : best), 0);
    await page.selectOption('#quality', String(lowest));
    await page.waitForFunction((i) => window.youkePlayer.level === i, lowest, { timeout: 20000 });
    await page.waitForFunction((h) => document.querySelector('video').videoHeight === h, seen.levels[lowest].height, { timeout: 20000 });
    seen.switched = { level: lowest, height: await page.evaluate(() => document.querySelector('video').videoHeight) };
  }

  // Subtitles: the track's cues load from the WebVTT endpoint.
  seen.tracks = await page.evaluate(() => Array.from(document.querySelector('video').textTracks).map((t) => ({ language: t.language, label: t.label, mode: t.mode })));
  if (seen.tracks.length > 0) {
    await page.waitForFunction(() => { const t = document.querySelector('video').textTracks[0]; return t.cues && t.cues.length > 0; }, null, { timeout: 20000 });
    seen.cues = await page.evaluate(() => Array.from(document.querySelector('video').textTracks[0].cues).map((c) => ({ start: c.startTime, text: c.text })));
  }

  // A transcript line seeks the player to its moment.
  const line = await page.$('.transcript [data-seek]');
  if (line) {
    await page.click('.transcript summary');
    const target = parseFloat(await line.getAttribute('data-seek'));
    await line.click();
    await page.waitForFunction((t) => Math.abs(document.querySelector('video').currentTime - t) < 1.0, target, { timeout: 20000 });
    seen.seek = { target, time: await page.evaluate(() => document.querySelector('video').currentTime) };
  }
  seen.errors = await page.evaluate(() => window.youkePlayer.errors);

  // A phone's screen: nothing wider than it on the pages a student uses.
  const lessonUrl = page.url();
  await page.setViewportSize({ width: 390, height: 844 });
  seen.phone = {};
  for (const [name, url] of [['home', args.base + '/'], ['search', args.base + '/search?q=' + encodeURIComponent(args.query)], ['lesson', lessonUrl]]) {
    await page.goto(url, { waitUntil: 'load' });
    seen.phone[name] = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
    if (args.screenshot) await page.screenshot({ path: args.screenshot.replace(/\.png$/, '-phone-' + name + '.png'), fullPage: true });
  }
  return seen;
});
