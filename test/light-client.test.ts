// `donghae receipt verify --node` no longer trusts the node: the settlement's state proof is
// checked against a header certified by the validator set, followed from the genesis across a
// real validator-set change. The honest node is the real API server (createApiServer) over an
// in-process chain with the real bank, staking and inference modules; the lying node is a real
// HTTP server in front of it that forges a settlement and then, one lie deeper each time, the
// state root, the header, the certificate and the validator set. Each lie is caught by the real
// CLI, which prints why.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { toHex, utf8 } from '../src/core/bytes.ts'
import { encode } from '../src/core/codec.ts'
import { sha256 } from '../src/core/hash.ts'
import { cidOfBytes, RAW_CODE } from '../src/core/cid.ts'
import { merkleProof, merkleRoot } from '../src/core/merkle.ts'
import { encodeTx, signTx } from '../src/chain/tx.ts'
import { StateMachine } from '../src/chain/host.ts'
import { blockId } from '../src/chain/block.ts'
import { signVote, verifyCommit } from '../src/chain/bft/messages.ts'
import { encodeProof } from '../src/chain/state/proof.ts'
import { genesisHash, genesisToJson, type GenesisDoc, type GenesisModel } from '../src/chain/genesis.ts'
import { bankModule, feeCollector } from '../src/bank/bank.ts'
import { genesisValidatorSet, stakingModule, validatorSetKey } from '../src/staking/staking.ts'
import { inferenceModule } from '../src/inference/chain/module.ts'
import { settlementView } from '../src/node/adapters.ts'
import { batchKey } from '../src/inference/chain/state.ts'
import {
  jobIdHex,
  receiptId,
  receiptToJson,
  receiptValue,
  signDispatch,
  signJob,
  signReceipt,
  type Receipt,
} from '../src/inference/job.ts'
import { createApiServer } from '../src/api/server.ts'
import { DonghaeClient } from '../src/api/client.ts'
import { LightClient } from '../src/api/light-client.ts'
import type { InferenceApi } from '../src/api/inference-api.ts'
import type { LightBlockJson, ProofJson } from '../src/api/schemas.ts'
import { parseHeaderJson } from '../src/api/light-client.ts'
import { actor, makeGenesis, type Actor } from './helpers/chain.ts'
import { runCli } from './helpers/cli.ts'
import { MemoryChain } from './helpers/memory-chain.ts'

/** Fixed ports 15 801–15 802, used by no other test. */
const HONEST_PORT = 15_801
const LIAR_PORT = 15_802
const EPOCH = 3
const T0 = 1_700_000_000_000

const [v1, v2, v3, newcomer, client, worker, payer] = [actor(), actor(), actor(), actor(), actor(), actor(), actor()]
/** Keys the lying node signs with: not validators. */
const liars = [actor(), actor(), actor()]
const MODEL = cidOfBytes(new TextEncoder().encode('light-client-test-model'), RAW_CODE).toString()
const genesis: GenesisDoc = {
  ...makeGenesis(
    [v1, v2, v3],
    [
      [newcomer, 100_000n],
      [client, 10_000n],
      [payer, 10_000n],
    ],
    { epochLength: EPOCH, settleWindowMs: 60_000, minWorkerBond: 1_000n },
  ),
  genesisTime: T0,
  inference: {
    models: [
      {
        owner: v1.did,
        cid: MODEL,
        name: 'm',
        version: '1',
        price: 7n,
        kind: 'tensor',
        inputs: [{ name: 'x', type: 'float32', dims: [null, 2] }],
        outputs: [{ name: 'y', type: 'float32', dims: [null, 2] }],
        tolerance: { maxAbsPpm: 1_000, top1: true },
        size: 100,
      } as GenesisModel,
    ],
    workers: [{ did: worker.did, bond: 10_000n, ep: 'cpu', runtime: 'onnxruntime-node/test', models: [MODEL] }],
  },
}

