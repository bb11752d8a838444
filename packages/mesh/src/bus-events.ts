/**
 * What a service does with its NATS connection's events (`connectBus`'s `onEvent`): each one logged, and a
 * lost connection also counted (`nats_disconnects`, in `cloudtap status`) and logged as a warning. A lost
 * connection is worth seeing: nats-server drops a client it finds too slow to read what it is sent (a
 * "slow consumer", over its `max_pending`), and the messages it had sent that client come back only after
 * their ack wait.
 */
import type { BusEvent } from "@cloudtap/bus";
import type { CounterRegistry, Logger } from "@cloudtap/service-kit";

export function reportBusEvents(log: Logger, counters: CounterRegistry): (event: BusEvent) => void {
  return (event) => {
    const fields = { event: event.type, ...("server" in event ? { server: event.server } : {}) };
    if (event.type === "disconnected") {
      counters.counter("nats_disconnects").add(1);
      log.warn("nats", fields);
    } else log.info("nats", fields);
  };
}
