/**
 * A light client: it checks what a node says about the chain against commit certificates of
 * the validator set, starting from nothing but the genesis document, so a node that lies about a
 * header, a state root or the validator set is caught instead of believed.
 *
 *   trusted: the genesis document -> the validator set of epoch 0
 *   header h (epoch e):  blockId = sha256(dag-cbor(header)) = the certificate's blockId, on the
 *                        genesis chain id, precommitted by > 2/3 of the power of the set of e
 *                        (chain/bft/messages.ts verifyCommit: signatures, members, no doubles)
 *   set of epoch e + 1:  the last block of epoch e, height (e+1)·E, writes it
 *                        (staking/staking.ts): its header is checked with the set of e, then the
 *                        set's value with a sparse-Merkle proof against that header's stateRoot
 *   a state value:       its proof against the stateRoot of the certified header at the proof's
 *                        height (GET /v1/state/proof answers the height it proves against)
 *
 *   const light = new LightClient(genesis, new DonghaeClient(url))
 *   const { value } = await light.provenValue(key)        // throws LightClientError on a lie
 *
 * Node-only (the CLI's `donghae receipt verify --node`): the certificate and proof checks reuse
 * the chain's own code (verifyCommit, verifyProof, staking's set encoding), which hashes and
 * verifies through node:crypto. The browser client (client.ts) checks receipt signatures with
 * WebCrypto instead; a browser light client would need those checks ported the same way.
 */
import { equals, fromHex, toHex } from '../core/bytes.ts'
import { DonghaeError, describeError } from '../core/errors.ts'
import { untrustedText } from '../core/untrusted-text.ts'
import { blockId, type BlockHeader } from '../chain/block.ts'
import { verifyCommit } from '../chain/bft/messages.ts'
import type { CommitCertificate, ValidatorSet, Vote } from '../chain/bft/types.ts'
import type { GenesisDoc } from '../chain/genesis.ts'
import { decodeProof, verifyProof } from '../chain/state/proof.ts'
import { epochOf, genesisValidatorSet, validatorSetFromValue, validatorSetKey } from '../staking/staking.ts'
import { ApiError } from './errors.ts'
import type { LightBlockJson, ProofJson } from './schemas.ts'

export type LightClientReason =
  /** The node's answer is not the shape the API documents. */
  | 'malformed'
  /** A header of another chain, or of another height than asked. */
  | 'wrong-chain'
  /** The header does not hash to the block id its certificate is for: the header was altered. */
  | 'header-mismatch'
  /** The certificate is not > 2/3 of the trusted set's power, validly signed (non-members, forged signatures). */
  | 'bad-certificate'
  /** A validator set that is not the one in the certified state (a set change not in state). */
  | 'bad-validator-set'
  /** A state proof against a root other than the certified header's. */
  | 'wrong-root'
  /** A state proof that does not verify against the certified root. */
  | 'bad-proof'
  /** The node has no answer (no such block, no kept proof). */
  | 'unavailable'

/** What a node said does not check out against the certified chain. */
export class LightClientError extends DonghaeError {
  static override readonly code: string = 'LIGHT_CLIENT'
  override name = 'LightClientError'
  readonly reason: LightClientReason

  constructor(reason: LightClientReason, message: string, options: { cause?: unknown } = {}) {
    super(message, options)
    this.reason = reason
  }
}

/** The node calls the light client makes (DonghaeClient has them). */
export interface LightSource {
  lightBlock(height: number): Promise<LightBlockJson>
  proof(keyHex: string, options: { height?: number }): Promise<ProofJson>
}

export interface CertifiedHeader {
  header: BlockHeader
  blockId: Uint8Array
  /** Validators whose precommits certified it. */
  signers: string[]
}

// ---- strict parsing of the node's JSON ---------------------------------------------------------

function malformed(what: string): LightClientError {
  return new LightClientError('malformed', `the node's answer is malformed: ${what}`)
}

function hash32(value: unknown, field: string): Uint8Array {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) throw malformed(`${field} is not 32 bytes of hex`)
  return fromHex(value)
}

function uint(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw malformed(`${field} is not a non-negative integer`)
  return value
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) throw malformed(`${field} is not a string`)
  return value
}

function record(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw malformed(`${field} is not an object`)
  return value as Record<string, unknown>
}

