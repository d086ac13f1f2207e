// Unit tests of the client against a scripted `fetch` (node --test).

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  RegistrarClient,
  RegistrarError,
  RegistrationFailedError,
  TimeoutError,
  parseRetryAfter,
  type Tokens,
} from "../src/index.js";

interface Call {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

/** A `fetch` answering from `handler`, recording every call. */
function scripted(handler: (call: Call, index: number) => Reply | Promise<Reply>) {
  const calls: Call[] = [];
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const call: Call = {
      method: init?.method ?? "GET",
      url: String(input),
      headers: (init?.headers ?? {}) as Record<string, string>,
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
    };
    calls.push(call);
    const reply = await handler(call, calls.length - 1);
    return new Response(reply.body === undefined ? null : JSON.stringify(reply.body), {
      status: reply.status,
      headers: { "content-type": "application/json", ...reply.headers },
    });
  }) as typeof fetch;
  return { fetchFn, calls };
}

/** A fake clock whose sleeps advance it and are recorded. */
function fakeTime() {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleeps,
    sleep: async (ms: number, signal?: AbortSignal) => {
      if (signal?.aborted) throw signal.reason;
      sleeps.push(ms);
      now += ms;
    },
  };
}

const status = (s: string, extra: object = {}) => ({
  status: 200,
  body: { success: true, data: { email: "a@b.io", registrationId: "r1", status: s, ...extra } },
});

const tokenAnswer = (n: number) => ({
  status: 200,
  body: {
    success: true,
    accessToken: `access-${n}`,
    refreshToken: `rt_${n}`,
    tokenType: "Bearer",
    expiresIn: 900,
    refreshExpiresIn: 604800,
  },
});

test("waitForCompletion polls with exponential backoff until completed", async () => {
  const time = fakeTime();
  const { fetchFn, calls } = scripted((_, i) => (i < 3 ? status("pending") : status("completed")));
  const client = new RegistrarClient({ baseUrl: "http://api/", fetch: fetchFn, ...time, random: () => 1 });
  const done = await client.waitForCompletion("a@b.io", "r1");
  assert.equal(done.status, "completed");
  assert.equal(calls.length, 4);
  assert.equal(calls[0]!.url, "http://api/api/v1/users/a%40b.io?registrationId=r1");
  assert.deepEqual(time.sleeps, [250, 500, 1000]);
});

test("waitForCompletion caps the delay and jitters it", async () => {
  const time = fakeTime();
  const { fetchFn } = scripted((_, i) => (i < 6 ? status("pending") : status("completed")));
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn, ...time, random: () => 0 });
  await client.waitForCompletion("a@b.io", "r1", { initialDelayMs: 1000, maxDelayMs: 4000 });
  // random() = 0: half of each delay; the delay doubles up to 4000.
  assert.deepEqual(time.sleeps, [500, 1000, 2000, 2000, 2000, 2000]);
});

test("waitForCompletion honours Retry-After and retries 503s", async () => {
  const time = fakeTime();
  const { fetchFn } = scripted((_, i) =>
    i === 0
      ? { status: 503, body: { success: false, error: { code: "SERVICE_UNAVAILABLE", message: "down" } }, headers: { "retry-after": "5" } }
      : status("completed"),
  );
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn, ...time, random: () => 1 });
  await client.waitForCompletion("a@b.io", "r1");
  assert.deepEqual(time.sleeps, [5000]);
});

test("waitForCompletion stops on failed with the reason", async () => {
  const { fetchFn } = scripted(() => status("failed", { reason: "EMAIL_TAKEN" }));
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn, ...fakeTime() });
  await assert.rejects(client.waitForCompletion("a@b.io", "r1"), (e: unknown) => {
    assert.ok(e instanceof RegistrationFailedError);
    assert.equal(e.reason, "EMAIL_TAKEN");
    return true;
  });
});

test("waitForCompletion gives up after timeoutMs and on a non-retryable error", async () => {
  const { fetchFn } = scripted(() => status("pending"));
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn, ...fakeTime() });
  await assert.rejects(client.waitForCompletion("a@b.io", "r1", { timeoutMs: 3000 }), TimeoutError);
  const notFound = scripted(() => ({ status: 404, body: { success: false, error: { code: "NOT_FOUND", message: "User not found" } } }));
  const other = new RegistrarClient({ baseUrl: "http://api", fetch: notFound.fetchFn, ...fakeTime() });
  await assert.rejects(other.waitForCompletion("a@b.io", "r1"), (e: unknown) => e instanceof RegistrarError && e.code === "NOT_FOUND");
  assert.equal(notFound.calls.length, 1);
});

