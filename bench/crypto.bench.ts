/**
 * The machine's own ceilings, which later benchmarks are divided by:
 *  - Ed25519 sign and verify per second on one core (node:crypto / OpenSSL), and the cost of
 *    Donghae's domain-separated wrapper over the raw call;
 *  - sequential SHA-256 chain hashes per second (`h = sha256(h)`, the proof-of-history loop)
 *    with node:crypto (two APIs) and with @chainsafe/as-sha256 (WASM), against Solana's
 *    2 M hashes/s per core.
 */
import {
  createHash,
  hash as oneShotHash,
  createPrivateKey,
  createPublicKey,
  sign,
  verify,
  randomBytes,
} from 'node:crypto'
import { digest as asDigest } from '@chainsafe/as-sha256'
import { Ed25519KeyPair, verifySignature } from '../src/identity/keys.ts'
import { line, measure, type BenchLine, type MeasureOptions } from './harness.ts'

export function cryptoBenches(options: MeasureOptions): BenchLine[] {
  const out: BenchLine[] = []
  const key = Ed25519KeyPair.generate()
  const message = randomBytes(32)
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(key.exportSeed())])
  const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
  const publicKey = createPublicKey(privateKey)
  const rawSig = sign(null, message, privateKey)

  const rawSign = measure((n) => {
    for (let i = 0; i < n; i++) sign(null, message, privateKey)
  }, options)
  out.push(
    line({
      bench: 'ed25519-sign',
      impl: 'node:crypto',
      value: rawSign.perSecond,
      unit: 'ops/s',
      rounds: rawSign.rounds,
    }),
  )

  const rawVerify = measure((n) => {
    for (let i = 0; i < n; i++) verify(null, message, publicKey, rawSig)
  }, options)
  out.push(
    line({
      bench: 'ed25519-verify',
      impl: 'node:crypto',
      value: rawVerify.perSecond,
      unit: 'ops/s',
      rounds: rawVerify.rounds,
    }),
  )

  const domainSig = key.sign('bench', message)
  const wrapped = measure((n) => {
    for (let i = 0; i < n; i++) verifySignature(key.publicKey, 'bench', message, domainSig)
  }, options)
  out.push(
    line({
      bench: 'ed25519-verify',
      impl: 'donghae verifySignature (domain tag + sha256 + cached key)',
      value: wrapped.perSecond,
      unit: 'ops/s',
      baseline: { impl: 'node:crypto', value: rawVerify.perSecond },
      rounds: wrapped.rounds,
    }),
  )

  const start = randomBytes(32)
  const nodeCreateHash = measure((n) => {
    let h: Uint8Array = start
    for (let i = 0; i < n; i++) h = createHash('sha256').update(h).digest()
  }, options)
  out.push(
    line({
      bench: 'sha256-chain',
      impl: 'node:crypto createHash',
      value: nodeCreateHash.perSecond,
      unit: 'hashes/s',
      rounds: nodeCreateHash.rounds,
    }),
  )

  const nodeOneShot = measure((n) => {
    let h: Uint8Array = start
    for (let i = 0; i < n; i++) h = oneShotHash('sha256', h, 'buffer')
  }, options)
  out.push(
    line({
      bench: 'sha256-chain',
      impl: 'node:crypto hash()',
      value: nodeOneShot.perSecond,
      unit: 'hashes/s',
      baseline: { impl: 'node:crypto createHash', value: nodeCreateHash.perSecond },
      rounds: nodeOneShot.rounds,
    }),
  )

  const wasm = measure((n) => {
    let h: Uint8Array = start
    for (let i = 0; i < n; i++) h = asDigest(h)
  }, options)
  out.push(
    line({
      bench: 'sha256-chain',
      impl: '@chainsafe/as-sha256 digest',
      value: wasm.perSecond,
      unit: 'hashes/s',
      baseline: { impl: 'node:crypto createHash', value: nodeCreateHash.perSecond },
      target: { value: 2_000_000, met: wasm.perSecond >= 2_000_000, note: "Solana's default PoH rate per core" },
      rounds: wasm.rounds,
    }),
  )
  return out
}
