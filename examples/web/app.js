// The sign-up page: plain ES module on the Registrar TypeScript client (copied into
// vendor/ by scripts/e2e.py and scripts/run.sh from clients/typescript/dist).
// The api's address is fixed when the page is served: vendor/config.js, written by
// scripts/run.sh and scripts/e2e.py (for a deployment, by whatever publishes the page).
// Nothing in the URL can change where the page sends credentials.

import {
  RegistrarClient,
  RegistrarError,
  RegistrationFailedError,
  passkeyAutofillAvailable,
} from "./vendor/registrar-client.js";
import { API } from "./vendor/config.js";

const client = new RegistrarClient({ baseUrl: API });
const $ = (id) => document.getElementById(id);

// The api's rules (README, `POST /api/v1/users`), checked as the user types.
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const rules = {
  firstName: (v) => (v.trim().length >= 2 && v.trim().length <= 100 ? "" : "2 to 100 characters"),
  lastName: (v) => (v.trim().length >= 2 && v.trim().length <= 100 ? "" : "2 to 100 characters"),
  email: (v) => (EMAIL.test(v.trim()) && v.length <= 254 ? "" : "a valid email address"),
  password: (v) => (v.length >= 12 && v.length <= 128 ? "" : "12 to 128 characters"),
  gender: (v) => (v ? "" : "choose one"),
  occupation: (v) => (v.trim() === "" || (v.trim().length >= 2 && v.trim().length <= 255) ? "" : "2 to 255 characters, or empty"),
};

function announce(text) {
  $("announce").textContent = text;
}

function showError(prefix, field, message) {
  const input = $(`${prefix}${field}`);
  const error = $(`${prefix}${field}-error`);
  if (!input || !error) return false;
  error.textContent = message;
  input.setAttribute("aria-invalid", message ? "true" : "false");
  return true;
}

function check(form, prefix = "") {
  let first = null;
  for (const [field, rule] of Object.entries(rules)) {
    const input = form.elements.namedItem(field);
    if (!input) continue;
    const message = rule(input.value);
    showError(prefix, field, message);
    if (message && !first) first = input;
  }
  first?.focus();
  return !first;
}

/** The api's per-field details next to their fields; the rest in `fallback`. */
function showApiError(error, prefix, fallback) {
  if (error instanceof RegistrarError && error.details.length) {
    for (const d of error.details) {
      if (!showError(prefix, d.field, d.message)) fallback.textContent = `${d.field}: ${d.message}`;
    }
    return;
  }
  fallback.textContent = error instanceof RegistrarError ? error.message : String(error);
}

for (const [field, rule] of Object.entries(rules)) {
  const input = $(field);
  input?.addEventListener("blur", () => showError("", field, input.value ? rule(input.value) : ""));
}

function focusSection(id) {
  const section = $(id);
  section.hidden = false;
  section.querySelector("h2").focus();
}

/** Shows a registration's progress until it completes (or fails); true when completed. */
async function followRegistration(submit) {
  const state = $("registration-state");
  try {
    const accepted = await submit();
    $("progress").hidden = false;
    state.textContent = "pending";
    state.dataset.state = "pending";
    announce("Registration received; finishing your account…");
    await client.waitForCompletion(accepted.email, accepted.registrationId, { timeoutMs: 120_000 });
    state.textContent = "completed";
    state.dataset.state = "completed";
    $("registration-detail").textContent = "Check your mailbox for a link that verifies your address.";
    $("login-email").value = accepted.email;
    return true;
  } catch (error) {
    state.dataset.state = "failed";
    if (error instanceof RegistrationFailedError) {
      $("progress").hidden = false;
      state.textContent = "failed";
      const why = {
        EMAIL_TAKEN: "This email already has an account: log in instead.",
        USERNAME_TAKEN: "This username is taken.",
      };
      $("registration-detail").textContent = why[error.reason] ?? `Reason: ${error.reason}`;
      announce("The registration failed.");
    } else if (error instanceof RegistrarError) {
      showApiError(error, "", $("email-error"));
      announce("The registration was not accepted; see the form.");
    } else {
      // The browser's own refusal (the person closed the passkey dialog, no authenticator).
      $("email-error").textContent = `No passkey was made: ${error.message ?? error}`;
      announce("No passkey was made.");
    }
    return false;
  }
}

