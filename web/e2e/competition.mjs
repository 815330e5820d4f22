// A competition from notice to award across a province and a school (through their city):
// the province's admin publishes it; the school's teacher sees it, is refused for a lesson
// that fails the course video standard (the failing rules named) and enters a compliant one;
// the admin assigns it to one expert; that expert scores it and another expert sees nothing;
// the admin publishes the results; the school sees the award and the winners' collection.
// Usage: node competition.mjs '{"province": "http://127.0.0.1:P", "school": "http://127.0.0.1:S",
//   "admin": [name, password], "experts": [[name, password], [name, password]], "teacher": [name, password],
//   "good": "<lesson id>", "bad": "<lesson id>", "screenshot": "x.png"}'
import { run, signIn, until } from './browser.mjs';

await run(async (admin, args, { newPage }) => {
  const seen = {};
  const shot = (name) => args.screenshot.replace(/\.png$/, '-' + name + '.png');
  // 1. The notice: the province's admin publishes a competition.
  await signIn(admin, args.province, '/competitions', args.admin);
  await admin.fill('#c-title', '2026年全省优质课评选');
  await admin.fill('#c-description', '各校报送一节课例。\n须附中文字幕。');
  await admin.fill('#c-closes', args.closes);
  await Promise.all([admin.waitForURL('**/competitions/*'), admin.click('#new-competition button[type=submit]')]);
  const url = new URL(admin.url()).pathname;
  seen.competition = url.split('/').pop();
  seen.rubric = await admin.$$eval('table.rubric tr td:first-child', (tds) => tds.map((t) => t.textContent));
  // 2. The school's teacher finds it and enters lessons.
  const teacher = await newPage();
  await signIn(teacher, args.school, '/competitions', args.teacher);
  await until(teacher, args.school + '/competitions', 'a[href="' + url + '"]', 60);
  seen.listed_at_school = (await teacher.textContent('#competitions')).trim();
  await teacher.goto(args.school + url, { waitUntil: 'load' });
  seen.options = await teacher.$$eval('#enter-lesson option', (os) => os.map((o) => o.textContent));
  await teacher.selectOption('#enter-lesson', args.bad);
  await teacher.click('#enter button[type=submit]');
  await teacher.waitForFunction(() => document.querySelector('#enter .msg').textContent.length > 0);
  seen.refused = await teacher.textContent('#enter .msg');
  await teacher.selectOption('#enter-lesson', args.good);
  await Promise.all([teacher.waitForEvent('load'), teacher.click('#enter button[type=submit]')]);
  seen.entered = await teacher.$$eval('section.entry', (ss) => ss.map((s) => s.getAttribute('data-lesson')));
  // 3. The entry reaches the province; the admin assigns it to the first expert.
  const entry = 'section.entry[data-lesson="' + args.good + '"]';
  await until(admin, args.province + url, entry + ' form.assign', 90);
  await admin.check(entry + ' input[name=expert][value="' + args.experts[0][0] + '"]');
  await Promise.all([admin.waitForEvent('load'), admin.click(entry + ' form.assign button[type=submit]')]);
  seen.judges_before = (await admin.textContent(entry + ' .judges')).trim();
  // 4. The first expert scores it; the second sees no assignment.
  const expert = await newPage();
  await signIn(expert, args.province, url, args.experts[0]);
  seen.expert_heading = (await expert.textContent('#competition h2:last-of-type')).trim();
  seen.expert_entries = await expert.$$eval('section.entry', (ss) => ss.map((s) => s.getAttribute('data-lesson')));
  const scores = [28, 36, 18, 9];
  const inputs = await expert.$$(entry + ' input[data-criterion]');
  for (let i = 0; i < inputs.length; i++) await inputs[i].fill(String(scores[i]));
  await expert.fill(entry + ' input[name=comment]', '板书清晰，互动充分');
  await expert.click(entry + ' form.score button[type=submit]');
  await expert.waitForFunction((sel) => document.querySelector(sel + ' .total').textContent.length > 0, entry);
  seen.expert_total = (await expert.textContent(entry + ' .total')).trim();
  await expert.screenshot({ path: shot('expert'), fullPage: true });
  await expert.goto(args.province + '/competitions', { waitUntil: 'load' });
  seen.expert_assignments = await expert.$$eval('#assignments li', (ls) => ls.map((l) => l.textContent.trim()));
  const other = await newPage();
  await signIn(other, args.province, url, args.experts[1]);
  seen.other_expert_entries = await other.$$eval('section.entry', (ss) => ss.length);
  // 5. The admin sees the score and publishes the results.
  await admin.goto(args.province + url, { waitUntil: 'load' });
  seen.judges_after = (await admin.textContent(entry + ' .judges')).trim();
  await admin.fill('input.award-name[data-lesson="' + args.good + '"]', '一等奖');
  await Promise.all([admin.waitForEvent('load'), admin.click('#publish-results')]);
  seen.results = await admin.$$eval('ol.awards li', (ls) => ls.map((l) => l.textContent.trim()));
  await admin.screenshot({ path: shot('province'), fullPage: true });
  // 6. The school sees the award on the lesson and the winners' collection.
  await until(teacher, args.school + '/lessons/' + args.good, 'p.contests a.award', 60);
  seen.badge = (await teacher.textContent('p.contests a.award')).trim();
  await until(teacher, args.school + '/collections', 'a[href^="/collections/"]', 30);
  seen.collections = await teacher.$$eval('ul.directory a[href^="/collections/"]', (as) => as.map((a) => a.textContent));
  await teacher.goto(args.school + url, { waitUntil: 'load' });
  seen.school_results = await teacher.$$eval('ol.awards li', (ls) => ls.map((l) => l.textContent.trim()));
  await teacher.screenshot({ path: shot('school'), fullPage: true });
  return seen;
});
