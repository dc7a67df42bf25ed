/**
 * The checks a chaos run makes, continuously (every CHECK_INTERVAL_MS) and once more at the end.
 * Each violation is counted once under its invariant, keyed so that the same incident seen from
 * several nodes or several times counts once:
 *
 * - `agreement`: two nodes committed different blocks at one height (light blocks of every node,
 *   every height).
 * - `double-sign`: a validator signed two different votes for one (height, round, type). Seen
 *   three ways: two validly signed, different precommits in the certificates the nodes serve
 *   (checked here with `verifyVote`); a node's consensus reporting it (`double sign detected` in its
 *   log); a `staking.evidence` transaction in a committed block.
 * - `committed-tx`: a transfer a client saw committed at height h is not at h on a node that has
 *   reached h (after every restart it is looked up again on the restarted node, and on every node
 *   at the end).
 * - `supply`: between two samples of `bank/supply` at heights h1 < h2 (read through the state
 *   proof API), the supply grew by more than blockReward·(h2 - h1) + workerRewardPerEpoch·(epoch
 *   edges), or fell below blockReward·(h2 - h1) by more than the stake that left the validators'
 *   and workers' bonds (slashing is the only burn a transfer and inference load can cause).
 * - `receipts`: a receipt a client got is not settled on chain within the settle bound after the
 *   load stops.
 * - `liveness`: after the last fault is lifted, the chain does not commit two more heights, or a
 *   node does not catch up, within the liveness bound.
 * - `node-crash`: a node exited on its own (not killed or stopped by the runner), except a clean
 *   exit (a code, not a signal) while its disk was full; or it could not be started again. (A
 *   consensus engine that stops on an error, a failed write, is started again by the runtime from
 *   the committed head; one that never comes back is a node that does not catch up: `liveness`.)
 */
import { ApiError, DonghaeClient, type LightBlockJson } from '../api/client.ts'
import { fromHex } from '../core/bytes.ts'
import { decode } from '../core/codec.ts'
import { verifyVote } from '../chain/bft/messages.ts'
import type { Vote } from '../chain/bft/types.ts'
import { ed25519PublicKeyFromDid } from '../identity/did-key.ts'
import { CHECK_REQUEST_TIMEOUT_MS } from './constants.ts'
import type { CommittedTx, ReceivedReceipt } from './load.ts'

export type InvariantName =
  'agreement' | 'double-sign' | 'committed-tx' | 'supply' | 'receipts' | 'liveness' | 'node-crash'
export const INVARIANTS: readonly InvariantName[] = [
  'agreement',
  'double-sign',
  'committed-tx',
  'supply',
  'receipts',
  'liveness',
  'node-crash',
]

export interface Violation {
  invariant: InvariantName
  /** Wall-clock ms when it was found. */
  at: number
  detail: string
}

/** What the checker needs of a node: its API, and whether it can answer now. */
export interface CheckedNode {
  index: number
  api: string
  state: 'up' | 'paused' | 'down'
}

export interface SupplyRules {
  blockReward: bigint
  workerRewardPerEpoch: bigint
  epochLength: number
}

interface SupplySample {
  height: number
  supply: bigint
  stake: bigint
}

const SUPPLY_KEY_HEX = Buffer.from('bank/supply', 'utf8').toString('hex')

function client(api: string): DonghaeClient {
  return new DonghaeClient(api, { timeoutMs: CHECK_REQUEST_TIMEOUT_MS })
}

function voteOf(json: LightBlockJson['commit']['precommits'][number]): Vote {
  return {
    chainId: json.chainId,
    height: json.height,
    round: json.round,
    type: json.type,
    blockId: json.blockId === null ? null : fromHex(json.blockId),
    validator: json.validator,
    signature: fromHex(json.signature),
  }
}

export class InvariantChecker {
  readonly #violations: Violation[] = []
  readonly #keys = new Set<string>()
  /** height -> [block id, the node that served it first] */
  readonly #blocks = new Map<number, { id: string; node: number }>()
  /** `${validator}/${height}/${round}/${type}` -> block id (or 'nil') of its first seen vote */
  readonly #votes = new Map<string, string>()
  /** per node, the highest height whose light block was checked */
  readonly #checkedTo = new Map<number, number>()
  /** heights whose block transactions were scanned for evidence */
  readonly #scanned = new Set<number>()
  /** per node, the committed transfers already confirmed there */
  readonly #txConfirmed = new Map<number, Set<string>>()
  readonly #samples: SupplySample[] = []
  readonly #validators: readonly string[]
  readonly #rules: SupplyRules

