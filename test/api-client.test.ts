// The typed client (`donghae/client`): it must stay loadable in a browser (the dashboard bundles
// it), and its WebCrypto receipt check must agree with the node's own (src/inference/job.ts).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { verifyReceiptJson } from '../src/api/client.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import {
  receiptFromJson,
  receiptToJson,
  signDispatch,
  signJob,
  signReceipt,
  verifyDispatch,
  verifyReceipt,
  type ReceiptJson,
} from '../src/inference/job.ts'

const CLIENT = fileURLToPath(new URL('../src/api/client.ts', import.meta.url))
const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
  exports: Record<string, string>
}

/** Runtime (not `import type`) import specifiers of a module's source. */
function runtimeImports(source: string): string[] {
  const out: string[] = []
  for (const m of source.matchAll(/^\s*(import|export)\s+(?!type\b)([^;'"]*?\bfrom\s+)?['"]([^'"]+)['"]/gm)) {
    const clause = m[2] ?? ''
    // `export type * from`, `import { type A, type B } from` with only types: erased.
    if (/^\s*type\b/.test(clause) || /^\{\s*(type\s+\w+\s*,?\s*)+\}\s*from\s+$/.test(clause)) continue
    out.push(m[3] ?? '')
  }
  return out
}

function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1')
}

test('donghae/client is browser-safe: no Node built-ins, Buffer or process anywhere in its import graph', async () => {
  assert.equal(pkg.exports['./client'], './src/api/client.ts')
  const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)])
  const seen = new Set<string>()
  const packages = new Set<string>()
  const visit = async (file: string): Promise<void> => {
    if (seen.has(file)) return
    seen.add(file)
    const source = await readFile(file, 'utf8')
    const code = stripComments(source)
    assert.doesNotMatch(code, /\bBuffer\b/, `${file} uses Buffer`)
    assert.doesNotMatch(code, /\bprocess\.(env|versions|platform|exit)/, `${file} uses process`)
    for (const spec of runtimeImports(source)) {
      assert.ok(!builtins.has(spec) && !spec.startsWith('node:'), `${file} imports ${spec}`)
      if (spec.startsWith('.')) await visit(resolve(dirname(file), spec))
      else packages.add(spec)
    }
  }
  await visit(CLIENT)
  assert.ok(seen.size >= 5, `walked ${[...seen].join(', ')}`)
  assert.deepEqual([...packages].sort(), ['@ipld/dag-cbor', 'multiformats/bases/base58'])
})

function makeReceipt(): ReceiptJson {
  const client = Ed25519KeyPair.generate()
  const worker = Ed25519KeyPair.generate()
  const gateway = Ed25519KeyPair.generate()
  const job = signJob(client, {
    chainId: 'donghae-test',
    gateway: didFromEd25519PublicKey(gateway.publicKey),
    model: 'bafkreihcutuulavvi77jnsjg7a3vqsh5ki7spllhiterurxlnonkseoggu',
    inputsHash: new Uint8Array(32).fill(7),
    maxFee: 1_000n,
    deadline: 1_800_000_000_000,
    salt: new Uint8Array(16).fill(9),
  })
  const receipt = signReceipt(worker, {
    job,
    dispatch: signDispatch(gateway, job, didFromEd25519PublicKey(worker.publicKey)),
    outputHash: new Uint8Array(32).fill(3),
    fee: 10n,
    ep: 'cpu',
    runtime: 'onnxruntime-node/1.30.0',
    startedAt: 1_700_000_000_000,
    finishedAt: 1_700_000_000_004,
    computeMicros: 812,
  })
  return receiptToJson(receipt)
}

/** The node's verdict: job.ts parsing (which checks the ids) plus signatures. */
function nodeVerdict(json: ReceiptJson): boolean {
  try {
    const receipt = receiptFromJson(json)
    return verifyReceipt(receipt) && (receipt.dispatch === null || verifyDispatch(receipt))
  } catch {
    return false
  }
}

test('verifyReceiptJson (WebCrypto) agrees with the node on a real receipt and on every tampering', async () => {
  const good = makeReceipt()
  assert.equal(nodeVerdict(good), true)
  assert.deepEqual(await verifyReceiptJson(good), { valid: true })
  const other = makeReceipt()
  const flip = (hex: string): string => `${hex[0] === '0' ? '1' : '0'}${hex.slice(1)}`
  const tampered: Array<[string, ReceiptJson]> = [
    ['fee', { ...good, fee: '11' }],
    ['output', { ...good, outputHash: flip(good.outputHash) }],
    ['worker', { ...good, worker: other.worker }],
    ['signature', { ...good, signature: flip(good.signature) }],
    ['time', { ...good, finishedAt: good.finishedAt + 1 }],
    ['ep', { ...good, ep: 'cuda' }],
    ['id', { ...good, id: flip(good.id) }],
    ['jobId', { ...good, jobId: flip(good.jobId) }],
    ['job fee', { ...good, job: { ...good.job, maxFee: '1001' } }],
    ['job signature', { ...good, job: { ...good.job, signature: flip(good.job.signature) } }],
    ['job client', { ...good, job: { ...good.job, client: other.job.client } }],
    ['job gateway', { ...good, job: { ...good.job, gateway: other.job.gateway } }],
    ['dispatch', { ...good, dispatch: flip(good.dispatch as string) }],
    ['another dispatch', { ...good, dispatch: other.dispatch }],
    ['another job', { ...good, job: other.job }],
    ['not hex', { ...good, outputHash: 'zz' }],
  ]
  for (const [what, receipt] of tampered) {
    assert.equal(nodeVerdict(receipt), false, `node: ${what}`)
    const check = await verifyReceiptJson(receipt)
    assert.equal(check.valid, false, `client: ${what}`)
  }
  // Without the ids (they are optional in the JSON) the signatures still decide.
  const bare: Partial<ReceiptJson> = { ...good }
  delete bare.id
  delete bare.jobId
  assert.deepEqual(await verifyReceiptJson(bare as ReceiptJson), { valid: true })
  assert.equal((await verifyReceiptJson({ ...(bare as ReceiptJson), fee: '12' })).valid, false)
})

test('verifyReceiptJson: any single-byte change to a signed field is caught (property)', async () => {
  const good = makeReceipt()
  const fields = ['outputHash', 'signature', 'id', 'jobId'] as const
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...fields),
      fc.nat(),
      fc.integer({ min: 1, max: 15 }),
      async (field, at, delta) => {
        const hex = good[field]
        const i = at % hex.length
        const digit = ((parseInt(hex[i] ?? '0', 16) + delta) % 16).toString(16)
        const changed = { ...good, [field]: `${hex.slice(0, i)}${digit}${hex.slice(i + 1)}` }
        assert.equal((await verifyReceiptJson(changed)).valid, false)
        assert.equal(nodeVerdict(changed), false)
      },
    ),
    { numRuns: 60 },
  )
})
