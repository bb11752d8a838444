/**
 * The mesh on cloud stores: `cloudtap simulate` fills an emulator (s3rver, azurite) with data and key logs
 * in two buckets (containers) with their own credentials, `cloudtap up --once` runs two fetchers, the
 * key-broker, two stitchers and mirror-egress as separate OS processes reading those stores, and its pcapng
 * is judged against the simulator's manifest (tshark follows every TCP connection) and against `cloudtap
 * stitch` on the same stores, flow for flow. The fetchers' process environment (read from /proc while they
 * run) and mesh.json hold the data store's credentials only: the key store's location and credential reach
 * the key-broker alone.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  assertTcpMatchesManifest,
  byEndpoints,
  createAzuriteContainer,
  followStreams,
  type ManifestTcpView,
  startAzurite,
  startS3rver,
} from "@cloudtap/test-harness";
import { digestCapture } from "./capture-compare.js";
import { type CloudStores, cloudtapAsync, credentialArgs, simulateInto } from "./cloud-run.js";
import { storeManifest } from "./cloudtap-cli.js";
import { environOf } from "./mesh-faults.js";
import { capinfosOrder, type InstanceCounters, sumCounter } from "./mesh-helpers.js";

interface UpSummary {
  readonly instances: readonly (InstanceCounters & { readonly name: string; readonly restarts: number })[];
}

interface MeshStateFile {
  readonly instances: readonly { readonly name: string; readonly service: string; readonly pid?: number }[];
}

/** What an emulator gives the run: the two stores, the key store's secrets, and how to stop it. */
interface Emulated {
  readonly stores: CloudStores;
  /** Strings of the key store's credential and location that must not reach a fetcher. */
  readonly keySecrets: readonly string[];
  /** The SDK environment that opens both stores without a credentials file (its default chain). */
  readonly chainEnv?: Readonly<Record<string, string>>;
  readonly cleanup: () => Promise<void>;
}

/** A mesh program's command line: nats-server, or a service from its sources or from its bundle. */
const MESH_PROGRAM =
  /nats-server|services\/[a-z-]+\/src\/main\.ts|dist\/(fetcher|key-broker|stitcher|mirror-egress)\.mjs/;

/**
 * After an `up` that failed or was killed: ends the mesh processes it left (the pids of its mesh.json that
 * still run one of the mesh's programs), so a failing test leaves nothing running.
 */
