// Worker thread of VerifyPool: verifies batches of Ed25519 signatures over 32-byte digests.
import { createPublicKey, verify, type KeyObject } from 'node:crypto'
import { parentPort } from 'node:worker_threads'

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const keys = new Map<string, KeyObject>()

function keyFor(raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw).toString('base64')
  let key = keys.get(id)
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
    if (keys.size > 4096) keys.delete(keys.keys().next().value ?? '')
    keys.set(id, key)
  }
  return key
}

export interface VerifyJob {
  id: number
  /** count × (32 public key || 32 digest || 64 signature) */
  packed: Uint8Array
}

parentPort?.on('message', (job: VerifyJob) => {
  const count = job.packed.length / 128
  const results = new Uint8Array(count)
  for (let i = 0; i < count; i++) {
    const base = i * 128
    try {
      const ok = verify(
        null,
        job.packed.subarray(base + 32, base + 64),
        keyFor(job.packed.subarray(base, base + 32)),
        job.packed.subarray(base + 64, base + 128),
      )
      results[i] = ok ? 1 : 0
    } catch {
      results[i] = 0
    }
  }
  parentPort?.postMessage({ id: job.id, results }, [results.buffer])
})
