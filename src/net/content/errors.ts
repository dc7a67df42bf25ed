/** Errors of the content store (content-store.ts): model files as UnixFS DAGs over bitswap. */
import { DonghaeError } from '../../core/errors.ts'

/**
 * A file that does not fit the store's disk budget, even after evicting every unpinned file:
 * refused before its blocks are fetched or imported. `details`: `needed`, `available`, `budget`.
 */
export class ContentBudgetError extends DonghaeError {
  static override readonly code: string = 'CONTENT_OVER_BUDGET'
  override name = 'ContentBudgetError'
}

/**
 * Blocks no peer delivered: the fetch made no progress for its stall time (no peer had the
 * blocks, every peer left, or the peers sent only blocks that do not hash to what was asked).
 * What was fetched stays on disk; fetching again resumes. `details`: `cid`, `missing`, `peers`.
 */
export class ContentUnavailableError extends DonghaeError {
  static override readonly code: string = 'CONTENT_UNAVAILABLE'
  override name = 'ContentUnavailableError'
}

/** A file that is not (wholly) in the store: `read` before `fetch`, or a block lost on disk. */
export class ContentNotFoundError extends DonghaeError {
  static override readonly code: string = 'CONTENT_NOT_FOUND'
  override name = 'ContentNotFoundError'
}

/**
 * A DAG that is not a file Donghae can store: a codec other than raw or dag-pb, a node that does
 * not decode, or a DAG larger than its root declares.
 */
export class ContentFormatError extends DonghaeError {
  static override readonly code: string = 'CONTENT_FORMAT'
  override name = 'ContentFormatError'
}