/** Checks every sign-up field but the password (a sign-up without one). */
function checkWithoutPassword(form) {
  const { password: _unused, ...others } = rules;
  let first = null;
  for (const [field, rule] of Object.entries(others)) {
    const message = rule(form.elements.namedItem(field).value);
    showError("", field, message);
    if (message && !first) first = form.elements.namedItem(field);
  }
  showError("", "password", "");
  first?.focus();
  return !first;
}

function profileBody(data) {
  const body = {
    firstName: data.firstName.trim(),
    lastName: data.lastName.trim(),
    email: data.email.trim(),
    gender: data.gender,
  };
  if (data.occupation.trim()) body.occupation = data.occupation.trim();
  return body;
}

$("signup-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  if (!check(form)) return;
  const data = Object.fromEntries(new FormData(form));
  const body = { ...profileBody(data), password: data.password };
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    if (await followRegistration(() => client.register(body, { idempotencyKey: crypto.randomUUID() }))) {
      announce("Your account is ready: log in below.");
      $("login-password").focus();
    }
  } finally {
    button.disabled = false;
  }
});

// A sign-up with a passkey instead of a password: every field but the password is
// checked, the device makes the passkey, and once the account exists the page signs in
// with it (the login field's autofill offers it).
$("signup-passkey").addEventListener("click", async () => {
  const form = $("signup-form");
  if (!checkWithoutPassword(form)) return;
  const data = Object.fromEntries(new FormData(form));
  const body = profileBody(data);
  const button = $("signup-passkey");
  button.disabled = true;
  stopAutofill();
  try {
    const done = await followRegistration(() =>
      client.signUpWithPasskey(body, {
        passkeyName: "This device",
        displayName: `${body.firstName} ${body.lastName}`,
      }),
    );
    if (done) announce("Your account is ready: choose your passkey in the email field to sign in.");
  } finally {
    button.disabled = false;
    startAutofill();
  }
});

// Passkeys in the login field's autofill: a pending conditional request that ends when
// the person picks one. Only one request may be outstanding, so a button or a sign-up
// aborts it first.
let autofill = null;

async function startAutofill() {
  stopAutofill();
  if (!(await passkeyAutofillAvailable())) return;
  const controller = new AbortController();
  autofill = controller;
  try {
    await client.signInWithPasskey({ conditional: true, signal: controller.signal });
    autofill = null;
    await showProfile();
  } catch (e) {
    if (controller.signal.aborted) return;
    autofill = null;
    $("login-error").textContent = e instanceof RegistrarError ? e.message : "The passkey was not used.";
  }
}

function stopAutofill() {
  autofill?.abort();
  autofill = null;
}

$("login-passkey").addEventListener("click", async () => {
  stopAutofill();
  const error = $("login-error");
  error.textContent = "";
  try {
    await client.signInWithPasskey();
    await showProfile();
  } catch (e) {
    error.textContent = e instanceof RegistrarError ? e.message : "No passkey was used.";
    announce("Sign-in with a passkey failed.");
  }
});

let challenge = null;
// A sign-in mail was sent: the form's submit sends its code.
let mailCodeSent = false;

async function sendSignInCode(email) {
  await client.requestSignInMail(email);
  mailCodeSent = true;
  $("mail-code-field").hidden = false;
  $("login-email").value = email;
  $("mail-code").focus();
  announce("If this address has an account, a mail with a sign-in code is on its way.");
}

$("login-mail").addEventListener("click", async () => {
  const error = $("login-error");
  error.textContent = "";
  const email = $("login-email").value.trim();
  if (!EMAIL.test(email)) {
    error.textContent = "Enter your email address first.";
    $("login-email").focus();
    return;
  }
  stopAutofill();
  try {
    await sendSignInCode(email);
  } catch (e) {
    error.textContent = e instanceof RegistrarError ? e.message : String(e);
  }
});

