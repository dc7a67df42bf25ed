// What a node's modules load when it starts: packages that only some requests need are loaded
// at their first use, not with the node, and no package twice (docs/performance.md, "Memory of
// an idle node").
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'

interface Loaded {
  /** Bare package names resolved. */
  names: Set<string>
  /** Directories each package was loaded from, by name. */
  dirs: Map<string, Set<string>>
  /** Node's own modules loaded (`process.moduleLoadList`). */
  builtins: string[]
}

/** What importing `entry` in a fresh process loads. */
function loadedBy(entry: URL): Loaded {
  const script = [
    `import { registerHooks } from 'node:module'`,
    `const names = new Set(), dirs = {}`,
    `registerHooks({ resolve(spec, ctx, next) {`,
    `  if (!/^[.\\/]|^node:|^file:/.test(spec)) names.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0])`,
    `  const resolved = next(spec, ctx)`,
    `  const dir = /^file:\\/\\/.*\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(resolved.url)`,
    `  if (dir) (dirs[dir[1]] ??= new Set()).add(dir[0])`,
    `  return resolved`,
    `} })`,
    `await import(${JSON.stringify(entry.href)})`,
    `const out = { names: [...names], dirs: Object.fromEntries(Object.entries(dirs).map(([k, v]) => [k, [...v]])), builtins: process.moduleLoadList }`,
    `process.stdout.write(JSON.stringify(out) + "\\n")`,
  ].join('\n')
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  assert.equal(run.status, 0, run.stderr)
  const out = JSON.parse(run.stdout.trim().split('\n').at(-1) as string) as {
    names: string[]
    dirs: Record<string, string[]>
    builtins: string[]
  }
  return {
    names: new Set(out.names),
    dirs: new Map(Object.entries(out.dirs).map(([name, dirs]) => [name, new Set(dirs)])),
    builtins: out.builtins,
  }
}

const NODE = new URL('../src/node/full-node.ts', import.meta.url)

/** What a node's modules load, probed once for both tests. */
let probed: Loaded | undefined
const nodeLoads = (): Loaded => (probed ??= loadedBy(NODE))

test("a node's modules load neither TypeBox, nor onnx-proto, sodium-native, node-datachannel or Hugging Face's tokenizers and Jinja (each loads at its first use)", async () => {
  const { names } = nodeLoads()
  assert.ok(names.has('libp2p') && names.has('fastify'), `the probe saw the node's packages: ${[...names].join(' ')}`)
  for (const name of [
    'typebox',
    'onnx-proto',
    'sodium-native',
    '@huggingface/tokenizers',
    '@huggingface/jinja',
    'node-datachannel',
  ])
    assert.ok(!names.has(name), `${name} is loaded with the node`)
})

test("a node's modules load one copy of Ajv (not one per Fastify compiler), and not Node's bundled undici", async () => {
  const { dirs, builtins } = nodeLoads()
  const ajv = dirs.get('ajv')
  assert.ok(ajv !== undefined, 'the probe saw Ajv (Fastify loads it)')
  assert.equal(ajv.size, 1, `Ajv loaded from ${[...ajv].join(', ')}`)
  assert.ok(
    builtins.some((name) => name.endsWith(' http')),
    "the probe saw Node's own modules",
  )
  assert.ok(
    !builtins.some((name) => name.includes('undici')),
    "undici (fetch, WebSocket) is loaded: an ES import of 'node:http' reads its lazy WebSocket export",
  )
})
