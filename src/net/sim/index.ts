/**
 * net/sim: scale simulations of Donghae's network layer. `runScaleSimulation` runs real js-libp2p
 * nodes in one process over the memory transport, or in worker processes over TCP on 127.0.0.1
 * (`processes`); `runKademliaModel` is a routing model (not libp2p) for sizes the real run cannot
 * reach in a routine benchmark.
 */
export {
  runScaleSimulation,
  planScaleSimulation,
  type ScaleOptions,
  type ScaleResult,
  type ScalePlan,
  type ScalePhase,
  type LookupStats,
  type GetStats,
  type PutStats,
  type GetFailure,
  type FindPeerFailure,
} from './scale.ts'
export {
  runKademliaModel,
  type KademliaModelOptions,
  type KademliaModelResult,
  type ModelTable,
} from './kademlia-model.ts'
export { QueryTrace } from './trace.ts'
export { summarize, percentile, type Summary } from './stats.ts'
export { SimulationError, SimulationOptionsError } from './errors.ts'
export { DEFAULT_PROTOCOL_PREFIX, SIM_K, SIM_ALPHA, SIM_MAINTENANCE_MS, MAX_TIMER_MS } from './constants.ts'
