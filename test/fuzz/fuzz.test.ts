// Fuzzing in CI (issue 17.2): the whole corpus and every regression input replayed through every
// target's oracle, then a short seeded mutation run per target. The long run is
// `npm run fuzz -- --minutes M` (test/fuzz/run.ts, docs/fuzzing.md). A failure prints the seed
// (DONGHAE_TEST_SEED replays it) and the input, hex.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import { encode } from '../../src/core/codec.ts'
import { createRng, testSeed } from '../helpers/random.ts'
import { CORPUS_DIR, REGRESSIONS_DIR, readInputs } from './corpus.ts'
import { fuzzLoop, newState, runOne, OracleViolation, type FuzzTarget } from './harness.ts'
import { targets } from './targets/index.ts'

const seed = testSeed()
/** Inputs and a time cap per target: about 35 s in all on a loaded 2-core machine. */
const BUDGET: Record<string, { inputs: number; ms: number }> = {
  http: { inputs: 600, ms: 4_000 },
  cli: { inputs: 600, ms: 3_000 },
  p2p: { inputs: 60, ms: 5_000 },
}
const DECODER_BUDGET = { inputs: 2_000, ms: 600 }

// The CLI target writes relative paths it is given (--out x): keep them out of the checkout.
const scratch = mkdtempSync(join(tmpdir(), 'donghae-fuzz-test-'))
const cwd = process.cwd()
process.chdir(scratch)
after(async () => {
  // a target that cannot close in 10 s (a host stuck on a stream) must not hold the run open
  for (const t of targets) await Promise.race([t.close?.(), sleep(10_000, undefined, { ref: false })])
  process.chdir(cwd)
  rmSync(scratch, { recursive: true, force: true })
})

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').slice(0, 2_000)

async function replay(target: FuzzTarget, root: string): Promise<number> {
  const files = readInputs(root, target.name)
  for (const { file, input } of files) {
    try {
      await runOne(target, input)
    } catch (err) {
      if (err instanceof OracleViolation) assert.fail(`${target.name} ${file}: ${err.kind}: ${err.message}`)
      throw err
    }
  }
  return files.length
}

test('every target has a seed corpus in the repo made by the real encoders', () => {
  for (const target of targets)
    assert.ok(
      readInputs(CORPUS_DIR, target.name).length > 0,
      `test/fuzz/corpus/${target.name}/ is empty: run node test/fuzz/seed.ts`,
    )
})

for (const target of targets) {
  test(
    `fuzz ${target.name}: corpus and regressions replay, then a short seeded run — ${target.description}`,
    { timeout: 60_000 },
    async (t) => {
      await target.open?.()
      const corpus = await replay(target, CORPUS_DIR)
      const regressions = await replay(target, REGRESSIONS_DIR)
      const budget = BUDGET[target.name] ?? DECODER_BUDGET
      const rng = createRng(seed)
      const inputs = readInputs(CORPUS_DIR, target.name).map((x) => x.input)
      const stats = await fuzzLoop(target, newState(inputs), {
        until: performance.now() + budget.ms,
        maxInputs: budget.inputs,
        rng,
        maxFindings: 1,
      })
      t.diagnostic(
        `seed ${seed}: ${corpus} corpus + ${regressions} regression inputs replayed, ${stats.inputs} fuzzed, ${stats.signatures} outcomes`,
      )
      const [finding] = stats.findings
      if (finding !== undefined)
        assert.fail(
          `${target.name} (seed ${seed}): ${finding.kind}: ${finding.message}\ninput (hex): ${hex(finding.input)}`,
        )
      assert.ok(stats.inputs > 0)
    },
  )
}

/** Plain data dag-cbor can carry: what a peer can put in a canonical message. */
const cborValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n - 1n }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string(),
    fc.uint8Array({ maxLength: 80 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 12 }), tie('value'), { maxKeys: 5 }),
  ),
})).value

test('fast-check: arbitrary bytes, and arbitrary dag-cbor values, into every decoder target', async () => {
  for (const target of targets.filter((t) => t.open === undefined)) {
    const bytes =
      target.cbor === true
        ? fc.oneof(
            fc.uint8Array({ maxLength: 512 }),
            cborValue.map((v) => encode(v)),
          )
        : fc.uint8Array({ maxLength: 512 })
    await fc.assert(
      fc.asyncProperty(bytes, async (input) => {
        await runOne(target, input)
      }),
      { seed, numRuns: 150, endOnFailure: true },
    )
  }
})
