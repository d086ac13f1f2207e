// The client against a real api and consumer (REGISTRAR_URL), started by
// scripts/e2e.py (`make e2e`, part of `make test`).

import { test } from "node:test";
import assert from "node:assert/strict";

import { RegistrarClient, RegistrarError } from "../src/index.js";

const baseUrl = process.env.REGISTRAR_URL;

test("a user registers, waits, logs in, edits the profile, stores data and logs out", { skip: !baseUrl && "REGISTRAR_URL is not set (scripts/e2e.py sets it)" }, async () => {
  const client = new RegistrarClient({ baseUrl: baseUrl! });
  const email = `ts-client-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  const password = "a long client passphrase 1";
  const accepted = await client.register({
    firstName: "Type", lastName: "Script", email, password, gender: "female", sex: "female", occupation: "Engineer",
  });
  assert.equal(accepted.status, "pending");
  const done = await client.waitForCompletion(email, accepted.registrationId, { timeoutMs: 60_000 });
  assert.equal(done.status, "completed");

  // The same email again: refused in the pipeline, but the poll stays neutral.
  const again = await client.register({
    firstName: "Type", lastName: "Script", email: email.toUpperCase(), password, gender: "female",
  });
  // A second registration of a taken address polls like a new account (the poll must
  // not tell that the address has one); the address's owner gets a mail instead.
  const neutral = await client.waitForCompletion(email, again.registrationId, { timeoutMs: 60_000 });
  assert.equal(neutral.status, "completed");
  assert.equal(neutral.reason, undefined);

  await assert.rejects(client.login({ email, password: "wrong password 1234" }), (e: unknown) => e instanceof RegistrarError && e.code === "INVALID_CREDENTIALS");
  const login = await client.login({ email, password });
  assert.equal(login.kind, "tokens");
  const me = await client.me();
  assert.equal(me.email, email);
  const edited = await client.updateProfile(me.id, { occupation: "Architect" });
  assert.equal(edited.occupation, "Architect");

  await client.putData("theme", { mode: "dark" });
  const items = await client.listData();
  assert.deepEqual(items.map((i) => [i.key, i.value]), [["theme", { mode: "dark" }]]);

  const sessions = await client.sessions();
  assert.equal(sessions.filter((s) => s.current).length, 1);
  const before = client.session!.refreshToken;
  await client.refresh();
  assert.notEqual(client.session!.refreshToken, before);
  assert.equal((await client.me()).id, me.id);

  await client.logout();
  assert.equal(client.session, null);
  await assert.rejects(client.me(), (e: unknown) => e instanceof RegistrarError && e.code === "UNAUTHENTICATED");
});
