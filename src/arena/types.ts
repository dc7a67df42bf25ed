/** The arena's records: what its transactions carry and what the chain keeps (chain/state.ts). */
import type { RevealedScore } from './commitments.ts'
import type { SubmissionStatus, ValidationSetName } from './scoring.ts'

export type ArenaRole = 'trainer' | 'validator'

/** What the task fine-tunes: a model registered in the inference market, or an experts MetaBlock. */
export type BaseModel = { kind: 'model'; cid: string } | { kind: 'metablock'; hash: string }

/** The training data: public by CID, or each trainer's own ('local data only'). */
export type TrainingData = { kind: 'public'; cid: string } | { kind: 'local' }

export interface CreateBody {
  /** Also the model name the winner is registered under (`price` set). */
  name: string
  baseModel: BaseModel
  data: TrainingData
  /** sha256 of each hidden validation set's bytes (validation-set.ts encodes them). */
  validationCommitA: Uint8Array
  validationCommitB: Uint8Array
  /** Last height for trainer bonds and submission commitments. */
  submitDeadline: number
  /** Last height to publish committed weights (CID and salt), and for validator bonds. */
  publishDeadline: number
  /** Last height for score commitments. */
  scoreDeadline: number
  /** Last height to reveal scores; the task is settled at the end of this block. */
  revealDeadline: number
  /** Trainers paid (top k1 by consensus score) and validators paid (top k2 by trust × stake). */
  k1: number
  k2: number
  /** Escrowed from the creator. */
  pool: bigint
  /** Fee per call of the winning model in the inference market; absent: the winner is not registered. */
  price?: bigint
  note?: string
}

export interface BondBody {
  task: number
  role: ArenaRole
  amount: bigint
}

export interface SubmitBody {
  task: number
  /** submissionCommitment(digest, trainer, salt). */
  commitment: Uint8Array
}

export interface PublishBody {
  task: number
  /** CID of the weights file as the content store names it (its digest is the one committed to). */
  weightsCid: string
  /** Bytes of the weights file. */
  size: number
  salt: Uint8Array
}

export interface CommitScoresBody {
  task: number
  commitment: Uint8Array
}

export interface RevealScoresBody {
  task: number
  scores: RevealedScore[]
  salt: Uint8Array
}

export type TaskStatus = 'open' | 'settled'

export interface TaskRecord extends Omit<CreateBody, 'validationCommitA' | 'validationCommitB'> {
  id: number
  creator: string
  createdAt: number
  /** Hex sha256 of sets A and B. */
  validationCommitA: string
  validationCommitB: string
  /** Model deposit escrowed for the winner's registration (0 without `price`). */
  deposit: bigint
  trainers: number
  validators: number
  /** Submissions committed (the next submission's index). */
  submissions: number
  status: TaskStatus
}

export interface BondRecord {
  role: ArenaRole
  amount: bigint
}

export interface SubmissionRecord {
  index: number
  trainer: string
  /** Hex. */
  commitment: string
  height: number
  /** Set when published. */
  weightsCid?: string
  digest?: string
  size?: number
}

/** The draw at the end of the publish window. */
export interface DrawRecord {
  /** Hex: the id of the publish window's last block. */
  seed: string
  height: number
  /** Published, non-duplicate submissions, by index. */
  submissions: number[]
  /** Copies: index -> the earlier index with the same digest. */
  duplicates: Array<[number, number]>
  /** Bonded validators, sorted. */
  validators: string[]
}

export interface SubmissionResult {
  index: number
  trainer: string
  weightsCid: string
  status: SubmissionStatus | 'unpublished'
  consensusPpm: number
  scorePpm: number
  sets: { A?: { low: number; high: number }; B?: { low: number; high: number } }
  rank: number
  payout: bigint
  slashed: bigint
  duplicateOf?: number
}

export interface ValidatorResult {
  did: string
  stake: bigint
  revealed: boolean
  distancePpm: number
  trustPpm: number
  payout: bigint
  slashed: bigint
}

export interface TaskResult {
  task: number
  height: number
  submissions: SubmissionResult[]
  validators: ValidatorResult[]
  trainerPool: bigint
  validatorPool: bigint
  refund: bigint
  /** The best submission's weights, and whether it entered the inference market. */
  winner?: { index: number; trainer: string; weightsCid: string; registered: boolean; reason?: string }
}

export type { RevealedScore, ValidationSetName }
