// The hosted login in a real browser: Chromium (Debian's package) driven by
// playwright-core. Two example apps run on their own origins (relying parties built on
// openid-client). A user with TOTP signs in to the first on Registrar's page (password,
// then the code), and then to the second without any prompt (the browser session).
// axe-core checks each hosted page (0 serious or critical violations); screenshots go
// to $OUT.
//
// Env: ISSUER, CHROMIUM, OUT, and two first-party clients registered for
// APP_A_URL/APP_B_URL + /callback: APP_A_ID/SECRET, APP_B_ID/SECRET.
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import * as client from 'openid-client';
import Provider from 'oidc-provider';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const ISSUER = env('ISSUER');
const out = process.env.OUT ?? 'target/e2e';
mkdirSync(out, { recursive: true });
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s) of a base32 secret. */
function totp(base32, at = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

async function api(path, body, token) {
  const res = await fetch(new URL(path, ISSUER), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null), headers: res.headers };
}

/** A registered user with TOTP enabled; returns the credentials and the TOTP secret. */
async function userWithTotp() {
  const email = `hosted.${Date.now()}@example.com`;
  const password = 'correct horse battery 1815';
  const reg = await api('/api/v1/users', { firstName: 'Grace', lastName: 'Hopper', email, password,
    gender: 'female', sex: 'female', occupation: 'Rear Admiral' });
  assert.equal(reg.status, 202);
  const location = reg.headers.get('location');
  for (let i = 0; ; i++) {
    const s = await (await fetch(new URL(location, ISSUER))).json();
    if (s.data?.status === 'completed') break;
    assert.ok(i < 300, 'registration completes');
    await new Promise((r) => setTimeout(r, 100));
  }
  const login = await api('/api/v1/auth/login', { email, password });
  const token = login.body.accessToken;
  const enrol = await api('/api/v1/auth/mfa/totp/enroll', { password }, token);
  assert.equal(enrol.status, 200, JSON.stringify(enrol.body));
  const confirm = await api('/api/v1/auth/mfa/totp/confirm', { code: totp(enrol.body.secret) }, token);
  assert.equal(confirm.status, 200, JSON.stringify(confirm.body));
  return { email, password, secret: enrol.body.secret };
}

/** An example app: /login starts the code flow, /callback finishes it and greets. */
async function exampleApp(name, base, id, secret) {
  const config = await client.discovery(new URL(ISSUER), id, secret, undefined,
    { execute: [client.allowInsecureRequests] });
  const pending = new Map();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, base);
    try {
      if (url.pathname === '/login') {
        const verifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const nonce = client.randomNonce();
        pending.set(state, { verifier, nonce });
        const to = client.buildAuthorizationUrl(config, {
          redirect_uri: `${base}/callback`, scope: 'openid profile email', state, nonce,
          code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
        });
        // `?via=localhost`: reach the hosted page by that name (WebAuthn's relying party
        // must be a domain, never an address).
        if (url.searchParams.get('via')) to.hostname = url.searchParams.get('via');
        res.writeHead(302, { location: to.href }).end();
      } else if (url.pathname === '/callback') {
        const { verifier, nonce } = pending.get(url.searchParams.get('state')) ?? {};
        const tokens = await client.authorizationCodeGrant(config, url,
          { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: url.searchParams.get('state') });
        const c = tokens.claims();
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(
          `<!doctype html><html lang="en"><title>${name}</title><main><h1>${name}</h1>` +
          `<p id="who">Signed in as ${c.email}</p><p id="amr">${c.amr.join(' ')}</p></main></html>`);
      } else {
        res.writeHead(404).end();
      }
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
    }
  });
  await new Promise((r) => server.listen(Number(new URL(base).port), '127.0.0.1', r));
  return server;
}

async function axe(page, label) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => await window.axe.run(document));
  const bad = result.violations.filter((v) => ['serious', 'critical'].includes(v.impact));
  assert.deepEqual(bad.map((v) => `${v.id}: ${v.help}`), [], `${label}: axe-core violations`);
  return result.violations.length;
}

/**
 * Social login against oidc-provider (a certified OpenID provider) as the upstream
 * issuer: its development login form takes any login as the account id, which is the
 * email here; `unverified:` in front makes the address unverified.
 */
