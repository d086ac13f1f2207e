// The operators' console in a real Chromium (Debian's package, driven by playwright-core)
// against a real api and consumer. Under the console's own strict CSP (no bypass):
// axe-core is evaluated through DevTools, and any CSP violation fails the test.
//
// An admin signs in through the provider's hosted page (authorization code + PKCE),
// finds a user registered here, ends their session (the user's token stops working),
// changes their role (the user's next request sees it), imports a 1 000-line file and
// watches it complete, replays the dead letter scripts/e2e.py created, watches the live
// pipeline's lag rise and fall while 500 users register, and reads the settings. The
// user, now a moderator, signs in and sees only what that role allows. Each screen is
// checked with axe-core (0 serious or critical) and at 360 px; screenshots go to $OUT.
//
// Env: API, CHROMIUM, OUT, ADMIN_EMAIL, ADMIN_PASSWORD, DLQ_EMAIL.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const API = env('API');
const out = process.env.OUT ?? 'target/e2e';
mkdirSync(out, { recursive: true });
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const password = 'console test password 2026';

async function call(method, path, body, token) {
  const res = await fetch(new URL(path, API), {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null), headers: res.headers };
}

function registration(email) {
  return { firstName: 'Ada', lastName: 'Lovelace', email, password, gender: 'female', sex: 'female', occupation: 'Analyst' };
}

async function waitCompleted(email) {
  for (let i = 0; ; i++) {
    const s = await call('GET', `/api/v1/users/${encodeURIComponent(email)}`, undefined, adminToken);
    if (s.body?.data?.status === 'completed') return s.body.data;
    assert.ok(i < 600, `${email} completes`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function login(email) {
  const r = await call('POST', '/api/v1/auth/login', { email, password });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.accessToken;
}

const adminToken = (await call('POST', '/api/v1/auth/login', { email: env('ADMIN_EMAIL'), password: env('ADMIN_PASSWORD') })).body.accessToken;
assert.ok(adminToken, 'the admin logs in');

const run = Date.now();
const userEmail = `console.user.${run}@example.com`;
assert.equal((await call('POST', '/api/v1/users', registration(userEmail))).status, 202);
await waitCompleted(userEmail);
const firstToken = await login(userEmail);

async function axe(page, label) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => await window.axe.run(document));
  const bad = result.violations.filter((v) => ['serious', 'critical'].includes(v.impact));
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(' | ')})`), [], `${label}: axe-core violations`);
  return result.violations.length;
}

async function fitsAt360(page, label) {
  const before = page.viewportSize();
  await page.setViewportSize({ width: 360, height: 740 });
  await page.waitForTimeout(150);
  await page.screenshot({ path: join(out, `console-${label}-360.png`), fullPage: false });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > 361 && !e.parentElement?.closest('.table-wrap'))
    .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`));
  assert.ok(width <= 360, `${label}: the page is ${width}px wide at a 360px viewport (${wide.join(', ')})`);
  await page.setViewportSize(before);
}

