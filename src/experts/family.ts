/**
 * The parts of a family version a node needs to run or score it: the MetaBlock, the trunk, the
 * routers, the tokenizer and the validation tokens, loaded from the content store (fetched from
 * peers when this node lacks them) and cached per version and router set. The ParamIndex says
 * which router and expert blocks the version uses now (`paramSetOf`).
 */
import { fromUtf8 as decodeUtf8 } from '../core/bytes.ts'
import { InvalidInputError } from '../core/errors.ts'
import type { StateReader } from '../chain/state-view.ts'
import { LmTokenizer } from '../inference/lm/model-files.ts'
import { paramIndex, readBlock, readMeta } from './chain/state.ts'
import { parseValidationTokens } from './model/evaluate.ts'
import type { ParamSet } from './model/provider.ts'
import { parseRouter, parseTrunk, type MoeTrunk, type RouterWeights } from './model/weights.ts'
import { parseExpertName, type MetaRecord } from './types.ts'

/** Model files by CID: this node's copy, else fetched from peers and verified. */
export interface ExpertFiles {
  get(cid: string): Promise<Uint8Array | undefined>
  fetch(cid: string, peers: readonly string[]): Promise<Uint8Array>
  put(bytes: Uint8Array): Promise<string>
  pin(cid: string): () => void
}

export interface LoadedFamily {
  meta: MetaRecord
  trunk: MoeTrunk
  /** Per layer; null where the ParamIndex has no router yet (a family whose blocks are all pending). */
  routers: Array<RouterWeights | null>
  tokenizer: LmTokenizer
  validation: Uint32Array
  params: ParamSet
}

/** The version's ParamIndex as the blocks a generation runs on ('' for an empty slot). */
export function paramSetOf(state: StateReader, meta: MetaRecord): ParamSet {
  const { nLayers, expertsPerLayer } = meta.arch
  const routers = new Array<string>(nLayers).fill('')
  const experts = Array.from({ length: nLayers }, () => new Array<string>(expertsPerLayer).fill(''))
  for (const { name, hash } of paramIndex(state, meta.family, meta.version)) {
    const slot = parseExpertName(name)
    if (slot === undefined || slot.layer >= nLayers) continue
    if (slot.expert === null) routers[slot.layer] = hash
    else if (slot.expert < expertsPerLayer) (experts[slot.layer] as string[])[slot.expert] = hash
  }
  return { family: meta.family, version: meta.version, routers, experts }
}

/** The routers of every layer, or a typed error naming the first layer without one. */
export function allRouters(loaded: Pick<LoadedFamily, 'meta' | 'routers'>): RouterWeights[] {
  return loaded.routers.map((r, layer) => {
    if (r === null)
      throw new InvalidInputError(
        `family ${loaded.meta.family} v${loaded.meta.version} has no accepted router for layer ${layer} yet`,
      )
    return r
  })
}

/** The payload CID of an accepted or pending block. */
export function payloadOf(state: StateReader, block: string): string {
  const record = readBlock(state, block)
  if (record === undefined) throw new InvalidInputError(`no parameter block ${block}`)
  return record.header.payloadHash
}

export class FamilyLoader {
  readonly #files: ExpertFiles
  readonly #peers: () => readonly string[]
  readonly #cache = new Map<string, Promise<LoadedFamily>>()

  constructor(files: ExpertFiles, peers: () => readonly string[]) {
    this.#files = files
    this.#peers = peers
  }

  /** A file's bytes: this node's copy, else fetched (and kept). */
  async file(cid: string): Promise<Uint8Array> {
    return (await this.#files.get(cid)) ?? (await this.#files.fetch(cid, this.#peers()))
  }

  /** The family version's parts with its current routers (the latest version by default). */
  load(state: StateReader, family: string, version?: number): Promise<LoadedFamily> {
    const meta = readMeta(state, family, version)
    if (meta === undefined)
      throw new InvalidInputError(
        version === undefined ? `no expert family ${family}` : `family ${family} has no version ${version}`,
      )
    const params = paramSetOf(state, meta)
    const key = `${meta.hash}/${params.routers.join(',')}`
    let loaded = this.#cache.get(key)
    if (loaded === undefined) {
      const routerCids = params.routers.map((hash) => (hash === '' ? '' : payloadOf(state, hash)))
      loaded = this.#read(meta, params, routerCids)
      this.#cache.set(key, loaded)
      loaded.catch(() => this.#cache.delete(key))
      if (this.#cache.size > 8) this.#cache.delete(this.#cache.keys().next().value as string)
    }
    return loaded.then((l) => ({ ...l, params }))
  }

  async #read(meta: MetaRecord, params: ParamSet, routerCids: string[]): Promise<LoadedFamily> {
    const [trunkBytes, json, config, validationBytes, ...routerBytes] = await Promise.all([
      this.file(meta.trunk),
      this.file(meta.tokenizer.json),
      this.file(meta.tokenizer.config),
      this.file(meta.validation.cid),
      ...routerCids.map((cid) => (cid === '' ? Promise.resolve(undefined) : this.file(cid))),
    ])
    const tokenizer = new LmTokenizer(
      JSON.parse(decodeUtf8(json as Uint8Array)) as never,
      JSON.parse(decodeUtf8(config as Uint8Array)) as never,
    )
    return {
      meta,
      trunk: parseTrunk(meta.arch, trunkBytes as Uint8Array),
      routers: routerBytes.map((b) => (b === undefined ? null : parseRouter(meta.arch, b))),
      tokenizer,
      validation: parseValidationTokens(validationBytes as Uint8Array, meta.arch.vocabSize),
      params,
    }
  }
}
