/**
 * Writes every target's seeds (valid inputs made by the real encoders) to test/fuzz/corpus/<target>/.
 * Run after an encoder changes: `node test/fuzz/seed.ts [target…]` (all targets without names).
 */
import { CORPUS_DIR, writeInput } from './corpus.ts'
import { targets } from './targets/index.ts'

const only = process.argv.slice(2)
for (const target of targets.filter((t) => only.length === 0 || only.includes(t.name))) {
  const seeds = await target.seeds()
  for (const seed of seeds) writeInput(CORPUS_DIR, target.name, seed)
  await target.close?.()
  process.stdout.write(`${target.name}: ${seeds.length} seeds\n`)
}