// A sign-up with only a mailbox: no password; once the account exists, a sign-in code
// is mailed.
$("signup-mailbox").addEventListener("click", async () => {
  const form = $("signup-form");
  if (!checkWithoutPassword(form)) return;
  const body = profileBody(Object.fromEntries(new FormData(form)));
  const button = $("signup-mailbox");
  button.disabled = true;
  try {
    if (await followRegistration(() => client.registerWithoutPassword(body, { idempotencyKey: crypto.randomUUID() }))) {
      await sendSignInCode(body.email);
    }
  } finally {
    button.disabled = false;
  }
});

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("login-error");
  error.textContent = "";
  const email = $("login-email").value.trim();
  const password = $("login-password").value;
  try {
    if (challenge) {
      await client.verifyMfa(challenge, $("login-code").value.trim());
      challenge = null;
    } else if (mailCodeSent) {
      const result = await client.signInWithMail({ email, code: $("mail-code").value.trim() });
      if (result.kind === "mfa") {
        challenge = result.challenge;
        $("mfa-field").hidden = false;
        $("login-code").focus();
        announce("Enter the code from your authenticator app.");
        return;
      }
      mailCodeSent = false;
      $("mail-code-field").hidden = true;
      $("mail-code").value = "";
    } else {
      if (!email || !password) {
        error.textContent = "Enter your email and password.";
        return;
      }
      stopAutofill();
      const result = await client.login({ email, password });
      if (result.kind === "mfa") {
        challenge = result.challenge;
        $("mfa-field").hidden = false;
        $("login-code").focus();
        announce("Enter the code from your authenticator app.");
        return;
      }
    }
    await showProfile();
  } catch (e) {
    error.textContent = e instanceof RegistrarError ? e.message : String(e);
    announce("Login failed.");
  }
});

async function showProfile() {
  const me = await client.me();
  $("profile-email").textContent = me.email;
  $("profile-firstName").value = me.firstName ?? "";
  $("profile-lastName").value = me.lastName ?? "";
  $("profile-occupation").value = me.occupation ?? "";
  $("profile").dataset.userId = me.id;
  $("login").hidden = true;
  $("signup").hidden = true;
  await renderData();
  await renderPasskeys();
  await linkPendingIdentity();
  await renderIdentities();
  announce(`Logged in as ${me.email}.`);
  focusSection("profile");
}

$("profile-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  if (!check(form, "profile-")) return;
  try {
    const patch = {
      firstName: $("profile-firstName").value.trim(),
      lastName: $("profile-lastName").value.trim(),
    };
    const occupation = $("profile-occupation").value.trim();
    if (occupation) patch.occupation = occupation;
    const user = await client.updateProfile($("profile").dataset.userId, patch);
    announce(`Profile saved: ${user.firstName} ${user.lastName}${user.occupation ? `, ${user.occupation}` : ""}.`);
  } catch (error) {
    showApiError(error, "profile-", $("profile-occupation-error"));
    announce("The profile was not saved.");
  }
});

