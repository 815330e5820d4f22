// One viewer at a school watches a lesson whose file the school never held: the page plays the
// ladder with hls.js, fetched through the parents, on the rung the viewer chose (a link with
// ?quality=, as a remembered choice gives), shown in the quality menu, to the end.
// Usage: node ladder.mjs '{"base": URL, "lesson": "<id>", "height": 360, "screenshot": "x.png"}'
import { run } from './browser.mjs';

await run(async (page, args) => {
  const seen = {};
  await page.goto(args.base + '/lessons/' + args.lesson + '?quality=' + args.height, { waitUntil: 'load' });
  await page.waitForFunction(() => window.youkePlayer && window.youkePlayer.levels.length > 0, null, { timeout: 30000 });
  seen.engine = await page.evaluate(() => window.youkePlayer.engine);
  seen.levels = await page.evaluate(() => window.youkePlayer.levels.map((l) => l.height));
  // The quality menu (画质) shows the rung chosen.
  seen.menu = await page.$eval('#quality', (m) => m.options[m.selectedIndex].textContent);
  await page.evaluate(() => { const v = document.querySelector('video#player'); v.muted = true; return v.play(); });
  await page.waitForFunction(() => { const v = document.querySelector('video#player'); return v.ended || v.currentTime >= v.duration - 0.6; }, null, { timeout: 60000 });
  seen.played = await page.evaluate(() => document.querySelector('video#player').currentTime);
  seen.height = await page.evaluate(() => { const s = window.youkePlayer; return s.hls && s.hls.levels[s.hls.currentLevel] ? s.hls.levels[s.hls.currentLevel].height : null; });
  seen.errors = await page.evaluate(() => window.youkePlayer.errors);
  return seen;
});