test("waitForCompletion stops when its signal aborts", async () => {
  const controller = new AbortController();
  const { fetchFn } = scripted(() => status("pending"));
  const client = new RegistrarClient({
    baseUrl: "http://api",
    fetch: fetchFn,
    sleep: async () => {
      controller.abort(new Error("user left the page"));
    },
  });
  await assert.rejects(client.waitForCompletion("a@b.io", "r1", { signal: controller.signal }), /user left the page/);
});

test("errors carry the api's status, code, details and Retry-After", async () => {
  const { fetchFn } = scripted(() => ({
    status: 400,
    body: { success: false, error: { code: "VALIDATION_ERROR", message: "Validation failed", details: [{ field: "email", message: "is required" }] } },
  }));
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn });
  await assert.rejects(client.register({} as never), (e: unknown) => {
    assert.ok(e instanceof RegistrarError);
    assert.equal(e.status, 400);
    assert.equal(e.code, "VALIDATION_ERROR");
    assert.deepEqual(e.details, [{ field: "email", message: "is required" }]);
    assert.equal(e.retryable, false);
    return true;
  });
  assert.equal(parseRetryAfter("7"), 7);
  assert.equal(parseRetryAfter(new Date(61_000).toUTCString(), 1_000), 60);
  assert.equal(parseRetryAfter(null), undefined);
});

test("a network failure is a retryable NETWORK_ERROR", async () => {
  const client = new RegistrarClient({
    baseUrl: "http://api",
    fetch: (async () => {
      throw new TypeError("fetch failed");
    }) as typeof fetch,
  });
  await assert.rejects(client.register({} as never), (e: unknown) => e instanceof RegistrarError && e.code === "NETWORK_ERROR" && e.retryable);
});

test("register sends the Idempotency-Key and returns the accepted registration", async () => {
  const { fetchFn, calls } = scripted(() => ({
    status: 202,
    body: { success: true, message: "User registration submitted successfully", data: { email: "a@b.io", registrationId: "r1", status: "pending" } },
  }));
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn });
  const accepted = await client.register({ email: "a@b.io" } as never, { idempotencyKey: "k1" });
  assert.equal(accepted.registrationId, "r1");
  assert.equal(calls[0]!.headers["idempotency-key"], "k1");
  assert.equal(calls[0]!.headers["content-type"], "application/json");
});

test("login keeps the tokens; a second factor answers a challenge that verifyMfa completes", async () => {
  const seen: (Tokens | null)[] = [];
  const { fetchFn, calls } = scripted((call) => {
    if (call.url.endsWith("/auth/login")) {
      return { status: 200, body: { success: true, mfaRequired: true, challenge: "mfa_x", expiresIn: 300 } };
    }
    return tokenAnswer(1);
  });
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn, onTokens: (t) => seen.push(t) });
  const result = await client.login({ email: "a@b.io", password: "pw" });
  assert.deepEqual(result, { kind: "mfa", challenge: "mfa_x", expiresIn: 300 });
  assert.equal(client.session, null);
  await client.verifyMfa("mfa_x", "123456");
  assert.deepEqual(calls[1]!.body, { challenge: "mfa_x", code: "123456" });
  assert.equal((client.session as Tokens | null)?.accessToken, "access-1");
  assert.equal(seen.length, 1);
});

test("concurrent calls with an expired access token share one refresh", async () => {
  const time = fakeTime();
  let refreshes = 0;
  const { fetchFn, calls } = scripted(async (call) => {
    if (call.url.endsWith("/auth/refresh")) {
      refreshes += 1;
      await new Promise((r) => setTimeout(r, 10));
      return tokenAnswer(2);
    }
    assert.equal(call.headers.authorization, "Bearer access-2");
    return { status: 200, body: { success: true, data: { id: "u1" } } };
  });
  const client = new RegistrarClient({
    baseUrl: "http://api",
    fetch: fetchFn,
    now: time.now,
    tokens: { accessToken: "access-1", refreshToken: "rt_1", accessExpiresAt: time.now() - 1 },
  });
  const [a, b, c] = await Promise.all([client.me(), client.me(), client.listData()]);
  assert.equal(refreshes, 1);
  assert.deepEqual(calls.find((x) => x.url.endsWith("/auth/refresh"))!.body, { refreshToken: "rt_1" });
  assert.equal(a.id, "u1");
  assert.ok(b && c);
  assert.equal(client.session?.refreshToken, "rt_2");
});

