/**
 * AI-Block (seed 001): Mixture-of-Experts models kept as a parameter DAG on chain. The public
 * surface, by part (design in docs/experts.md):
 *
 *   records        types.ts          MetaBlock, parameter block header, PoL score, proposal
 *   blocks         block.ts, pow.ts  block hash, the miner's signature, the proof-of-work stamp
 *   chain module   chain/            `experts.meta | propose | attest | usage`, the ParamIndex
 *   runtime        model/            MoeEngine, LocalExperts, the PoL score, the trainer
 *   network        net/              the expert-call protocol, the DHT directory, RemoteExperts
 *   service        service.ts        what a node does: host, chat, attest, mine, train
 *   files          safetensors.ts, import.ts, demo.ts, genesis.ts
 */
export type {
  AttestBody,
  BlockRecord,
  MetaBlockBody,
  MetaRecord,
  MoeArchitecture,
  ParamBlockHeader,
  PolScore,
  ProposalRecord,
  ProposeBody,
  UsageBody,
} from './types.ts'
export { expertName, parseExpertName, payloadShapes, routerName, trunkShapes } from './types.ts'
export { blockHash, metaHash, signParamBlock, verifyPayloadSig } from './block.ts'
export { stampPow } from './pow.ts'
export { expertsModule } from './chain/module.ts'
export { MoeEngine } from './model/engine.ts'
export { LocalExperts, StaticExperts } from './model/local.ts'
export { evaluateModel } from './model/evaluate.ts'
export { train } from './model/trainer.ts'
export { RemoteExperts } from './net/coordinator.ts'
export { ExpertDirectory, libp2pRouting } from './net/directory.ts'
export { serveExperts } from './net/protocol.ts'
export { ExpertsService, type ExpertsServiceOptions, type TrainingStatus } from './service.ts'
export { importCheckpoint } from './import.ts'
export { readSafetensors, writeSafetensors } from './safetensors.ts'
export { readDemoMoe } from './demo.ts'
export { demoExpertsGenesis, DEMO_MOE_FAMILY } from './genesis.ts'
