// node --experimental-websocket --test clients/js   (Node 20; Node >= 22 needs no flag)
//
// Starts a real `neurograph serve` on 127.0.0.1 (a free port, a JWT secret in its environment), then
// drives the client against it: connect, subscribe, emit over the socket, a dropped socket that
// reconnects and resumes (subscriptions restored, missed events replayed), and refused credentials.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

import { NeurographClient, NeurographError } from "../neurograph-client.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const PYTHON = process.env.NEUROGRAPH_PYTHON ?? (existsSync(path.join(ROOT, ".venv/bin/python")) ? path.join(ROOT, ".venv/bin/python") : "python3");
const SECRET = randomBytes(32).toString("hex");
const CHAT = "signal.input.external.text.chat";
let server;
let port;

function b64url(data) {
  return Buffer.from(data).toString("base64url");
}

function jwt(sub, role, secret = SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub, role, iat: now, exp: now + 600 }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(predicate, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (predicate()) return true;
    await sleep(20);
  }
  return false;
}

before(async () => {
  port = await freePort();
  server = spawn(PYTHON, ["-m", "neurograph", "serve", "--host", "127.0.0.1", "--port", String(port)], {
    cwd: ROOT,
    env: { ...process.env, NEUROGRAPH_JWT_SECRET: SECRET, TQDM_DISABLE: "1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  server.stderr.on("data", (d) => (stderr += d));
  const end = Date.now() + 60000;
  while (Date.now() < end) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health/ready`);
      if (r.ok) return;
    } catch (err) {
      /* not up yet */
    }
    if (server.exitCode !== null) throw new Error(`the server exited: ${stderr}`);
    await sleep(100);
  }
  throw new Error(`the server did not become ready: ${stderr}`);
});

after(() => {
  server?.kill("SIGTERM");
});

test("connect, subscribe, emit over the socket and receive the signal event", async () => {
  const client = new NeurographClient(`ws://127.0.0.1:${port}/ws`, { token: jwt("ada", "developer") });
  const hello = await client.connect();
  assert.equal(hello.role, "developer");
  assert.equal(hello.reconnected, false);
  const events = [];
  const sub = await client.subscribe(["signals", "connections"], (ev) => events.push(ev));
  assert.deepEqual(sub.channels, ["signals"]); // connections is admin only
  assert.deepEqual(sub.denied, ["connections"]);
  const pong = await client.ping();
  assert.equal(pong.type, "pong");
  const out = await client.emit({ event_type: CHAT, vector: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], label: "js", payload: "from node" });
  assert.equal(out.type, "emitted");
  assert.equal(out.result.is_novel, true);
  assert.ok(await waitFor(() => events.some((e) => e.data.token_id === out.result.token_id)));
  const ev = events.find((e) => e.data.token_id === out.result.token_id);
  assert.equal(ev.channel, "signals");
  assert.equal(ev.event_type, CHAT);
  assert.equal(ev.data.label, "js");
  client.close();
});

test("a dropped socket reconnects, resumes its subscriptions and replays what it missed", async () => {
  const statuses = [];
  const token = jwt("grace", "developer");
  const client = new NeurographClient(`ws://127.0.0.1:${port}/ws`, {
    token,
    initialDelayMs: 300,
    onStatus: (s) => statuses.push(s),
  });
  await client.connect();
  const seen = [];
  await client.subscribe("signals", (ev) => seen.push(ev.data.token_id));
  const before = await client.emit({ event_type: CHAT, vector: [-0.5, 0, 0, 0, 0, 0, 0, 0.5] });
  assert.ok(await waitFor(() => seen.includes(before.result.token_id)));

  client.ws.close(4000, "network drop"); // the socket dies; the client did not ask to close
  assert.ok(await waitFor(() => statuses.includes("disconnected")));
  // while it is away, another client emits: the server buffers the events for the resumed session
  const other = new NeurographClient(`ws://127.0.0.1:${port}/ws`, { token: jwt("bot", "bot") });
  await other.connect();
  const missed = await other.emit({ event_type: CHAT, vectors: [[0.9, 0.9, 0.9, 0.9, 0, 0, 0, 0], [-0.9, -0.9, 0, 0, 0, 0, 0.9, 0.9]] });
  other.close();

  assert.ok(await waitFor(() => statuses.includes("reconnected"), 15000), statuses.join(","));
  const subs = await client.subscriptions();
  assert.deepEqual(subs.channels, ["signals"]);
  const ids = missed.results.token_ids;
  assert.ok(await waitFor(() => ids.every((id) => seen.includes(id))), `replayed ${seen}`);
  assert.equal(client.reconnections, 1);
  // and it keeps working
  const after = await client.emit({ event_type: CHAT, vector: [0, 0.5, 0, -0.5, 0, 0, 0, 0] });
  assert.ok(await waitFor(() => seen.includes(after.result.token_id)));
  assert.equal(new Set(seen).size, seen.length, "no event delivered twice");
  client.close();
});

test("bad credentials are refused with 1008 and not retried", async () => {
  const client = new NeurographClient(`ws://127.0.0.1:${port}/ws`, { token: jwt("eve", "admin", "x".repeat(64)) });
  await assert.rejects(client.connect(), (err) => err instanceof NeurographError && /1008/.test(err.message));
});
