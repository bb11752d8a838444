/**
 * The small gRPC ends the stages share: the key broker as the stitch stage's `KeyLookup`, and the status
 * service every instance serves (`cloudtap status` reads it).
 */
import type { KeyService, StatusService } from "@cloudtap/proto";
import type { ServiceClient, ServiceHandlers } from "@cloudtap/rpc";
import type { CounterRegistry } from "@cloudtap/service-kit";
import { Attr, SpanKind, SpanName, withSpan } from "@cloudtap/telemetry";
import type { KeyLookup } from "./stitch-stage.js";

/**
 * The key broker's WaitForKeys as a `KeyLookup`; the call's deadline is the wait plus a margin. Each call is
 * a client span (counts only: client randoms and keys are never attributes), its context in the metadata.
 */
export function grpcKeyLookup(client: ServiceClient<typeof KeyService>): KeyLookup {
  return {
    waitForKeys(clientRandoms, timeoutMs) {
      return withSpan(
        SpanName.KeyLookup,
        {
          kind: SpanKind.CLIENT,
          attributes: { [Attr.KeysWanted]: clientRandoms.length, [Attr.KeysWaitMs]: timeoutMs },
        },
        async (span) => {
          const r = await client.waitForKeys(
            { clientRandoms: [...clientRandoms], timeoutMs },
            { timeoutMs: timeoutMs + 10_000 },
          );
          span.setAttributes({ [Attr.KeysFound]: r.entries.length, [Attr.KeysMissing]: r.missing.length });
          return r.entries.map((e) => ({ clientRandom: e.clientRandom, keyLogLines: e.keyLogLines }));
        },
      );
    },
  };
}

export interface StatusSource {
  readonly service: string;
  readonly instance: string;
  readonly counters: CounterRegistry;
  /** "running", "done", ... */
  state(): string;
  labels?(): Record<string, string>;
}

export function statusHandlers(source: StatusSource): ServiceHandlers<typeof StatusService> {
  return {
    getStatus() {
      return {
        service: source.service,
        instance: source.instance,
        pid: process.pid,
        state: source.state(),
        counters: source.counters.snapshot(),
        labels: source.labels?.() ?? {},
      };
    },
  };
}
