// The sign-up page in a real browser: Chromium (Debian's package) driven by
// playwright-core. The page is served from another origin than the api, so CORS and its
// preflights are the real ones. A user registers, sees `completed`, logs in, edits the
// profile, stores a data item and logs out; a screenshot of each step goes to $OUT.
//
//   PAGE_URL=http://127.0.0.1:18411/ API_URL=http://127.0.0.1:18400 OUT=target/e2e \
//     CHROMIUM=/usr/bin/chromium node test/browser.mjs

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const pageUrl = process.env.PAGE_URL;
const apiUrl = process.env.API_URL;
const out = process.env.OUT ?? "target/e2e";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
assert.ok(pageUrl && apiUrl, "PAGE_URL and API_URL are required");
assert.notEqual(new URL(pageUrl).origin, new URL(apiUrl).origin, "the page must be on another origin");
mkdirSync(out, { recursive: true });

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
const step = { n: 0 };
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 1100 } });
  const preflights = [];
  const consoleErrors = [];
  const corsAnswers = [];
  // Preflights are the browser's own requests: the DevTools protocol reports them.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  cdp.on("Network.requestWillBeSent", (e) => {
    if (e.request.method === "OPTIONS" || e.type === "Preflight") preflights.push(e.request.url);
  });
  page.on("response", (r) => {
    if (r.url().startsWith(apiUrl)) corsAnswers.push(r.headers()["access-control-allow-origin"]);
  });
  // Script errors of the page (Chromium also logs every 4xx answer to the console, such
  // as the 404 of a PUT that putData follows with a create: those are not errors here).
  page.on("pageerror", (e) => consoleErrors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text());
  });
  const shot = async (name) => {
    step.n += 1;
    const path = join(out, `${String(step.n).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path, fullPage: true });
    console.log(`screenshot ${path}`);
  };

  // A hostile `?api=` (the page once took its api address from the URL, so a link could
  // send credentials anywhere): the page must ignore it.
  const strays = [];
  const allowed = [new URL(pageUrl).origin, new URL(apiUrl).origin];
  page.on("request", (r) => {
    if (!allowed.includes(new URL(r.url()).origin)) strays.push(r.url());
  });
  await page.goto(`${pageUrl}?api=${encodeURIComponent("http://127.0.0.1:9/steal")}`);
  await page.getByRole("heading", { name: "Create an account" }).waitFor();

  // Inline validation mirrors the api: a short password is flagged before any request.
  await page.getByLabel("First name").first().fill("Ada");
  await page.getByLabel("Last name").first().fill("Lovelace");
  const email = `browser-${Date.now()}@example.com`;
  await page.getByLabel("Email", { exact: true }).first().fill(email);
  await page.getByLabel(/^Password/).first().fill("short");
  await page.getByLabel("Gender").selectOption("female");
  await page.getByRole("button", { name: "Sign up", exact: true }).click();
  await page.locator("#password-error", { hasText: "12 to 128 characters" }).waitFor();
  assert.equal(await page.getByLabel(/^Password/).first().getAttribute("aria-invalid"), "true");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "password", "focus moves to the first bad field");
  await shot("inline-validation");

  const password = "analytical engine 1843";
  await page.getByLabel(/^Password/).first().fill(password);
  await page.getByLabel(/^Occupation/).first().fill("Mathematician");
  // Keyboard submit, as a keyboard user would.
  await page.getByLabel(/^Occupation/).first().press("Enter");
  await page.locator('#registration-state[data-state="completed"]').waitFor({ timeout: 90_000 });
  assert.match(await page.getByRole("status").textContent(), /ready/);
  await shot("registration-completed");

  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Your profile" }).waitFor();
  assert.equal(await page.locator("#profile-email").textContent(), email);
  assert.equal(await page.evaluate(() => document.activeElement?.id), "profile-title", "focus moves to the profile");
  await shot("logged-in");

  await page.locator("#profile-occupation").fill("Analyst");
  await page.getByRole("button", { name: "Save profile" }).click();
  await page.getByRole("status").filter({ hasText: "Profile saved" }).waitFor();
  assert.match(await page.getByRole("status").textContent(), /Ada Lovelace, Analyst/);
  await shot("profile-saved");

  await page.getByLabel("Key", { exact: true }).fill("theme");
  await page.getByLabel(/^Value/).fill('{"mode":"dark"}');
  await page.getByRole("button", { name: "Store" }).click();
  await page.getByRole("cell", { name: "theme" }).waitFor();
  assert.equal(await page.getByRole("cell", { name: '{"mode":"dark"}' }).count(), 1);
  await shot("data-stored");

  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("status").filter({ hasText: "logged out" }).waitFor();
  assert.ok(await page.locator("#profile").isHidden());
  await shot("logged-out");

  // The answers came through real CORS: JSON posts and authenticated calls preflight,
  // and every answer names the page's origin.
  assert.ok(preflights.some((u) => u.startsWith(apiUrl)), `no CORS preflight seen: ${preflights}`);
  assert.deepEqual(strays, [], "the page sent requests only to its own origin and the configured api");
  const origin = new URL(pageUrl).origin;
  assert.ok(corsAnswers.length >= 5, `only ${corsAnswers.length} api answers seen`);
  assert.ok(corsAnswers.every((o) => o === origin), `answers without this origin: ${corsAnswers}`);
  assert.deepEqual(consoleErrors, [], "the page logged errors");
  console.log(`browser test passed: ${step.n} steps, ${corsAnswers.length} api answers, ${preflights.length} preflights`);
} finally {
  await browser.close();
}
