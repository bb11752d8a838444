export { FlowError, FlowErrorCode, isFlowError } from "./errors.js";
export type { FlowFilter, FlowRule } from "./flow-filter.js";
export { createFlowFilter, FlowFilterSyntaxError, flowFactsOf, parseFlowRule } from "./flow-filter.js";
export type { FlowCondition, FlowFacts } from "./flow-match.js";
export {
  attributeWithControlCharacter,
  cidrMatcher,
  FlowMatchSyntaxError,
  parseFlowMatch,
} from "./flow-match.js";
export type {
  DirectionSummary,
  FlowCompletion,
  FlowHandler,
  FlowHoles,
  FlowInfo,
  FlowStream,
  FlowTableOptions,
} from "./flow-table.js";
export {
  BufferOverflowPolicy,
  CompletionReason,
  DEFAULT_FLOW_TABLE_OPTIONS,
  FlowOverflowPolicy,
  FlowState,
  FlowTable,
  FlowTableStats,
} from "./flow-table.js";
export type { StreamOutput } from "./ordered-stream.js";
export { OrderedStream } from "./ordered-stream.js";
