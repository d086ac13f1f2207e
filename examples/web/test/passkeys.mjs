// Passkeys on the sign-up page in a real Chromium, with the browser's own virtual
// authenticator (the DevTools protocol's WebAuthn domain: a CTAP2 platform authenticator
// with resident keys and user verification). WebAuthn needs a secure context, so the
// page is served at http://localhost.
//
// 1. Sign up with only a passkey: the registration completes through the pipeline and
//    the login field's autofill (conditional mediation) signs the person in.
// 2. Log out, sign in with the "Sign in with a passkey" button; reload: autofill again.
// 3. Another person signs up with a password, adds a passkey, drops the password: the
//    password no longer signs in, the passkey does.
//
//   PAGE_URL=http://localhost:18411/ API_URL=http://127.0.0.1:18400 OUT=target/e2e \
//     CHROMIUM=/usr/bin/chromium node test/passkeys.mjs

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const pageUrl = process.env.PAGE_URL;
const apiUrl = process.env.API_URL;
const out = process.env.OUT ?? "target/e2e";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
assert.ok(pageUrl && apiUrl, "PAGE_URL and API_URL are required");
assert.equal(new URL(pageUrl).hostname, "localhost", "WebAuthn needs a secure context: serve the page at localhost");
mkdirSync(out, { recursive: true });

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
let shots = 0;

/** A page in a fresh context with its own virtual authenticator; records every
 * `navigator.credentials.get` mediation the page asks for. */
async function personWithAuthenticator() {
  const context = await browser.newContext({ viewport: { width: 900, height: 1300 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const mediations = [];
  await page.exposeFunction("recordMediation", (m) => mediations.push(m));
  await page.addInitScript(() => {
    const get = navigator.credentials.get.bind(navigator.credentials);
    navigator.credentials.get = (options) => {
      window.recordMediation(options?.mediation ?? "none");
      return get(options);
    };
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  const credentials = async () => (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
  const shot = async (name) => {
    shots += 1;
    const path = join(out, `passkeys-${String(shots).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    console.log(`screenshot ${path}`);
  };
  return { context, page, mediations, credentials, errors, shot };
}

async function fillProfile(page, email) {
  await page.getByLabel("First name").first().fill("Grace");
  await page.getByLabel("Last name").first().fill("Hopper");
  await page.getByLabel("Email", { exact: true }).first().fill(email);
  await page.getByLabel("Gender").selectOption("female");
}

const profileShown = (page) => page.getByRole("heading", { name: "Your profile" }).waitFor({ timeout: 30_000 });

try {
  // 1. Passkey-first sign-up, then the autofill signs in.
  {
    const { context, page, mediations, credentials, errors, shot } = await personWithAuthenticator();
    await page.goto(pageUrl);
    await page.getByRole("heading", { name: "Create an account" }).waitFor();
    const email = `passkey-${Date.now()}@example.com`;
    await fillProfile(page, email);
    await page.getByRole("button", { name: "Sign up with a passkey" }).click();
    // It completes in moments, and the autofill signs in at once (the virtual
    // authenticator answers a conditional request without a click).
    await page.locator('#registration-state[data-state="completed"]').waitFor({ state: "attached", timeout: 60_000 });
    await profileShown(page);
    assert.equal(await page.locator("#profile-email").textContent(), email);
    assert.ok(mediations.includes("conditional"), `the autofill signed in: ${mediations}`);
    const stored = await credentials();
    assert.equal(stored.length, 1, "one passkey on the authenticator");
    assert.equal(stored[0].isResidentCredential, true, "a discoverable credential");
    await page.locator("#passkey-list li").first().waitFor();
    assert.match(await page.locator("#passkey-list").textContent(), /This device/);
    await shot("signed-in-by-autofill");

    // 2. The button (a modal request), then a reload (autofill on page load).
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("status").filter({ hasText: "logged out" }).waitFor();
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    await profileShown(page);
    assert.ok(mediations.includes("optional"), `the button asked without autofill: ${mediations}`);
    await page.reload();
    await profileShown(page);
    assert.ok((await credentials())[0].signCount >= 3, "each sign-in moved the counter");
    assert.deepEqual(errors, []);
    await context.close();
  }

  // 3. A password account adds a passkey and drops its password.
  {
    const { context, page, errors, shot } = await personWithAuthenticator();
    const email = `drops-password-${Date.now()}@example.com`;
    const password = "compiler 1952 flow-matic";
    const registered = await fetch(`${apiUrl}/api/v1/users`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password, firstName: "Grace", lastName: "Hopper" }),
    });
    assert.equal(registered.status, 202);
    const { data } = await registered.json();
    for (let i = 0; ; i++) {
      const s = await fetch(`${apiUrl}/api/v1/users/${encodeURIComponent(email)}?registrationId=${data.registrationId}`);
      if ((await s.json()).data?.status === "completed") break;
      assert.ok(i < 120, "registration did not complete");
      await new Promise((r) => setTimeout(r, 250));
    }
    await page.goto(pageUrl);
    await page.locator("#login-email").fill(email);
    await page.getByLabel("Password", { exact: true }).fill(password);
    await page.getByRole("button", { name: "Log in" }).click();
    await profileShown(page);
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await page.getByRole("status").filter({ hasText: "Added the passkey" }).waitFor();
    await page.getByRole("button", { name: "Stop using a password" }).click();
    await page.getByRole("status").filter({ hasText: "password is gone" }).waitFor();
    await shot("password-removed");
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("status").filter({ hasText: "logged out" }).waitFor();

    await page.locator("#login-email").fill(email);
    await page.getByLabel("Password", { exact: true }).fill(password);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.locator("#login-error", { hasText: /Invalid email or password/ }).waitFor();
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    await profileShown(page);
    assert.equal(await page.locator("#profile-email").textContent(), email);
    await shot("signed-in-without-password");
    assert.deepEqual(errors, []);
    await context.close();
  }
  console.log(`passkey browser test passed: ${shots} screenshots`);
} finally {
  await browser.close();
}
