/**
 * The FL Alliance inside a running node: the `FlApi` the HTTP routes serve (routes/fl.ts) over the
 * committed chain state (src/fl/chain/) and the node's content store. The node keeps a task's
 * blobs only when the chain names them, and only as named:
 *
 *   initial model   the CID an `fl.create` names; the blob must decode to the task's shape and digest
 *   update          the CID a proposer's `fl.update` names; the header must name that task, round
 *                   and proposer and the size must be the declared one (the node cannot open it)
 *   aggregate       the CID a vote names; it must decode to the task's shape and the vote's digest
 *   ONNX export     the CID a vote names as its aggregate's ONNX export; the bytes must be what
 *                   `encodeOnnx` makes of an aggregate that a vote naming this CID names (its blob
 *                   here already: voters upload the aggregate first). Stored like any model file:
 *                   kept whatever the disk budget, and served to the market's workers over bitswap
 *                   once the finished task registers it (`model` in the task view).
 *
 * Blobs not here are fetched from peers over bitswap (the content store asks every connected
 * peer), for at most `fetchTimeoutMs`.
 */
import { silentLogger, type Logger } from '../core/logger.ts'
import { describeError } from '../core/errors.ts'
import type { StateReader } from '../chain/state-view.ts'
import type {
  FlApi,
  FlBlobStored,
  FlParticipantJson,
  FlRoundJson,
  FlTaskDetailJson,
  FlTaskJson,
} from '../api/fl-api.ts'
import { FlBlobRefusedError, FlBlobUnavailableError } from '../api/fl-api.ts'
import {
  listParticipants,
  listTasks,
  readCid,
  readOnnxName,
  readRound,
  readTask,
  readVote,
  roundUpdates,
  roundVotes,
  type ParticipantRecord,
  type RoundRecord,
  type TaskRecord,
} from '../fl/chain/state.ts'
import { MAX_FL_BLOB_BYTES, paramCount } from '../fl/chain/decode.ts'
import { decodeModel, encodeOnnx, FlBlobError, flBlobCid, readBlobHeader } from '../fl/blob.ts'
import { modelLineage } from '../inference/chain/lineage.ts'
import type { ModelFiles } from './model-files.ts'

/** Longest wait for a blob from peers. @default 20 000 ms */
export const FL_FETCH_TIMEOUT_MS = 20_000

export interface NodeFlOptions {
  /** The committed chain: its state and height. */
  chain: { state(): StateReader; height(): number }
  /** The node's content store (NodeInference's `blobs`). */
  files: Pick<ModelFiles, 'put' | 'get' | 'fetch'>
  logger?: Logger
  /** @default FL_FETCH_TIMEOUT_MS */
  fetchTimeoutMs?: number
}

function taskJson(state: StateReader, t: TaskRecord): FlTaskJson {
  const lineage = t.model?.registered === true ? modelLineage(state, t.model.cid) : undefined
  return {
    id: t.id,
    name: t.name,
    creator: t.creator,
    status: t.status,
    createdAt: t.createdAt,
    widths: t.widths,
    inputDivisor: t.inputDivisor,
    initial: t.initial,
    global: t.global,
    rule: t.rule,
    f: t.f,
    rounds: t.rounds,
    round: t.round,
    uploadBlocks: t.uploadBlocks,
    voteBlocks: t.voteBlocks,
    joinBlocks: t.joinBlocks,
    participants: t.participants,
    voters: t.voters,
    joined: t.joined,
    slashPpm: t.slashPpm,
    pool: String(t.pool),
    bond: String(t.bond),
    remaining: String(t.remaining),
    paid: String(t.paid),
    slashed: String(t.slashed),
    ...(t.price === undefined ? {} : { price: String(t.price), deposit: String(t.deposit) }),
    ...(t.onnx === undefined ? {} : { onnx: t.onnx }),
    ...(t.model === undefined
      ? {}
      : {
          model: {
            ...t.model,
            ...(lineage === undefined ? {} : { lineage }),
          },
        }),
  }
}

function participantJson(p: ParticipantRecord): FlParticipantJson {
  return {
    did: p.did,
    bond: String(p.bond),
    joinedAt: p.joinedAt,
    paid: String(p.paid),
    slashed: String(p.slashed),
    returned: String(p.returned),
    proposed: p.proposed,
    voted: p.voted,
    excluded: p.excluded,
  }
}

