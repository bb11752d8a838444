/**
 * The key-broker's configuration (environment `KEY_BROKER_*`, or the YAML file named by `KEY_BROKER_CONFIG`).
 * KEY_BROKER_VAULT_KEY is a secret: it never appears in the logged config or in an error.
 */
import {
  type ConfigSpec,
  hexKey,
  integer,
  type LoadConfigOptions,
  loadConfig,
  parseDurationMs,
  parseHostPort,
  parseString,
} from "@cloudtap/service-kit";

export const SERVICE = "key-broker";

export const keyBrokerConfigSpec = {
  listen: {
    env: "KEY_BROKER_LISTEN",
    parse: parseHostPort,
    doc: "host:port of KeyService, StatusService and health (mutual TLS)",
  },
  keysStore: {
    env: "KEY_BROKER_KEYS_STORE",
    parse: parseString,
    doc: "key store URL (a directory path, file://, s3://, gs://, azblob://, https://...) holding <prefix>/keys/",
  },
  keysStoreCredentials: {
    env: "KEY_BROKER_KEYS_STORE_CREDENTIALS",
    parse: parseString,
    optional: true,
    doc: "credentials file of a cloud key store (AWS, GCP service-account or Azure JSON); default: the SDK's environment and default chain",
  },
  prefix: { env: "KEY_BROKER_PREFIX", parse: parseString, default: "", doc: "store prefix above keys/" },
  natsUrl: { env: "KEY_BROKER_NATS_URL", parse: parseString, doc: "NATS server URL(s), comma-separated" },
  metricsListen: {
    env: "KEY_BROKER_METRICS_LISTEN",
    parse: parseHostPort,
    optional: true,
    doc: "host:port of the Prometheus scrape endpoint (GET /metrics, plain HTTP); unset: none",
  },
  tlsDir: {
    env: "KEY_BROKER_TLS_DIR",
    parse: parseString,
    doc: "directory with the mesh CA (ca.crt) and key-broker.crt / key-broker.key",
  },
  vaultKey: {
    env: "KEY_BROKER_VAULT_KEY",
    parse: hexKey(32),
    secret: true,
    doc: "AES-256-GCM key sealing the secrets in NATS KV ctap_keys (64 hex digits)",
  },
  pollMs: {
    env: "KEY_BROKER_POLL_MS",
    parse: parseDurationMs,
    default: 5_000,
    doc: "key store listing interval (ms, or a duration like 5s)",
  },
  ttlMs: {
    env: "KEY_BROKER_TTL",
    parse: parseDurationMs,
    default: 24 * 60 * 60 * 1000,
    doc: "how long secrets are kept (the ctap_keys bucket's max age)",
  },
  latenessMs: {
    env: "KEY_BROKER_LATENESS",
    parse: parseDurationMs,
    default: 60 * 60 * 1000,
    doc: "re-list this far before the cursor for key logs that land late",
  },
  maxWaiters: {
    env: "KEY_BROKER_MAX_WAITERS",
    parse: integer({ min: 1, max: 1_000_000 }),
    default: 10_000,
    doc: "concurrent WaitForKeys calls (beyond: RESOURCE_EXHAUSTED)",
  },
  run: {
    env: "KEY_BROKER_RUN",
    parse: (raw: string) => {
      const s = parseString(raw);
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(s)) throw new Error("must be 1..64 of [A-Za-z0-9_-]");
      return s;
    },
    default: "live",
    doc: "run id of the cursor (keybroker.<run> in ctap_cursors)",
  },
  instance: {
    env: "KEY_BROKER_INSTANCE",
    parse: parseString,
    optional: true,
    doc: "instance id (default host-pid)",
  },
} as const satisfies ConfigSpec;

export function loadKeyBrokerConfig(options?: LoadConfigOptions) {
  return loadConfig(SERVICE, keyBrokerConfigSpec, options);
}
