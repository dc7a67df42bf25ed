// What a node's modules load when it starts: packages that only some requests need are loaded
// at their first use, not with the node (docs/performance.md, "Memory of an idle node").
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'

/** The bare package names resolved while `entry` is imported in a fresh process. */
function packagesLoadedBy(entry: URL): Set<string> {
  const script = [
    `import { registerHooks } from 'node:module'`,
    `const seen = new Set()`,
    `registerHooks({ resolve(spec, ctx, next) { if (!/^[.\\/]|^node:|^file:/.test(spec)) seen.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]); return next(spec, ctx) } })`,
    `await import(${JSON.stringify(entry.href)})`,
    `process.stdout.write(JSON.stringify([...seen]) + "\\n")`,
  ].join('\n')
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  return new Set(JSON.parse(run.stdout.trim().split('\n').at(-1) as string) as string[])
}

test("a node's modules load neither TypeBox nor onnx-proto (the ONNX schema loads at its first use)", async () => {
  const loaded = packagesLoadedBy(new URL('../src/node/full-node.ts', import.meta.url))
  assert.ok(
    loaded.has('libp2p') && loaded.has('fastify'),
    `the probe saw the node's packages: ${[...loaded].join(' ')}`,
  )
  for (const name of ['typebox', 'onnx-proto']) assert.ok(!loaded.has(name), `${name} is loaded with the node`)
})
