/**
 * Domain separation for signatures. Every signed object is signed over
 * `sha256("donghae/<kind>/v1" || payload)`, so a signature made for one kind of object can never
 * verify as another. Kinds are lowercase names without `/` (dots namespace them: `chain.vote`),
 * which makes the tag prefix-free: no tag plus payload can be read as another tag plus payload.
 */
import { InvalidInputError } from './errors.ts'
import { sha256 } from './hash.ts'
import { utf8 } from './bytes.ts'

const KIND_PATTERN = /^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*$/

export function assertSigningKind(kind: string): void {
  if (typeof kind !== 'string' || kind.length > 64 || !KIND_PATTERN.test(kind)) {
    throw new InvalidInputError(
      `invalid signing kind ${JSON.stringify(kind)}: use lowercase letters, digits, '-' and '.' (at most 64)`,
    )
  }
}

/** The domain tag for a kind: `donghae/<kind>/v1`. */
export function signingTag(kind: string): string {
  assertSigningKind(kind)
  return `donghae/${kind}/v1`
}

/** Kinds are names in the code, a few dozen: their tags' bytes are kept (up to this many). */
const MAX_KEPT_TAGS = 256
const tagBytes = new Map<string, Uint8Array>()

/** The 32-byte message that is actually signed for (kind, payload). */
export function signingDigest(kind: string, payload: Uint8Array): Uint8Array {
  let tag = tagBytes.get(kind)
  if (tag === undefined) {
    tag = utf8(signingTag(kind))
    if (tagBytes.size < MAX_KEPT_TAGS) tagBytes.set(kind, tag)
  }
  return sha256(tag, payload)
}
