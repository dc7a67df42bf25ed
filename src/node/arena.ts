/**
 * The Arena inside a running node: the `ArenaApi` the HTTP routes serve, over the node's state
 * (tasks, draws, leaderboards) and an ArenaParticipant acting with the node's own key (train,
 * validate). After every commit the participant moves its jobs on (publish weights after the
 * submission deadline; score, commit and reveal after the draw); its jobs, salts included, are
 * kept in `<dataDir>/arena-jobs.json` so a restarted node still publishes and reveals.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { InvalidInputError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { StateReader } from '../chain/state-view.ts'
import { DIGITS_RECIPE, readDigitsDataset } from '../inference/demo-models.ts'
import { splitDataset } from '../inference/trainer.ts'
import { listSubmissions, listTasks, readDraw, readResult, readTask } from '../arena/chain/module.ts'
import { ArenaParticipant, type ArenaJob } from '../arena/participant.ts'
import type { TaskRecord } from '../arena/types.ts'
import type {
  ArenaApi,
  ArenaJobView,
  ArenaPhase,
  ArenaTaskDetail,
  ArenaTaskView,
  ArenaTrainRequest,
  ArenaValidateRequest,
} from '../api/arena-api.ts'

/** What NodeArena needs from the node (DonghaeNode has them). */
export interface ArenaNode {
  did: string
  app: { readonly state: StateReader; readonly head: { height: number } }
  submitOwnTx(kind: string, body: unknown): Promise<unknown>
  onCommit(listener: (block: { header: { height: number } }) => void): () => void
}

export interface NodeArenaOptions {
  node: ArenaNode
  /** The node's model files (put, get, fetch from its peers). */
  files: {
    put(bytes: Uint8Array): Promise<string>
    get(cid: string): Promise<Uint8Array | undefined>
    fetch(cid: string, peers: readonly string[]): Promise<Uint8Array>
  }
  peers: () => string[]
  dataDir: string
  logger?: Logger
}

const JOBS_FILE = 'arena-jobs.json'

function phaseOf(task: TaskRecord, height: number): ArenaPhase {
  if (task.status === 'settled') return 'settled'
  if (height < task.submitDeadline) return 'submitting'
  if (height < task.publishDeadline) return 'publishing'
  if (height < task.scoreDeadline) return 'scoring'
  return 'revealing'
}

function view(task: TaskRecord, height: number): ArenaTaskView {
  const rest: Partial<TaskRecord> = { ...task }
  delete rest.deposit // the model deposit is bookkeeping, not part of the view
  return { ...(rest as Omit<TaskRecord, 'deposit'>), phase: phaseOf(task, height) }
}

function jobView(job: ArenaJob): ArenaJobView {
  return {
    role: job.role,
    task: job.task,
    stage: job.stage,
    ...(job.role === 'trainer' ? { cid: job.cid } : {}),
    ...(job.error === undefined ? {} : { error: job.error }),
  }
}

export class NodeArena implements ArenaApi {
  readonly participant: ArenaParticipant
  readonly #o: NodeArenaOptions
  #stop: (() => void) | undefined
  #runs = 0

  constructor(options: NodeArenaOptions) {
    this.#o = options
    const { node } = options
    this.participant = new ArenaParticipant({
      did: node.did,
      state: () => node.app.state,
      submitTx: (kind, body) => node.submitOwnTx(kind, body),
      files: {
        put: (bytes) => options.files.put(bytes),
        get: (cid) => options.files.get(cid),
        fetch: (cid) => options.files.fetch(cid, options.peers()),
      },
      localData: async () => splitDataset(await readDigitsDataset(), DIGITS_RECIPE.split).train,
      workDir: (task) => join(options.dataDir, 'arena', `task-${task}-${++this.#runs}`),
      save: (jobs) => this.#save(jobs),
      logger: (options.logger ?? silentLogger()).forComponent('donghae:arena'),
    })
  }

  /** Loads saved jobs and follows commits. */
  async start(): Promise<void> {
    try {
      const text = await readFile(join(this.#o.dataDir, JOBS_FILE), 'utf8')
      this.participant.restore(JSON.parse(text) as ArenaJob[])
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    this.#stop = this.#o.node.onCommit((block) => void this.participant.onHeight(block.header.height))
  }

  stop(): void {
    this.#stop?.()
    this.#stop = undefined
  }

  async #save(jobs: ArenaJob[]): Promise<void> {
    const path = join(this.#o.dataDir, JOBS_FILE)
    await writeFile(`${path}.tmp`, `${JSON.stringify(jobs, null, 2)}\n`, { mode: 0o600 })
    await rename(`${path}.tmp`, path)
  }

  tasks(query: { status?: 'open' | 'settled'; limit?: number }): ArenaTaskView[] {
    const height = this.#o.node.app.head.height
    return listTasks(this.#o.node.app.state, query).map((t) => view(t, height))
  }

  task(id: number): ArenaTaskDetail | undefined {
    const state = this.#o.node.app.state
    const task = readTask(state, id)
    if (task === undefined) return undefined
    const draw = readDraw(state, id)
    const result = readResult(state, id)
    return {
      ...view(task, this.#o.node.app.head.height),
      submissionList: listSubmissions(state, task).map((s) => ({
        index: s.index,
        trainer: s.trainer,
        height: s.height,
        ...(s.weightsCid === undefined ? {} : { weightsCid: s.weightsCid }),
      })),
      ...(draw === undefined ? {} : { draw }),
      ...(result === undefined
        ? {}
        : {
            result: {
              height: result.height,
              leaderboard: [...result.submissions].sort(
                (a, b) => (a.rank || 1e9) - (b.rank || 1e9) || a.index - b.index,
              ),
              validators: result.validators.map(({ did, stake, revealed, trustPpm, distancePpm, payout, slashed }) => ({
                did,
                stake,
                revealed,
                trustPpm,
                distancePpm,
                payout,
                slashed,
              })),
              trainerPool: result.trainerPool,
              validatorPool: result.validatorPool,
              refund: result.refund,
              ...(result.winner === undefined ? {} : { winner: result.winner }),
            },
          }),
    }
  }

  jobs(): ArenaJobView[] {
    return this.participant.jobs().map(jobView)
  }

  async train(request: ArenaTrainRequest, onProgress?: (line: string) => void): Promise<ArenaJobView> {
    const job = await this.participant.train({ ...request, ...(onProgress === undefined ? {} : { onProgress }) })
    return jobView(job)
  }

  async validate(request: ArenaValidateRequest): Promise<ArenaJobView> {
    if (!isAbsolute(request.setA) || !isAbsolute(request.setB))
      throw new InvalidInputError('setA and setB must be absolute paths on the node')
    const [setA, setB] = await Promise.all([readFile(request.setA), readFile(request.setB)])
    return jobView(
      await this.participant.validate({
        task: request.task,
        bond: request.bond,
        setA: new Uint8Array(setA),
        setB: new Uint8Array(setB),
      }),
    )
  }
}
