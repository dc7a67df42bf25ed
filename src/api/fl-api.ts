/**
 * What the FL Alliance routes (routes/fl.ts) need from a node: the tasks and rounds as the chain
 * holds them, and the task blobs (models and sealed updates) in the node's content store. The
 * node implements it in src/node/fl.ts. Views are JSON-ready: amounts are decimal strings.
 *
 * Also here: `FlHttpClient`, the few calls a participant process (`donghae fl join`) makes.
 */
import { DonghaeError } from '../core/errors.ts'
import type { AggregationRule } from '../fl/aggregate.ts'
import type { ParticipantTaskView } from '../fl/service.ts'
import { ApiError } from './errors.ts'

export interface FlModelJson {
  cid: string
  digest: string
}

/** The ONNX export of a global model a vote or a round's majority names. */
export interface FlOnnxJson {
  cid: string
  bytes: number
}

/** A finished task's market entry: registered, or why not (src/fl/chain/market.ts). */
export interface FlMarketJson {
  cid: string
  name: string
  version: string
  /** The round whose aggregate it is. */
  round: number
  registered: boolean
  reason?: string
  /** The registry record's lineage (registered models). */
  lineage?: {
    source: string
    task: string
    round: number
    parent?: string
    contributors: Array<{ did: string; role: string }>
  }
}

export interface FlTaskJson {
  id: number
  name: string
  creator: string
  status: 'open' | 'running' | 'finished' | 'cancelled'
  createdAt: number
  widths: number[]
  inputDivisor: number
  initial: FlModelJson
  global: FlModelJson
  rule: AggregationRule
  f: number
  rounds: number
  /** The current round (0 before the first). */
  round: number
  uploadBlocks: number
  voteBlocks: number
  joinBlocks: number
  participants: number
  voters: number
  joined: number
  slashPpm: number
  pool: string
  bond: string
  remaining: string
  paid: string
  slashed: string
  /** Fee per call of the global model in the inference market (a task with a market entry). */
  price?: string
  /** The market's model deposit escrowed with the price. */
  deposit?: string
  /** The ONNX export of the global model its round's majority agreed on. */
  onnx?: FlOnnxJson
  /** Once a task with a price finished: the model registered in the market, or why not. */
  model?: FlMarketJson
}

export interface FlParticipantJson {
  did: string
  /** Bond still escrowed. */
  bond: string
  joinedAt: number
  paid: string
  slashed: string
  returned: string
  proposed: number
  voted: number
  excluded: number
}

export interface FlUpdateJson {
  did: string
  cid: string
  digest: string
  bytes: number
  samples: number
  height: number
}

export interface FlVoteJson {
  did: string
  approve: boolean
  aggregate?: FlModelJson
  onnx?: FlOnnxJson
  accuracyPpm: number
  excluded: string[]
  height: number
}

export interface FlRoundJson {
  round: number
  status: 'open' | 'passed' | 'failed'
  start: number
  uploadEnd: number
  voteEnd: number
  seed: string
  proposers: string[]
  voters: string[]
  base: FlModelJson
  updates: FlUpdateJson[]
  votes: FlVoteJson[]
  aggregate?: FlModelJson
  /** The ONNX export the majority named with its aggregate. */
  onnx?: FlOnnxJson
  /** The lower median of the majority's accuracies, ppm (passed rounds). */
  accuracyPpm?: number
  majority?: number
  excluded?: string[]
  pay?: string
  payouts?: Array<{ did: string; amount: string }>
  slashes?: Array<{ did: string; amount: string; reason: string }>
}

/** GET /v1/fl/tasks/{id}: the task, its participants and rounds, at the node's height. */
export interface FlTaskDetailJson {
  height: number
  task: FlTaskJson
  participants: FlParticipantJson[]
  rounds: FlRoundJson[]
}

export interface FlBlobStored {
  cid: string
  bytes: number
  kind: 'initial' | 'update' | 'aggregate' | 'onnx'
}

/** A blob the chain does not name (or unlike what it names): the node will not store or serve it. */
export class FlBlobRefusedError extends DonghaeError {
  static override readonly code: string = 'FL_BLOB_REFUSED'
  override name = 'FlBlobRefusedError'
  readonly statusCode: number
  constructor(message: string, statusCode = 403) {
    super(message)
    this.statusCode = statusCode
  }
}