test("a refused access token is refreshed once and the call retried", async () => {
  const { fetchFn, calls } = scripted((call) => {
    if (call.url.endsWith("/auth/refresh")) return tokenAnswer(2);
    if (call.headers.authorization === "Bearer access-1") {
      return { status: 401, body: { success: false, error: { code: "INVALID_TOKEN", message: "expired" } } };
    }
    return { status: 200, body: { success: true, data: { id: "u1" } } };
  });
  const client = new RegistrarClient({
    baseUrl: "http://api",
    fetch: fetchFn,
    tokens: { accessToken: "access-1", refreshToken: "rt_1", accessExpiresAt: Date.now() + 600_000 },
  });
  assert.equal((await client.me()).id, "u1");
  assert.deepEqual(calls.map((c) => c.url.split("/api/v1")[1]), ["/auth/me", "/auth/refresh", "/auth/me"]);
});

test("a refresh the api refuses ends the session locally", async () => {
  const { fetchFn } = scripted(() => ({ status: 401, body: { success: false, error: { code: "INVALID_TOKEN", message: "reused" } } }));
  const client = new RegistrarClient({
    baseUrl: "http://api",
    fetch: fetchFn,
    tokens: { accessToken: "a", refreshToken: "rt_1", accessExpiresAt: 0 },
  });
  await assert.rejects(client.me(), (e: unknown) => e instanceof RegistrarError && e.code === "INVALID_TOKEN");
  assert.equal(client.session, null);
  await assert.rejects(client.me(), (e: unknown) => e instanceof RegistrarError && e.code === "UNAUTHENTICATED");
});

test("logout forgets the tokens even when the api cannot be reached", async () => {
  const client = new RegistrarClient({
    baseUrl: "http://api",
    fetch: (async () => {
      throw new TypeError("offline");
    }) as typeof fetch,
    tokens: { accessToken: "a", refreshToken: "r", accessExpiresAt: Date.now() + 600_000 },
  });
  await assert.rejects(client.logout(), RegistrarError);
  assert.equal(client.session, null);
});

test("data calls encode keys and send values", async () => {
  const { fetchFn, calls } = scripted(() => ({ status: 200, body: { success: true, data: { key: "a/b", value: { x: 1 } } } }));
  const client = new RegistrarClient({
    baseUrl: "http://api",
    fetch: fetchFn,
    tokens: { accessToken: "a", refreshToken: "r", accessExpiresAt: Date.now() + 600_000 },
  });
  await client.putData("a/b", { x: 1 });
  assert.equal(calls[0]!.method, "PUT");
  assert.equal(calls[0]!.url, "http://api/api/v1/data/a%2Fb");
  assert.deepEqual(calls[0]!.body, { value: { x: 1 } });
});

test("putData creates the item when there is none to replace", async () => {
  const { fetchFn, calls } = scripted((call) =>
    call.method === "PUT"
      ? { status: 404, body: { success: false, error: { code: "NOT_FOUND", message: "Data item not found" } } }
      : { status: 201, body: { success: true, data: { key: "k", value: 1 } } },
  );
  const client = new RegistrarClient({
    baseUrl: "http://api",
    fetch: fetchFn,
    tokens: { accessToken: "a", refreshToken: "r", accessExpiresAt: Date.now() + 600_000 },
  });
  assert.equal((await client.putData("k", 1)).key, "k");
  assert.deepEqual(calls.map((c) => [c.method, c.url.split("/api/v1")[1]]), [["PUT", "/data/k"], ["POST", "/data"]]);
  assert.deepEqual(calls[1]!.body, { key: "k", value: 1 });
});

/** An authenticator that records what it was asked and answers fixed credentials. */
function fakeAuthenticator() {
  const asked: { kind: string; publicKey: unknown; mediation?: string }[] = [];
  return {
    asked,
    authenticator: {
      async create(publicKey: unknown) {
        asked.push({ kind: "create", publicKey });
        return { id: "cred-1", type: "public-key", response: { attestationObject: "AA", clientDataJSON: "BB" } };
      },
      async get(publicKey: unknown, mediation: "conditional" | "optional") {
        asked.push({ kind: "get", publicKey, mediation });
        return { id: "cred-1", type: "public-key", response: { signature: "CC" } };
      },
    },
  };
}

const ceremony = (id: string) => ({
  status: 200,
  body: { success: true, ceremonyId: id, expiresIn: 300, options: { publicKey: { challenge: `ch-${id}` }, mediation: "conditional" } },
});

