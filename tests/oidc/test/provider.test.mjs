// Registrar's OpenID Connect provider, driven by openid-client (an OpenID-certified
// relying party library) against the real api and consumer: discovery, PKCE, nonce and
// ID-token validation, userinfo, refresh, introspection, revocation, logout,
// client_credentials, a public client with the consent screen, and single sign-on
// through the hosted page's session cookie. The browser is played by fetch with a
// cookie jar (the hosted page needs no JavaScript); Chromium runs it in the e2e step.
//
// Env: ISSUER (the api), and the clients `api oidc-client create` registered:
// CONFIDENTIAL_ID/SECRET (first party, offline_access), PUBLIC_ID (third party, PKCE),
// MACHINE_ID/SECRET (client_credentials), REDIRECT_URI, LOGOUT_URI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const ISSUER = env('ISSUER');
const REDIRECT_URI = env('REDIRECT_URI');
const LOGOUT_URI = env('LOGOUT_URI');
const insecure = { execute: [client.allowInsecureRequests] };

class Browser {
  constructor() { this.jar = new Map(); }
  cookieHeader() { return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; '); }
  async fetch(url, init = {}) {
    const res = await fetch(url, {
      ...init, redirect: 'manual',
      headers: { ...(init.headers || {}), cookie: this.cookieHeader() },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const [k, v] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
      if (attrs.some((a) => a.trim().toLowerCase() === 'max-age=0')) this.jar.delete(k);
      else this.jar.set(k, v);
    }
    return res;
  }
  /** Follows redirects on the provider's origin; stops at the first one that leaves it. */
  async go(url, init) {
    let res = await this.fetch(url, init);
    while ([302, 303].includes(res.status)) {
      const next = new URL(res.headers.get('location'), url);
      if (next.origin !== new URL(ISSUER).origin) return { left: next };
      url = next.href;
      res = await this.fetch(url);
    }
    return { page: res, url, html: await res.text() };
  }
  async signIn(authUrl, login, password) {
    const at = await this.go(authUrl);
    if (at.left) return at.left;
    assert.equal(at.page.status, 200, at.html);
    assert.match(at.html, /<label for="password">/);
    const form = (name) => at.html.match(new RegExp(`name="${name}" value="([^"]*)"`))[1];
    const body = new URLSearchParams({ flow: form('flow'), csrf: form('csrf'), login, password });
    const after = await this.go(new URL('/oauth2/login', ISSUER).href, {
      method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    return after.left ?? after;
  }
}

async function register() {
  const email = `oidc.${Date.now()}.${Math.random().toString(36).slice(2, 8)}@example.com`;
  const password = 'correct horse battery 1815';
  const res = await fetch(new URL('/api/v1/users', ISSUER), {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ firstName: 'Ada', lastName: 'Lovelace', email, password,
      gender: 'female', sex: 'female', occupation: 'Mathematician' }),
  });
  assert.equal(res.status, 202, await res.text());
  const location = res.headers.get('location');
  for (let i = 0; i < 300; i++) {
    const answer = await (await fetch(new URL(location, ISSUER))).json();
    if (answer.data?.status === 'completed') return { email, password };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the registration did not complete');
}

async function pkceRequest(config, extra = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const checks = { pkceCodeVerifier: verifier, expectedNonce: client.randomNonce(), expectedState: client.randomState() };
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI, scope: 'openid profile email offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    nonce: checks.expectedNonce, state: checks.expectedState, ...extra,
  });
  return { url, checks };
}

const user = await register();
const confidential = await client.discovery(new URL(ISSUER), env('CONFIDENTIAL_ID'), env('CONFIDENTIAL_SECRET'), undefined, insecure);
const browser = new Browser();
let tokens;

test('discovery names the endpoints, S256 and RS256', () => {
  const m = confidential.serverMetadata();
  assert.equal(m.issuer, ISSUER);
  assert.deepEqual(m.code_challenge_methods_supported, ['S256']);
  assert.ok(m.id_token_signing_alg_values_supported.includes('RS256'));
  assert.equal(m.authorization_response_iss_parameter_supported, true);
});

test('authorization code with PKCE: the hosted login, then a validated ID token', async () => {
  const { url, checks } = await pkceRequest(confidential);
  const callback = await browser.signIn(url.href, user.email, user.password);
  assert.ok(callback instanceof URL, 'back at the client');
  assert.equal(callback.searchParams.get('iss'), ISSUER);
  tokens = await client.authorizationCodeGrant(confidential, callback, checks);
  const claims = tokens.claims();
  assert.equal(claims.email, user.email);
  assert.equal(claims.given_name, 'Ada');
  assert.deepEqual(claims.amr, ['pwd']);
  assert.ok(claims.auth_time > 0);
  assert.ok(tokens.refresh_token, 'offline_access gives a refresh token');
});

test('userinfo answers the claims of the scopes', async () => {
  const info = await client.fetchUserInfo(confidential, tokens.access_token, tokens.claims().sub);
  assert.equal(info.email, user.email);
  assert.equal(info.name, 'Ada Lovelace');
  assert.equal(info.email_verified, false);
});

test('a second sign-in reuses the browser session: no login page', async () => {
  const { url, checks } = await pkceRequest(confidential);
  const at = await browser.go(url.href);
  assert.ok(at.left, 'redirected straight back to the client');
  const again = await client.authorizationCodeGrant(confidential, at.left, checks);
  assert.equal(again.claims().sub, tokens.claims().sub);
});

test('prompt=none without a session answers login_required', async () => {
  const { url, checks } = await pkceRequest(confidential, { prompt: 'none' });
  const at = await new Browser().go(url.href);
  await assert.rejects(client.authorizationCodeGrant(confidential, at.left, checks),
    (e) => e.error === 'login_required');
});

test('refresh rotates; introspection and revocation see the session', async () => {
  const refreshed = await client.refreshTokenGrant(confidential, tokens.refresh_token);
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token);
  assert.equal(refreshed.claims().sub, tokens.claims().sub);
  const active = await client.tokenIntrospection(confidential, refreshed.access_token);
  assert.equal(active.active, true);
  assert.equal(active.client_id, env('CONFIDENTIAL_ID'));
  await client.tokenRevocation(confidential, refreshed.refresh_token);
  const after = await client.tokenIntrospection(confidential, refreshed.access_token);
  assert.equal(after.active, false);
  await assert.rejects(client.refreshTokenGrant(confidential, refreshed.refresh_token),
    (e) => e.error === 'invalid_grant');
});

