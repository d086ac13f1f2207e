// A webhook receiver as a customer writes it: Node's http server and the
// `standardwebhooks` library's `Webhook.verify`. It is down at first (nothing listens
// on its port), then comes up; every registration's `user.registered` must then arrive,
// verified, once per event id, in order for each user, carrying what the event carries.
//
// Env: API (the api's base URL), WEBHOOK_PORT, WEBHOOK_SECRET (`whsec_…`).
import http from 'node:http';
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';

const api = process.env.API;
const port = Number(process.env.WEBHOOK_PORT);
const wh = new Webhook(process.env.WEBHOOK_SECRET.replace(/^whsec_/, ''));
const forged = new Webhook(Buffer.from('not the secret of this endpoint!').toString('base64'));

async function post(path, body) {
  const r = await fetch(api + path, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json(), location: r.headers.get('location') };
}

async function until(what, check, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// While the receiver is down: three sign-ups through the pipeline.
const stamp = Date.now();
const emails = [0, 1, 2].map((i) => `hook.${stamp}.${i}@example.com`);
for (const email of emails) {
  const r = await post('/api/v1/users', { name: 'Hook Receiver', email, password: `correct horse battery ${stamp}` });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  await until(`${email} completed`, async () => {
    const s = await fetch(api + r.location);
    return s.ok && (await s.json()).data.status === 'completed';
  }, 60);
}

// Now it comes up.
const verified = [];
const refused = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    try {
      const event = wh.verify(body, req.headers);
      assert.throws(() => forged.verify(body, req.headers), 'a forged secret must not verify');
      verified.push({ id: req.headers['webhook-id'], event });
      res.writeHead(204).end();
    } catch (e) {
      refused.push(String(e));
      res.writeHead(401).end();
    }
  });
});
await new Promise((r) => server.listen(port, '127.0.0.1', r));

const mine = () => verified.filter((v) => emails.includes(v.event.data.email));
await until('three verified user.registered deliveries', () => mine().length >= emails.length, 90);
server.close();

assert.deepEqual(refused, [], 'every delivery verifies');
for (const { id, event } of mine()) {
  assert.equal(event.type, 'user.registered');
  assert.equal(id, event.data.eventId, 'webhook-id is the event id');
  assert.equal(event.data.version, 1);
  assert.equal(event.data.role, 'user');
  assert.match(event.timestamp, /^\d{4}-\d\d-\d\dT.*Z$/);
}
const ids = mine().map((v) => v.id);
assert.equal(new Set(ids).size, ids.length, 'each event once');
console.log(`standardwebhooks receiver verified ${verified.length} deliveries (down first, then up)`);
