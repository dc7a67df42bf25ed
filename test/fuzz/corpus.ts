/** The corpus and regression inputs on disk: test/fuzz/corpus/<target>/*.bin, test/fuzz/regressions/<target>/*.bin. */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const FUZZ_DIR = fileURLToPath(new URL('.', import.meta.url))
export const CORPUS_DIR = join(FUZZ_DIR, 'corpus')
export const REGRESSIONS_DIR = join(FUZZ_DIR, 'regressions')
export const CRASHES_DIR = join(FUZZ_DIR, 'crashes')

export function fileNameOf(input: Uint8Array): string {
  return `${createHash('sha256').update(input).digest('hex').slice(0, 16)}.bin`
}

/** The inputs in `<root>/<target>/`, by file name. */
export function readInputs(root: string, target: string): Array<{ file: string; input: Uint8Array }> {
  const dir = join(root, target)
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => ({ file: join(dir, f), input: new Uint8Array(readFileSync(join(dir, f))) }))
}

/** Writes `input` under `<root>/<target>/` named by its hash; returns the path. */
export function writeInput(root: string, target: string, input: Uint8Array): string {
  const dir = join(root, target)
  mkdirSync(dir, { recursive: true })
  const file = join(dir, fileNameOf(input))
  if (!existsSync(file)) writeFileSync(file, input)
  return file
}
