/**
 * An FL Alliance participant (issue 15, part 3): follows one task round by round until it ends,
 * through a node's API (it runs no chain itself). Each round it reads its role:
 *
 *   proposer  fetch the round's global model (its blob by CID, checked against the digest on
 *             chain) -> train on the local shard (round.ts) -> seal the update to the round's voters
 *             (blob.ts) -> `fl.update` with the blob's CID, size and digest, wait for its block ->
 *             upload the blob (the node stores only blobs the chain names).
 *   voter     wait for the upload window to close -> fetch every update named on chain -> open each
 *             with its key -> aggregate, score and judge (round.ts) -> export the next global model
 *             as ONNX (blob.ts `encodeOnnx`, deterministic) -> `fl.vote` naming both -> upload the
 *             next global model's blob (plain), which the next round's proposers fetch, then its
 *             ONNX export, which the node keeps for the market's workers.
 *
 * The local shard never leaves the process: only sealed updates and votes do. What it needs from
 * the outside world comes in as `FlParticipantComponents` (the CLI builds them over HTTP; tests can
 * build them over anything), with time injected; it never reads the wall clock itself except
 * through `components.now` for the timings it reports.
 */
import { AbortError, DonghaeError, describeError } from '../core/errors.ts'
import type { Dataset, MlpWeights } from '../inference/trainer.ts'
import type { AggregationRule } from './aggregate.ts'
import type { FlBehaviourName } from './client.ts'
import {
  FlBlobError,
  decodeModel,
  encodeModel,
  encodeOnnx,
  flBlobCid,
  openUpdate,
  sealUpdate,
  type OpeningKey,
} from './blob.ts'
import { judgeRound, mlpTemplate, proposeUpdate, seedOf, type FlTraining, type VoterUpdate } from './round.ts'
import { parameterCount } from './weights.ts'

/** What the participant reads of a task (the node's GET /v1/fl/tasks/:id, amounts left out). */
export interface ParticipantTaskView {
  /** The node's chain height when it answered. */
  height: number
  task: {
    id: number
    status: 'open' | 'running' | 'finished' | 'cancelled'
    round: number
    rounds: number
    rule: AggregationRule
    f: number
    widths: number[]
    inputDivisor: number
    global: { cid: string; digest: string }
    participants: number
    joined: number
  }
  /** The current round, with the updates on chain so far. */
  current?: {
    round: number
    uploadEnd: number
    voteEnd: number
    proposers: string[]
    voters: string[]
    base: { cid: string; digest: string }
    updates: Array<{ did: string; cid: string; digest: string; bytes: number; samples: number }>
  }
  /** Whether the participant has joined (asked for its DID). */
  joined?: boolean
}

export interface SubmitResult {
  hash: string
  height: number
  ok: boolean
  reason?: string
}

export interface FlParticipantComponents {
  /** The task as the node sees it now; undefined when the node knows no such task. */
  task(id: number, signal: AbortSignal): Promise<ParticipantTaskView | undefined>
  /** Signs `fl.<kind>` with the participant's key, submits it and waits for its block. */
  submit(kind: string, body: Record<string, unknown>, signal: AbortSignal): Promise<SubmitResult>
  putBlob(bytes: Uint8Array, signal: AbortSignal): Promise<void>
  getBlob(cid: string, signal: AbortSignal): Promise<Uint8Array>
  sleep(ms: number, signal: AbortSignal): Promise<void>
  now(): number
}

export type FlRole = 'proposer' | 'voter'

/** One round as this participant lived it (printed per round by `donghae fl join`). */
export interface RoundReport {
  round: number
  role: FlRole
  /** What happened: 'uploaded', 'voted', or why not ('missed the upload window', a refusal reason...). */
  outcome: string
  /** Proposer: training loss; voter: the aggregate's and the base's accuracy on its shard (ppm), its verdict. */
  loss?: number
  accuracyPpm?: number
  baseAccuracyPpm?: number
  approve?: boolean
  excluded?: string[]
  updates?: number
  /** Where the time went, ms (fetch, train, seal, submit, upload / fetch, open, aggregate, submit, upload). */
  ms: Record<string, number>
  /** Chain heights: when the round was first seen, and the block that took the transaction. */
  heights: { seen: number; committed?: number }
}

export interface FlParticipantOptions {
  task: number
  did: string
  openingKey: OpeningKey
  shard: Dataset
  training?: Partial<FlTraining>
  behaviour?: FlBehaviourName
  attackScale?: number
  tolerancePpm?: number
  /** Between two reads of the task. @default 500 */
  pollMs?: number
  /** Longest wait for a blob. @default 30 000 */
  blobTimeoutMs?: number
  onRound?: (report: RoundReport) => void
}

