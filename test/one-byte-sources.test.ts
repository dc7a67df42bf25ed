// V8 keeps every loaded module's source on the heap, one byte a character when all its characters
// are Latin-1 and two bytes for all of them otherwise: one arrow in a comment doubled a file's
// cost in every node process (about 2 MB in all; docs/performance.md, "Memory of an idle node").
// Sources that run in a node write such characters as ASCII in comments and as \u escapes in
// strings.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const ROOT = new URL('..', import.meta.url).pathname

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((name) => /\.(ts|js|mjs)$/.test(name) && !name.endsWith('.test.ts'))
    .map((name) => join(dir, name))
}

test('sources that run in a node hold only Latin-1 characters (V8 stores them one byte a character)', () => {
  const files = [...sources('src'), ...sources('bin')]
  assert.ok(files.length > 200, `the walk found the sources (${files.length})`)
  const wide: string[] = []
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), 'utf8')
    const at = [...text].findIndex((ch) => (ch.codePointAt(0) as number) > 0xff)
    if (at >= 0) {
      const line = text.slice(0, at).split('\n').length
      wide.push(`${file}:${line} ${JSON.stringify([...text][at])}`)
    }
  }
  assert.deepEqual(wide, [], 'write these as ASCII in comments, or as \\u escapes in strings')
})
