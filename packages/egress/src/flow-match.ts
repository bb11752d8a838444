/**
 * Flow conditions of the export policy are @cloudtap/flow's (one parser for the stitcher's filter and for
 * export rules): `key=value,...` or `any`, with keys user tenant app policy device identity port src dst proto
 * variant. A frame sink's flow context is a `FlowFacts`.
 */
// From the "./match" entry of flow, which imports only @cloudtap/packet: the whole of flow (the flow table and
// its tap-format records) is not loaded with egress's neutral part.
export type { FlowCondition } from "@cloudtap/flow/match";
export {
  attributeWithControlCharacter,
  cidrMatcher,
  FlowMatchSyntaxError,
  parseFlowMatch,
} from "@cloudtap/flow/match";