export class FlParticipantError extends DonghaeError {
  static override readonly code: string = 'FL_PARTICIPANT'
  override name = 'FlParticipantError'
}

export interface ParticipantSummary {
  task: number
  status: ParticipantTaskView['task']['status']
  rounds: RoundReport[]
}

type Current = NonNullable<ParticipantTaskView['current']>

/** Follows one task until it finishes or is cancelled (see the file comment). */
export class FlParticipant {
  readonly #o: FlParticipantOptions
  readonly #c: FlParticipantComponents
  readonly #models = new Map<string, Float32Array>()
  #like: MlpWeights | undefined

  constructor(options: FlParticipantOptions, components: FlParticipantComponents) {
    this.#o = options
    this.#c = components
  }

  async run(signal: AbortSignal): Promise<ParticipantSummary> {
    const reports: RoundReport[] = []
    let handled = 0
    for (;;) {
      if (signal.aborted) throw new AbortError('the participant was stopped')
      const view = await this.#c.task(this.#o.task, signal)
      if (view === undefined) throw new FlParticipantError(`the node knows no FL task ${this.#o.task}`)
      const { task } = view
      if (task.status === 'finished' || task.status === 'cancelled')
        return { task: task.id, status: task.status, rounds: reports }
      const current = view.current
      if (task.status === 'running' && current !== undefined && current.round > handled) {
        const report = await this.#round(view, current, signal)
        handled = current.round
        if (report !== undefined) {
          reports.push(report)
          this.#o.onRound?.(report)
        }
        continue
      }
      await this.#c.sleep(this.#o.pollMs ?? 500, signal)
    }
  }

