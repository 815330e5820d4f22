// The province's admin console: the node tree reaches down to the school (reported up through
// the city) and follows it live over server-sent events (its row turns "down" when the school
// stops, without reloading); a join token, a link schedule and a user are made from the page.
// Usage: node console.mjs '{"base": "http://127.0.0.1:P", "admin": [name, password], "school": "<node id>",
//   "marker": "/tmp/x" (written once the school is seen up), "screenshot": "x.png"}'
import { run } from './browser.mjs';
import { writeFileSync } from 'node:fs';

await run(async (page, args) => {
  const seen = {};
  await page.goto(args.base + '/login?next=%2Fadmin', { waitUntil: 'load' });
  await page.fill('#name', args.admin[0]);
  await page.fill('#password', args.admin[1]);
  await Promise.all([page.waitForURL('**/admin'), page.click('form[action="/login"] button[type=submit]')]);
  seen.h1 = await page.textContent('h1');
  seen.sections = await page.$$eval('section.console', (ss) => ss.map((s) => s.id));
  seen.forecast = await page.$$eval('#forecast tr', (rs) => rs.length);
  const row = '#node-tree tr[data-node="' + args.school + '"]';
  // The school appears and is up, through the live events.
  await page.waitForSelector(row + '[data-link="up"]', { timeout: 60000 });
  const at0 = Number(await page.getAttribute('#live-at', 'data-at'));
  await page.waitForFunction((a) => Number(document.getElementById('live-at').getAttribute('data-at')) > a, at0, { timeout: 10000 });
  seen.tree = await page.$$eval('#node-tree tbody tr', (rs) => rs.map((r) => r.children[0].textContent.trim()));
  seen.depth = await page.$eval(row + ' td', (td) => td.className);
  writeFileSync(args.marker, 'up');
  await page.waitForSelector(row + '[data-link="down"]', { timeout: 90000 });
  seen.down_text = (await page.textContent(row + ' td:nth-child(2)')).trim();
  seen.reloaded = await page.evaluate(() => performance.getEntriesByType('navigation').length);
  // A join token for another city.
  await page.fill('#new-token input[name=name]', '保定市教育局');
  await page.click('#new-token button[type=submit]');
  await page.waitForSelector('#token-out:not([hidden])');
  seen.token = (await page.textContent('#token-out')).trim().split('\n').pop();
  // The link schedule.
  await page.fill('#link-form input[name=schedule]', '08:00-17:30 off, otherwise 20Mbit/s');
  await page.click('#link-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#link-form .msg').textContent.length > 0);
  seen.schedule = (await page.textContent('#schedule-now')).trim();
  // A user.
  await page.fill('#new-user input[name=name]', 'zhangsan');
  await page.fill('#new-user input[name=display]', '张三');
  await page.selectOption('#new-user select[name=role]', 'expert');
  await page.fill('#new-user input[name=password]', 'expert password');
  await Promise.all([page.waitForEvent('load'), page.click('#new-user button[type=submit]')]);
  seen.users = await page.$$eval('#users-table tbody tr', (rs) => rs.map((r) => r.getAttribute('data-user')));
  seen.audit = await page.$$eval('#audit-table tbody tr td:nth-child(3)', (ts) => ts.map((t) => t.textContent));
  return seen;
});
