// toxiproxy-node-client (npm) drives a vaurien control server with real traffic.
// Usage: node test.js API_PORT BACKEND_PORT
// BACKEND_PORT serves HTTP (`python -m http.server`) with /hello.txt = "hello vaurien\n" and
// /big.bin (10 kB). Prints "ok" and exits 0 when every check passed.
"use strict";
const assert = require("node:assert/strict");
const net = require("node:net");
const { Toxiproxy, ToxiproxyError } = require("toxiproxy-node-client");

const [apiPort, backendPort] = process.argv.slice(2).map(Number);
if (!apiPort || !backendPort) {
  console.error("usage: node test.js API_PORT BACKEND_PORT");
  process.exit(2);
}
const upstream = `127.0.0.1:${backendPort}`;
const portOf = (p) => Number(p.listen.split(":").pop());

// GET `path` with HTTP/1.0 on a raw socket; resolves with all bytes received until close.
function rawGet(port, path) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const s = net.connect(port, "127.0.0.1", () => {
      s.write(`GET ${path} HTTP/1.0\r\nHost: x\r\n\r\n`);
    });
    s.setTimeout(10000, () => s.destroy(new Error("timed out")));
    s.on("data", (d) => chunks.push(d));
    s.on("error", (e) => (e.code === "ECONNRESET" ? resolve(Buffer.concat(chunks)) : reject(e)));
    s.on("close", () => resolve(Buffer.concat(chunks)));
  });
}

function refused(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.on("connect", () => { s.destroy(); resolve(false); });
    s.on("error", () => resolve(true));
  });
}

const body = (buf) => buf.subarray(buf.indexOf("\r\n\r\n") + 4).toString();

async function main() {
  const toxiproxy = new Toxiproxy(`http://127.0.0.1:${apiPort}`);
  assert.match(await toxiproxy.getVersion(), /version/);

  // create
  const proxy = await toxiproxy.createProxy({ name: "node", listen: "127.0.0.1:0", upstream });
  assert.equal(proxy.enabled, true);
  const port = portOf(proxy);
  assert.equal(body(await rawGet(port, "/hello.txt")), "hello vaurien\n");

  // latency toxic: a lower bound on the request time
  const latency = await proxy.addToxic({
    name: "lat", type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 300, jitter: 0 },
  });
  assert.equal(latency.type, "latency");
  assert.deepEqual(latency.attributes, { latency: 300, jitter: 0 });
  let t0 = Date.now();
  assert.equal(body(await rawGet(port, "/hello.txt")), "hello vaurien\n");
  assert.ok(Date.now() - t0 >= 300, "latency toxic did not delay");

  // update through the client (it posts the whole toxic back)
  latency.attributes = { latency: 100 };
  const updated = await latency.update(latency.toJson());
  assert.equal(updated.attributes.latency, 100);
  assert.equal((await proxy.getToxic("lat")).attributes.latency, 100);

  // remove
  await updated.remove();
  await assert.rejects(proxy.getToxic("lat"), ToxiproxyError);

  // limit_data: the answer is cut after 100 bytes
  const limit = await proxy.addToxic({ name: "cut", type: "limit_data", stream: "downstream", toxicity: 1, attributes: { bytes: 100 } });
  assert.equal((await rawGet(port, "/big.bin")).length, 100);
  await limit.remove();
  assert.equal(body(await rawGet(port, "/big.bin")).length, 10000);

  // disable / enable through update
  const down = await proxy.update({ enabled: false });
  assert.equal(down.enabled, false);
  assert.ok(await refused(port), "disabled proxy still accepts");
  const up = await down.update({ enabled: true });
  assert.equal(up.enabled, true);
  assert.equal(body(await rawGet(port, "/hello.txt")), "hello vaurien\n");

  // populate (iterates res.proxies)
  const listenA = `127.0.0.1:${await freePort()}`;
  const populated = await toxiproxy.populate([
    { name: "popA", listen: listenA, upstream, enabled: true },
    { name: "popB", listen: "127.0.0.1:0", upstream, enabled: false },
  ]);
  assert.deepEqual(Object.keys(populated).sort(), ["popA", "popB"]);
  assert.equal(populated.popB.enabled, false);
  assert.equal(body(await rawGet(portOf(populated.popA), "/hello.txt")), "hello vaurien\n");
  assert.deepEqual(await toxiproxy.populate([]), {});

  // reset: re-enables popB and node, removes every toxic
  await proxy.addToxic({ name: "slow", type: "latency", stream: "upstream", toxicity: 1, attributes: { latency: 200 } });
  await proxy.update({ enabled: false });
  await toxiproxy.reset();
  const all = await toxiproxy.getAll();
  for (const name of ["node", "popA", "popB"]) assert.equal(all[name].enabled, true, name);
  await assert.rejects(proxy.getToxic("slow"), ToxiproxyError);
  t0 = Date.now();
  assert.equal(body(await rawGet(port, "/hello.txt")), "hello vaurien\n");
  assert.ok(Date.now() - t0 < 5000);

  // get / remove
  const got = await toxiproxy.get("node");
  assert.equal(got.upstream, upstream);
  for (const name of ["node", "popA", "popB"]) await all[name].remove();
  await assert.rejects(toxiproxy.get("node"), ToxiproxyError);
  assert.ok(await refused(port));
  console.log("ok");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
