/**
 * The two commitments of an Arena task, computed the same way by the chain (which checks a reveal
 * against them) and by trainers and validators (which post them).
 *
 *   submission  sha256(weights digest (32 bytes) || UTF-8 trainer DID || salt), the digest being
 *               the weights CID's sha2-256 digest (a file of at most 256 KiB: its sha256)
 *   scores      sha256(dag-cbor { task, validator, scores: [{ submission, set, score }] by
 *               submission, salt })
 *
 * Both name their author, so a copied commitment cannot be revealed by anyone else: a copier has
 * to copy a reveal, which comes after the window it needed to commit in.
 */
import { utf8 } from '../core/bytes.ts'
import { encode } from '../core/codec.ts'
import { sha256 } from '../core/hash.ts'
import type { ValidationSetName } from './scoring.ts'

/** Bytes of a salt (at least; the chain accepts 16-64). */
export const SALT_BYTES = 32

export interface RevealedScore {
  submission: number
  set: ValidationSetName
  /** 0..1 000 000. */
  score: number
}

export function submissionCommitment(digest: Uint8Array, trainer: string, salt: Uint8Array): Uint8Array {
  return sha256(digest, utf8(trainer), salt)
}

/** Scores in canonical order (by submission index). */
export function canonicalScores(scores: readonly RevealedScore[]): RevealedScore[] {
  return [...scores]
    .sort((a, b) => a.submission - b.submission)
    .map((s) => ({ submission: s.submission, set: s.set, score: s.score }))
}

export function scoresCommitment(
  task: number,
  validator: string,
  scores: readonly RevealedScore[],
  salt: Uint8Array,
): Uint8Array {
  return sha256(encode({ task, validator, scores: canonicalScores(scores), salt }))
}
