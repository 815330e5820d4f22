// A teacher signs in, shares a lesson with the city from "my lessons" and watches its
// replication state change until the city holds it; then switches the portal to English and
// back.
// Usage: node share.mjs '{"base": "http://127.0.0.1:PORT", "name": "…", "password": "…", "lesson": "<id>", "screenshot": "x.png"}'
import { run } from './browser.mjs';

await run(async (page, args) => {
  const seen = { states: [] };
  const row = 'tr[data-lesson="' + args.lesson + '"]';
  await page.goto(args.base + '/my', { waitUntil: 'load' });
  await page.fill('#name', args.name);
  await page.fill('#password', args.password);
  await Promise.all([page.waitForURL('**/my'), page.click('form[action="/login"] button[type=submit]')]);
  seen.before = await page.getAttribute(row + ' td.replication', 'data-state');
  seen.level_before = (await page.textContent(row + ' td.level')).trim();
  await Promise.all([page.waitForEvent('load'), page.click(row + ' button[data-to="city"]')]);
  seen.level_after = (await page.textContent(row + ' td.level')).trim();
  // The state cell refreshes itself every 2 s; record each state it shows until delivered.
  const deadline = Date.now() + 60000;
  for (;;) {
    const s = await page.getAttribute(row + ' td.replication', 'data-state');
    if (seen.states[seen.states.length - 1] !== s) seen.states.push(s);
    if (s === 'delivered' || Date.now() > deadline) break;
    await page.waitForTimeout(250);
  }
  seen.state_text = (await page.textContent(row + ' td.replication')).trim();
  if (args.screenshot) await page.screenshot({ path: args.screenshot.replace(/\.png$/, '-zh.png'), fullPage: true });
  // English, on the same page.
  await Promise.all([page.waitForEvent('load'), page.click('#lang')]);
  seen.en = {
    url: new URL(page.url()).pathname,
    lang: await page.evaluate(() => document.documentElement.lang),
    h1: await page.textContent('h1'),
    state_text: (await page.textContent(row + ' td.replication')).trim(),
    nav: await page.$$eval('header nav a', (as) => as.map((a) => a.textContent)),
  };
  await Promise.all([page.waitForEvent('load'), page.click('#lang')]);
  seen.back = { lang: await page.evaluate(() => document.documentElement.lang), h1: await page.textContent('h1') };
  return seen;
});