export function parseHeaderJson(value: unknown): BlockHeader {
  const h = record(value, 'header')
  return {
    chainId: text(h.chainId, 'header.chainId'),
    height: uint(h.height, 'header.height'),
    round: uint(h.round, 'header.round'),
    time: uint(h.time, 'header.time'),
    proposer: text(h.proposer, 'header.proposer'),
    parentId: hash32(h.parentId, 'header.parentId'),
    txRoot: hash32(h.txRoot, 'header.txRoot'),
    stateRoot: hash32(h.stateRoot, 'header.stateRoot'),
    pohStart: hash32(h.pohStart, 'header.pohStart'),
    pohEnd: hash32(h.pohEnd, 'header.pohEnd'),
    pohTicks: uint(h.pohTicks, 'header.pohTicks'),
    lastCommitHash: hash32(h.lastCommitHash, 'header.lastCommitHash'),
  }
}

function parseVote(value: unknown, field: string): Vote {
  const v = record(value, field)
  if (v.type !== 'precommit' && v.type !== 'prevote') throw malformed(`${field}.type`)
  if (typeof v.signature !== 'string' || !/^[0-9a-f]{128}$/.test(v.signature))
    throw malformed(`${field}.signature is not 64 bytes of hex`)
  return {
    chainId: text(v.chainId, `${field}.chainId`),
    height: uint(v.height, `${field}.height`),
    round: uint(v.round, `${field}.round`),
    type: v.type,
    blockId: v.blockId === null ? null : hash32(v.blockId, `${field}.blockId`),
    validator: text(v.validator, `${field}.validator`),
    signature: fromHex(v.signature),
  }
}

export function parseCommitJson(value: unknown): CommitCertificate {
  const c = record(value, 'commit')
  if (!Array.isArray(c.precommits) || c.precommits.length > 10_000) throw malformed('commit.precommits is not a list')
  return {
    height: uint(c.height, 'commit.height'),
    round: uint(c.round, 'commit.round'),
    blockId: hash32(c.blockId, 'commit.blockId'),
    precommits: c.precommits.map((v, i) => parseVote(v, `commit.precommits[${i}]`)),
  }
}

// ---- the client ----------------------------------------------------------------------------------

export class LightClient {
  readonly genesis: GenesisDoc
  readonly #source: LightSource
  /** Trusted validator sets by epoch; epoch 0 from the genesis. */
  readonly #sets = new Map<number, ValidatorSet>()
  readonly #headers = new Map<number, CertifiedHeader>()

  constructor(genesis: GenesisDoc, source: LightSource) {
    this.genesis = genesis
    this.#source = source
    this.#sets.set(0, genesisValidatorSet(genesis))
  }

