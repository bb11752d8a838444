import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { LISTEN_FILE_ENV } from "@cloudtap/service-kit";
import { SupervisedProcess } from "./supervised-process.js";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-supervised-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const lines = (file: string) => readFileSync(file, "utf8").trim().split("\n").filter(Boolean);

describe("supervised process", () => {
  it("a restart runs with what was pinned; the listen file is removed before each start", async () => {
    const listenFile = join(dir, "child.listen");
    const seen = join(dir, "seen");
    writeFileSync(seen, "");
    // Each run appends its PORT and whether a listen file was there when it started, writes one, then the
    // first two fail (a restart follows) and the third stays until stopped.
    const script = `
      const fs = require("node:fs");
      const listen = process.env.${LISTEN_FILE_ENV};
      fs.appendFileSync(${JSON.stringify(seen)}, process.env.PORT + " " + fs.existsSync(listen) + "\\n");
      fs.writeFileSync(listen, "{}");
      const runs = fs.readFileSync(${JSON.stringify(seen)}, "utf8").trim().split("\\n").length;
      if (runs < 3) process.exit(1);
      setInterval(() => {}, 1000);
    `;
    const restarted: string[] = [];
    const child: SupervisedProcess = new SupervisedProcess({
      name: "child",
      command: process.execPath,
      args: ["-e", script],
      env: { PORT: "0" },
      logFile: join(dir, "child.log"),
      listenFile,
      restartPolicy: (_exit, restarts) => (restarts < 2 ? 10 : undefined),
      onRestart: (name) => {
        restarted.push(name);
        // Pinned once the second run started: the third gets it, the running one keeps what it had.
        child.pin({ env: { PORT: "4222" } });
      },
    });
    try {
      child.start();
      const deadline = Date.now() + 20_000;
      while (lines(seen).length < 3) {
        assert.ok(Date.now() < deadline, "three runs in 20 s");
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await child.stop();
    }
    assert.deepEqual(lines(seen), ["0 false", "0 false", "4222 false"]);
    assert.deepEqual(restarted, ["child", "child"]);
  });
});