/** A blob the chain names but no peer gave in time. */
export class FlBlobUnavailableError extends DonghaeError {
  static override readonly code: string = 'FL_BLOB_UNAVAILABLE'
  override name = 'FlBlobUnavailableError'
  readonly statusCode = 503
}

export interface FlApi {
  tasks(query: { status?: FlTaskJson['status']; limit?: number }): FlTaskJson[]
  /** Undefined when there is no such task. `rounds: 'current'` leaves out the settled rounds. */
  task(id: number, options?: { rounds?: 'all' | 'current' }): FlTaskDetailJson | undefined
  /**
   * Stores a blob the chain names (a task's initial model, an update of the current round with
   * its declared size, an aggregate a vote names, which must decode and match its digest, an ONNX
   * export a vote names, which must be the export of an aggregate stored here);
   * throws FlBlobRefusedError otherwise.
   */
  putBlob(bytes: Uint8Array): Promise<FlBlobStored>
  /** A blob the chain names, from this node or its peers; FlBlobRefusedError (404) when not named. */
  getBlob(cid: string, signal?: AbortSignal): Promise<Uint8Array>
}

/** The participant's view of a task (service.ts) from the detail JSON. */
export function participantView(detail: FlTaskDetailJson, did: string): ParticipantTaskView {
  const { task } = detail
  const round = detail.rounds.find((r) => r.round === task.round)
  return {
    height: detail.height,
    task: {
      id: task.id,
      status: task.status,
      round: task.round,
      rounds: task.rounds,
      rule: task.rule,
      f: task.f,
      widths: task.widths,
      inputDivisor: task.inputDivisor,
      global: task.global,
      participants: task.participants,
      joined: task.joined,
    },
    ...(round === undefined
      ? {}
      : {
          current: {
            round: round.round,
            uploadEnd: round.uploadEnd,
            voteEnd: round.voteEnd,
            proposers: round.proposers,
            voters: round.voters,
            base: round.base,
            updates: round.updates,
          },
        }),
    joined: detail.participants.some((p) => p.did === did),
  }
}

/** The FL routes over HTTP (the participant process's side). Failures are ApiErrors. */
export class FlHttpClient {
  readonly baseUrl: string
  readonly #timeoutMs: number

  constructor(baseUrl: string, options: { timeoutMs?: number } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '')
    this.#timeoutMs = options.timeoutMs ?? 40_000
  }

  async #call(path: string, init: RequestInit = {}, signal?: AbortSignal): Promise<Response> {
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout])
    let res: Response
    try {
      res = await fetch(`${this.baseUrl}${path}`, { ...init, signal: combined })
    } catch (err) {
      if (signal?.aborted === true) throw err
      const code = timeout.aborted ? 'TIMEOUT' : 'UNREACHABLE'
      throw new ApiError({ status: 0, code, message: `${this.baseUrl}: ${(err as Error).message}`, cause: err })
    }
    if (res.ok) return res
    let body: { error?: { code?: string; message?: string; reason?: string } } = {}
    try {
      body = (await res.json()) as typeof body
    } catch {
      // not our error shape
    }
    throw new ApiError({
      status: res.status,
      code: body.error?.code ?? `HTTP_${res.status}`,
      message: body.error?.message ?? `${path} answered ${res.status}`,
      reason: body.error?.reason,
    })
  }

  async tasks(signal?: AbortSignal): Promise<FlTaskJson[]> {
    return ((await (await this.#call('/v1/fl/tasks', {}, signal)).json()) as { tasks: FlTaskJson[] }).tasks
  }

  /** The task, or undefined when the node knows none with this id. */
  async task(
    id: number,
    options: { rounds?: 'all' | 'current'; signal?: AbortSignal } = {},
  ): Promise<FlTaskDetailJson | undefined> {
    try {
      const res = await this.#call(`/v1/fl/tasks/${id}?rounds=${options.rounds ?? 'all'}`, {}, options.signal)
      return (await res.json()) as FlTaskDetailJson
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return undefined
      throw err
    }
  }

  async putBlob(bytes: Uint8Array, signal?: AbortSignal): Promise<FlBlobStored> {
    const res = await this.#call(
      '/v1/fl/blobs',
      { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from(bytes) },
      signal,
    )
    return (await res.json()) as FlBlobStored
  }

  async getBlob(cid: string, signal?: AbortSignal): Promise<Uint8Array> {
    const res = await this.#call(`/v1/fl/blobs/${encodeURIComponent(cid)}`, {}, signal)
    return new Uint8Array(await res.arrayBuffer())
  }
}
