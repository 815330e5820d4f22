// The sharing loop in the portal, as its users meet it: the province's reviewer rejects a lesson
// shared to 全省 from the review queue with a reason; its teacher at school A reads the reason
// under 我的课程; the reviewer approves it from the lesson page; an anonymous viewer at school B
// finds it by a Chinese word and plays it (B never held the file: it streams through the city);
// the province's admin takes it down (下架) and B's page for it is gone.
// Usage: node sharing.mjs '{"province": URL, "a": URL, "b": URL, "lesson": "<id>",
//   "expert": [name, password], "admin": [name, password], "teacher": [name, password], "screenshot": "x.png"}'
import { run, signIn, until } from './browser.mjs';

// Waits until the text of `selector` contains `part` (the page refreshes it by itself).
async function textUntil(page, selector, part, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const t = ((await page.textContent(selector).catch(() => '')) || '').trim();
    if (t.includes(part)) return t;
    if (Date.now() > deadline) throw new Error('timed out waiting for "' + part + '" in ' + selector + ' (it says "' + t + '")');
    await page.waitForTimeout(500);
  }
}

await run(async (expert, args, { newPage }) => {
  const seen = {};
  const shot = (name) => args.screenshot.replace(/\.png$/, '-' + name + '.png');
  const lesson = args.lesson;
  const row = 'tr[data-lesson="' + lesson + '"]';

  // 1. The province's reviewer finds it in the review queue and rejects it with a reason.
  await signIn(expert, args.province, '/review', args.expert);
  await until(expert, args.province + '/review', row, 60);
  seen.nav = await expert.$$eval('header nav a', (as) => as.map((a) => a.textContent));
  seen.queue_heading = await expert.textContent('h1');
  await expert.click(row + ' button[data-decision=reject]');
  seen.no_reason = await textUntil(expert, row + ' .msg', '原因', 5);
  await expert.fill(row + ' input[name=reason]', '画面不清晰，请重新录制');
  await expert.click(row + ' button[data-decision=reject]');
  seen.rejected = await textUntil(expert, row + ' .msg', '已退回', 10);
  await expert.screenshot({ path: shot('queue'), fullPage: true });

  // 2. The teacher at school A reads the decision and the reason under 我的课程.
  const teacher = await newPage();
  await signIn(teacher, args.a, '/my', args.teacher);
  seen.teacher_rejected = await textUntil(teacher, row + ' td.review', '画面不清晰', 60);

  // 3. The reviewer approves it from the lesson page.
  await expert.goto(args.province + '/lessons/' + lesson, { waitUntil: 'load' });
  seen.status_before = (await expert.textContent('.review-status')).trim();
  await Promise.all([expert.waitForEvent('load'), expert.click('#decide button[name=approve]')]);
  seen.status_after = (await expert.textContent('.review-status')).trim();
  seen.teacher_approved = await textUntil(teacher, row + ' td.review', '审核通过', 60);

  // 4. An anonymous viewer at school B finds it by a Chinese word and plays it.
  const viewer = await newPage();
  const hit = 'a[href="/lessons/' + lesson + '"]';
  await until(viewer, args.b + '/search?q=' + encodeURIComponent('牛顿'), hit, 60);
  await Promise.all([viewer.waitForEvent('load'), viewer.click(hit)]);
  seen.b_title = await viewer.textContent('h1');
  await viewer.waitForSelector('video#player');
  await viewer.evaluate(() => { const v = document.querySelector('video#player'); v.muted = true; return v.play(); });
  await viewer.waitForFunction(() => document.querySelector('video#player').currentTime > 0.5, null, { timeout: 30000 });
  seen.b_played = await viewer.evaluate(() => document.querySelector('video#player').currentTime);
  seen.b_engine = await viewer.evaluate(() => window.youkePlayer && window.youkePlayer.engine);
  // Watched for half the lesson, the player reports the view with the page's ticket.
  await viewer.waitForFunction(() => window.youkePlayer && window.youkePlayer.view && window.youkePlayer.view !== 'sending', null, { timeout: 30000 });
  seen.b_view = await viewer.evaluate(() => window.youkePlayer.view);
  await viewer.screenshot({ path: shot('school-b'), fullPage: true });

  // 5. The province's admin takes it down from the lesson page.
  const admin = await newPage();
  await signIn(admin, args.province, '/lessons/' + lesson, args.admin);
  admin.on('dialog', (d) => { seen.confirm = d.message(); d.accept(); });
  await admin.fill('#takedown input[name=reason]', '教材版本有误');
  await Promise.all([admin.waitForEvent('load'), admin.click('#takedown button[type=submit]')]);
  seen.down_status = (await admin.textContent('.review-status')).trim();
  seen.teacher_down = await textUntil(teacher, row + ' td.review', '下架', 60);

  // 6. At school B the lesson is gone.
  const deadline = Date.now() + 60000;
  for (;;) {
    const r = await viewer.goto(args.b + '/lessons/' + lesson, { waitUntil: 'load' });
    if (r.status() === 404) { seen.b_after = await viewer.textContent('h1'); break; }
    if (Date.now() > deadline) throw new Error('the lesson is still shown at school B');
    await viewer.waitForTimeout(500);
  }
  await viewer.goto(args.b + '/search?q=' + encodeURIComponent('牛顿'), { waitUntil: 'load' });
  seen.b_search_hits = (await viewer.$$(hit)).length;
  return seen;
});
