/**
 * A node taking part in Arena tasks with its own key: as a trainer (bond, train, commit, and
 * publish once the submission deadline has passed) or as a validator (bond, then after the draw
 * score its assignment on the hidden sets it holds, commit, and reveal after the commitment
 * deadline). Each step after the first waits for a height, so `onHeight` (called after every
 * commit) moves the jobs on. Jobs (with their secret salts) go to `save` after every change, so
 * a restarted node can still publish and reveal; `restore` loads them.
 *
 * Components: a chain reader, a transaction submitter, the node's files (put, get, fetch from
 * peers) and a logger. No clock, no console.
 */
import { fromHex, toHex } from '../core/bytes.ts'
import { describeError, InvalidInputError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { StateReader } from '../chain/state-view.ts'
import type { Dataset } from '../inference/trainer.ts'
import { assignmentIn, readDraw, readSubmission, readTask } from './chain/module.ts'
import { decodeValidationSet, openValidationSet } from './evaluate.ts'
import { prepareSubmission, submitTxBody, trainBuiltIn, trainWithCommand } from './trainer.ts'
import { commitTxBody, prepareScores, revealTxBody, scoreAssignment, type Evaluator } from './validator.ts'
import type { RevealedScore } from './commitments.ts'
import type { TaskRecord } from './types.ts'

export interface ArenaComponents {
  did: string
  state(): StateReader
  submitTx(kind: string, body: unknown): Promise<unknown>
  files: {
    put(bytes: Uint8Array): Promise<string>
    get(cid: string): Promise<Uint8Array | undefined>
    fetch(cid: string): Promise<Uint8Array>
  }
  /** Training data of a task whose data is 'local' (the node's own; e.g. the digits demo set). */
  localData(): Promise<Dataset>
  /** A fresh folder for an external training command. */
  workDir(task: number): string
  save?(jobs: ArenaJob[]): Promise<void>
  evaluate?: Evaluator
  logger?: Logger
}

export type TrainerStage = 'committed' | 'published' | 'failed'
export type ValidatorStage = 'bonded' | 'committed' | 'revealed' | 'failed'

export interface TrainerJob {
  role: 'trainer'
  task: number
  cid: string
  size: number
  /** Hex; secret until published. */
  salt: string
  stage: TrainerStage
  error?: string
}

export interface ValidatorJob {
  role: 'validator'
  task: number
  /** The hidden sets' bytes, hex (they stay on this node). */
  setA: string
  setB: string
  stage: ValidatorStage
  scores?: RevealedScore[]
  salt?: string
  error?: string
}

export type ArenaJob = TrainerJob | ValidatorJob

export interface TrainRequest {
  task: number
  bond: bigint
  /** Built-in trainer epochs. @default 20 */
  epochs?: number
  /** @default derived from the node's DID and the task (two nodes never train alike by accident) */
  seed?: number
  /** An external trainer (docs/arena.md's file contract) instead of the built-in one. */
  command?: string
  signal?: AbortSignal
  onProgress?: (line: string) => void
}

export interface ValidateRequest {
  task: number
  bond: bigint
  setA: Uint8Array
  setB: Uint8Array
}

function seedOf(did: string, task: number): number {
  let h = 2166136261 ^ task
  for (let i = 0; i < did.length; i++) h = Math.imul(h ^ did.charCodeAt(i), 16777619)
  return h >>> 0
}

export class ArenaParticipant {
  readonly #c: ArenaComponents
  readonly #log: Logger
  readonly #jobs = new Map<string, ArenaJob>()
  #busy = false

  constructor(components: ArenaComponents) {
    this.#c = components
    this.#log = components.logger ?? silentLogger()
  }

  restore(jobs: readonly ArenaJob[]): void {
    for (const job of jobs) this.#jobs.set(`${job.role}/${job.task}`, job)
  }

  jobs(): ArenaJob[] {
    return [...this.#jobs.values()].map((j) => ({ ...j }))
  }

  #task(id: number): TaskRecord {
    const task = readTask(this.#c.state(), id)
    if (task === undefined) throw new InvalidInputError(`there is no arena task ${id}`)
    if (task.status !== 'open') throw new InvalidInputError(`arena task ${id} is settled`)
    return task
  }

  async #save(job: ArenaJob): Promise<void> {
    this.#jobs.set(`${job.role}/${job.task}`, job)
    await this.#c.save?.(this.jobs())
  }

  /** Bonds, trains and commits; the weights are published by `onHeight` after the deadline. */
  async train(request: TrainRequest): Promise<TrainerJob> {
    const task = this.#task(request.task)
    const progress = request.onProgress ?? (() => {})
    const base = task.baseModel.kind === 'model' ? await this.#bytes(task.baseModel.cid) : undefined
    progress(`training for task ${task.id} (${task.name})`)
    let weights: Uint8Array
    if (request.command !== undefined) {
      const data = task.data.kind === 'public' ? await this.#bytes(task.data.cid) : undefined
      weights = await trainWithCommand({
        command: request.command,
        dir: this.#c.workDir(task.id),
        input: {
          task: task.id,
          name: task.name,
          epochs: request.epochs ?? 20,
          seed: request.seed ?? seedOf(this.#c.did, task.id),
          base: base === undefined ? null : 'base.onnx',
          data:
            task.data.kind === 'public'
              ? { kind: 'public', cid: task.data.cid, file: data === undefined ? null : 'data.bin' }
              : { kind: 'local' },
          output: 'weights.onnx',
        },
        ...(base === undefined ? {} : { base }),
        ...(data === undefined ? {} : { dataBytes: data }),
        ...(request.signal === undefined ? {} : { signal: request.signal }),
        onOutput: progress,
      })
    } else {
      weights = await trainBuiltIn(await this.#dataset(task), {
        epochs: request.epochs ?? 20,
        seed: request.seed ?? seedOf(this.#c.did, task.id),
        ...(base === undefined ? {} : { base }),
        ...(request.signal === undefined ? {} : { signal: request.signal }),
        onEpoch: (epoch, loss) => progress(`epoch ${epoch + 1}: loss ${loss.toFixed(4)}`),
      })
    }
    const prepared = await prepareSubmission(weights, this.#c.did)
    const cid = await this.#c.files.put(weights)
    if (cid !== prepared.cid)
      throw new InvalidInputError(`the content store named the weights ${cid}, not ${prepared.cid}`)
    await this.#c.submitTx('arena.bond', { task: task.id, role: 'trainer', amount: request.bond })
    await this.#c.submitTx('arena.submit', submitTxBody(task.id, prepared))
    progress(`committed to ${cid}; publishing after height ${task.submitDeadline}`)
    const job: TrainerJob = {
      role: 'trainer',
      task: task.id,
      cid,
      size: weights.length,
      salt: toHex(prepared.salt),
      stage: 'committed',
    }
    await this.#save(job)
    return job
  }

  /** Checks the hidden sets against the task and bonds; scoring waits for the draw. */
  async validate(request: ValidateRequest): Promise<ValidatorJob> {
    const task = this.#task(request.task)
    openValidationSet(request.setA, task.validationCommitA)
    openValidationSet(request.setB, task.validationCommitB)
    await this.#c.submitTx('arena.bond', { task: task.id, role: 'validator', amount: request.bond })
    const job: ValidatorJob = {
      role: 'validator',
      task: task.id,
      setA: toHex(request.setA),
      setB: toHex(request.setB),
      stage: 'bonded',
    }
    await this.#save(job)
    return job
  }

  /** Moves every job on as far as `height` allows (call after each commit; runs one at a time). */
  async onHeight(height: number): Promise<void> {
    if (this.#busy) return
    this.#busy = true
    try {
      for (const job of this.jobs()) {
        try {
          if (job.role === 'trainer') await this.#stepTrainer(job, height)
          else await this.#stepValidator(job, height)
        } catch (err) {
          this.#log.warn({ task: job.task, role: job.role, err: describeError(err) }, 'arena job step failed')
          await this.#save({ ...job, stage: 'failed', error: describeError(err) })
        }
      }
    } finally {
      this.#busy = false
    }
  }

  async #stepTrainer(job: TrainerJob, height: number): Promise<void> {
    const task = readTask(this.#c.state(), job.task)
    if (job.stage !== 'committed' || task === undefined || height < task.submitDeadline) return
    if (height >= task.publishDeadline) throw new InvalidInputError(`the publish window of task ${task.id} closed`)
    await this.#c.submitTx('arena.publish', {
      task: task.id,
      weightsCid: job.cid,
      size: job.size,
      salt: fromHex(job.salt),
    })
    await this.#save({ ...job, stage: 'published' })
  }

  async #stepValidator(job: ValidatorJob, height: number): Promise<void> {
    const state = this.#c.state()
    const task = readTask(state, job.task)
    const draw = readDraw(state, job.task)
    if (task === undefined || draw === undefined) return
    if (job.stage === 'bonded' && height < task.scoreDeadline) {
      const assignment = assignmentIn(draw, this.#c.did)
      if (assignment.length === 0) return void (await this.#save({ ...job, stage: 'revealed', scores: [] }))
      const sets = {
        A: openValidationSet(fromHex(job.setA), task.validationCommitA),
        B: openValidationSet(fromHex(job.setB), task.validationCommitB),
      }
      const scores = await scoreAssignment({
        assignment,
        sets,
        weightsOf: async (index) => {
          const cid = readSubmission(state, task.id, index)?.weightsCid
          return cid === undefined ? undefined : { cid, bytes: await this.#bytes(cid).catch(() => undefined) }
        },
        ...(this.#c.evaluate === undefined ? {} : { evaluate: this.#c.evaluate }),
      })
      const prepared = prepareScores(task.id, this.#c.did, scores)
      await this.#c.submitTx('arena.commitScores', commitTxBody(task.id, prepared))
      await this.#save({ ...job, stage: 'committed', scores: prepared.scores, salt: toHex(prepared.salt) })
      return
    }
    if (job.stage === 'committed' && height >= task.scoreDeadline && height < task.revealDeadline) {
      const prepared = { scores: job.scores ?? [], salt: fromHex(job.salt ?? ''), commitment: new Uint8Array() }
      await this.#c.submitTx('arena.revealScores', revealTxBody(task.id, prepared))
      await this.#save({ ...job, stage: 'revealed' })
    }
  }

  async #bytes(cid: string): Promise<Uint8Array> {
    return (await this.#c.files.get(cid)) ?? (await this.#c.files.fetch(cid))
  }

  async #dataset(task: TaskRecord): Promise<Dataset> {
    if (task.data.kind === 'local') return this.#c.localData()
    // public data travels in the validation sets' encoding (evaluate.ts), named by its CID
    return decodeValidationSet(await this.#bytes(task.data.cid))
  }
}