  readonly #onViolation: ((v: Violation) => void) | undefined

  constructor(init: { validators: readonly string[]; supply: SupplyRules; onViolation?: (v: Violation) => void }) {
    this.#validators = init.validators
    this.#rules = init.supply
    this.#onViolation = init.onViolation
  }

  /** Records a violation unless `key` was already recorded; returns whether it is new. */
  report(invariant: InvariantName, key: string, detail: string): boolean {
    const k = `${invariant}:${key}`
    if (this.#keys.has(k)) return false
    this.#keys.add(k)
    const violation = { invariant, at: Date.now(), detail }
    this.#violations.push(violation)
    this.#onViolation?.(violation)
    return true
  }

  violations(): Violation[] {
    return [...this.#violations]
  }

  counts(): Record<InvariantName, number> {
    const counts = Object.fromEntries(INVARIANTS.map((i) => [i, 0])) as Record<InvariantName, number>
    for (const v of this.#violations) counts[v.invariant]++
    return counts
  }

  /** A node log line: its consensus saw a validator sign two different votes. */
  noteLogLine(node: number, line: string): void {
    if (!line.includes('double sign detected')) return
    let entry: { validator?: string; height?: number; round?: number }
    try {
      entry = JSON.parse(line) as typeof entry
    } catch {
      return
    }
    const key = `${entry.validator}/${entry.height}/${entry.round}`
    this.report(
      'double-sign',
      key,
      `node${node} saw ${entry.validator} sign two different votes at height ${entry.height} round ${entry.round}`,
    )
  }

  /** One pass over the nodes that answer: new heights, certificates, evidence, committed transfers. */
  async check(nodes: readonly CheckedNode[], committed: readonly CommittedTx[], signal?: AbortSignal): Promise<void> {
    await Promise.all(
      nodes.map(async (node) => {
        if (node.state !== 'up' || signal?.aborted === true) return
        try {
          await this.#checkNode(node, committed, signal)
        } catch (err) {
          // a node killed or partitioned mid-check: the next pass goes on from where this one got
          if (!(err instanceof ApiError) && !(err instanceof TypeError)) throw err
        }
      }),
    )
  }

  async #checkNode(node: CheckedNode, committed: readonly CommittedTx[], signal?: AbortSignal): Promise<void> {
    const c = client(node.api)
    const { height } = await c.status({ signal })
    const from = (this.#checkedTo.get(node.index) ?? 0) + 1
    for (let h = from; h <= height; h++) {
      const light = await c.lightBlock(h, { signal })
      this.#checkBlock(node.index, light)
      if (!this.#scanned.has(h)) {
        await this.#scanEvidence(c, h, signal)
        this.#scanned.add(h)
      }
      this.#checkedTo.set(node.index, h)
    }
    await this.#checkCommitted(node, c, height, committed, signal)
  }

  #checkBlock(node: number, light: LightBlockJson): void {
    const known = this.#blocks.get(light.height)
    if (known === undefined) this.#blocks.set(light.height, { id: light.blockId, node })
    else if (known.id !== light.blockId)
      this.report(
        'agreement',
        String(light.height),
        `height ${light.height}: node${known.node} committed ${known.id}, node${node} committed ${light.blockId}`,
      )
    for (const json of light.commit.precommits) this.#noteVote(node, json)
  }

  #noteVote(node: number, json: LightBlockJson['commit']['precommits'][number]): void {
    const key = `${json.validator}/${json.height}/${json.round}/${json.type}`
    const value = json.blockId ?? 'nil'
    const seen = this.#votes.get(key)
    if (seen === value) return
    let publicKey: Uint8Array
    try {
      publicKey = ed25519PublicKeyFromDid(json.validator)
    } catch {
      return
    }
    // only a validly signed vote can prove a double sign (a node could serve garbage)
    if (!verifyVote(voteOf(json), publicKey)) return
    if (seen === undefined) this.#votes.set(key, value)
    else
      this.report(
        'double-sign',
        key.split('/').slice(0, 3).join('/'),
        `${json.validator} signed precommits for ${seen} and ${value} at height ${json.height} round ${json.round} (certificate served by node${node})`,
      )
  }

  async #scanEvidence(c: DonghaeClient, height: number, signal?: AbortSignal): Promise<void> {
    const block = await c.block(height, { signal })
    for (const tx of block.txs) {
      if (tx.kind !== 'staking.evidence') continue
      const a = (tx.body as { a?: { validator?: string; height?: string | number; round?: string | number } }).a
      const key = a === undefined ? tx.hash : `${a.validator}/${a.height}/${a.round}`
      this.report('double-sign', key, `block ${height} carries double-sign evidence against ${a?.validator ?? '?'}`)
    }
  }

