/**
 * Models that other chain modules bring to the market (the arena's winners, federated learning's
 * global models) carry their lineage in their registry record: where they come from (module,
 * task, round), the model they were trained from, and who contributed. `registerModelWithLineage`
 * registers such a model with the registry's own rules (`registerModel`: name ownership, unique
 * CID and version); `modelLineage` reads it back. A record without lineage was registered by hand.
 */
import { readState, type StateOverlay, type StateReader } from '../../chain/state-view.ts'
import { registerModel } from './registry.ts'
import { modelKey, writeModel, type ModelRecord, type ModelSpec } from './state.ts'

/** The governed share of a worker's earnings on a model with lineage that goes to its contributors. */
export const LINEAGE_SHARE_PARAM = 'inference.lineageShareBps'
/** Its default: 10 % of what the worker earns (after the protocol's share), split equally. */
export const LINEAGE_SHARE_BPS = 1_000n

export interface LineageContributor {
  did: string
  /** 'trainer', 'validator', 'creator', 'client' ... as the source module names them. */
  role: string
}

export interface ModelLineage {
  /** The module that produced the model: 'arena', 'fl'. */
  source: string
  /** The source's task id. */
  task: string
  round: number
  /** CID (or MetaBlock hash) of the model it was trained from. */
  parent?: string
  contributors: LineageContributor[]
}

/** Registers `spec` for `owner` (deposit already taken) with its lineage in the record. */
export function registerModelWithLineage(
  state: StateOverlay,
  owner: string,
  spec: ModelSpec,
  height: number,
  deposit: bigint,
  lineage: ModelLineage,
): ModelRecord & { lineage: ModelLineage } {
  const record = { ...registerModel(state, owner, spec, height, deposit), lineage }
  writeModel(state, record)
  return record
}

/** The lineage in a model's registry record, if it has one. */
export function modelLineage(state: StateReader, cid: string): ModelLineage | undefined {
  const raw = readState<{ lineage?: ModelLineage }>(state, modelKey(cid))
  return raw?.lineage
}