function stopLeftovers(stateDir: string): void {
  const file = join(stateDir, "mesh.json");
  if (!existsSync(file)) return;
  const state = JSON.parse(readFileSync(file, "utf8")) as MeshStateFile;
  for (const i of state.instances) {
    if (!i.pid) continue;
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${i.pid}/cmdline`, "latin1");
    } catch {
      continue;
    }
    if (MESH_PROGRAM.test(cmdline)) process.kill(i.pid, "SIGKILL");
  }
}

/**
 * Runs `up` and, while it runs, reads the environment of every fetcher and key-broker process listed in
 * the state folder's mesh.json (each process is alive from its start until the mesh stops).
 */
async function upWatchingEnvironments(args: readonly string[], stateDir: string) {
  const environments = new Map<string, Record<string, string>>();
  let running = true;
  const watch = (async () => {
    while (running) {
      const file = join(stateDir, "mesh.json");
      if (existsSync(file)) {
        try {
          const state = JSON.parse(readFileSync(file, "utf8")) as MeshStateFile;
          for (const i of state.instances)
            if (
              (i.service === "fetcher" || i.service === "key-broker") &&
              i.pid &&
              !environments.has(i.name)
            ) {
              const env = environOf(i.pid);
              if (env) environments.set(i.name, env);
            }
        } catch {
          // mesh.json is being rewritten: read it again on the next turn.
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const run = await cloudtapAsync(args);
  running = false;
  await watch;
  if (run.status !== 0) stopLeftovers(stateDir);
  return { run, environments };
}

function meshOnCloud(name: string, start: (work: string) => Promise<Emulated>): void {
  describe(`mesh on cloud stores - ${name}`, { timeout: 900_000 }, () => {
    let work: string;
    let emulated: Emulated | undefined;
    let stores: CloudStores;
    let dir: string;
    let manifest: ManifestTcpView;
    /** The one-process stitch of the first test, the reference of the second. */
    let oneFile: string | undefined;

    before(async () => {
      work = mkdtempSync(join(tmpdir(), "cloudtap-mesh-cloud-"));
      emulated = await start(work);
      stores = emulated.stores;
      // 24 connections in about 300 blobs of 48 KiB: enough for both fetchers to take some.
      dir = await simulateInto(stores, work, { connections: 24 });
      manifest = storeManifest(dir);
    });
    after(async () => {
      await emulated?.cleanup();
      rmSync(work, { recursive: true, force: true });
    });

    test(`mesh on cloud stores - ${name}: up --once equals stitch flow for flow; the fetchers hold no key-store credential`, async () => {
      const meshFile = join(work, "mesh.pcapng");
      const stateDir = join(work, "state");
      const storeArgs = ["--source", stores.dataUrl, "--keys", stores.keysUrl, ...credentialArgs(stores)];
      const { run: up, environments } = await upWatchingEnvironments(
        [
          "up",
          ...storeArgs,
          "--once",
          "--variant",
          "both",
          "--fetchers",
          "2",
          "--stitchers",
          "2",
          "--shards",
          "8",
          "--pcapng",
          meshFile,
          "--state-dir",
          stateDir,
          "--json",
        ],
        stateDir,
      );
      assert.equal(up.status, 0, up.stderr);
      const summary = JSON.parse(up.stdout) as UpSummary;

      // Every blob fetched once, both fetchers took some, both stitchers took records, nothing restarted.
      const blobs = readdirSync(join(dir, "data"), { recursive: true }).filter((f) =>
        String(f).endsWith(".ctap"),
      );
      assert.ok(blobs.length >= 4, `blobs: ${blobs.length}`);
      const fetchers = summary.instances.filter((i) => i.service === "fetcher");
      const stitchers = summary.instances.filter((i) => i.service === "stitcher");
      assert.equal(fetchers.length, 2);
      assert.equal(stitchers.length, 2);
      assert.equal(sumCounter(summary.instances, "fetcher", "blobs_done"), blobs.length);
      for (const f of fetchers) assert.ok((f.counters?.["blobs_done"] ?? 0) > 0, `${f.name} took no blob`);
      for (const s of stitchers)
        assert.ok((s.counters?.["stitcher_records"] ?? 0) > 0, `${s.name} took no record`);
      for (const i of summary.instances) assert.equal(i.restarts, 0, `${i.name} restarted`);
      process.stdout.write(
        `# ${name}: ${manifest.connections.length} connections in ${blobs.length} blobs; split: ${[
          ...fetchers,
          ...stitchers,
        ]
          .map((i) => `${i.name} ${i.counters?.["blobs_done"] ?? i.counters?.["stitcher_records"]}`)
          .join(", ")} (fetchers: blobs, stitchers: records)\n`,
      );
      assert.equal(
        sumCounter(summary.instances, "fetcher", "records_published"),
        sumCounter(summary.instances, "stitcher", "stitcher_records"),
      );

      // Every TLS connection decrypted, with keys the key-broker read from the key store.
      const tlsConnections = manifest.connections.filter((c) => (c as { tls?: unknown }).tls != null).length;
      assert.ok(tlsConnections > 5, `TLS connections: ${tlsConnections}`);
      let decrypted = 0;
      for (const s of stitchers)
        for (const [k, v] of Object.entries(s.counters ?? {}))
          if (k.includes("outcome=decrypted")) decrypted += v;
      assert.equal(decrypted, tlsConnections);

      assert.equal(capinfosOrder(meshFile).strict, true, "the mesh's pcapng is in strict time order");
      // Every TCP connection of the manifest once, its bytes per direction as the manifest has them.
      assertTcpMatchesManifest(manifest, meshFile, { atLeast: 10 });

      // The same packets, UDP datagrams, keys and TCP flows as the one-process stitch of the same stores.
      oneFile = join(work, "one.pcapng");
      const one = await cloudtapAsync(["stitch", ...storeArgs, "--pcapng", oneFile, "--variant", "both"]);
      assert.equal(one.status, 0, one.stderr);
      const [mesh, reference] = await Promise.all([digestCapture(meshFile), digestCapture(oneFile)]);
      assert.ok(reference.keyLogLines.length > 0, "keys were read and embedded");
      assert.equal(mesh.packets, reference.packets);
      assert.deepEqual(mesh.udpDigests, reference.udpDigests);
      assert.deepEqual(mesh.keyLogLines, reference.keyLogLines);
      assert.deepEqual(byEndpoints(followStreams(meshFile)), byEndpoints(followStreams(oneFile)));

      // The fetchers' environment: the data store and its credentials file, nothing of the key store. The
      // key-broker's is read the same way and holds the key store (the check sees what it looks for).
      const keyBroker = environments.get("key-broker");
      assert.ok(keyBroker, "the key-broker's environment was read");
      assert.equal(keyBroker["KEY_BROKER_KEYS_STORE"], stores.keysUrl);
      assert.equal(keyBroker["KEY_BROKER_KEYS_STORE_CREDENTIALS"], resolve(stores.keysCredentials));
      const forbidden = [
        resolve(stores.keysCredentials),
        stores.keysUrl,
        readFileSync(stores.keysCredentials, "utf8"),
        ...emulated!.keySecrets,
      ];
      for (const f of ["fetcher-1", "fetcher-2"]) {
        const env = environments.get(f);
        assert.ok(env, `the environment of ${f} was read`);
        assert.equal(env["FETCHER_SOURCE"], stores.dataUrl);
        assert.equal(env["FETCHER_SOURCE_CREDENTIALS"], resolve(stores.dataCredentials));
        for (const [k, v] of Object.entries(env)) {
          assert.ok(!/KEYS?_STORE/.test(k), `${f} has ${k}`);
          for (const s of forbidden) assert.ok(!v.includes(s), `${f}'s ${k} holds the key store's ${s}`);
        }
      }
      // mesh.json (what `cloudtap status` reads) names neither store's credentials.
      const meshJson = readFileSync(join(stateDir, "mesh.json"), "utf8");
      for (const s of [...forbidden, readFileSync(stores.dataCredentials, "utf8")])
        assert.ok(!meshJson.includes(s), `mesh.json holds ${s}`);
      // Nor does the fetcher's logged configuration know the key store.
      const fetcherLog = readFileSync(join(stateDir, "logs", "fetcher-1.log"), "utf8");
      const config = JSON.stringify(
        JSON.parse(fetcherLog.split("\n").find((l) => l.includes('"service config"'))!).config,
      );
      for (const s of forbidden) assert.ok(!config.includes(s), `the fetcher's config holds ${s}`);
    });

    test(`mesh on cloud stores - ${name}: without credentials files the services open the stores by the SDK's environment`, async (t) => {
      if (!emulated?.chainEnv)
        return t.skip("one set of SDK variables cannot open both stores of this emulator");
      assert.ok(oneFile, "the first test's reference stitch ran");
      const meshFile = join(work, "chain.pcapng");
      const stateDir = join(work, "state-chain");
      const args = [
        "up",
        "--source",
        stores.dataUrl,
        "--keys",
        stores.keysUrl,
        "--once",
        "--variant",
        "both",
      ];
      args.push("--pcapng", meshFile, "--state-dir", stateDir, "--json");
      const saved = { ...process.env };
      Object.assign(process.env, emulated.chainEnv);
      let watched: Awaited<ReturnType<typeof upWatchingEnvironments>>;
      try {
        watched = await upWatchingEnvironments(args, stateDir);
      } finally {
        for (const k of Object.keys(emulated.chainEnv)) {
          if (saved[k] === undefined) delete process.env[k];
          else process.env[k] = saved[k];
        }
      }
      assert.equal(watched.run.status, 0, watched.run.stderr);
      for (const [k, v] of Object.entries(emulated.chainEnv)) {
        assert.equal(watched.environments.get("fetcher-1")?.[k], v, `the fetcher's ${k}`);
        assert.equal(watched.environments.get("key-broker")?.[k], v, `the key-broker's ${k}`);
      }
      const [mesh, reference] = await Promise.all([digestCapture(meshFile), digestCapture(oneFile)]);
      assert.ok(reference.keyLogLines.length > 0);
      assert.equal(mesh.packets, reference.packets);
      assert.deepEqual(mesh.udpDigests, reference.udpDigests);
      assert.deepEqual(mesh.keyLogLines, reference.keyLogLines);
      assert.deepEqual(byEndpoints(followStreams(meshFile)), byEndpoints(followStreams(oneFile)));
    });
  });
}

