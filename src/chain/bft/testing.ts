/** Deterministic validator keys and sets for tests and the simulator (never for a real chain). */
import { utf8 } from '../../core/bytes.ts'
import { sha256 } from '../../core/hash.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { makeValidatorSet, type ValidatorSet } from './types.ts'

export interface TestValidators {
  keys: Ed25519KeyPair[]
  dids: string[]
  set: ValidatorSet
}

/** `powers.length` validators whose keys come from a fixed label; keys[i] has powers[i]. */
export function testValidators(powers: readonly bigint[], label = 'test'): TestValidators {
  const keys = powers.map((_, i) => Ed25519KeyPair.fromSeed(sha256(utf8(`donghae-${label}-validator-${i}`))))
  const dids = keys.map((k) => didFromEd25519PublicKey(k.publicKey))
  const set = makeValidatorSet(
    keys.map((k, i) => ({ did: dids[i] as string, publicKey: k.publicKey, power: powers[i] as bigint })),
  )
  return { keys, dids, set }
}
