/**
 * A Donghae node: `DonghaeNode` is the chain part (store, consensus, mempool, own transactions),
 * `FullNode` puts it on libp2p with the inference market and the HTTP API.
 */
export { DonghaeNode, type NodeOptions } from './chain-node.ts'
export { FullNode, type FullNodeOptions } from './full-node.ts'
export { OwnTxQueue } from './own-txs.ts'
export { NodeInference, BUILTIN_MODELS_DIR, behaviourFromEnv } from './inference.ts'