test('a used refresh token presented again ends its session', async () => {
  const { url, checks } = await pkceRequest(confidential);
  const at = await browser.go(url.href);
  const fresh = await client.authorizationCodeGrant(confidential, at.left, checks);
  const next = await client.refreshTokenGrant(confidential, fresh.refresh_token);
  await assert.rejects(client.refreshTokenGrant(confidential, fresh.refresh_token),
    (e) => e.error === 'invalid_grant');
  await assert.rejects(client.refreshTokenGrant(confidential, next.refresh_token),
    (e) => e.error === 'invalid_grant');
});

test('client_credentials gives a machine token that introspects as the client', async () => {
  const machine = await client.discovery(new URL(ISSUER), env('MACHINE_ID'), env('MACHINE_SECRET'), undefined, insecure);
  const t = await client.clientCredentialsGrant(machine);
  assert.equal(t.id_token, undefined);
  const info = await client.tokenIntrospection(machine, t.access_token);
  assert.equal(info.active, true);
  assert.equal(info.sub, env('MACHINE_ID'));
});

test('a public client gets the consent screen, then its code with PKCE', async () => {
  const pub = await client.discovery(new URL(ISSUER), env('PUBLIC_ID'), undefined, client.None(), insecure);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(pub, {
    redirect_uri: REDIRECT_URI, scope: 'openid email',
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state,
  });
  const at = await browser.go(url.href);
  assert.match(at.html, /Allow access\?/);
  const form = (name) => at.html.match(new RegExp(`name="${name}" value="([^"]*)"`))[1];
  const body = new URLSearchParams({ flow: form('flow'), csrf: form('csrf'), decision: 'allow' });
  const done = await browser.go(new URL('/oauth2/consent', ISSUER).href, {
    method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  const t = await client.authorizationCodeGrant(pub, done.left, { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true });
  assert.equal(t.claims().email, user.email);
  assert.equal(t.refresh_token, undefined, 'no offline_access asked');
});

test('RP-initiated logout ends the browser session and returns to the client', async () => {
  const url = client.buildEndSessionUrl(confidential, {
    id_token_hint: tokens.id_token, post_logout_redirect_uri: LOGOUT_URI, state: 'bye',
  });
  const out = await browser.go(url.href);
  assert.equal(out.left?.href, `${LOGOUT_URI}?state=bye`);
  const { url: again, checks } = await pkceRequest(confidential, { prompt: 'none' });
  const at = await browser.go(again.href);
  await assert.rejects(client.authorizationCodeGrant(confidential, at.left, checks),
    (e) => e.error === 'login_required');
});
