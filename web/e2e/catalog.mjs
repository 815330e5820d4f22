// Collections (专辑) and notices (通知公告) managed in the province's portal, seen at a school:
// the province's admin makes a collection, adds two lessons from their pages, reorders them;
// school B shows them in that order; unpublished, the collection leaves school B; deleted, it
// leaves the province's list. A notice for schools reaches school B and not the city.
// Usage: node catalog.mjs '{"province": URL, "city": URL, "b": URL, "lessons": [id, id],
//   "admin": [name, password], "screenshot": "x.png"}'
import { reloadUntil as until, run, signIn } from './browser.mjs';

const order = (page) => page.$$eval('.cards a[href^="/lessons/"], .card a[href^="/lessons/"]', (as) => as.map((a) => a.getAttribute('href').split('/').pop()))
  .then((ids) => ids.filter((id, i) => ids.indexOf(id) === i));

await run(async (admin, args, { newPage }) => {
  const seen = {};
  const shot = (name) => args.screenshot.replace(/\.png$/, '-' + name + '.png');
  const [first, second] = args.lessons;
  admin.on('dialog', (d) => d.accept());

  // 1. A new collection, then two lessons added from their pages.
  await signIn(admin, args.province, '/collections', args.admin);
  await admin.click('details.manage summary');
  await admin.fill('#new-collection input[name=title]', '省级精品课');
  await admin.fill('#new-collection textarea[name=description]', '全省优秀课例');
  await Promise.all([admin.waitForURL('**/collections/*'), admin.click('#new-collection button[type=submit]')]);
  seen.collection = new URL(admin.url()).pathname.split('/').pop();
  for (const id of [first, second]) {
    await admin.goto(args.province + '/lessons/' + id, { waitUntil: 'load' });
    await Promise.all([admin.waitForEvent('load'), admin.click('#add-to-collection button[type=submit]')]);
  }
  seen.in_collections = (await admin.textContent('.in-collections')).trim();

  // 2. Reordered: the second lesson first.
  await admin.goto(args.province + '/collections/' + seen.collection, { waitUntil: 'load' });
  seen.listed_before = await admin.$$eval('ol.collection-lessons li', (ls) => ls.map((l) => l.getAttribute('data-lesson')));
  await admin.click('ol.collection-lessons li:nth-child(2) button.move-up');
  await Promise.all([admin.waitForEvent('load'), admin.click('#edit-collection button[type=submit]')]);
  seen.listed_after = await admin.$$eval('ol.collection-lessons li', (ls) => ls.map((l) => l.getAttribute('data-lesson')));
  await admin.screenshot({ path: shot('manage'), fullPage: true });

  // 3. School B shows it in that order.
  const viewer = await newPage();
  const at_b = args.b + '/collections/' + seen.collection;
  await until(viewer, at_b, async (s, p) => s === 200 && JSON.stringify(await order(p)) === JSON.stringify([second, first]), 60, 'the collection in order at school B');
  seen.b_order = await order(viewer);
  seen.b_title = await viewer.textContent('h1');

  // 4. Unpublished: gone from school B.
  await admin.uncheck('#edit-collection input[name=published]');
  await Promise.all([admin.waitForEvent('load'), admin.click('#edit-collection button[type=submit]')]);
  await until(viewer, at_b, async (s) => s === 404, 60, 'the unpublished collection to leave school B');
  seen.b_after_unpublish = await viewer.textContent('h1');

  // 5. Deleted: gone from the province's list.
  await Promise.all([admin.waitForURL('**/collections'), admin.click('#delete-collection')]);
  seen.list_after_delete = await admin.$$eval('ul.directory a', (as) => as.map((a) => a.textContent));

  // 6. A notice for schools: at school B, not at the city.
  await admin.goto(args.province + '/announcements', { waitUntil: 'load' });
  await admin.click('#announcement-box summary');
  await admin.fill('#announcement-form input[name=title]', '关于报送优质课的通知');
  await admin.fill('#announcement-form textarea[name=body]', '请各校于月底前报送。');
  await admin.selectOption('#announcement-form select[name=audience]', 'school');
  await Promise.all([admin.waitForEvent('load'), admin.click('#announcement-form button[type=submit]')]);
  seen.notice_tags = await admin.$$eval('article.notice h2 .tag', (ts) => ts.map((t) => t.textContent));
  await until(viewer, args.b + '/announcements', async (s, p) => (await p.$$('article.notice')).length === 1, 60, 'the notice at school B');
  seen.b_notice = (await viewer.textContent('article.notice h2')).trim();
  await viewer.goto(args.city + '/announcements', { waitUntil: 'load' });
  seen.city_notices = (await viewer.$$('article.notice')).length;
  // Edited at the province, the new title reaches school B.
  await admin.click('button.edit-announcement');
  await admin.fill('#announcement-form input[name=title]', '关于报送优质课的通知（更正）');
  await Promise.all([admin.waitForEvent('load'), admin.click('#announcement-form button[type=submit]')]);
  await until(viewer, args.b + '/announcements', async (s, p) => ((await p.textContent('main')) || '').includes('（更正）'), 60, 'the edited notice at school B');
  seen.b_notice_edited = (await viewer.textContent('article.notice h2')).trim();
  return seen;
});
