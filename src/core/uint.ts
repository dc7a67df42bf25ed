/**
 * Unsigned 64-bit integers for money, nonces and stake. dag-cbor stores integers up to 2^64-1
 * and decodes those inside the safe-integer range as JS numbers, so decoded fields go through
 * `asUint64` to come back as `bigint`. Decimal strings (API, CLI) go through `parseUint64`.
 */
import { InvalidInputError } from './errors.ts'

export const MAX_UINT64 = 2n ** 64n - 1n

/** A decoded integer field as bigint in 0..2^64-1; anything else is an InvalidInputError naming the field. */
export function asUint64(value: unknown, field: string): bigint {
  let n: bigint
  if (typeof value === 'bigint') n = value
  else if (typeof value === 'number' && Number.isSafeInteger(value)) n = BigInt(value)
  else throw new InvalidInputError(`${field} must be an unsigned integer`)
  if (n < 0n || n > MAX_UINT64) throw new InvalidInputError(`${field} must be in 0..2^64-1`)
  return n
}

/** A decimal string of base units ("1000"), no sign, no exponent, no fraction. */
export function parseUint64(text: string, field: string): bigint {
  if (typeof text !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(text)) {
    throw new InvalidInputError(`${field} must be a whole number of base units, e.g. "1000"`)
  }
  return asUint64(BigInt(text), field)
}

/** A non-negative safe integer (heights, rounds, counts). */
export function asSafeUint(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidInputError(`${field} must be a non-negative integer`)
  }
  return value
}

/** `amount × bps / 10 000`, rounded down: a share in basis points. */
export function shareOf(amount: bigint, bps: number): bigint {
  return (amount * BigInt(bps)) / 10_000n
}

/**
 * Cuts `bps` basis points from each entry's amount (a slash of stake that is unbonding); entries
 * left at zero are dropped. Returns what remains and the total cut.
 */
export function cutEntries<T extends { amount: bigint }>(
  entries: readonly T[],
  bps: number,
): { kept: T[]; cut: bigint } {
  let cut = 0n
  const kept: T[] = []
  for (const e of entries) {
    const part = shareOf(e.amount, bps)
    cut += part
    if (e.amount - part > 0n) kept.push({ ...e, amount: e.amount - part })
  }
  return { kept, cut }
}