async function renderData() {
  const rows = (await client.listData()).map((item) => {
    const tr = document.createElement("tr");
    for (const text of [item.key, JSON.stringify(item.value)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  $("data-table").querySelector("tbody").replaceChildren(...rows);
}

$("data-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("data-error");
  error.textContent = "";
  const key = $("data-key").value.trim();
  const raw = $("data-value").value;
  if (!key || !raw) {
    error.textContent = "Give a key and a value.";
    return;
  }
  let value;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  try {
    await client.putData(key, value);
    await renderData();
    announce(`Stored ${key}.`);
    $("data-key").value = "";
    $("data-value").value = "";
    $("data-key").focus();
  } catch (e) {
    error.textContent = e instanceof RegistrarError ? e.message : String(e);
  }
});

// Social login: the api's upstream providers as links; the browser comes back with a
// fragment (a one-time code, an identity to link once signed in, or a refusal).
let pendingLink = null;

async function offerProviders() {
  const providers = await client.identityProviders().catch(() => []);
  const here = `${location.origin}${location.pathname}`;
  const links = providers.map((p) => {
    const a = document.createElement("a");
    a.href = client.socialSignInUrl(p, here);
    a.textContent = `Continue with ${p.name}`;
    return a;
  });
  $("social").replaceChildren(...links);
  $("social").hidden = links.length === 0;
}

async function socialReturn() {
  if (!location.hash) return false;
  const fragment = location.hash;
  history.replaceState(null, "", `${location.pathname}${location.search}`);
  try {
    const result = await client.completeSocialSignIn(fragment);
    if (result?.kind === "tokens") {
      await showProfile();
      return true;
    }
    if (result?.kind === "link") {
      pendingLink = result;
      $("login-email").value = result.email;
      $("login-error").textContent = `An account with ${result.email} exists: sign in to it to link your ${result.provider} account.`;
    } else if (result?.kind === "error") {
      $("login-error").textContent = result.message;
    }
  } catch (e) {
    $("login-error").textContent = e instanceof RegistrarError ? e.message : String(e);
  }
  return false;
}

async function linkPendingIdentity() {
  if (!pendingLink) return;
  const link = pendingLink;
  pendingLink = null;
  try {
    await client.linkIdentity(link.linkToken);
    announce(`Your ${link.provider} account is linked.`);
  } catch (e) {
    $("passkey-error").textContent = e instanceof RegistrarError ? e.message : String(e);
  }
}

async function renderIdentities() {
  const items = (await client.identities()).map((i) => {
    const li = document.createElement("li");
    li.textContent = `${i.providerName}${i.email ? ` (${i.email})` : ""} `;
    const unlink = document.createElement("button");
    unlink.type = "button";
    unlink.textContent = `Unlink ${i.providerName}`;
    unlink.addEventListener("click", async () => {
      await client.unlinkIdentity(i.id);
      await renderIdentities();
      announce(`Unlinked ${i.providerName}.`);
    });
    li.append(unlink);
    return li;
  });
  $("identity-list").replaceChildren(...items);
}

async function renderPasskeys() {
  const items = (await client.passkeys()).map((p) => {
    const li = document.createElement("li");
    const used = p.lastUsedAt ? `last used ${new Date(p.lastUsedAt).toLocaleString()}` : "not used yet";
    li.textContent = `${p.name} (${p.authenticatorType}, ${used}) `;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = `Delete ${p.name}`;
    remove.addEventListener("click", async () => {
      try {
        await client.deletePasskey(p.id);
        await renderPasskeys();
        announce(`Deleted ${p.name}.`);
      } catch (e) {
        $("passkey-error").textContent = e instanceof RegistrarError ? e.message : String(e);
      }
    });
    li.append(remove);
    return li;
  });
  $("passkey-list").replaceChildren(...items);
}

$("add-passkey").addEventListener("click", async () => {
  $("passkey-error").textContent = "";
  try {
    const added = await client.addPasskey("This device");
    await renderPasskeys();
    announce(`Added the passkey ${added.name}.`);
  } catch (e) {
    $("passkey-error").textContent = e instanceof RegistrarError ? e.message : `No passkey was made: ${e.message ?? e}`;
  }
});

$("remove-password").addEventListener("click", async () => {
  $("passkey-error").textContent = "";
  try {
    await client.removePassword();
    announce("Your password is gone: sign in with a passkey from now on.");
  } catch (e) {
    $("passkey-error").textContent = e instanceof RegistrarError ? e.message : String(e);
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await client.logout();
  } finally {
    $("profile").hidden = true;
    $("login").hidden = false;
    $("signup").hidden = false;
    $("login-password").value = "";
    announce("You are logged out.");
    focusSection("login");
  }
});

offerProviders();
socialReturn().then((signedIn) => {
  if (!signedIn) startAutofill();
});
