// A batch is all-or-nothing even when the writing process is killed mid-write: a child process
// writes batches as fast as it can and is killed with SIGKILL at random moments; after each kill
// the database is reopened and every batch must be wholly present or wholly absent, every
// acknowledged batch must be present, and nothing beyond the one in flight may appear.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Store } from '../src/store/store.ts'
import { bytesCodec, utf8Codec, uint64Codec } from '../src/store/codecs.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { batchSize } from './helpers/batches.ts'

const writer = fileURLToPath(new URL('./fixtures/batch-writer.ts', import.meta.url))
const ROUNDS = 10

/** Runs the writer from `start`, kills it `delayMs` after its first acknowledged batch; returns the last acknowledged id. */
async function runAndKill(path: string, start: bigint, delayMs: number): Promise<bigint> {
  const child = spawn(process.execPath, [writer, path, start.toString()], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  let stderr = ''
  let timer: NodeJS.Timeout | undefined
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk
    timer ??= setTimeout(() => child.kill('SIGKILL'), delayMs)
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('close', (c, s) => resolve([c, s])),
  )
  clearTimeout(timer)
  assert.equal(signal, 'SIGKILL', `writer exited on its own (code ${String(code)}): ${stderr}`)
  const acked = output
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('ok '))
    .map((l) => BigInt(l.slice(3)))
  assert.ok(acked.length > 0, 'the writer acknowledged at least one batch before being killed')
  return acked[acked.length - 1] ?? start
}

test(`SIGKILL during batch writes never leaves a partial batch (${ROUNDS} kills)`, async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed} (replay with DONGHAE_TEST_SEED=${seed})`)
  const rng = createRng(seed)
  const dir = await mkdtemp(join(tmpdir(), 'donghae-sigkill-'))
  const path = join(dir, 'db')
  try {
    let next = 0n
    let total = 0
    for (let round = 0; round < ROUNDS; round++) {
      const lastAcked = await runAndKill(path, next, rng.int(0, 150))
      const store = await Store.open(path)
      try {
        const heads = new Map<bigint, bigint>()
        for await (const [i, size] of store.bucket('heads', uint64Codec, uint64Codec).entries()) heads.set(i, size)
        const counts = new Map<bigint, number>()
        for await (const [key, value] of store.bucket('items', utf8Codec, bytesCodec).entries()) {
          const i = BigInt(key.split('/')[0] ?? '-1')
          assert.ok(Buffer.from(value).toString('latin1').startsWith(`${key}|`), `value under ${key} is its own`)
          counts.set(i, (counts.get(i) ?? 0) + 1)
        }
        for (const [i, count] of counts) {
          assert.equal(
            heads.get(i),
            BigInt(batchSize(i)),
            `batch ${i}: items present (${count}) but head missing or wrong`,
          )
          assert.equal(count, batchSize(i), `batch ${i} is partial: ${count} of ${batchSize(i)} items (seed ${seed})`)
        }
        for (const [i] of heads) assert.ok(counts.has(i), `batch ${i}: head present but no items (seed ${seed})`)
        const present = [...heads.keys()].sort((a, b) => (a < b ? -1 : 1))
        const highest = present[present.length - 1] ?? -1n
        assert.equal(BigInt(present.length), highest + 1n, 'batches form a gap-free sequence')
        assert.ok(highest >= lastAcked, `acknowledged batch ${lastAcked} was lost (seed ${seed})`)
        assert.ok(highest <= lastAcked + 1n, 'at most the one in-flight batch appears beyond the acknowledged ones')
        next = highest + 1n
        total = present.length
      } finally {
        await store.close()
      }
    }
    t.diagnostic(`${total} batches written across ${ROUNDS} kills`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