function receiptOf(): Receipt {
  const job = signJob(client.key, {
    chainId: genesis.chainId,
    gateway: payer.did,
    model: MODEL,
    inputsHash: randomBytes(32),
    maxFee: 7n,
    deadline: T0 + 100_000,
    salt: randomBytes(16),
  })
  return signReceipt(worker.key, {
    job,
    dispatch: signDispatch(payer.key, job, worker.did),
    outputHash: sha256(utf8('y')),
    fee: 7n,
    ep: 'cpu',
    runtime: 'onnxruntime-node/test',
    startedAt: T0 + 100,
    finishedAt: T0 + 200,
    computeMicros: 100_000,
  })
}

const nonces = new Map<string, bigint>()
async function send(chain: MemoryChain, who: Actor, kind: string, body: unknown): Promise<void> {
  const nonce = nonces.get(who.did) ?? 0n
  nonces.set(who.did, nonce + 1n)
  await chain.submitTx(encodeTx(signTx(who.key, { chainId: genesis.chainId, nonce, fee: 1n, kind, body })))
}

/** The settlement route as a node serves it (settlementView), read from the chain's state. */
function settlements(chain: MemoryChain): InferenceApi {
  const settlement: InferenceApi['settlement'] = (jobId) => settlementView(chain.state, jobId)
  return { settlement } as Pick<InferenceApi, 'settlement'> as InferenceApi
}

type Lie = 'none' | 'root' | 'header' | 'signers' | 'set'

let dir = ''
let genesisFile = ''
let chain: MemoryChain
let honest: FastifyInstance
let liar: Server
let lie: Lie = 'none'
const settled = receiptOf()
const unsettled = receiptOf()

const honestUrl = `http://127.0.0.1:${HONEST_PORT}`
const liarUrl = `http://127.0.0.1:${LIAR_PORT}`

/** What the lying node claims about `unsettled`: a batch of its own, at the latest height. */
function forgedBatch(): { key: string; record: Uint8Array; settlement: unknown } {
  const id = receiptId(unsettled)
  const key = batchKey(chain.height, 9)
  const record = encode({ root: merkleRoot([id]), count: 1, receiptIds: [id] })
  const path = merkleProof([id], 0)
  return {
    key,
    record,
    settlement: {
      jobId: jobIdHex(unsettled.job),
      receiptId: toHex(id),
      worker: worker.did,
      height: chain.height,
      batchKey: key,
      root: toHex(merkleRoot([id])),
      index: path.index,
      count: path.count,
      proof: path.siblings.map((s) => ({ hash: toHex(s.hash), right: s.right })),
    },
  }
}

/** A state proof of `key` = `value` against the real state of `height` with the lie added to it. */
async function forgedProof(height: number, key: Uint8Array, value: Uint8Array): Promise<ProofJson> {
  const base = await chain.proveAt(key, height)
  assert.ok(base !== undefined)
  const tree = chain.stateAt(height)?.apply([[key, value]])
  assert.ok(tree !== undefined)
  return {
    height,
    root: toHex(tree.root()),
    key: toHex(key),
    value: toHex(value),
    proof: toHex(encodeProof(tree.prove(key))),
  }
}

/** The honest light block with the header's state root replaced, and (optionally) re-certified by the liars. */
function forgeHeader(block: LightBlockJson, stateRoot: string, resign: boolean): LightBlockJson {
  const header = { ...block.header, stateRoot }
  if (!resign) return { ...block, header }
  const id = blockId(parseHeaderJson(header))
  const precommits = liars.map((l) =>
    signVote(l.key, {
      chainId: genesis.chainId,
      height: block.height,
      round: 0,
      type: 'precommit',
      blockId: id,
      validator: l.did,
    }),
  )
  return {
    ...block,
    blockId: toHex(id),
    header,
    commit: {
      height: block.height,
      round: 0,
      blockId: toHex(id),
      precommits: precommits.map((v) => ({
        ...v,
        blockId: toHex(v.blockId as Uint8Array),
        signature: toHex(v.signature),
      })),
    },
  }
}

