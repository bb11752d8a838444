/**
 * A store's errors across a thread boundary. `postMessage` clones an `Error` as a plain `Error`: its class
 * (`ObjectNotFoundError`, `PermissionDeniedError`, ...) and its fields (`code`, `category`, `key`, `store`,
 * `permission`, ...) are lost, and with them every `instanceof` and `isObjectNotFound` a caller decides by.
 * `serializeError` keeps the name, message, stack and every cloneable field; `reviveError` gives back an
 * error of the same class with the same fields (the class's constructor is not run again: its message is
 * already made). The `cause` stays behind (an SDK's error does not clone); its text is in the message.
 */
import {
  BadCredentialsError,
  BadCredentialsFileError,
  InvalidKeyError,
  MissingContainerError,
  ObjectNotFoundError,
  ObjectStoreError,
  PermissionDeniedError,
  RemoteStoreError,
  StoreTimeoutError,
  StoreUnavailableError,
  StoreUnreachableError,
  UnsupportedStoreUrlError,
} from "./errors.js";
import { StoreCannotOpenError } from "./open-check.js";
import { ReadOnlyStoreError } from "./read-only-store.js";

/** An error as it crosses to another thread. */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string | undefined;
  /** The error's own fields that structured clone can carry. */
  readonly fields: Readonly<Record<string, unknown>>;
}

const CLASSES: Readonly<Record<string, { readonly prototype: Error }>> = {
  ObjectStoreError,
  ObjectNotFoundError,
  InvalidKeyError,
  UnsupportedStoreUrlError,
  RemoteStoreError,
  BadCredentialsError,
  PermissionDeniedError,
  MissingContainerError,
  StoreUnreachableError,
  StoreTimeoutError,
  StoreUnavailableError,
  BadCredentialsFileError,
  ReadOnlyStoreError,
  StoreCannotOpenError,
  TypeError,
  RangeError,
};

function cloneable(v: unknown): boolean {
  if (v === null || typeof v !== "object") return typeof v !== "function" && typeof v !== "symbol";
  try {
    structuredClone(v);
    return true;
  } catch {
    return false;
  }
}

export function serializeError(err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: "Error", message: String(err), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err)) if (k !== "cause" && cloneable(v)) fields[k] = v;
  return { name: err.name, message: err.message, stack: err.stack, fields };
}

/** The error `serializeError` took apart, of its class when it is a store's error (else an `Error`). */
export function reviveError(s: SerializedError): Error {
  const known = Object.hasOwn(CLASSES, s.name) ? CLASSES[s.name] : undefined;
  const err = Object.create((known ?? Error).prototype) as Error;
  Object.assign(err, s.fields);
  Object.defineProperty(err, "message", { value: s.message, writable: true, configurable: true });
  if (s.stack !== undefined)
    Object.defineProperty(err, "stack", { value: s.stack, writable: true, configurable: true });
  if (!known || err.name !== s.name)
    Object.defineProperty(err, "name", { value: s.name, writable: true, configurable: true });
  return err;
}
