// `donghae receipt verify` on a receipt whose signatures are valid but which the chain has not
// settled yet: without --node it is valid on its signatures (and says --node would check the
// settlement); with --node, asking a node that has no settlement for the job, it says "not settled
// yet" (exit 1, `pending` in --json) instead of calling the receipt invalid or asking for --node.
// The node is a real HTTP server answering the settlement route as a node does before the batch
// lands (404 NOT_FOUND).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { utf8 } from '../src/core/bytes.ts'
import { sha256 } from '../src/core/hash.ts'
import { cidOfBytes, RAW_CODE } from '../src/core/cid.ts'
import { genesisToJson } from '../src/chain/genesis.ts'
import { jobIdHex, receiptToJson, signDispatch, signJob, signReceipt } from '../src/inference/job.ts'
import { actor, makeGenesis } from './helpers/chain.ts'
import { runCli } from './helpers/cli.ts'

const [validator, client, worker, gateway] = [actor(), actor(), actor(), actor()]
const genesis = makeGenesis([validator], [[client, 1_000n]])
// jobs of now: their settle window (an hour after the deadline) is open
const T0 = Date.now()

function receiptAt(t0: number): { job: ReturnType<typeof signJob>; receipt: ReturnType<typeof signReceipt> } {
  const job = signJob(client.key, {
    chainId: genesis.chainId,
    gateway: gateway.did,
    model: cidOfBytes(utf8('cli-receipt-test-model'), RAW_CODE).toString(),
    inputsHash: randomBytes(32),
    maxFee: 7n,
    deadline: t0 + 100_000,
    salt: randomBytes(16),
  })
  const receipt = signReceipt(worker.key, {
    job,
    dispatch: signDispatch(gateway.key, job, worker.did),
    outputHash: sha256(utf8('y')),
    fee: 7n,
    ep: 'cpu',
    runtime: 'onnxruntime-node/test',
    startedAt: t0 + 100,
    finishedAt: t0 + 200,
    computeMicros: 100_000,
  })
  return { job, receipt }
}
const { job, receipt } = receiptAt(T0)
// a job whose deadline and settle window passed long ago
const old = receiptAt(T0 - 3 * genesis.params.settleWindowMs)

/** Paths the CLI asked the node for. */
const asked: string[] = []
const node = createServer((request, response) => {
  asked.push(request.url ?? '')
  const notFound = request.url?.startsWith('/v1/jobs/') === true && request.url.endsWith('/settlement')
  response.writeHead(404, { 'content-type': 'application/json' })
  response.end(
    JSON.stringify({
      error: { code: 'NOT_FOUND', message: notFound ? 'job is not settled (yet)' : `no route ${request.url ?? ''}` },
    }),
  )
})
await new Promise<void>((resolve) => node.listen(0, '127.0.0.1', resolve))
const nodeUrl = `http://127.0.0.1:${(node.address() as AddressInfo).port}`
const dir = await mkdtemp(join(tmpdir(), 'donghae-cli-receipt-'))
const receiptFile = join(dir, 'receipt.json')
const genesisFile = join(dir, 'genesis.json')
await writeFile(receiptFile, JSON.stringify({ receipt: receiptToJson(receipt) }))
const oldReceiptFile = join(dir, 'old-receipt.json')
await writeFile(oldReceiptFile, JSON.stringify({ receipt: receiptToJson(old.receipt) }))
await writeFile(genesisFile, JSON.stringify(genesisToJson(genesis)))

after(async () => {
  await new Promise<void>((resolve) => node.close(() => resolve()))
  await rm(dir, { recursive: true, force: true })
})

test('receipt verify without --node: valid on its signatures, and says --node checks the settlement', async () => {
  const run = await runCli(['--home', join(dir, 'home'), 'receipt', 'verify', receiptFile])
  assert.equal(run.code, 0, run.stderr)
  assert.match(run.stdout, /^valid: receipt [0-9a-f]{64} by did:key:.*signatures only; add --node/)
})

test('receipt verify --node before the settlement: "not settled yet", not "add --node" nor "not valid"', async () => {
  const jobId = jobIdHex(job)
  const run = await runCli(['receipt', 'verify', receiptFile, '--node', nodeUrl, '--genesis', genesisFile])
  const out = `${run.stdout}${run.stderr}`
  assert.equal(run.code, 1, out)
  assert.match(run.stderr, /is not settled yet: its signatures are valid/)
  assert.ok(run.stderr.includes(`job ${jobId} is not settled on chain (asked ${nodeUrl})`), run.stderr)
  assert.match(run.stderr, /try again shortly/)
  assert.doesNotMatch(out, /add --node|not valid/)
  assert.ok(asked.includes(`/v1/jobs/${jobId}/settlement`), `the node was asked: ${asked.join(', ')}`)

  // --node before the command (the program-wide option) and --json: the verdict says pending
  const json = await runCli(['--node', nodeUrl, 'receipt', 'verify', receiptFile, '--genesis', genesisFile, '--json'])
  assert.equal(json.code, 1, json.stderr)
  const verdict = JSON.parse(json.stdout) as { valid: boolean; pending?: boolean; signatures: string; reason?: string }
  assert.equal(verdict.valid, false)
  assert.equal(verdict.pending, true)
  assert.equal(verdict.signatures, 'valid')
  assert.match(verdict.reason ?? '', /not settled yet/)
  assert.match(json.stderr, /is not settled yet/)
})

test('receipt verify --node past the settle window with no settlement: says the record was pruned or never made, not "try again"', async () => {
  const run = await runCli(['receipt', 'verify', oldReceiptFile, '--node', nodeUrl, '--genesis', genesisFile, '--json'])
  assert.equal(run.code, 1, run.stderr)
  const verdict = JSON.parse(run.stdout) as { valid: boolean; pending?: boolean; reason?: string }
  assert.equal(verdict.valid, false)
  assert.equal(verdict.pending, undefined)
  assert.match(
    verdict.reason ?? '',
    /settle window closed at .*settled and its record pruned since, or it was never settled/,
  )
  assert.doesNotMatch(run.stderr, /try again shortly/)
  assert.ok(asked.includes(`/v1/jobs/${jobIdHex(old.job)}/settlement`))
})
