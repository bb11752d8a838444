export type { FormatOptions } from "./format.js";
export { formatInventory } from "./format.js";
export type { InspectStoreOptions } from "./inspect-store.js";
export { inspectBlob, inspectStore } from "./inspect-store.js";
export type {
  BlobReport,
  ConnectionReport,
  DirectionReport,
  InventoryReport,
  KeyLogReport,
  Problem,
} from "./inventory.js";
export { Inventory, ProblemKind } from "./inventory.js";
export { RangeSet } from "./range-set.js";
