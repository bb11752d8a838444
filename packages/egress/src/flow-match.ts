/**
 * Flow conditions of the export policy are @cloudtap/flow's (one parser for the stitcher's filter and for
 * export rules): `key=value,...` or `any`, with keys user tenant app policy device identity port src dst proto
 * variant. A frame sink's flow context is a `FlowFacts`.
 */
export type { FlowCondition } from "@cloudtap/flow";
export { cidrMatcher, FlowMatchSyntaxError, parseFlowMatch } from "@cloudtap/flow";