const cspViolations = [];
const browser = await chromium.launch({ executablePath: env('CHROMIUM'), args: ['--no-sandbox', '--disable-gpu'] });
let minor = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  const shot = (n) => page.screenshot({ path: join(out, `console-${n}.png`), fullPage: true });

  // ---- sign-in through the hosted page (code + PKCE) -----------------------------
  await page.goto(`${API}/console/`);
  await page.waitForURL(/\/oauth2\/(authorize|login)/);
  await page.getByLabel('Email or username').fill(env('ADMIN_EMAIL'));
  await page.getByLabel('Password').fill(env('ADMIN_PASSWORD'));
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/console\/(#.*)?$/);
  await page.locator('#users-table').waitFor();
  assert.match(await page.locator('#who').textContent(), /\(admin\)/);
  assert.ok(!page.url().includes('code='), 'the code is gone from the address bar');

  // Keyboard: focus lands on the content after each navigation; the skip link is the
  // first stop of the page and leads there; the filters follow in visual order.
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
  assert.equal(await page.evaluate(() => document.querySelector('a, button, input, select')?.className), 'skip');
  await page.locator('.skip').focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
  await page.locator('#user-search').focus();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'user-role');
  minor += await axe(page, 'users list');
  await shot('1-users');
  await fitsAt360(page, 'users');

  // ---- find the user, end their session ------------------------------------------
  await page.getByLabel('Search').fill(userEmail);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name: userEmail }).click();
  await page.locator('#sessions-table').waitFor();
  await page.locator('#passkeys-table').waitFor();
  assert.equal(await page.locator('.end-session').count(), 1, 'one live session');
  minor += await axe(page, 'user detail');
  await shot('2-user');
  await fitsAt360(page, 'user');
  await page.locator('.end-session').click();
  await page.getByRole('dialog').waitFor();
  minor += await axe(page, 'confirmation dialog');
  await page.getByRole('button', { name: 'End session' }).click();
  await page.getByRole('heading', { name: 'Sessions (0)' }).waitFor();
  assert.equal((await call('GET', '/api/v1/auth/me', undefined, firstToken)).status, 401, 'the ended session\'s token is refused');

  // ---- change the role: the user's next request sees it ------------------------------
  const secondToken = await login(userEmail);
  assert.equal((await call('GET', '/api/v1/auth/me', undefined, secondToken)).body.data.role, 'user');
  await page.locator('#new-role').selectOption('moderator');
  await page.getByRole('button', { name: 'Change role' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Change role' }).click();
  await page.locator('#user-role-value', { hasText: 'moderator' }).waitFor();
  assert.equal((await call('GET', '/api/v1/auth/me', undefined, secondToken)).status, 401, 'the old token is refused after the role change');
  assert.equal((await call('GET', '/api/v1/auth/me', undefined, await login(userEmail))).body.data.role, 'moderator');
  await page.locator('#audit-table', { hasText: 'user.updated' }).waitFor();

  // ---- import 1 000 lines and watch them complete ------------------------------------
  const lines = [];
  for (let i = 0; i < 1000; i++) {
    lines.push(JSON.stringify({ ...registration(`import.${run}.${i}@example.com`), firstName: `Imported${i}` }));
  }
  const file = join(out, 'console-import.ndjson');
  writeFileSync(file, lines.join('\n') + '\n');
  await page.goto(`${API}/console/#/imports`);
  await page.getByLabel('NDJSON file').setInputFiles(file);
  await page.getByRole('button', { name: 'Import', exact: true }).click();
  await page.locator('#import-status[data-state="complete"]').waitFor({ timeout: 240_000 });
  assert.equal(await page.locator('#import-completed').textContent(), '1000');
  await page.locator('#imports-table').waitFor();
  minor += await axe(page, 'imports');
  await shot('3-imports');
  await fitsAt360(page, 'imports');

  // ---- replay the dead letter --------------------------------------------------------
  const dlqEmail = env('DLQ_EMAIL');
  await page.goto(`${API}/console/#/dead-letters`);
  const row = page.locator('#dead-letter-table tr', { hasText: dlqEmail });
  await row.waitFor();
  await row.getByRole('button', { name: /^Show/ }).click();
  await page.locator('#dead-letter-detail').waitFor();
  const detail = await page.locator('#dead-letter-detail').textContent();
  assert.match(detail, /sealed-password/, 'the credential is named by kind');
  minor += await axe(page, 'dead letters');
  await shot('4-dead-letters');
  await fitsAt360(page, 'dead-letters');
  await row.getByRole('button', { name: /^Replay/ }).click();
  await page.locator('#dry-run', { hasText: '1 would go back' }).waitFor();
  await page.getByRole('dialog').getByRole('button', { name: 'Replay' }).click();
  await page.locator('#replayed').waitFor();
  await waitCompleted(dlqEmail);

  // ---- registrations in flight: the replayed one is completed -----------------------
  await page.goto(`${API}/console/#/registrations`);
  await page.getByLabel('Email or registration id').fill(dlqEmail);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.locator('#matches-table', { hasText: 'completed' }).waitFor();
  minor += await axe(page, 'registrations');
  await shot('5-registrations');
  await fitsAt360(page, 'registrations');

  // ---- the live pipeline while 500 users register -----------------------------------
  await page.goto(`${API}/console/#/pipeline`);
  await page.locator('#stream-status', { hasText: 'Live' }).waitFor({ timeout: 20_000 });
  const lags = [];
  const watcher = setInterval(async () => {
    const text = await page.locator('#lag-total').textContent().catch(() => null);
    if (text && /^\d+$/.test(text)) lags.push(Number(text));
  }, 250);
  await page.waitForTimeout(3000); // a few quiet samples before the burst
  let sent = 0;
  const burst = async () => {
    while (sent < 500) {
      const i = sent++;
      const r = await call('POST', '/api/v1/users', registration(`burst.${run}.${i}@example.com`));
      assert.equal(r.status, 202);
    }
  };
  await Promise.all(Array.from({ length: 25 }, burst));
  const deadline = Date.now() + 120_000;
  while (!(Math.max(0, ...lags) > 0 && lags.at(-1) === 0) && Date.now() < deadline) {
    await page.waitForTimeout(500);
  }
  clearInterval(watcher);
  await shot('6-pipeline');
  const peak = Math.max(0, ...lags);
  assert.ok(peak > 0, `the lag rose while 500 users registered (seen: ${lags.slice(0, 40).join(',')})`);
  assert.equal(lags.at(-1), 0, 'the lag fell back to 0');
  minor += await axe(page, 'pipeline');
  await fitsAt360(page, 'pipeline');

  // ---- settings ----------------------------------------------------------------------
  await page.goto(`${API}/console/#/settings`);
  await page.locator('#clients-table', { hasText: 'registrar-console' }).waitFor();
  minor += await axe(page, 'settings');
  await shot('7-settings');
  await fitsAt360(page, 'settings');

  // ---- a moderator sees what the role allows ------------------------------------------
  const modContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const mod = await modContext.newPage();
  await mod.goto(`${API}/console/`);
  await mod.getByLabel('Email or username').fill(userEmail);
  await mod.getByLabel('Password').fill(password);
  await mod.keyboard.press('Enter');
  await mod.locator('#users-table').waitFor();
  const sections = await mod.locator('#nav a').allTextContents();
  assert.deepEqual(sections, ['Users', 'Registrations'], 'a moderator sees users and registrations only');
  await mod.goto(`${API}/console/#/dead-letters`);
  await mod.getByText('Your role does not allow this page.').waitFor();
  await mod.goto(`${API}/console/#/users`);
  await mod.getByLabel('Search').fill(env('ADMIN_EMAIL'));
  await mod.getByRole('button', { name: 'Search' }).click();
  await mod.getByRole('link', { name: env('ADMIN_EMAIL') }).click();
  await mod.locator('#user-profile').waitFor();
  assert.equal(await mod.locator('#actions-title').count(), 0, 'no actions for a moderator');
  assert.equal(await mod.locator('#audit-table').count(), 0, 'no audit trail for a moderator');
  assert.equal(await mod.locator('#sessions-table').count(), 0, 'no sessions for a moderator');
  await mod.screenshot({ path: join(out, 'console-8-moderator.png'), fullPage: true });
  await modContext.close();

  // ---- sign out ----------------------------------------------------------------------
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/oauth2\/(authorize|login)|\/console\//);

  assert.deepEqual(cspViolations, [], 'no Content-Security-Policy violation');
  console.log(`console in Chromium passed: sign-in with PKCE, session ended, role changed, 1 000-line import, dead letter replayed, lag peaked at ${peak} and fell to 0 during 500 sign-ups, settings, moderator view; axe-core: 0 serious or critical (${minor} minor in all); 360 px fits`);
} finally {
  await browser.close();
}