const file = (work: string, name: string, value: unknown) => {
  const p = join(work, name);
  writeFileSync(p, JSON.stringify(value));
  return p;
};

meshOnCloud("s3 (s3rver)", async (work) => {
  const data = { accessKeyId: "MESHDATA000000000001", secretAccessKey: "mesh-data-secret-0001" };
  const keys = { accessKeyId: "MESHKEYS000000000001", secretAccessKey: "mesh-keys-secret-0001" };
  const s3 = await startS3rver({ buckets: ["mesh-data", "mesh-keys"], keyPairs: [data, keys] });
  const url = (bucket: string) =>
    `s3://${bucket}/t1?endpoint=${s3.endpoint}&path_style=true&region=us-east-1`;
  return {
    stores: {
      dataUrl: url("mesh-data"),
      dataCredentials: file(work, "data.json", {
        access_key_id: data.accessKeyId,
        secret_access_key: data.secretAccessKey,
      }),
      keysUrl: url("mesh-keys"),
      keysCredentials: file(work, "keys.json", {
        access_key_id: keys.accessKeyId,
        secret_access_key: keys.secretAccessKey,
      }),
    },
    keySecrets: [keys.accessKeyId, keys.secretAccessKey, "mesh-keys"],
    // s3rver scopes no key pair to a bucket: the data writer's pair opens both.
    chainEnv: { AWS_ACCESS_KEY_ID: data.accessKeyId, AWS_SECRET_ACCESS_KEY: data.secretAccessKey },
    cleanup: () => s3.cleanup(),
  };
});

meshOnCloud("azure (azurite)", async (work) => {
  const dataAccount = {
    name: "meshdata",
    key: Buffer.from("meshdata-account-key-0123456789").toString("base64"),
  };
  const keysAccount = {
    name: "meshkeys",
    key: Buffer.from("meshkeys-account-key-0123456789").toString("base64"),
  };
  const azurite = await startAzurite({ accounts: [dataAccount, keysAccount] });
  await createAzuriteContainer(azurite, dataAccount, "mesh-data");
  await createAzuriteContainer(azurite, keysAccount, "mesh-keys");
  const url = (account: string, container: string) =>
    `azblob://${account}/${container}/t1?endpoint=${azurite.endpoint(account)}`;
  return {
    stores: {
      dataUrl: url("meshdata", "mesh-data"),
      dataCredentials: file(work, "data.json", { access_key: dataAccount.key }),
      keysUrl: url("meshkeys", "mesh-keys"),
      keysCredentials: file(work, "keys.json", { access_key: keysAccount.key }),
    },
    keySecrets: [keysAccount.key, "meshkeys"],
    cleanup: () => azurite.cleanup(),
  };
});
