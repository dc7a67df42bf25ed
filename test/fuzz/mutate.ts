/**
 * Mutations over a seed corpus: byte-level (bit flips, interesting values, inserts, deletes,
 * duplicated ranges, truncation, splices with another corpus entry, dictionary tokens) and, for
 * dag-cbor targets, structure-aware ones: the input is decoded, one node of its value tree is
 * replaced, removed, grown or swapped with a node of another entry, and the tree is re-encoded
 * canonically, so the mutant passes the codec's canonical check and reaches the shape checks.
 */
import * as dagCbor from '@ipld/dag-cbor'
import type { Rng } from '../helpers/random.ts'

export type { Rng } from '../helpers/random.ts'

export interface MutateOptions {
  cbor: boolean
  dictionary: readonly string[]
  maxBytes: number
}

const INTERESTING_8 = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x20, 0x40, 0x60, 0xa0, 0xd8]
const INTERESTING_32 = [
  0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
]

function randomBytes(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = rng.int(0, 255)
  return out
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(0, items.length - 1)] as T

/** One byte-level mutation. */
function mutateBytes(input: Uint8Array, corpus: readonly Uint8Array[], rng: Rng, options: MutateOptions): Uint8Array {
  const b = input.slice()
  const at = (): number => rng.int(0, Math.max(0, b.length - 1))
  switch (rng.int(0, 10)) {
    case 0: // flip a bit
      if (b.length > 0) b[at()]! ^= 1 << rng.int(0, 7)
      return b
    case 1: // a random byte
      if (b.length > 0) b[at()] = rng.int(0, 255)
      return b
    case 2: // an interesting byte (CBOR major types and length markers among them)
      if (b.length > 0) b[at()] = pick(rng, INTERESTING_8)
      return b
    case 3: {
      // an interesting 32-bit value, big-endian (CBOR lengths, frame ids)
      if (b.length < 4) return b
      const i = rng.int(0, b.length - 4)
      new DataView(b.buffer).setUint32(i, pick(rng, INTERESTING_32), rng.next() < 0.5)
      return b
    }
    case 4: {
      // insert random bytes
      const i = rng.int(0, b.length)
      return concat(b.subarray(0, i), randomBytes(rng, rng.int(1, 16)), b.subarray(i))
    }
    case 5: {
      // delete a range
      if (b.length === 0) return b
      const i = at()
      return concat(b.subarray(0, i), b.subarray(Math.min(b.length, i + rng.int(1, 16))))
    }
    case 6: {
      // duplicate a range
      if (b.length === 0) return b
      const i = at()
      const j = Math.min(b.length, i + rng.int(1, 64))
      return concat(b.subarray(0, j), b.subarray(i, j), b.subarray(j))
    }
    case 7: // truncate
      return b.subarray(0, rng.int(0, b.length))
    case 8: {
      // splice: a head of this input and a tail of another
      const other = pick(rng, corpus)
      return concat(b.subarray(0, rng.int(0, b.length)), other.subarray(rng.int(0, other.length)))
    }
    case 9: {
      // a dictionary token (or random text) inserted or written over
      const token = new TextEncoder().encode(
        options.dictionary.length > 0 && rng.next() < 0.8 ? pick(rng, options.dictionary) : String(rng.int(-1, 1e6)),
      )
      const i = rng.int(0, b.length)
      return rng.next() < 0.5
        ? concat(b.subarray(0, i), token, b.subarray(i))
        : concat(b.subarray(0, i), token, b.subarray(Math.min(b.length, i + token.length)))
    }
    default: // copy a range over another place
      if (b.length > 1) {
        const from = at()
        const len = rng.int(1, Math.min(32, b.length - from))
        b.copyWithin(at(), from, from + len)
      }
      return b
  }
}

// ---- dag-cbor structure ----------------------------------------------------------------------

type Value = unknown

