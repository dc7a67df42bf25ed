/**
 * The validator's side of an Arena task: score its drawn assignment on the hidden sets it holds,
 * commit to the scores, reveal them after the commitment deadline.
 *
 * A weights file that cannot be had, does not hash to its CID (raw or UnixFS), or cannot be evaluated scores 0
 * (the consensus decides; an honest validator gives what it measured). The evaluator is the
 * deterministic built-in one (evaluate.ts) unless another is injected.
 */
import { randomBytes } from 'node:crypto'
import { parseCid, verifyFileCid } from '../core/cid.ts'
import type { Dataset } from '../inference/trainer.ts'
import type { Assignment } from './assignment.ts'
import { SALT_BYTES, canonicalScores, scoresCommitment, type RevealedScore } from './commitments.ts'
import { scoreWeights } from './evaluate.ts'
import type { ValidationSetName } from './scoring.ts'

export type Evaluator = (bytes: Uint8Array, set: Dataset) => number

export interface ScoreRequest {
  assignment: readonly Assignment[]
  /** The published weights of a submission (CID and bytes), undefined when unavailable. */
  weightsOf(submission: number): Promise<{ cid: string; bytes: Uint8Array | undefined } | undefined>
  sets: Readonly<Record<ValidationSetName, Dataset>>
  evaluate?: Evaluator
  signal?: AbortSignal
}

/** Scores every assigned (submission, set) pair; returns them in canonical order. */
export async function scoreAssignment(request: ScoreRequest): Promise<RevealedScore[]> {
  const evaluate = request.evaluate ?? scoreWeights
  const out: RevealedScore[] = []
  for (const a of request.assignment) {
    request.signal?.throwIfAborted()
    const w = await request.weightsOf(a.submission)
    let score = 0
    if (w?.bytes !== undefined && (await verifyFileCid(parseCid(w.cid), w.bytes))) {
      try {
        score = evaluate(w.bytes, request.sets[a.set])
      } catch {
        score = 0 // not a model this evaluator can run: what it measured is nothing
      }
    }
    out.push({ submission: a.submission, set: a.set, score })
  }
  return canonicalScores(out)
}

export interface PreparedScores {
  scores: RevealedScore[]
  salt: Uint8Array
  commitment: Uint8Array
}

export function prepareScores(
  task: number,
  validator: string,
  scores: readonly RevealedScore[],
  salt: Uint8Array = new Uint8Array(randomBytes(SALT_BYTES)),
): PreparedScores {
  const canonical = canonicalScores(scores)
  return { scores: canonical, salt, commitment: scoresCommitment(task, validator, canonical, salt) }
}

export const commitTxBody = (task: number, p: PreparedScores) => ({ task, commitment: p.commitment })
export const revealTxBody = (task: number, p: PreparedScores) => ({ task, scores: p.scores, salt: p.salt })