  get #epochLength(): number {
    return this.genesis.params.epochLength
  }

  /** The header at `height`, checked against a commit certificate of its epoch's validator set. */
  async header(height: number): Promise<CertifiedHeader> {
    if (!Number.isSafeInteger(height) || height < 1)
      throw new LightClientError('unavailable', `there is no certified header at height ${height} (blocks start at 1)`)
    const known = this.#headers.get(height)
    if (known !== undefined) return known
    const set = await this.validatorSet(epochOf(height, this.genesis.params))
    const json = await this.#ask(`the header at height ${height}`, () => this.#source.lightBlock(height))
    const header = parseHeaderJson(json.header)
    if (header.chainId !== this.genesis.chainId)
      throw new LightClientError(
        'wrong-chain',
        `the node sent a header of chain ${JSON.stringify(untrustedText(header.chainId, 64))}, not ${this.genesis.chainId}`,
      )
    if (header.height !== height)
      throw new LightClientError('wrong-chain', `asked for the header at height ${height}, got height ${header.height}`)
    const id = blockId(header)
    const cert = parseCommitJson(json.commit)
    if (cert.height !== height || !equals(cert.blockId, id))
      throw new LightClientError(
        'header-mismatch',
        `the header the node sent for height ${height} hashes to ${toHex(id)}, but its commit certificate is for block ${toHex(cert.blockId)} at height ${cert.height}: the header was altered`,
      )
    try {
      verifyCommit(cert, set, this.genesis.chainId)
    } catch (err) {
      throw new LightClientError(
        'bad-certificate',
        `the commit certificate of height ${height} does not hold for the validator set of epoch ${epochOf(height, this.genesis.params)}: ${untrustedText(describeError(err), 300)}`,
        { cause: err },
      )
    }
    const certified: CertifiedHeader = { header, blockId: id, signers: cert.precommits.map((v) => v.validator) }
    this.#headers.set(height, certified)
    return certified
  }

  /**
   * The validator set of `epoch`, followed from the newest trusted set one epoch edge at a time:
   * each edge's header is certified by the set before it, and the next set is proven in its state.
   */
  async validatorSet(epoch: number): Promise<ValidatorSet> {
    let trusted = epoch
    while (!this.#sets.has(trusted)) trusted--
    for (let e = trusted; e < epoch; e++) this.#sets.set(e + 1, await this.#nextSet(e))
    return this.#sets.get(epoch) as ValidatorSet
  }

  async #nextSet(epoch: number): Promise<ValidatorSet> {
    const edge = (epoch + 1) * this.#epochLength
    const next = epoch + 1
    const { header } = await this.header(edge)
    const key = validatorSetKey(next)
    const proof = await this.#ask(`the validator set of epoch ${next} at height ${edge}`, () =>
      this.#source.proof(toHex(key), { height: edge }),
    )
    if (proof.height !== edge)
      throw new LightClientError(
        'bad-validator-set',
        `asked for the validator set of epoch ${next} in the state of height ${edge}, the node proved it at height ${proof.height}`,
      )
    if (proof.value === null)
      throw new LightClientError(
        'bad-validator-set',
        `the node says the state of height ${edge} holds no validator set for epoch ${next}`,
      )
    const value = this.#hex(proof.value, 'value')
    if (!this.#verify(header.stateRoot, key, value, proof.proof))
      throw new LightClientError(
        'bad-validator-set',
        `the validator set of epoch ${next} the node sent is not in the certified state of height ${edge} (state root ${toHex(header.stateRoot)}): a validator-set change the chain never made`,
      )
    try {
      return validatorSetFromValue(value)
    } catch (err) {
      throw new LightClientError(
        'bad-validator-set',
        `the certified validator set of epoch ${next} does not decode: ${describeError(err)}`,
        { cause: err },
      )
    }
  }

  /**
   * Checks a state proof the node sent against the certified header of the height it proves
   * against; returns the proven value (undefined: proven absent) and the header.
   */
  async checkProof(
    key: Uint8Array,
    proof: ProofJson,
  ): Promise<{ value: Uint8Array | undefined; height: number; header: CertifiedHeader }> {
    const height = uint(proof.height, 'proof.height')
    const certified = await this.header(height)
    const root = toHex(certified.header.stateRoot)
    if (proof.root !== root)
      throw new LightClientError(
        'wrong-root',
        `the node proves against state root ${untrustedText(proof.root, 64)} at height ${height}, but the certified header of that height has state root ${root}: the node's state root is forged`,
      )
    const value = proof.value === null ? undefined : this.#hex(proof.value, 'value')
    if (!this.#verify(certified.header.stateRoot, key, value, proof.proof))
      throw new LightClientError(
        'bad-proof',
        `the state proof of key ${toHex(key)} does not verify against the certified state root of height ${height}`,
      )
    return { value, height, header: certified }
  }

  /** `key`'s value in the node's latest state, checked against the certified header of that height. */
  async provenValue(key: Uint8Array): Promise<{ value: Uint8Array | undefined; height: number }> {
    const proof = await this.#ask(`a proof of key ${toHex(key)}`, () => this.#source.proof(toHex(key), {}))
    const { value, height } = await this.checkProof(key, proof)
    return { value, height }
  }

  #verify(root: Uint8Array, key: Uint8Array, value: Uint8Array | undefined, proofHex: unknown): boolean {
    try {
      return verifyProof(root, key, value, decodeProof(this.#hex(proofHex, 'proof')))
    } catch (err) {
      if (err instanceof LightClientError) throw err
      return false // a proof that does not decode proves nothing
    }
  }

  #hex(value: unknown, field: string): Uint8Array {
    if (typeof value !== 'string' || !/^([0-9a-f]{2})*$/.test(value)) throw malformed(`${field} is not hex`)
    return fromHex(value)
  }

  /** A call to the node; a 404 becomes 'unavailable', other API errors pass through. */
  async #ask<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call()
    } catch (err) {
      if (err instanceof ApiError && err.status === 404)
        throw new LightClientError('unavailable', `the node has no ${what}: ${err.message}`, { cause: err })
      throw err
    }
  }
}
