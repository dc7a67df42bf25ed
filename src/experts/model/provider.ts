/**
 * Where a generation's experts run. The MoE engine (engine.ts) computes the trunk and each
 * layer's router itself, then hands the rows routed to each selected expert to an
 * `ExpertProvider`: local.ts runs them in this process from an LRU cache of loaded experts; the
 * coordinator (src/experts/net/coordinator.ts) calls the peers that host them.
 */

/** The rows of one layer routed to one expert. */
export interface ExpertCall {
  layer: number
  expert: number
  /** Block hash of the expert (the ParamIndex entry the generation uses). */
  block: string
  /** Row-major [rows, dModel], after the layer's ffn_norm. */
  input: Float32Array
  rows: number
}

/** One expert's answer: its output rows, who computed them, how long it took. */
export interface ExpertAnswer {
  /** Row-major [rows, dModel]. */
  output: Float32Array
  /** 'local' or the DID of the node that answered. */
  host: string
  latencyMs: number
}

export interface ExpertProvider {
  /**
   * Runs one layer's calls (different experts, in parallel where it can). An expert that could
   * not be run in time is `null`: the engine masks it and renormalizes the gate over the rest.
   * Throws only when fewer than the provider's `kMin` answered (the generation fails).
   */
  runLayer(calls: readonly ExpertCall[], signal?: AbortSignal): Promise<Array<ExpertAnswer | null>>
}

/** The blocks a generation runs on: the MetaBlock's version and, per layer, the router and experts. */
export interface ParamSet {
  family: string
  version: number
  /** Router block hash per layer. */
  routers: string[]
  /** Expert block hash per layer per expert ('' where the slot is empty: never routed to). */
  experts: string[][]
}