function replacement(rng: Rng, old: Value, donor: Value | undefined): Value {
  switch (rng.int(0, 17)) {
    case 0:
      return null
    case 1:
      return rng.next() < 0.5
    case 2:
      return pick(rng, [0, 1, -1, 255, 256, 65_535, 2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER, -(2 ** 53) + 1])
    case 3:
      return pick(rng, [2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, -(2n ** 63n), -(2n ** 64n)])
    case 4:
      return pick(rng, [0.5, -0.5, 1e300, -1e-300, 3.4e38, 1.5])
    case 5:
      return pick(rng, ['', 'a', 'did:key:z6Mk', 'x'.repeat(rng.int(60, 300)), '\u0000', '\u202e', 'é', '..', '/'])
    case 6:
      return randomBytes(rng, pick(rng, [0, 1, 15, 16, 31, 32, 33, 63, 64, 65, rng.int(0, 300)]))
    case 7:
      return []
    case 8:
      return {}
    case 9:
      return Array.from({ length: rng.int(1, 40) }, () => old)
    case 10:
      return { [pick(rng, ['', 'a', 'kind', 'type', '__proto__', 'constructor', 'toString'])]: old }
    case 11:
      return [old]
    case 12:
      if (typeof old === 'number' && Number.isSafeInteger(old))
        return old + pick(rng, [-1, 1, -old, 2 ** 32, Number.MAX_SAFE_INTEGER - old])
      if (typeof old === 'bigint') return old + pick(rng, [-1n, 1n, -old, 2n ** 64n - 1n - old])
      return old
    case 13:
      if (old instanceof Uint8Array)
        return rng.next() < 0.5 ? old.subarray(0, rng.int(0, old.length)) : concat(old, old)
      if (typeof old === 'string') return rng.next() < 0.5 ? old.slice(0, rng.int(0, old.length)) : old + old
      if (Array.isArray(old)) return rng.next() < 0.5 ? old.slice(0, rng.int(0, old.length)) : [...old, ...old]
      return old
    default:
      return donor === undefined ? old : donor
  }
}

/** All the places (parent, key) in a value tree. */
function places(root: Value): Array<{ parent: Record<string | number, Value>; key: string | number }> {
  const out: Array<{ parent: Record<string | number, Value>; key: string | number }> = []
  const walk = (v: Value, depth: number): void => {
    if (depth > 32 || out.length > 512) return
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        out.push({ parent: v as never, key: i })
        walk(x, depth + 1)
      })
    } else if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array) && !isCid(v)) {
      for (const k of Object.keys(v)) {
        out.push({ parent: v as never, key: k })
        walk((v as never)[k], depth + 1)
      }
    }
  }
  walk(root, 0)
  return out
}

function isCid(v: object): boolean {
  return (v as { asCID?: unknown }).asCID === v
}

function nodesOf(root: Value): Value[] {
  return [root, ...places(root).map((p) => p.parent[p.key])]
}

function tryDecode(bytes: Uint8Array): { ok: true; value: Value } | { ok: false } {
  try {
    return { ok: true, value: dagCbor.decode(bytes) }
  } catch {
    return { ok: false }
  }
}

/** One structural mutation of a dag-cbor input; undefined when the input does not decode. */
function mutateCbor(input: Uint8Array, corpus: readonly Uint8Array[], rng: Rng): Uint8Array | undefined {
  const decoded = tryDecode(input)
  if (!decoded.ok) return undefined
  const root = decoded.value
  const all = places(root)
  const donorSource = tryDecode(pick(rng, corpus))
  const donor = donorSource.ok ? pick(rng, nodesOf(donorSource.value)) : undefined
  let out: Value = root
  const count = rng.int(1, 3)
  for (let n = 0; n < count; n++) {
    if (all.length === 0 || rng.next() < 0.05) {
      out = replacement(rng, out, donor)
      continue
    }
    const place = pick(rng, all)
    const { parent, key } = place
    if (!Array.isArray(parent) && rng.next() < 0.15) {
      delete parent[key]
    } else if (!Array.isArray(parent) && rng.next() < 0.1) {
      parent[pick(rng, ['extra', 'a', String(key) + 'x', ''])] = parent[key]
    } else {
      parent[key] = replacement(rng, parent[key], donor)
    }
  }
  try {
    return dagCbor.encode(out)
  } catch {
    return undefined
  }
}

/** One to four stacked mutations of `input`, capped at `maxBytes`. */
export function mutate(input: Uint8Array, corpus: readonly Uint8Array[], rng: Rng, options: MutateOptions): Uint8Array {
  let out = input
  if (options.cbor && rng.next() < 0.5) {
    const structural = mutateCbor(out, corpus, rng)
    if (structural !== undefined)
      return structural.length > options.maxBytes ? structural.subarray(0, options.maxBytes) : structural
  }
  const rounds = rng.int(1, 4)
  for (let i = 0; i < rounds; i++) out = mutateBytes(out, corpus, rng, options)
  return out.length > options.maxBytes ? out.subarray(0, options.maxBytes) : out
}