function roundJson(state: StateReader, r: RoundRecord): FlRoundJson {
  return {
    round: r.round,
    status: r.status,
    start: r.start,
    uploadEnd: r.uploadEnd,
    voteEnd: r.voteEnd,
    seed: r.seed,
    proposers: r.proposers,
    voters: r.voters,
    base: r.base,
    updates: roundUpdates(state, r),
    votes: roundVotes(state, r),
    ...(r.aggregate === undefined ? {} : { aggregate: r.aggregate }),
    ...(r.onnx === undefined ? {} : { onnx: r.onnx }),
    ...(r.accuracyPpm === undefined ? {} : { accuracyPpm: r.accuracyPpm }),
    ...(r.majority === undefined ? {} : { majority: r.majority }),
    ...(r.excluded === undefined ? {} : { excluded: r.excluded }),
    ...(r.pay === undefined ? {} : { pay: String(r.pay) }),
    ...(r.payouts === undefined ? {} : { payouts: r.payouts.map((p) => ({ did: p.did, amount: String(p.amount) })) }),
    ...(r.slashes === undefined
      ? {}
      : { slashes: r.slashes.map((s) => ({ did: s.did, amount: String(s.amount), reason: s.reason })) }),
  }
}

export class NodeFl implements FlApi {
  readonly #o: NodeFlOptions
  readonly #log: Logger

  constructor(options: NodeFlOptions) {
    this.#o = options
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:fl')
  }

