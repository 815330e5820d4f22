// A teacher signs in through the login page (sent there by the upload page), uploads a
// recording with the progress bar and finds it under "my lessons"; a file that is no recording
// is refused with the reason in Chinese.
// Usage: node upload.mjs '{"base": "http://127.0.0.1:PORT", "name": "…", "password": "…", "file": "/path.mp4", "title": "…", "screenshot": "x.png"}'
import { run } from './browser.mjs';

await run(async (page, args) => {
  const seen = { patches: 0, dropped: 0 };
  // With drop_piece = n, the n-th piece (PATCH, counting from 1) is cut off once, as a flaky
  // school link would: the page must resume from the node's offset.
  await page.route('**/api/v1/uploads/resumable/*', (route) => {
    if (route.request().method() !== 'PATCH') return route.continue();
    seen.patches += 1;
    if (args.drop_piece && seen.patches === args.drop_piece) { seen.dropped += 1; return route.abort('connectionreset'); }
    return route.continue();
  });
  await page.goto(args.base + '/upload', { waitUntil: 'load' });
  seen.redirected_to = new URL(page.url()).pathname + new URL(page.url()).search;
  await page.fill('#name', args.name);
  await page.fill('#password', args.password);
  await Promise.all([page.waitForURL('**/upload'), page.click('form[action="/login"] button[type=submit]')]);
  seen.after_sign_in = new URL(page.url()).pathname;
  seen.header = await page.textContent('header');
  await page.setInputFiles('#file', args.file);
  await page.fill('#title', args.title);
  await page.click('#up button[type=submit]');
  await page.waitForFunction(() => /上传完成|未能导入|上传中断/.test(document.getElementById('msg').textContent), null, { timeout: 60000 });
  seen.link = await page.getAttribute('#msg a', 'href');
  seen.message = await page.textContent('#msg');
  seen.progress = await page.evaluate(() => document.getElementById('bar').value);
  seen.upload = await page.evaluate(() => window.youkeUpload);
  if (args.bad_file) {
    // A file that is no recording: refused with the reason, in Chinese.
    await page.goto(args.base + '/upload', { waitUntil: 'load' });
    await page.setInputFiles('#file', args.bad_file);
    await page.fill('#title', '坏文件');
    await page.click('#up button[type=submit]');
    await page.waitForFunction(() => /未能导入/.test(document.getElementById('msg').textContent), null, { timeout: 60000 });
    seen.bad_message = await page.textContent('#msg');
  }
  await page.goto(args.base + '/my', { waitUntil: 'load' });
  seen.listed = await page.$$eval('#mine td:first-child a', (as) => as.map((a) => a.textContent));
  seen.state = await page.getAttribute('#mine td.replication', 'data-state');
  return seen;
});