  async #round(view: ParticipantTaskView, current: Current, signal: AbortSignal): Promise<RoundReport | undefined> {
    if (current.proposers.includes(this.#o.did)) return this.#propose(view, current, signal)
    if (current.voters.includes(this.#o.did)) return this.#vote(view, current, signal)
    return undefined
  }

  #template(view: ParticipantTaskView): MlpWeights {
    this.#like ??= mlpTemplate(view.task.widths, view.task.inputDivisor)
    return this.#like
  }

  /** The blob by CID, retried until `blobTimeoutMs` (a blob may reach the node a little after its transaction). */
  async #blob(cid: string, signal: AbortSignal): Promise<Uint8Array> {
    const deadline = this.#c.now() + (this.#o.blobTimeoutMs ?? 30_000)
    for (;;) {
      try {
        return await this.#c.getBlob(cid, signal)
      } catch (err) {
        if (signal.aborted || this.#c.now() >= deadline) throw err
      }
      await this.#c.sleep(500, signal)
    }
  }

  async #model(
    view: ParticipantTaskView,
    ref: { cid: string; digest: string },
    signal: AbortSignal,
  ): Promise<Float32Array> {
    const cached = this.#models.get(ref.digest)
    if (cached !== undefined) return cached
    const length = parameterCount(this.#template(view))
    const weights = decodeModel(await this.#blob(ref.cid, signal), { length, digest: ref.digest })
    this.#models.set(ref.digest, weights)
    return weights
  }

  /** The ONNX export of the next global model; undefined when it does not fit a blob (the vote names none). */
  #onnx(view: ParticipantTaskView, round: number, weights: Float32Array): Uint8Array | undefined {
    try {
      return encodeOnnx({
        task: view.task.id,
        round,
        widths: view.task.widths,
        inputDivisor: view.task.inputDivisor,
        weights,
      })
    } catch (err) {
      if (err instanceof FlBlobError) return undefined
      throw err
    }
  }

  async #propose(view: ParticipantTaskView, current: Current, signal: AbortSignal): Promise<RoundReport> {
    const ms: Record<string, number> = {}
    const heights: RoundReport['heights'] = { seen: view.height }
    const report = (outcome: string, extra: Partial<RoundReport> = {}): RoundReport => ({
      round: current.round,
      role: 'proposer',
      outcome,
      ms,
      heights,
      ...extra,
    })
    if (view.height >= current.uploadEnd) return report('missed the upload window')
    let t = this.#c.now()
    const lap = (name: string): void => {
      const now = this.#c.now()
      ms[name] = now - t
      t = now
    }
    const base = await this.#model(view, current.base, signal)
    lap('fetch')
    const trained = await proposeUpdate({
      base,
      like: this.#template(view),
      shard: this.#o.shard,
      round: current.round,
      seed: seedOf(`${view.task.id}/${current.round}/${this.#o.did}`),
      ...(this.#o.training === undefined ? {} : { training: this.#o.training }),
      ...(this.#o.behaviour === undefined ? {} : { behaviour: this.#o.behaviour }),
      ...(this.#o.attackScale === undefined ? {} : { attackScale: this.#o.attackScale }),
      signal,
    })
    lap('train')
    const sealed = sealUpdate({
      task: view.task.id,
      round: current.round,
      proposer: this.#o.did,
      voters: current.voters,
      update: trained.update,
    })
    lap('seal')
    const result = await this.#c.submit(
      'update',
      {
        task: view.task.id,
        round: current.round,
        cid: sealed.cid,
        digest: sealed.digest,
        bytes: sealed.bytes.length,
        samples: trained.samples,
      },
      signal,
    )
    lap('submit')
    heights.committed = result.height
    if (!result.ok) return report(`fl.update refused (${result.reason ?? 'unknown'})`, { loss: trained.loss })
    await this.#c.putBlob(sealed.bytes, signal)
    lap('upload')
    return report('uploaded', { loss: trained.loss })
  }

  async #vote(first: ParticipantTaskView, current: Current, signal: AbortSignal): Promise<RoundReport> {
    const ms: Record<string, number> = {}
    const heights: RoundReport['heights'] = { seen: first.height }
    // the updates are complete once the upload window has closed
    let view = first
    let t = this.#c.now()
    while (view.height <= current.uploadEnd) {
      await this.#c.sleep(this.#o.pollMs ?? 500, signal)
      const next = await this.#c.task(this.#o.task, signal)
      if (next === undefined || next.current?.round !== current.round)
        return { round: current.round, role: 'voter', outcome: 'missed the vote window', ms, heights }
      view = next
    }
    ms.wait = this.#c.now() - t
    t = this.#c.now()
    const lap = (name: string): void => {
      const now = this.#c.now()
      ms[name] = now - t
      t = now
    }
    const round = view.current ?? current
    const like = this.#template(view)
    const length = parameterCount(like)
    const base = await this.#model(view, round.base, signal)
    const blobs = await Promise.all(
      round.updates.map(async (u) => {
        try {
          return { u, bytes: await this.#blob(u.cid, signal) }
        } catch (err) {
          if (signal.aborted) throw err
          return { u, bytes: undefined, error: describeError(err) }
        }
      }),
    )
    lap('fetch')
    const updates: VoterUpdate[] = blobs.flatMap(({ u, bytes }): VoterUpdate[] => {
      // a blob no node could give is left out; one that does not open or match is excluded
      if (bytes === undefined) return []
      try {
        const update = openUpdate(bytes, this.#o.openingKey, {
          task: view.task.id,
          round: round.round,
          proposer: u.did,
          length,
          digest: u.digest,
        })
        return [{ did: u.did, update, samples: u.samples }]
      } catch (err) {
        if (!(err instanceof FlBlobError)) throw err
        return [{ did: u.did, update: undefined, samples: u.samples }]
      }
    })
    lap('open')
    const judged = judgeRound({
      base,
      like,
      updates,
      rule: view.task.rule,
      f: view.task.f,
      validation: this.#o.shard,
      ...(this.#o.tolerancePpm === undefined ? {} : { tolerancePpm: this.#o.tolerancePpm }),
    })
    lap('aggregate')
    const model =
      judged.weights === undefined
        ? undefined
        : encodeModel({ task: view.task.id, round: round.round, weights: judged.weights })
    const onnx = judged.weights === undefined ? undefined : this.#onnx(view, round.round, judged.weights)
    const result = await this.#c.submit(
      'vote',
      {
        task: view.task.id,
        round: round.round,
        approve: judged.approve,
        ...(model === undefined ? {} : { aggregate: { cid: flBlobCid(model), digest: judged.digest } }),
        ...(model === undefined || onnx === undefined ? {} : { onnx: { cid: flBlobCid(onnx), bytes: onnx.length } }),
        accuracyPpm: judged.accuracyPpm,
        excluded: judged.excluded,
      },
      signal,
    )
    lap('submit')
    const report: RoundReport = {
      round: round.round,
      role: 'voter',
      outcome: result.ok ? 'voted' : `fl.vote refused (${result.reason ?? 'unknown'})`,
      accuracyPpm: judged.accuracyPpm,
      baseAccuracyPpm: judged.baseAccuracyPpm,
      approve: judged.approve,
      excluded: judged.excluded,
      updates: judged.used,
      ms,
      heights: { ...heights, committed: result.height },
    }
    if (result.ok && model !== undefined) {
      await this.#c.putBlob(model, signal)
      // after the aggregate: the node checks the export against it
      if (onnx !== undefined) await this.#c.putBlob(onnx, signal)
      lap('upload')
      if (judged.weights !== undefined && judged.digest !== undefined) this.#models.set(judged.digest, judged.weights)
    }
    return report
  }
}
