/**
 * What the Arena routes (routes/arena.ts) need from a node: the tasks as the chain holds them,
 * with each settled task's leaderboard, and the operator's own participation (train, validate,
 * its jobs). The node implements it over its state and its ArenaParticipant (src/node/arena.ts).
 */
export type ArenaPhase = 'submitting' | 'publishing' | 'scoring' | 'revealing' | 'settled'

export interface ArenaTaskView {
  id: number
  name: string
  creator: string
  status: 'open' | 'settled'
  /** Where the task stands at the node's head. */
  phase: ArenaPhase
  baseModel: { kind: 'model'; cid: string } | { kind: 'metablock'; hash: string }
  data: { kind: 'public'; cid: string } | { kind: 'local' }
  /** Hex sha256 of the hidden sets. */
  validationCommitA: string
  validationCommitB: string
  createdAt: number
  submitDeadline: number
  publishDeadline: number
  scoreDeadline: number
  revealDeadline: number
  k1: number
  k2: number
  pool: bigint
  price?: bigint
  note?: string
  trainers: number
  validators: number
  submissions: number
}

export interface ArenaSubmissionView {
  index: number
  trainer: string
  height: number
  weightsCid?: string
}

export interface ArenaLeaderboardRow {
  /** 1-based among scored submissions; 0: not ranked (duplicate, lookup, unpublished). */
  rank: number
  index: number
  trainer: string
  weightsCid: string
  status: string
  consensusPpm: number
  scorePpm: number
  sets: { A?: { low: number; high: number }; B?: { low: number; high: number } }
  payout: bigint
  slashed: bigint
  duplicateOf?: number
}

export interface ArenaValidatorRow {
  did: string
  stake: bigint
  revealed: boolean
  trustPpm: number
  distancePpm: number
  payout: bigint
  slashed: bigint
}

export interface ArenaTaskDetail extends ArenaTaskView {
  submissionList: ArenaSubmissionView[]
  draw?: {
    seed: string
    height: number
    submissions: number[]
    duplicates: Array<[number, number]>
    validators: string[]
  }
  result?: {
    height: number
    leaderboard: ArenaLeaderboardRow[]
    validators: ArenaValidatorRow[]
    trainerPool: bigint
    validatorPool: bigint
    refund: bigint
    winner?: { index: number; trainer: string; weightsCid: string; registered: boolean; reason?: string }
  }
}

export interface ArenaJobView {
  role: 'trainer' | 'validator'
  task: number
  stage: string
  cid?: string
  error?: string
}

export interface ArenaTrainRequest {
  task: number
  bond: bigint
  epochs?: number
  seed?: number
  /** An external training command run on the node's machine (docs/arena.md's file contract). */
  command?: string
}

export interface ArenaValidateRequest {
  task: number
  bond: bigint
  /** Absolute paths, on the node's disk, of the hidden sets A and B the creator gave. */
  setA: string
  setB: string
}

export interface ArenaApi {
  tasks(query: { status?: 'open' | 'settled'; limit?: number }): ArenaTaskView[]
  task(id: number): ArenaTaskDetail | undefined
  /** The node's own jobs (operator). */
  jobs(): ArenaJobView[]
  train(request: ArenaTrainRequest, onProgress?: (line: string) => void): Promise<ArenaJobView>
  validate(request: ArenaValidateRequest): Promise<ArenaJobView>
}
