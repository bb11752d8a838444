import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ConnOpenRecord, createCtapWriter, MemorySink, Transport } from "@cloudtap/tap-format";
import { escapeForTerminal, formatInventory } from "./format.js";
import { Inventory } from "./inventory.js";

const T0 = 1_764_000_000_000_000_000n;

describe("inspect - the terminal report", () => {
  it("inspect - --verbose escapes control characters of attribute values and key names", async () => {
    const open: ConnOpenRecord = {
      type: "conn-open",
      connId: "ab".repeat(16),
      timestampNs: T0,
      transport: Transport.Tcp,
      ipVersion: 4,
      client: { address: "10.0.0.1", port: 40000 },
      server: { address: "192.0.2.1", port: 443 },
      midstream: false,
      tcp: {},
      attributes: { user: "eve\u001b]0;pwned\u0007@example.com\n", app: "x\u202eevil" },
    };
    const sink = new MemorySink();
    const w = createCtapWriter(sink, { tapperId: "gw-1", sequence: 0n, startNs: T0 });
    await w.write(open);
    await w.finish(T0 + 1n);
    const inv = new Inventory();
    await inv.addBlob(
      "data/evil\u001b[2J.ctap",
      (async function* () {
        yield sink.bytes();
      })(),
    );
    const text = formatInventory(inv.report(), { verbose: true });
    assert.doesNotMatch(text.replaceAll("\n", ""), /[\u0000-\u001f\u007f-\u009f\u202e]/);
    assert.match(text, /user=eve\\x1b\]0;pwned\\x07@example\.com\\n app=x\\u202eevil/);
    assert.match(text, /data\/evil\\x1b\[2J\.ctap/);
  });

  it("inspect - escapeForTerminal leaves printable text alone", () => {
    assert.equal(
      escapeForTerminal("alice@example.com 10.0.0.1:443 ünïcode"),
      "alice@example.com 10.0.0.1:443 ünïcode",
    );
    assert.equal(escapeForTerminal("a\tb\rc\u0000"), "a\\tb\\rc\\x00");
  });
});
