/**
 * Verifying the signatures a transaction body carries (settlement receipts: `TxHandler.signatures`)
 * ahead of execution, on the signature pool when there is one: the labels of those that hold,
 * for `TxContext.verified`. Execution verifies any other one itself, so a forged signature is
 * refused whether or not it passed through here.
 */
import type { VerifyPool } from '../identity/verify-pool.ts'
import type { BodySignature } from './host.ts'

/**
 * The labels of `signatures` that verify on `pool`; undefined when there are none, or no pool (then
 * execution verifies them inline as it goes, after its cheap checks, as it would anyway).
 */
export async function verifyBodySignatures(
  signatures: readonly BodySignature[],
  pool: VerifyPool | undefined,
): Promise<ReadonlySet<string> | undefined> {
  if (signatures.length === 0 || pool === undefined) return undefined
  const results = await pool.verifyAll(signatures.map((s) => s.item))
  return new Set(signatures.filter((_, i) => results[i] === true).map((s) => s.label))
}
