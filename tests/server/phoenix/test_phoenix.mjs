// The official phoenix JavaScript client emits and consumes through hiventd
// over vsn 2.0.0 JSON frames, with the ws package as its WebSocket.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

const moduleDir = process.env.HIVENT_NODE_DIR || path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(path.join(moduleDir, "package.json"));
const { Socket } = require("phoenix");
const WebSocket = require("ws");

const HIVENTD = process.env.HIVENTD;
const API_KEY = "js-key";
const ADMIN_KEY = "js-admin";
let server;
let port;
let dataDir;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function startServer() {
  dataDir = mkdtempSync(path.join(tmpdir(), "hiventd-js-"));
  const ready = path.join(dataDir, "ready");
  server = spawn(HIVENTD, ["--data-dir", path.join(dataDir, "db"), "--listen", "127.0.0.1:0",
    "--ready-file", ready, "--api-key", API_KEY, "--admin-key", ADMIN_KEY,
    "--heartbeat-interval", "500"], { stdio: ["ignore", "inherit", "inherit"] });
  for (let i = 0; i < 500; i++) {
    try {
      const text = readFileSync(ready, "utf8");
      if (text.endsWith("\n")) {
        port = Number(text);
        return;
      }
    } catch (e) {
      // not written yet
    }
    await sleep(20);
  }
  throw new Error("hiventd did not write its ready file within 10 s");
}

function connect(endpoint, params) {
  const socket = new Socket(`ws://127.0.0.1:${port}/${endpoint}`, {
    params: { api_key: API_KEY, ...params },
    transport: WebSocket,
    heartbeatIntervalMs: 300,
    reconnectAfterMs: () => 60000,
  });
  socket.connect();
  return socket;
}

function join(channel) {
  return new Promise((resolve, reject) => {
    channel.join()
      .receive("ok", resolve)
      .receive("error", (resp) => reject(new Error("join failed: " + JSON.stringify(resp))))
      .receive("timeout", () => reject(new Error("join timed out")));
  });
}

function push(channel, event, payload) {
  return new Promise((resolve, reject) => {
    channel.push(event, payload, 5000)
      .receive("ok", (resp) => resolve({ status: "ok", resp }))
      .receive("error", (resp) => resolve({ status: "error", resp }))
      .receive("timeout", () => reject(new Error(event + " timed out")));
  });
}

before(startServer);

after(async () => {
  const exited = new Promise((resolve) => server.on("exit", (code) => resolve(code)));
  server.kill("SIGTERM");
  const code = await exited;
  rmSync(dataDir, { recursive: true, force: true });
  assert.equal(code, 0, "hiventd exit code");
});

test("phoenix client emits and consumes over vsn 2.0.0", async () => {
  const consumerSocket = connect("consumer", { service: "js-svc", name: "js-1" });
  const events = [];
  const consumer = consumerSocket.channel("event:js:test",
    { partition_count: 3, ack: true, prefetch: 10 });
  consumer.on("event:received", (payload) => {
    events.push(payload);
    if (payload.event.payload.n === 3) {
      consumer.push("event:quarantine",
        { event: payload.event, queue: payload.queue, reason: "n is 3" });
    } else {
      consumer.push("event:ack", { queue: payload.queue, uuid: payload.event.meta.uuid });
    }
  });
  await join(consumer);

  const producerSocket = connect("producer", { client_id: "js-producer" });
  const ingress = producerSocket.channel("ingress:all", {});
  await join(ingress);

  const replies = [];
  for (let n = 0; n < 20; n++) {
    replies.push(await push(ingress, "event:emit", {
      name: "js:test",
      payload: { n, nested: { list: [1, 2.5, "three", null, true] } },
      meta: { version: 2, key: "key-" + (n % 4), cid: n === 0 ? "corr-0" : null },
    }));
  }
  for (const [n, r] of replies.entries()) {
    assert.equal(r.status, "ok", JSON.stringify(r.resp));
    assert.equal(r.resp.name, "js:test");
    assert.equal(r.resp.payload.n, n);
    assert.equal(r.resp.meta.version, 2);
    assert.equal(r.resp.meta.producer, "js-producer");
    assert.match(r.resp.meta.uuid, /^[0-9a-f-]{36}$/);
    assert.match(r.resp.meta.created_at, /Z$/);
  }
  assert.equal(replies[0].resp.meta.cid, "corr-0");

  const invalid = await push(ingress, "event:emit", { name: "js:test", payload: {}, meta: {} });
  assert.equal(invalid.status, "error");
  assert.match(invalid.resp.reason, /version/);

  for (let i = 0; i < 250 && events.length < 20; i++)
    await sleep(20);
  assert.equal(events.length, 20);
  const byKey = new Map();
  for (const e of events) {
    assert.match(e.queue, /^js-svc:[0-2]$/);
    assert.deepEqual(e.event.payload.nested, { list: [1, 2.5, "three", null, true] });
    const key = e.event.meta.key;
    const last = byKey.get(key) ?? -1;
    assert.ok(e.event.payload.n > last, "per-key order of " + key);
    byKey.set(key, e.event.payload.n);
  }

  // Heartbeats keep both sockets open well past two server heartbeat intervals.
  await sleep(1500);
  assert.ok(consumerSocket.isConnected());
  assert.ok(producerSocket.isConnected());

  const res = await fetch(`http://127.0.0.1:${port}/admin/dlq?service=js-svc`,
    { headers: { Authorization: "Bearer " + ADMIN_KEY } });
  assert.equal(res.status, 200);
  const dlq = await res.json();
  assert.equal(dlq.events.length, 1);
  assert.equal(dlq.events[0].reason, "n is 3");
  assert.equal(dlq.events[0].event.payload.n, 3);
  assert.match(dlq.events[0].queue, /^js-svc:[0-2]:dead_letter$/);

  const health = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
  const svc = health.services.find((s) => s.name === "js-svc");
  assert.equal(svc.pending, 0);

  consumerSocket.disconnect();
  producerSocket.disconnect();
});

test("phoenix client with a wrong api key cannot connect", async () => {
  let errors = 0;
  const socket = new Socket(`ws://127.0.0.1:${port}/producer`, {
    params: { api_key: "wrong" }, transport: WebSocket, reconnectAfterMs: () => 60000,
  });
  socket.onError(() => errors++);
  socket.connect();
  for (let i = 0; i < 100 && errors === 0; i++)
    await sleep(20);
  assert.ok(errors > 0);
  assert.ok(!socket.isConnected());
  socket.disconnect();
});
