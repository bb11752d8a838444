/**
 * Which logged fields are credentials. A field is redacted by its name, split into words (camelCase,
 * snake_case, kebab-case): any of the words secret, password, passwd, token, credential(s), authorization,
 * cookie; or a name that is just `key` or ends in a word pair like access key, private key, api key, secret
 * key, session key, sealing key. `blobKey` or `objectKey` (store keys, not secrets) stay readable. A string
 * value holding a PEM private key is redacted whatever its field is called.
 */

export const REDACTED_TEXT = "[redacted]";

const SECRET_WORDS = new Set([
  "secret",
  "secrets",
  "password",
  "passwd",
  "pwd",
  "token",
  "credential",
  "credentials",
  "authorization",
  "cookie",
  "passphrase",
]);
const KEY_QUALIFIERS = new Set([
  "access",
  "private",
  "api",
  "secret",
  "session",
  "sealing",
  "master",
  "signing",
]);

function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w !== "");
}

export function isSecretFieldName(name: string): boolean {
  const w = words(name);
  if (w.some((x) => SECRET_WORDS.has(x))) return true;
  if (w.length === 1 && (w[0] === "key" || w[0] === "keys")) return true;
  for (let i = 1; i < w.length; i++) {
    if ((w[i] === "key" || w[i] === "keys") && KEY_QUALIFIERS.has(w[i - 1]!)) return true;
  }
  return false;
}

function isSecretText(s: string): boolean {
  return s.includes("-----BEGIN") && s.includes("PRIVATE KEY");
}

/**
 * A copy of `value` safe to log: secret fields replaced, errors as `{name, message, code?, cause?}`, bigints as
 * text, bytes as their length, depth and cycles bounded.
 */
export function redactValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === "string") return isSecretText(value) ? REDACTED_TEXT : value;
  if (typeof value === "bigint") return value.toString();
  if (value === null || typeof value !== "object") {
    return typeof value === "function" || typeof value === "symbol" ? String(value) : value;
  }
  if (seen.has(value)) return "[circular]";
  if (depth >= 8) return "[too deep]";
  seen.add(value);
  try {
    if (value instanceof Uint8Array) return `<${value.length} bytes>`;
    if (value instanceof Error) {
      const out: Record<string, unknown> = { name: value.name, message: redactValue(value.message) };
      const code = (value as { code?: unknown }).code;
      if (code !== undefined) out["code"] = redactValue(code, depth + 1, seen);
      if (value.cause !== undefined) out["cause"] = redactValue(value.cause, depth + 1, seen);
      return out;
    }
    if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1, seen));
    if (value instanceof Map) return redactValue(Object.fromEntries(value), depth, seen);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] =
        isSecretFieldName(k) && v !== undefined && v !== null
          ? REDACTED_TEXT
          : redactValue(v, depth + 1, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}