test("signUpWithPasskey hands the creation options to the authenticator and submits its answer with the profile", async () => {
  const { fetchFn, calls } = scripted((call) =>
    call.url.endsWith("/register/options")
      ? ceremony("pk_1")
      : { status: 202, body: { success: true, message: "ok", data: { email: "a@b.io", registrationId: "r1", status: "pending" } } },
  );
  const { authenticator, asked } = fakeAuthenticator();
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn });
  const accepted = await client.signUpWithPasskey({ email: "a@b.io", name: "Ada Lovelace" }, { passkeyName: "Phone", authenticator });
  assert.equal(accepted.registrationId, "r1");
  assert.equal(calls[0]!.url, "http://api/api/v1/auth/passkey/register/options");
  assert.deepEqual(asked[0], { kind: "create", publicKey: { challenge: "ch-pk_1" } });
  assert.deepEqual(calls[1]!.body, {
    email: "a@b.io", name: "Ada Lovelace", ceremonyId: "pk_1", passkeyName: "Phone",
    credential: { id: "cred-1", type: "public-key", response: { attestationObject: "AA", clientDataJSON: "BB" } },
  });
});

test("signInWithPasskey keeps the session; conditional asks for autofill mediation", async () => {
  const { fetchFn, calls } = scripted((call) => (call.url.endsWith("/login/options") ? ceremony("pk_2") : tokenAnswer(7)));
  const { authenticator, asked } = fakeAuthenticator();
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn });
  const tokens = await client.signInWithPasskey({ conditional: true, authenticator });
  assert.equal(tokens.accessToken, "access-7");
  assert.equal(asked[0]!.mediation, "conditional");
  assert.equal((calls[1]!.body as { ceremonyId: string }).ceremonyId, "pk_2");
  await client.signInWithPasskey({ authenticator });
  assert.equal(asked[1]!.mediation, "optional");
});

test("a refused passkey is a PASSKEY_REJECTED error and no session", async () => {
  const { fetchFn } = scripted((call) =>
    call.url.endsWith("/login/options")
      ? ceremony("pk_3")
      : { status: 401, body: { success: false, error: { code: "PASSKEY_REJECTED", message: "no" } } },
  );
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn });
  await assert.rejects(client.signInWithPasskey({ authenticator: fakeAuthenticator().authenticator }), (e: unknown) =>
    e instanceof RegistrarError && e.code === "PASSKEY_REJECTED" && e.status === 401);
  assert.equal(client.session, null);
});

test("a sign-in mail's code signs in; the mail request and the sign-up without a password go to their routes", async () => {
  const { fetchFn, calls } = scripted((call) => {
    if (call.url.endsWith("/auth/passwordless")) return { status: 202, body: { success: true, message: "sent" } };
    if (call.url.endsWith("/auth/passwordless/register")) {
      return { status: 202, body: { success: true, message: "ok", data: { email: "a@b.io", registrationId: "r9", status: "pending" } } };
    }
    return tokenAnswer(3);
  });
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn });
  const accepted = await client.registerWithoutPassword({ email: "a@b.io", name: "Ada Lovelace" }, { idempotencyKey: "k1" });
  assert.equal(accepted.registrationId, "r9");
  assert.equal(calls[0]!.headers["idempotency-key"], "k1");
  await client.requestSignInMail("a@b.io");
  assert.deepEqual(calls[1]!.body, { email: "a@b.io" });
  const result = await client.signInWithMail({ email: "a@b.io", code: "042917" });
  assert.equal(result.kind, "tokens");
  assert.equal(client.session?.accessToken, "access-3");
  assert.equal(calls[2]!.url, "http://api/api/v1/auth/passwordless/verify");
});

test("a social return is traded for a session, or names the identity to link, or the refusal", async () => {
  const { fetchFn, calls } = scripted((call) => (call.url.endsWith("/auth/social/exchange") ? tokenAnswer(5) : { status: 500 }));
  const client = new RegistrarClient({ baseUrl: "http://api", fetch: fetchFn });
  const signedIn = await client.completeSocialSignIn("#socialCode=sc_1");
  assert.equal(signedIn?.kind, "tokens");
  assert.deepEqual(calls[0]!.body, { code: "sc_1" });
  assert.equal(client.session?.accessToken, "access-5");
  assert.deepEqual(await client.completeSocialSignIn("#socialLink=sl_2&provider=GitLab&email=a%40b.io"), {
    kind: "link", linkToken: "sl_2", provider: "GitLab", email: "a@b.io",
  });
  assert.deepEqual(await client.completeSocialSignIn("#socialError=Not%20verified"), { kind: "error", message: "Not verified" });
  assert.equal(await client.completeSocialSignIn("#other=1"), null);
  assert.equal(
    client.socialSignInUrl({ id: "gitlab", name: "GitLab", startUrl: "http://api/oauth2/social/gitlab" }, "https://app/x?y=1"),
    "http://api/oauth2/social/gitlab?returnTo=https%3A%2F%2Fapp%2Fx%3Fy%3D1",
  );
});
