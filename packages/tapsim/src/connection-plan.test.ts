import assert from "node:assert/strict";
import { test } from "node:test";
import { planConnections } from "./connection-plan.js";
import { createPopulation } from "./population.js";
import { createPrng } from "./prng.js";
import { TLS_SUITES } from "./tls-profiles.js";

const START = 1_741_942_800_000_000_000n;

function plan(seed: string, connections: number, tapperIds: readonly string[] = ["gw-fra-1", "gw-ams-2"]) {
  const root = createPrng(seed);
  const population = createPopulation(root.fork("population"));
  return {
    population,
    plans: planConnections(root.fork("plan"), population, {
      connections,
      startNs: START,
      meanInterArrivalNs: 50e6,
      tapperIds,
    }),
  };
}

const PRIVATE_OR_DOC = /^(10\.|172\.(1[6-9]|2\d|3[01])\.|192\.168\.|fd[0-9a-f]{2}:|2001:db8:)/;
const DOCUMENTATION = /^(192\.0\.2\.|198\.51\.100\.|203\.0\.113\.|2001:db8:)/;

test("plan - a large plan covers every suite and protocol with realistic endpoints", () => {
  const { population, plans } = plan("coverage", 600);
  assert.ok(
    population.users.length >= 40 && population.users.length <= 80,
    `${population.users.length} users`,
  );
  const suites = new Set(plans.flatMap((p) => (p.tls ? [p.tls.suite.iana] : [])));
  assert.deepEqual([...suites].sort(), TLS_SUITES.map((s) => s.iana).sort());
  assert.deepEqual([...new Set(plans.map((p) => p.protocol))].sort(), [
    "dns",
    "http",
    "https-h1",
    "https-h2",
  ]);
  assert.ok(
    plans.every((p) => p.protocol !== "https-h2" || !p.tls!.suite.cbc),
    "HTTP/2 never runs over a CBC suite",
  );

  const ids = new Set(plans.map((p) => p.connId));
  assert.equal(ids.size, plans.length, "connection ids are unique");
  assert.ok(
    plans.every((p) => /^[0-9a-f]{32}$/.test(p.connId)),
    "connection ids are 128-bit hex",
  );
  const tuples = new Set(
    plans.map(
      (p) =>
        `${p.protocol === "dns"} ${p.client.address} ${p.client.port} ${p.server.address} ${p.server.port}`,
    ),
  );
  assert.equal(tuples.size, plans.length, "5-tuples are unique");

  for (const p of plans) {
    assert.match(p.client.address, PRIVATE_OR_DOC);
    assert.match(p.server.address, DOCUMENTATION);
    assert.equal(p.client.address.includes(":"), p.ipVersion === 6);
    assert.equal(p.server.address.includes(":"), p.ipVersion === 6);
    const [lo, hi] = p.device.portRange;
    assert.ok(p.client.port >= lo && p.client.port <= hi, `ephemeral port ${p.client.port}`);
    const ports = { dns: [53], http: [80], "https-h1": [443, 8443], "https-h2": [443, 8443] }[p.protocol];
    assert.ok(ports.includes(p.server.port), `${p.protocol} on ${p.server.port}`);
    for (const k of ["user", "tenant", "app", "policy", "device"])
      assert.ok(p.attributes[k], `attribute ${k}`);
    if (p.protocol !== "dns") {
      assert.ok(p.tcp?.clientMss && p.tcp.serverMss && p.tcp.clientWindowScale !== undefined, "TCP options");
      assert.equal(
        new Set(p.exchanges.map((e) => e.path)).size,
        p.exchanges.length,
        "paths are unique per connection",
      );
    }
  }
  assert.ok(plans.some((p) => p.ipVersion === 6) && plans.some((p) => p.ipVersion === 4), "both IP versions");
  for (let i = 1; i < plans.length; i++) {
    assert.ok(plans[i]!.startNs > plans[i - 1]!.startNs, "starts increase");
  }
  assert.equal(plans[0]!.startNs, START);
});

test("plan - bodies range from bytes to megabytes, mostly small", () => {
  const { plans } = plan("bodies", 600);
  const lengths = plans.flatMap((p) => p.exchanges.map((e) => e.responseBody.length)).filter((n) => n > 0);
  const small = lengths.filter((n) => n <= 64 * 1024).length;
  assert.ok(Math.min(...lengths) < 100, `smallest ${Math.min(...lengths)}`);
  assert.ok(Math.max(...lengths) > 1024 * 1024, `largest ${Math.max(...lengths)}`);
  assert.ok(small / lengths.length > 0.6, `share of small bodies ${small / lengths.length}`);
  assert.ok(
    plans.some((p) => p.exchanges.length >= 4),
    "keep-alive connections carry several exchanges",
  );
  assert.ok(
    plans.some((p) => p.exchanges.some((e) => e.chunked)),
    "some responses use chunked coding",
  );
});

test("plan - failover needs a second tapper, and the same seed plans the same run", () => {
  const two = plan("tappers", 300).plans;
  const moved = two.filter((p) => p.tapperIds.length === 2);
  assert.ok(moved.length > 0, "some connections fail over");
  for (const p of moved) {
    assert.notEqual(p.tapperIds[0], p.tapperIds[1]);
    assert.ok((p.tapperSwitchAtBytes ?? 0) > 0, "a switch point");
  }
  const one = plan("tappers", 300, ["gw-solo"]).plans;
  assert.ok(
    one.every((p) => p.tapperIds.length === 1 && p.tapperIds[0] === "gw-solo"),
    "one tapper: no failover",
  );
  const json = (x: unknown) => JSON.stringify(x, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  assert.equal(json(plan("same", 50).plans), json(plan("same", 50).plans));
  assert.notEqual(json(plan("same", 50).plans), json(plan("other", 50).plans));
});

test("plan - a connection-id salt (another clock start) changes the ids only", () => {
  const draw = (connIdSalt?: string) => {
    const root = createPrng("salted");
    const population = createPopulation(root.fork("population"));
    return planConnections(root.fork("plan"), population, {
      connections: 40,
      startNs: START,
      meanInterArrivalNs: 50e6,
      tapperIds: ["gw-fra-1", "gw-ams-2"],
      ...(connIdSalt === undefined ? {} : { connIdSalt }),
    });
  };
  const plain = draw();
  assert.deepEqual(
    draw().map((p) => p.connId),
    plain.map((p) => p.connId),
    "no salt: the seed's ids",
  );
  const salted = draw("start-1");
  const other = draw("start-2");
  const ids = new Set(plain.map((p) => p.connId));
  for (const p of [...salted, ...other]) {
    assert.match(p.connId, /^[0-9a-f]{32}$/);
    assert.ok(!ids.has(p.connId), "a salted id differs from every unsalted one");
  }
  assert.ok(
    salted.every((p, i) => p.connId !== other[i]!.connId),
    "two salts, two sets of ids",
  );
  const shape = (ps: typeof plain) => ps.map((p) => ({ ...p, connId: "" }));
  assert.deepEqual(shape(salted), shape(plain), "everything else as the seed draws it");
});