  async #checkCommitted(
    node: CheckedNode,
    c: DonghaeClient,
    height: number,
    committed: readonly CommittedTx[],
    signal?: AbortSignal,
  ): Promise<void> {
    const confirmed = this.#txConfirmed.get(node.index) ?? new Set<string>()
    this.#txConfirmed.set(node.index, confirmed)
    for (const tx of committed) {
      if (tx.height > height || confirmed.has(tx.hash)) continue
      let found: number | undefined
      try {
        found = (await c.tx(tx.hash, { signal })).height
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'NOT_FOUND')) throw err
      }
      if (found === tx.height) confirmed.add(tx.hash)
      else
        this.report(
          'committed-tx',
          `${node.index}/${tx.hash}`,
          `transfer ${tx.hash}, committed at ${tx.height} per ${tx.node}, is ${found === undefined ? 'missing' : `at ${found}`} on node${node.index} (height ${height})`,
        )
    }
  }

  /** A node restarted: everything it confirmed is looked up on it again. */
  forgetConfirmed(node: number): void {
    this.#txConfirmed.delete(node)
  }

  /** Samples supply and stake on `node` and checks them against the previous sample. */
  async sampleSupply(node: CheckedNode, signal?: AbortSignal): Promise<void> {
    if (node.state !== 'up') return
    const c = client(node.api)
    try {
      const before = (await c.status({ signal })).height
      const proof = await c.proof(SUPPLY_KEY_HEX, { signal })
      const stake = await this.#stake(c, signal)
      const after = (await c.status({ signal })).height
      if (before !== proof.height || after !== proof.height || proof.value === null) return
      const supply = BigInt(decode<number | bigint>(fromHex(proof.value)))
      this.#noteSample({ height: proof.height, supply, stake })
    } catch (err) {
      if (!(err instanceof ApiError) && !(err instanceof TypeError)) throw err
    }
  }

  /** Bonded and unbonding stake of the validators, plus the workers' bonds. */
  async #stake(c: DonghaeClient, signal?: AbortSignal): Promise<bigint> {
    let total = 0n
    for (const did of this.#validators) {
      const stake = (await c.account(did, { signal })).stake
      if (stake === null) continue
      total += BigInt(stake.bonded) + stake.unbonding.reduce((s, u) => s + BigInt(u.amount), 0n)
    }
    for (const w of (await c.workers({ signal })).workers) total += BigInt(w.bonded)
    return total
  }

  #noteSample(sample: SupplySample): void {
    const last = this.#samples.at(-1)
    if (last !== undefined && sample.height <= last.height) return
    this.#samples.push(sample)
    if (last === undefined) return
    const { blockReward, workerRewardPerEpoch, epochLength } = this.#rules
    const blocks = BigInt(sample.height - last.height)
    const edges = BigInt(Math.floor(sample.height / epochLength) - Math.floor(last.height / epochLength))
    const grew = sample.supply - last.supply
    const most = blockReward * blocks + workerRewardPerEpoch * edges
    const leftStake = last.stake > sample.stake ? last.stake - sample.stake : 0n
    const least = blockReward * blocks - leftStake
    const where = `heights ${last.height}\u2192${sample.height}`
    if (grew > most)
      this.report('supply', where, `${where}: supply grew by ${grew}, more than the ${most} minting allows`)
    else if (grew < least)
      this.report('supply', where, `${where}: supply changed by ${grew}, less than ${least} (rewards less slashing)`)
  }

  /** Receipts not settled on any answering node; each is reported when `final`. */
  async unsettled(
    receipts: readonly ReceivedReceipt[],
    nodes: readonly CheckedNode[],
    final: boolean,
    signal?: AbortSignal,
  ): Promise<ReceivedReceipt[]> {
    const left: ReceivedReceipt[] = []
    for (const r of receipts) {
      let settled = false
      for (const node of nodes) {
        if (node.state !== 'up') continue
        try {
          await client(node.api).settlement(r.jobId, { signal })
          settled = true
          break
        } catch (err) {
          if (!(err instanceof ApiError) && !(err instanceof TypeError)) throw err
        }
      }
      if (!settled) left.push(r)
    }
    if (final)
      for (const r of left)
        this.report(
          'receipts',
          r.jobId,
          `receipt for job ${r.jobId} (gateway ${r.node}, worker ${r.worker}) never settled`,
        )
    return left
  }
}
