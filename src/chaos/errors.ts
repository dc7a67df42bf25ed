/** Typed failures of the chaos runner (src/chaos). Callers branch on the class or `code`, never the text. */
import { DonghaeError } from '../core/errors.ts'

/** A chaos option is out of range or names something unknown; the message says what is accepted. */
export class ChaosOptionError extends DonghaeError {
  static override readonly code: string = 'CHAOS_OPTION'
  override name = 'ChaosOptionError'
}

/** The devnet under test could not be set up or a node could not be (re)started. */
export class ChaosClusterError extends DonghaeError {
  static override readonly code: string = 'CHAOS_CLUSTER'
  override name = 'ChaosClusterError'
}

/** A fault could not be applied or lifted (a namespace, nft or mount command failed). */
export class ChaosFaultError extends DonghaeError {
  static override readonly code: string = 'CHAOS_FAULT'
  override name = 'ChaosFaultError'
}