async function socialLogin() {
  const upstreamIssuer = `http://127.0.0.1:${env('UPSTREAM_PORT')}`;
  const upstream = new Provider(upstreamIssuer, {
    clients: [{
      client_id: 'registrar', client_secret: 'upstream-client-secret-0123456789',
      redirect_uris: [`${ISSUER}/oauth2/social/callback`], grant_types: ['authorization_code'], response_types: ['code'],
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['given_name', 'family_name'] },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: id.replace(/^unverified:/, ''), email_verified: !id.startsWith('unverified:'),
            given_name: 'Ada', family_name: 'Upstream' };
        },
      };
    },
  });
  const upstreamServer = upstream.listen(Number(env('UPSTREAM_PORT')), '127.0.0.1');
  try {
    const admin = await api('/api/v1/auth/login', { email: env('ADMIN_EMAIL'), password: env('ADMIN_PASSWORD') });
    assert.equal(admin.status, 200, JSON.stringify(admin.body));
    const created = await api('/api/v1/admin/identity-providers', {
      id: 'upstream', name: 'Upstream ID', issuer: upstreamIssuer, clientId: 'registrar',
      clientSecret: 'upstream-client-secret-0123456789',
    }, admin.body.accessToken);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.data.redirectUri, `${ISSUER}/oauth2/social/callback`);
    assert.equal(created.body.data.clientSecret, undefined, 'the secret is never shown');

    /** Signs in at app A through the upstream provider as `login`; returns the page. */
    const viaUpstream = async (login, name) => {
      // bypassCSP: axe-core is injected as a script.
      const context = await browser.newContext({ viewport: { width: 360, height: 740 }, bypassCSP: true });
      const page = await context.newPage();
      await page.goto(`${appA}/login`);
      await page.getByRole('link', { name: 'Continue with Upstream ID' }).click();
      await page.waitForURL(`${upstreamIssuer}/**`);
      await page.locator('input[name=login]').fill(login);
      await page.locator('input[name=password]').fill('anything');
      await page.locator('button[type=submit]').click();
      await page.locator('button', { hasText: 'Continue' }).click();
      if (name) await page.screenshot({ path: join(out, `oidc-${name}.png`), fullPage: true });
      return { context, page };
    };

    // 1. A first sign-in creates the account (through the pipeline) and signs it in.
    const newcomer = `social.${Date.now()}@example.com`;
    {
      const { context, page } = await viaUpstream(newcomer);
      await page.waitForURL(`${appA}/callback**`);
      assert.equal(await page.textContent('#who'), `Signed in as ${newcomer}`);
      assert.equal(await page.textContent('#amr'), 'fed');
      await context.close();
    }

    // 2. The address of an existing account: nothing is linked until the person signs
    //    in to that account; then the identity is linked and signs in by itself.
    const existing = `social.existing.${Date.now()}@example.com`;
    const password = 'correct horse battery 1815';
    const reg = await api('/api/v1/users', { email: existing, password, firstName: 'Ada', lastName: 'Lovelace' });
    assert.equal(reg.status, 202);
    for (let i = 0; ; i++) {
      const s = await (await fetch(new URL(reg.headers.get('location'), ISSUER))).json();
      if (s.data?.status === 'completed') break;
      assert.ok(i < 300, 'registration completes');
      await new Promise((r) => setTimeout(r, 100));
    }
    {
      const { context, page } = await viaUpstream(existing, '6-link-required');
      await page.waitForURL(/\/oauth2\/login/);
      await page.getByText(`An account with the address ${existing} exists`).waitFor();
      await axe(page, 'link-required page');
      await page.getByLabel('Email or username').fill(existing);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.waitForURL(`${appA}/callback**`);
      assert.equal(await page.textContent('#who'), `Signed in as ${existing}`);
      await context.close();
    }
    const owner = await api('/api/v1/auth/login', { email: existing, password });
    const listed = await fetch(new URL('/api/v1/auth/identities', ISSUER), {
      headers: { authorization: `Bearer ${owner.body.accessToken}` } }).then((r) => r.json());
    assert.equal(listed.data.length, 1, JSON.stringify(listed));
    assert.equal(listed.data[0].provider, 'upstream');
    {
      const { context, page } = await viaUpstream(existing);
      await page.waitForURL(`${appA}/callback**`);
      assert.equal(await page.textContent('#who'), `Signed in as ${existing}`, 'the linked identity signs in');
      await context.close();
    }
    // Unlinked, it no longer signs in by itself.
    const unlinked = await fetch(new URL(`/api/v1/auth/identities/${listed.data[0].id}`, ISSUER), {
      method: 'DELETE', headers: { authorization: `Bearer ${owner.body.accessToken}` } });
    assert.equal(unlinked.status, 200);
    {
      const { context, page } = await viaUpstream(existing);
      await page.waitForURL(/\/oauth2\/login/);
      await page.getByText(`An account with the address ${existing} exists`).waitFor();
      await context.close();
    }

    // 3. An address the upstream provider did not verify is refused.
    {
      const { context, page } = await viaUpstream(`unverified:social.unverified.${Date.now()}@example.com`);
      await page.waitForURL(/\/oauth2\/login/);
      await page.getByText('did not vouch for your email address').waitFor();
      await context.close();
    }

    // 4. A forged or replayed state is refused.
    {
      const context = await browser.newContext();
      const page = await context.newPage();
      const answer = await page.goto(`${ISSUER}/oauth2/social/callback?state=forged-state&code=abc`);
      assert.equal(answer.status(), 400);
      await page.getByText('started in another browser').waitFor();
      await context.close();
    }
  } finally {
    upstreamServer.close();
  }
}

