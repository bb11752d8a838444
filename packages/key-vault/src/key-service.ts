/** The KeyService handlers over a `KeyBroker` (the identity guard is the server's: stitcher only). */
import type { KeyService } from "@cloudtap/proto";
import type { ServiceHandlers } from "@cloudtap/rpc";
import type { KeyBroker } from "./key-broker.js";

export function keyServiceHandlers(broker: KeyBroker): ServiceHandlers<typeof KeyService> {
  return {
    async lookupKeys(request) {
      return { entries: await broker.lookup(request.clientRandoms) };
    },
    async waitForKeys(request, context) {
      // The call's own deadline bounds the wait too: answer a little before it, so the answer still arrives.
      const untilDeadline =
        context.deadline === undefined
          ? Number.POSITIVE_INFINITY
          : context.deadline.getTime() - Date.now() - 50;
      const asked = request.timeoutMs;
      const timeoutMs = Math.max(1, Math.min(asked > 0 ? asked : Number.POSITIVE_INFINITY, untilDeadline));
      const result = await broker.waitForKeys(
        request.clientRandoms,
        Number.isFinite(timeoutMs) ? timeoutMs : 0,
        context.signal,
      );
      return { entries: [...result.entries], missing: [...result.missing] };
    },
  };
}