/** The lying node: everything is forwarded to the honest one, then the lies of the current mode. */
async function answer(path: string): Promise<{ status: number; body: unknown }> {
  const url = new URL(path, honestUrl)
  const upstream = await fetch(url)
  const honestBody = (await upstream.json()) as unknown
  if (lie === 'none') return { status: upstream.status, body: honestBody }
  const forged = forgedBatch()
  const forgedState = await forgedProof(chain.height, utf8(forged.key), forged.record)
  if (url.pathname === `/v1/jobs/${jobIdHex(unsettled.job)}/settlement`) return { status: 200, body: forged.settlement }
  if (url.pathname === '/v1/state/proof' && url.searchParams.get('key') === toHex(utf8(forged.key)))
    return { status: 200, body: forgedState }
  const header = /^\/v1\/chain\/headers\/(\d+)$/.exec(url.pathname)
  if (header !== null && upstream.status === 200) {
    const height = Number(header[1])
    const block = honestBody as LightBlockJson
    if (height === chain.height && lie === 'header')
      return { status: 200, body: forgeHeader(block, forgedState.root, false) }
    if (height === chain.height && lie === 'signers')
      return { status: 200, body: forgeHeader(block, forgedState.root, true) }
    // 'set': every header after the first epoch is the liars', under the set they claim.
    if (lie === 'set' && height > EPOCH)
      return {
        status: 200,
        body: forgeHeader(block, height === chain.height ? forgedState.root : block.header.stateRoot, true),
      }
  }
  if (
    lie === 'set' &&
    url.pathname === '/v1/state/proof' &&
    url.searchParams.get('key') === toHex(validatorSetKey(1))
  ) {
    const claimed = encode(liars.map((l) => ({ did: l.did, power: 10_000n })).sort((a, b) => (a.did < b.did ? -1 : 1)))
    return { status: 200, body: await forgedProof(EPOCH, validatorSetKey(1), claimed) }
  }
  return { status: upstream.status, body: honestBody }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'donghae-light-'))
  genesisFile = join(dir, 'genesis.json')
  await writeFile(genesisFile, JSON.stringify(genesisToJson(genesis)))
  const machine = new StateMachine({
    chainId: genesis.chainId,
    modules: [bankModule, stakingModule(genesis.params), inferenceModule(genesis.params)],
    fees: feeCollector,
    minFee: genesis.params.minFee,
  })
  chain = new MemoryChain({ genesis, validators: [v1, v2, v3, newcomer], machine })
  // Block 1: a newcomer bonds 5× a genesis validator's stake: from epoch 1 the set is different.
  await send(chain, newcomer, 'staking.bond', { amount: 50_000n })
  chain.commitPending()
  // Block 2: the client deposits with its gateway (the payer), and the gateway settles the receipt.
  await send(chain, client, 'inference.deposit', { gateway: payer.did, amount: 1_000n })
  chain.commitPending()
  await send(chain, payer, 'inference.settle', { receipts: [receiptValue(settled)], latencies: [100] })
  chain.commitPending()
  while (chain.height < 3 * EPOCH - 1) chain.commitPending() // into epoch 2
  honest = createApiServer({ chain, inference: settlements(chain) })
  await honest.listen({ host: '127.0.0.1', port: HONEST_PORT })
  liar = createServer((req, res) => {
    answer(req.url ?? '/')
      .then(({ status, body }) =>
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
      )
      .catch((err: unknown) =>
        res.writeHead(500).end(JSON.stringify({ error: { code: 'INTERNAL', message: String(err) } })),
      )
  })
  await new Promise<void>((resolve) => liar.listen(LIAR_PORT, '127.0.0.1', resolve))
})

