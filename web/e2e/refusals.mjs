// What a teacher is told when the node refuses, in the page's language: too many failed sign-ins
// (429), then, signed in, a recording the node's disk has no room for (507, before any byte is
// sent).
// Usage: node refusals.mjs '{"base": "http://127.0.0.1:PORT", "name": "…", "password": "…", "file": "/path.mp4", "screenshot": "x.png"}'
import { run } from './browser.mjs';

await run(async (page, args) => {
  const seen = { patches: 0 };
  page.on('request', (r) => { if (r.method() === 'PATCH') seen.patches += 1; });
  await page.goto(args.base + '/login?next=%2Fupload', { waitUntil: 'load' });
  // Six wrong passwords: the sixth is held back by the throttle.
  for (let i = 0; i < 6; i += 1) {
    await page.fill('#name', args.name);
    await page.fill('#password', 'wrong password ' + i);
    await Promise.all([page.waitForLoadState('load'), page.click('form[action="/login"] button[type=submit]')]);
    seen.sign_in_message = await page.textContent('p.fail');
  }
  // From another browser (another person, the same address) the right password is refused too
  // for this name, until the window passes: sign in as someone else with the teacher role.
  await page.fill('#name', args.other_name);
  await page.fill('#password', args.password);
  await Promise.all([page.waitForURL('**/upload'), page.click('form[action="/login"] button[type=submit]')]);
  await page.setInputFiles('#file', args.file);
  await page.fill('#title', '放不下的录像');
  await page.click('#up button[type=submit]');
  await page.waitForFunction(() => /未能导入/.test(document.getElementById('msg').textContent), null, { timeout: 30000 });
  seen.upload_message = await page.textContent('#msg');
  return seen;
});