  get #state(): StateReader {
    return this.#o.chain.state()
  }

  tasks(query: { status?: FlTaskJson['status']; limit?: number }): FlTaskJson[] {
    const state = this.#state
    return listTasks(state, query).map((t) => taskJson(state, t))
  }

  task(id: number, options: { rounds?: 'all' | 'current' } = {}): FlTaskDetailJson | undefined {
    const state = this.#state
    const height = this.#o.chain.height()
    const task = readTask(state, id)
    if (task === undefined) return undefined
    const numbers =
      options.rounds === 'current'
        ? task.round === 0
          ? []
          : [task.round]
        : Array.from({ length: task.round }, (_, i) => i + 1)
    return {
      height,
      task: taskJson(state, task),
      participants: listParticipants(state, id).map(participantJson),
      rounds: numbers.flatMap((r) => {
        const record = readRound(state, id, r)
        return record === undefined ? [] : [roundJson(state, record)]
      }),
    }
  }

  async putBlob(bytes: Uint8Array): Promise<FlBlobStored> {
    if (bytes.length > MAX_FL_BLOB_BYTES)
      throw new FlBlobRefusedError(`an FL blob is at most ${MAX_FL_BLOB_BYTES} bytes, not ${bytes.length}`, 413)
    const cid = flBlobCid(bytes)
    const state = this.#state
    const named = readCid(state, cid)
    const onnx = await this.#onnx(state, cid, bytes)
    if (onnx !== undefined && !(onnx instanceof FlBlobRefusedError)) return onnx
    if (onnx !== undefined) {
      if (named === undefined) throw onnx
      // the chain names the CID otherwise too (a vote may name any CID as its aggregate): its rules decide
      try {
        return await this.#named(state, cid, bytes, named)
      } catch (err) {
        throw err instanceof FlBlobRefusedError && onnx.statusCode === 409 ? onnx : err
      }
    }
    return this.#named(state, cid, bytes, named)
  }

  async #named(
    state: StateReader,
    cid: string,
    bytes: Uint8Array,
    named: ReturnType<typeof readCid>,
  ): Promise<FlBlobStored> {
    if (named === undefined)
      throw new FlBlobRefusedError(
        `no FL task names blob ${cid} on chain: submit the fl.update (or fl.vote) first and wait for its block`,
      )
    const task = readTask(state, named.task)
    if (task === undefined) throw new FlBlobRefusedError(`blob ${cid} names FL task ${named.task}, which is gone`)
    try {
      if (named.kind === 'update') {
        const header = readBlobHeader(bytes)
        if (
          header.kind !== 'update' ||
          header.task !== named.task ||
          header.round !== named.round ||
          header.proposer !== named.did ||
          bytes.length !== named.bytes
        )
          throw new FlBlobRefusedError(`blob ${cid} is not the update ${named.did} declared for round ${named.round}`)
      } else {
        const digest =
          named.kind === 'initial'
            ? task.initial.digest
            : readVote(state, named.task, named.round, named.did)?.aggregate?.digest
        if (digest === undefined) throw new FlBlobRefusedError(`no vote names blob ${cid}`)
        decodeModel(bytes, { length: paramCount(task.widths), digest })
      }
    } catch (err) {
      if (err instanceof FlBlobError)
        throw new FlBlobRefusedError(`blob ${cid} is not what the chain names: ${err.message}`, 400)
      throw err
    }
    const stored = await this.#o.files.put(bytes)
    if (stored !== cid) this.#log.warn({ cid, stored }, 'the content store named an FL blob otherwise')
    this.#log.debug({ cid, kind: named.kind, task: named.task, round: named.round }, 'FL blob stored')
    return { cid, bytes: bytes.length, kind: named.kind }
  }

  /**
   * An ONNX export a vote names: stored when it is the export of an aggregate that a vote naming
   * it names. Undefined when no vote names it as an export; the refusal (not thrown) when it is
   * not such an export: 409 while an aggregate it could be the export of is not stored here.
   */
  async #onnx(
    state: StateReader,
    cid: string,
    bytes: Uint8Array,
  ): Promise<FlBlobStored | FlBlobRefusedError | undefined> {
    const named = readOnnxName(state, cid)
    if (named === undefined) return undefined
    const task = readTask(state, named.task)
    const round = task === undefined ? undefined : readRound(state, named.task, named.round)
    if (task === undefined || round === undefined)
      throw new FlBlobRefusedError(`blob ${cid} names FL task ${named.task} round ${named.round}, which is gone`)
    const aggregates = new Map(
      roundVotes(state, round).flatMap((v) =>
        v.onnx?.cid === cid && v.aggregate !== undefined ? [[v.aggregate.cid, v.aggregate.digest] as const] : [],
      ),
    )
    let missing = false
    for (const [aggregateCid, digest] of aggregates) {
      const blob = await this.#o.files.get(aggregateCid)
      if (blob === undefined) {
        missing = true
        continue
      }
      try {
        const weights = decodeModel(blob, { length: paramCount(task.widths), digest })
        const expected = encodeOnnx({
          task: task.id,
          round: round.round,
          widths: task.widths,
          inputDivisor: task.inputDivisor,
          weights,
        })
        if (Buffer.compare(expected, bytes) !== 0) continue
      } catch (err) {
        if (err instanceof FlBlobError) continue
        throw err
      }
      const stored = await this.#o.files.put(bytes)
      if (stored !== cid) this.#log.warn({ cid, stored }, 'the content store named an FL ONNX export otherwise')
      this.#log.debug({ cid, task: task.id, round: round.round }, 'FL ONNX export stored')
      return { cid, bytes: bytes.length, kind: 'onnx' }
    }
    return missing
      ? new FlBlobRefusedError(
          `blob ${cid} is named as an ONNX export; upload the aggregate it exports first, then the export`,
          409,
        )
      : new FlBlobRefusedError(`blob ${cid} is not the ONNX export of an aggregate its votes name`, 400)
  }

  async getBlob(cid: string, signal?: AbortSignal): Promise<Uint8Array> {
    if (readCid(this.#state, cid) === undefined && readOnnxName(this.#state, cid) === undefined)
      throw new FlBlobRefusedError(`no FL task names blob ${cid} on chain`, 404)
    const local = await this.#o.files.get(cid)
    if (local !== undefined) return local
    const timeoutMs = this.#o.fetchTimeoutMs ?? FL_FETCH_TIMEOUT_MS
    let timer: NodeJS.Timeout | undefined
    let onAbort = (): void => {}
    try {
      // the fetch goes on when this request gives up: a second asker joins it
      return await Promise.race([
        this.#o.files.fetch(cid, []),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new FlBlobUnavailableError(`no peer gave FL blob ${cid} within ${timeoutMs} ms; try again`)),
            timeoutMs,
          )
          onAbort = () => reject(signal?.reason)
          signal?.addEventListener('abort', onAbort, { once: true })
        }),
      ])
    } catch (err) {
      if (err instanceof FlBlobUnavailableError || signal?.aborted === true) throw err
      this.#log.debug({ cid, err: describeError(err) }, 'FL blob fetch failed')
      throw new FlBlobUnavailableError(`FL blob ${cid} could not be fetched: ${describeError(err)}`, { cause: err })
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
  }
}