after(async () => {
  await honest?.close()
  await new Promise<void>((resolve) => (liar === undefined ? resolve() : liar.close(() => resolve())))
  await rm(dir, { recursive: true, force: true })
})

async function verify(
  receipt: Receipt,
  node: string,
  trust: string[] = ['--genesis', genesisFile],
  home = join(dir, 'home'),
): Promise<{ code: number | null; out: string }> {
  const file = join(dir, `receipt-${toHex(receiptId(receipt)).slice(0, 8)}.json`)
  await writeFile(file, JSON.stringify(receiptToJson(receipt)))
  const run = await runCli(['--home', home, 'receipt', 'verify', file, '--node', node, ...trust])
  return { code: run.code, out: `${run.stdout}${run.stderr}`.trim() }
}

test('light client, honest node: headers certified by the validator set followed from the genesis across a set change', async () => {
  const light = new LightClient(genesis, new DonghaeClient(honestUrl))
  const set1 = await light.validatorSet(1)
  assert.ok(
    set1.validators.some((v) => v.did === newcomer.did && v.power === 50_000n),
    'the newcomer joined at epoch 1',
  )
  assert.ok(!genesisValidatorSet(genesis).validators.some((v) => v.did === newcomer.did))
  const top = await light.header(chain.height)
  assert.ok(top.signers.includes(newcomer.did))
  assert.deepEqual(top.header.stateRoot, chain.state.root())
  // Following the change matters: the genesis set cannot check a certificate of epoch 1.
  const block4 = await chain.block(EPOCH + 1)
  assert.throws(
    () =>
      verifyCommit(
        block4?.commit as NonNullable<typeof block4>['commit'] & object,
        genesisValidatorSet(genesis),
        genesis.chainId,
      ),
    /non-member|more precommits than validators/,
  )
  const { value } = await light.provenValue(utf8(`bank/bal/${client.did}`))
  assert.ok(value !== undefined)
})

test('receipt verify --node on an honest node: settled, proven in a certified state (genesis from a file, or by its hash)', async () => {
  const byFile = await verify(settled, honestUrl)
  assert.equal(byFile.code, 0, byFile.out)
  assert.match(byFile.out, /settled at height 3 \(proven in the certified state of height \d+\)/)
  const byHash = await verify(settled, honestUrl, ['--trust-hash', toHex(genesisHash(genesis))])
  assert.equal(byHash.code, 0, byHash.out)
  const wrongHash = await verify(settled, honestUrl, ['--trust-hash', toHex(sha256(utf8('another chain')))])
  assert.equal(wrongHash.code, 1)
  assert.match(wrongHash.out, /genesis hashes to [0-9a-f]{64}, not the trusted/)
  const untrusted = await verify(settled, honestUrl, [])
  assert.equal(untrusted.code, 1, 'no genesis, no check: the node is not taken at its word')
  assert.match(untrusted.out, /needs the chain's genesis/)
})

test('receipt verify --node on a lying node: each forgery is caught, with the reason', async (t) => {
  const cases: Array<[Lie, RegExp]> = [
    ['root', /\(wrong-root\).*state root is forged/],
    ['header', /\(header-mismatch\).*the header was altered/],
    ['signers', /\(bad-certificate\).*non-member/],
    ['set', /\(bad-validator-set\).*validator set of epoch 1 .* not in the certified state of height 3.*never made/],
  ]
  try {
    lie = 'none'
    assert.equal((await verify(settled, liarUrl)).code, 0, 'the proxy itself passes honest answers through')
    assert.match((await verify(unsettled, honestUrl)).out, /not settled on chain/, 'the honest node says so')
    for (const [mode, reason] of cases) {
      lie = mode
      const { code, out } = await verify(unsettled, liarUrl)
      t.diagnostic(`${mode}: ${out}`)
      assert.equal(code, 1, `${mode}: ${out}`)
      assert.match(out, reason, mode)
    }
  } finally {
    lie = 'none'
  }
})
