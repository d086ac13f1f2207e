// Only a mailbox on the sign-up page in a real Chromium: a person signs up with no
// password and no passkey, types the 6-digit code of the mail (read from MailDev) and is
// signed in; after logging out, "Email me a sign-in code" signs them in again.
//
//   PAGE_URL=http://localhost:18411/ API_URL=http://127.0.0.1:18400 OUT=target/e2e \
//     MAILDEV_WEB_URL=http://127.0.0.1:1080 CHROMIUM=/usr/bin/chromium node test/mailbox.mjs

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const pageUrl = process.env.PAGE_URL;
const out = process.env.OUT ?? "target/e2e";
const maildev = process.env.MAILDEV_WEB_URL ?? "http://127.0.0.1:1080";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
assert.ok(pageUrl, "PAGE_URL is required");
mkdirSync(out, { recursive: true });

/** The code of the `n`-th sign-in mail to `to` (its subject ends with it). */
async function signInCode(to, n) {
  for (let i = 0; i < 150; i++) {
    const mails = await (await fetch(`${maildev}/email?to.address=${encodeURIComponent(to)}`)).json();
    const codes = mails.filter((m) => m.subject.startsWith("Your sign-in code")).map((m) => m.subject.split(" ").pop());
    if (codes.length >= n) return codes[n - 1];
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no sign-in mail #${n} for ${to}`);
}

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 1300 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(pageUrl);
  const email = `mailbox-${Date.now()}@example.com`;
  await page.getByLabel("First name").first().fill("Hedy");
  await page.getByLabel("Last name").first().fill("Lamarr");
  await page.getByLabel("Email", { exact: true }).first().fill(email);
  await page.getByLabel("Gender").selectOption("female");
  await page.getByRole("button", { name: "Sign up with just my email" }).click();
  await page.locator('#registration-state[data-state="completed"]').waitFor({ timeout: 60_000 });
  const code = page.getByLabel(/6-digit code/);
  await code.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.id), "mail-code", "focus moves to the code");
  await code.fill(await signInCode(email, 1));
  await page.screenshot({ path: join(out, "mailbox-1-code.png"), fullPage: true });
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByRole("heading", { name: "Your profile" }).waitFor();
  assert.equal(await page.locator("#profile-email").textContent(), email);

  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("status").filter({ hasText: "logged out" }).waitFor();
  await page.locator("#login-email").fill(email);
  await page.getByRole("button", { name: "Email me a sign-in code" }).click();
  await code.fill(await signInCode(email, 2));
  await code.press("Enter");
  await page.getByRole("heading", { name: "Your profile" }).waitFor();
  await page.screenshot({ path: join(out, "mailbox-2-signed-in.png"), fullPage: true });
  assert.deepEqual(errors, []);
  console.log("mailbox browser test passed: signed up and in twice with mailed codes");
} finally {
  await browser.close();
}
