/**
 * Which nodes host which experts: rendezvous (highest-random-weight) hashing over a list of
 * nodes. Expert block `b` goes to the `replicas` nodes with the largest sha256(b || did); every
 * node computes the same answer from the same list (the validator set in a devnet), adding or
 * removing a node moves only that node's share, and a killed host's experts have `replicas - 1`
 * other homes to fail over to. The directory (net/directory.ts) still decides who is reachable:
 * the assignment only says who should be.
 */
import { sha256 } from '../core/hash.ts'
import { InvalidInputError } from '../core/errors.ts'

const encoder = new TextEncoder()

function weight(block: string, did: string): bigint {
  const digest = sha256(encoder.encode(block), encoder.encode('\u0000'), encoder.encode(did))
  let out = 0n
  for (let i = 0; i < 8; i++) out = (out << 8n) | BigInt(digest[i] as number)
  return out
}

/** The `replicas` nodes of `nodes` that host `block`, most preferred first. */
export function hostsFor(block: string, nodes: readonly string[], replicas: number): string[] {
  if (!Number.isInteger(replicas) || replicas < 1)
    throw new InvalidInputError(`replicas must be \u2265 1, not ${replicas}`)
  return [...new Set(nodes)]
    .map((did) => ({ did, w: weight(block, did) }))
    .sort((a, b) => (a.w === b.w ? (a.did < b.did ? -1 : 1) : a.w > b.w ? -1 : 1))
    .slice(0, replicas)
    .map((x) => x.did)
}

/** The blocks of `blocks` that `self` hosts. */
export function hostedBy(
  self: string,
  blocks: readonly string[],
  nodes: readonly string[],
  replicas: number,
): string[] {
  return blocks.filter((b) => hostsFor(b, nodes, replicas).includes(self))
}