const appA = env('APP_A_URL');
const appB = env('APP_B_URL');
const servers = [
  await exampleApp('Example app A', appA, env('APP_A_ID'), env('APP_A_SECRET')),
  await exampleApp('Example app B', appB, env('APP_B_ID'), env('APP_B_SECRET')),
];
const user = await userWithTotp();
const browser = await chromium.launch({ executablePath: env('CHROMIUM'), args: ['--no-sandbox', '--disable-gpu'] });
try {
  // axe-core is injected as a script, which the pages' CSP forbids: this context lets it.
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, bypassCSP: true });
  const page = await context.newPage();
  const shot = (n) => page.screenshot({ path: join(out, `oidc-${n}.png`), fullPage: true });

  await page.goto(`${appA}/login`);
  assert.equal(new URL(page.url()).origin, new URL(ISSUER).origin, 'on the hosted page');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'login', 'focus starts in the first field');
  const minor = await axe(page, 'sign-in page');
  await shot('1-sign-in');
  await page.getByLabel('Email or username').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/oauth2\/login/);
  await page.getByLabel(/Code from your authenticator app/).waitFor();
  await axe(page, 'second-factor page');
  await shot('2-second-factor');
  // The enrolment used this step's code, and a code works once: the next step's.
  await page.getByLabel(/Code from your authenticator app/).fill(totp(user.secret, Date.now() + 30_000));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(`${appA}/callback**`);
  assert.equal(await page.textContent('#who'), `Signed in as ${user.email}`);
  assert.equal(await page.textContent('#amr'), 'pwd otp mfa');
  await shot('3-app-a-signed-in');

  // The second app: no page of the provider at all.
  const seen = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) seen.push(f.url()); });
  await page.goto(`${appB}/login`);
  await page.waitForURL(`${appB}/callback**`);
  assert.equal(await page.textContent('#who'), `Signed in as ${user.email}`);
  assert.ok(!seen.some((u) => u.includes('/oauth2/login')), `no sign-in page: ${seen.join(' → ')}`);
  await shot('4-app-b-without-prompt');
  await context.close();

  // Passkeys: an account made with only a passkey (Chromium's virtual authenticator)
  // signs in at app A through the login field's autofill, with no password and no code.
  const pk = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const pkPage = await pk.newPage();
  const cdp = await pk.newCDPSession(pkPage);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', { options: {
    protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true,
    isUserVerified: true, automaticPresenceSimulation: true } });
  // The sign-up runs in the hosted page's origin (its CSP lets it reach this api).
  await pkPage.goto(`${appA}/login?via=localhost`);
  await pkPage.getByLabel('Email or username').waitFor();
  const pkEmail = `hosted.passkey.${Date.now()}@example.com`;
  const accepted = await pkPage.evaluate(async (email) => {
    const post = async (path, body) => (await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body) })).json();
    const ceremony = await post('/api/v1/auth/passkey/register/options', { email });
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(ceremony.options.publicKey) });
    return post('/api/v1/auth/passkey/register', { ceremonyId: ceremony.ceremonyId, credential: credential.toJSON(), email,
      name: 'Katherine Johnson' });
  }, pkEmail);
  assert.ok(accepted.success, JSON.stringify(accepted));
  for (let i = 0; ; i++) {
    const s = await (await fetch(new URL(`/api/v1/users/${encodeURIComponent(pkEmail)}?registrationId=${accepted.data.registrationId}`, ISSUER))).json();
    if (s.data?.status === 'completed') break;
    assert.ok(i < 300, 'the passkey registration completes');
    await new Promise((r) => setTimeout(r, 100));
  }
  await pkPage.goto(`${appA}/login?via=localhost`);
  await pkPage.waitForURL(`${appA}/callback**`);
  assert.equal(await pkPage.textContent('#who'), `Signed in as ${pkEmail}`);
  assert.equal(await pkPage.textContent('#amr'), 'hwk user mfa');
  await pkPage.screenshot({ path: join(out, 'oidc-5-passkey-autofill.png'), fullPage: true });
  await pk.close();

  await socialLogin();
  console.log(`hosted login in Chromium passed: password and TOTP at app A, no prompt at app B, a passkey through autofill, social login against oidc-provider; axe-core: 0 serious or critical (${minor} minor on the sign-in page)`);
} finally {
  await browser.close();
  for (const s of servers) s.close();
}
