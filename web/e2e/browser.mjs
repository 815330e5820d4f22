// Starts Debian's Chromium through playwright-core for the end-to-end tests: headless, with a
// fresh profile, and with the background services off (this machine's network is closed and
// Chromium would otherwise keep trying Google's hosts). Every scenario is bounded in time.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export const CHROMIUM = process.env.YOUKE_CHROMIUM || '/usr/bin/chromium';

// Runs `scenario(page, args, more)` and prints its result as one JSON line; any failure is printed
// as {"error": ...} with a screenshot beside the requested one, and the exit code is 1.
// `more.newPage()` opens a page in a context of its own (its own cookies: another person).
export async function run(scenario) {
  const args = JSON.parse(process.argv[2] || '{}');
  const limit = setTimeout(() => { console.log(JSON.stringify({ error: 'scenario timed out' })); process.exit(2); }, (args.timeout_secs || 90) * 1000);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
  const console_lines = [];
  let page;
  try {
    const context = await browser.newContext({ locale: args.locale || 'zh-CN', viewport: args.viewport || { width: 1280, height: 800 } });
    page = await context.newPage();
    page.on('console', (m) => console_lines.push(m.type() + ': ' + m.text()));
    page.on('pageerror', (e) => console_lines.push('pageerror: ' + e.message));
    const newPage = async () => {
      const c = await browser.newContext({ locale: args.locale || 'zh-CN', viewport: args.viewport || { width: 1280, height: 800 } });
      const p = await c.newPage();
      p.on('pageerror', (e) => console_lines.push('pageerror: ' + e.message));
      return p;
    };
    const result = await scenario(page, args, { newPage });
    if (args.screenshot) { mkdirSync(dirname(args.screenshot), { recursive: true }); await page.screenshot({ path: args.screenshot, fullPage: true }); }
    console.log(JSON.stringify({ ok: true, result, console: console_lines }));
  } catch (e) {
    if (page && args.screenshot) {
      mkdirSync(dirname(args.screenshot), { recursive: true });
      await page.screenshot({ path: args.screenshot.replace(/\.png$/, '-failed.png'), fullPage: true }).catch(() => {});
    }
    console.log(JSON.stringify({ error: String(e && e.stack || e), console: console_lines }));
    process.exitCode = 1;
  } finally {
    clearTimeout(limit);
    await browser.close();
  }
}

// Signs in on the portal at `base` and lands on `next`.
export async function signIn(page, base, next, [name, password]) {
  await page.goto(base + '/login?next=' + encodeURIComponent(next), { waitUntil: 'load' });
  await page.fill('#name', name);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL('**' + next), page.click('form[action="/login"] button[type=submit]')]);
}

// Reloads `url` until `ok(status, page)` holds (sync between nodes takes a moment).
export async function reloadUntil(page, url, ok, seconds, what) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const r = await page.goto(url, { waitUntil: 'load' });
    if (await ok(r.status(), page)) return;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what + ' at ' + url);
    await page.waitForTimeout(500);
  }
}

// Reloads `url` until `selector` is on the page.
export async function until(page, url, selector, seconds) {
  return reloadUntil(page, url, async (_, p) => Boolean(await p.$(selector)), seconds, selector);
}

