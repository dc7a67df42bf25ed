// The inference market on a devnet of four node processes over real libp2p sockets:
//  - a client deposits with one gateway; its jobs sent there run on workers in other processes;
//    outputs equal a direct ONNX Runtime call on the same file; receipts verify; settlement is on
//    chain and the deposit paid exactly;
//  - bad requests (unknown model, wrong shape, replay, expiry, no deposit, no token) are refused
//    with 4xx and charge nothing; a client cannot spend at a second gateway, nor beyond its deposit;
//  - a worker killed mid-job: every client still gets a correct answer;
//  - a gateway killed after dispatching: its workers settle their receipts themselves and are paid;
//  - a worker that cheats is audited, out-voted by the drawn quorum and slashed; honest ones are not.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { gunzipSync } from 'node:zlib'
import { BIN, runCli } from './helpers/cli.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { waitFor } from './helpers/chain-net.ts'
import { toHex } from '../src/core/bytes.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { inputsCommitment, jobIdHex, jobToJson, signJob, type SignedJob } from '../src/inference/job.ts'
import { encodeTx, signTx } from '../src/chain/tx.ts'
import { createTensor, hashTensorMap, tensorToJson } from '../src/inference/tensor.ts'
import { OnnxRuntime } from '../src/inference/runtime.ts'
import { DEMO_MODELS_DIR, modelCid } from '../src/inference/demo-models.ts'
import { buildOnnxModel } from '../src/inference/onnx-export.ts'
import { exited, firstJsonLine, getJson, spawnDevnet } from './helpers/processes.ts'

interface DevnetInfo {
  dir: string
  password: string
  nodes: Array<{ node: string; did: string; api: string; home: string; pid: number }>
}
type Node = DevnetInfo['nodes'][number]

// This test drives its nodes far harder than a client would (hundreds of jobs and polls a minute
// from one address): every node it starts, devnet and restarts alike, lifts the per-address
// rate limit (config apiRateLimit), or the API would answer 429 and jobs would never reach workers.
process.env.DONGHAE_API_RATE_LIMIT = '1000000'

interface Answer {
  status: number
  body: Record<string, unknown>
}

async function call(method: string, url: string, body?: unknown, token?: string): Promise<Answer> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const init = { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }
  let res: Response
  try {
    res = await fetch(url, init)
  } catch (err) {
    // a kept-alive connection the server closed after its idle timeout just as fetch reused it
    // (timers run late on a loaded machine): send it once more, on a new connection
    const cause = (err as { cause?: { code?: string } }).cause
    if (cause?.code !== 'UND_ERR_SOCKET') throw err
    res = await fetch(url, init)
  }
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

/** The digits data set: 64 pixel values and a label per row. */
async function digits(): Promise<Array<{ pixels: number[]; label: number }>> {
  const text = gunzipSync(await readFile(join(DEMO_MODELS_DIR, 'data', 'digits.csv.gz'))).toString('utf8')
  return text
    .trim()
    .split('\n')
    .map((line) => line.split(',').map(Number))
    .filter((v) => v.length === 65)
    .map((v) => ({ pixels: v.slice(0, 64), label: v[64] as number }))
}

const inputOf = (pixels: number[]) => ({ input: createTensor('float32', [1, 64], Float32Array.from(pixels)) })
const jsonInput = (pixels: number[]) => ({ input: tensorToJson(inputOf(pixels).input) })

async function balance(api: string, did: string): Promise<bigint> {
  const account = await getJson<{ balance: string }>(`${api}/v1/accounts/${did}`)
  return BigInt(account?.balance ?? '0')
}

interface WorkerJson {
  did: string
  bonded: string
  streak: number
  slashes: number
  quarantined: boolean
}

/** How many workers `api`'s gateway sees advertising `model` (undefined: unreachable or unknown). */
async function modelWorkers(api: string, model: string): Promise<number | undefined> {
  return (await getJson<{ data: Array<{ id: string; workers: number }> }>(`${api}/v1/models`))?.data.find(
    (m) => m.id === model,
  )?.workers
}

/** Signs `kind`/`body` with `key` at its next nonce (read from `api`) and submits it there. */
async function sendTx(api: string, key: Ed25519KeyPair, kind: string, body: unknown): Promise<Answer> {
  const did = didFromEd25519PublicKey(key.publicKey)
  const account = await getJson<{ nonce: string }>(`${api}/v1/accounts/${did}`)
  const tx = signTx(key, { chainId: 'donghae-devnet', nonce: BigInt(account?.nonce ?? '0'), fee: 1n, kind, body })
  return call('POST', `${api}/v1/tx`, { tx: toHex(encodeTx(tx)) })
}

async function deposited(api: string, client: string): Promise<bigint> {
  return BigInt((await getJson<{ amount: string }>(`${api}/v1/inference/deposits/${client}`))?.amount ?? '0')
}

/** Whether the node at `api` serves models itself now: its own advert, with a throughput, in its own table. */
async function servingItself(node: { api: string; did: string }): Promise<boolean> {
  const self = (
    await getJson<{ workers: Array<WorkerJson & { live: boolean; throughput: number }> }>(
      `${node.api}/v1/inference/workers`,
    )
  )?.workers.find((w) => w.did === node.did)
  return self !== undefined && self.live && self.throughput > 0
}

async function workers(api: string): Promise<WorkerJson[]> {
  return (await getJson<{ workers: WorkerJson[] }>(`${api}/v1/inference/workers`))?.workers ?? []
}

test('inference market on a 4-process devnet: correct, receipted, settled; failures retried; cheaters slashed', async (t) => {
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-infer-'))
  const base = 25_000 + rng.int(0, 300) * 8
  // No canaries: a gateway's canary to node3 counts as a job node3 holds, yet is none of the burst's
  // jobs below, so "node3 holds jobs of the burst" could be read from a canary and no burst job be
  // retried. Canaries have their own tests (test/attacks/recognisable-canaries.test.ts, the market sims).
  const { child: devnet, stderr } = spawnDevnet(dir, 4, base, { ...process.env, DONGHAE_CANARY_PPM: '0' })
  const extra: ChildProcess[] = []
  const runtime = new OnnxRuntime()
  try {
    const info = (await firstJsonLine(devnet)) as DevnetInfo
    const [n0, n1, n2, n3] = info.nodes as [Node, Node, Node, Node]
    const tokens = await Promise.all(
      info.nodes.map(async (n) => (await readFile(join(n.home, 'api-token'), 'utf8')).trim()),
    )
    await waitFor(
      'every node serving digits-mlp on 4 workers',
      async () => (await Promise.all(info.nodes.map((n) => modelWorkers(n.api, 'digits-mlp')))).every((w) => w === 4),
      90_000,
    )
    const rows = await digits()
    const modelBytes = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, 'digits-mlp.onnx')))
    const cid = modelCid(modelBytes)
    await runtime.load(cid, modelBytes)

    // ---- a client with its own key, funded by node0's operator, deposits 300 with node1 ----------
    const client = Ed25519KeyPair.generate()
    const clientDid = didFromEd25519PublicKey(client.publicKey)
    const funded = await call('POST', `${n0.api}/v1/operator/transfer`, { to: clientDid, amount: '1000' }, tokens[0])
    assert.equal(funded.status, 202, JSON.stringify(funded.body))
    await waitFor('client funded', async () => (await balance(n1.api, clientDid)) === 1000n, 30_000)
    const deposit = await sendTx(n1.api, client, 'inference.deposit', { gateway: n1.did, amount: 300n })
    assert.equal(deposit.status, 202, JSON.stringify(deposit.body))
    await waitFor('the deposit with node1 committed', async () => (await deposited(n1.api, clientDid)) === 300n, 30_000)
    const price = 10n
    const signJobOf = (
      by: Ed25519KeyPair,
      pixels: number[],
      gateway: string,
      deadline = Date.now() + 30_000,
    ): SignedJob => {
      const salt = randomBytes(16)
      return signJob(by, {
        chainId: 'donghae-devnet',
        gateway,
        model: cid,
        inputsHash: inputsCommitment(salt, hashTensorMap(inputOf(pixels))),
        maxFee: price,
        deadline,
        salt,
      })
    }
    const signedJob = (pixels: number[], deadline = Date.now() + 30_000, gateway = n1.did) =>
      jobToJson(signJobOf(client, pixels, gateway, deadline))

    // ---- correct results, computed in other processes, each with a receipt -----------------------
    const jobs = 12
    const sample = Array.from({ length: jobs }, () => rows[rng.int(0, rows.length - 1)] as (typeof rows)[number])
    const answers: Answer[] = []
    for (const row of sample) {
      const answer = await call('POST', `${n1.api}/v1/infer`, {
        model: 'digits-mlp',
        inputs: jsonInput(row.pixels),
        job: signedJob(row.pixels),
      })
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      const direct = await runtime.run(cid, inputOf(row.pixels))
      const got = answer.body.outputs as { probabilities: { data: number[] } }
      assert.deepEqual(
        Float32Array.from(got.probabilities.data),
        direct.outputs.probabilities?.data,
        'the network answered what ONNX Runtime computes on the same file',
      )
      const receipt = answer.body.receipt as { outputHash: string; worker: string; fee: string }
      assert.equal(receipt.outputHash, toHex(hashTensorMap(direct.outputs)))
      assert.equal(receipt.fee, price.toString())
      answers.push(answer)
    }
    const remote = answers.filter((a) => a.body.worker !== n1.did).length
    t.diagnostic(`${remote} of ${jobs} jobs sent to node1 ran in another process`)
    assert.ok(remote > 0, 'some jobs ran on another node')

    // the receipt verifies, and its settlement is proven on chain
    const receiptFile = join(dir, 'receipt.json')
    await writeFile(receiptFile, JSON.stringify(answers[0]?.body.receipt))
    await waitFor(
      'the receipt settled and verified by `donghae receipt verify --node` (a light client from the home’s genesis)',
      async () =>
        (await runCli(['--home', n2.home, 'receipt', 'verify', receiptFile, '--node', n2.api, '--json'])).code === 0,
      30_000,
    )
    const tampered = { ...(answers[0]?.body.receipt as Record<string, unknown>), fee: '9' }
    await writeFile(receiptFile, JSON.stringify(tampered))
    const bad = await runCli(['receipt', 'verify', receiptFile])
    assert.notEqual(bad.code, 0, 'a tampered receipt does not verify')
    await waitFor(
      'every job settled: the deposit paid exactly price × jobs',
      async () => (await deposited(n1.api, clientDid)) === 300n - price * BigInt(jobs),
      30_000,
    )
    assert.equal(await balance(n2.api, clientDid), 1000n - 300n - 1n, 'the balance paid only the deposit and its fee')

    // ---- bad input: 4xx, nothing charged ----------------------------------------------------------
    const before = await deposited(n1.api, clientDid)
    const row = rows[0] as (typeof rows)[number]
    const replayJob = signedJob(row.pixels)
    const first = await call('POST', `${n1.api}/v1/infer`, {
      model: 'digits-mlp',
      inputs: jsonInput(row.pixels),
      job: replayJob,
    })
    assert.equal(first.status, 200)
    const cases: Array<[string, Answer, number]> = [
      [
        'replayed job',
        await call('POST', `${n1.api}/v1/infer`, {
          model: 'digits-mlp',
          inputs: jsonInput(row.pixels),
          job: replayJob,
        }),
        409,
      ],
      [
        'expired job',
        await call('POST', `${n1.api}/v1/infer`, {
          model: 'digits-mlp',
          inputs: jsonInput(row.pixels),
          job: signedJob(row.pixels, Date.now() - 1),
        }),
        400,
      ],
      [
        'unknown model',
        await call('POST', `${n1.api}/v1/infer`, { model: 'no-such-model', inputs: jsonInput(row.pixels) }, tokens[1]),
        404,
      ],
      [
        'wrong shape',
        await call(
          'POST',
          `${n1.api}/v1/infer`,
          { model: 'digits-mlp', inputs: { input: { dims: [1, 63], type: 'float32', data: row.pixels.slice(0, 63) } } },
          tokens[1],
        ),
        400,
      ],
      [
        'wrong type',
        await call(
          'POST',
          `${n1.api}/v1/infer`,
          { model: 'digits-mlp', inputs: { input: { dims: [1, 64], type: 'int32', data: row.pixels } } },
          tokens[1],
        ),
        400,
      ],
      [
        'inputs not matching the job',
        await call('POST', `${n1.api}/v1/infer`, {
          model: 'digits-mlp',
          inputs: jsonInput((rows[1] as (typeof rows)[number]).pixels),
          job: signedJob(row.pixels),
        }),
        400,
      ],
      [
        'no operator token',
        await call('POST', `${n1.api}/v1/infer`, { model: 'digits-mlp', inputs: jsonInput(row.pixels) }),
        401,
      ],
    ]
    const broke = Ed25519KeyPair.generate()
    const brokeJob = jobToJson(signJobOf(broke, row.pixels, n1.did))
    cases.push([
      'no deposit',
      await call('POST', `${n1.api}/v1/infer`, { model: 'digits-mlp', inputs: jsonInput(row.pixels), job: brokeJob }),
      402,
    ])
    // one deposit cannot pay at two gateways: node2 holds none of this client's
    cases.push([
      'a second gateway',
      await call('POST', `${n2.api}/v1/infer`, {
        model: 'digits-mlp',
        inputs: jsonInput(row.pixels),
        job: signedJob(row.pixels, Date.now() + 30_000, n2.did),
      }),
      402,
    ])
    cases.push([
      'a job naming another gateway',
      await call('POST', `${n2.api}/v1/infer`, {
        model: 'digits-mlp',
        inputs: jsonInput(row.pixels),
        job: signedJob(row.pixels),
      }),
      400,
    ])
    for (const [what, answer, status] of cases) {
      assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.body)}`)
      assert.equal(
        typeof (answer.body.error as { message?: unknown } | undefined)?.message,
        'string',
        `${what}: error body`,
      )
    }
    await waitFor(
      'only the one good job charged',
      async () => (await deposited(n1.api, clientDid)) === before - price,
      30_000,
    )
    // once settled, the job is refused again (the chain settles a job id once)
    const again = await call('POST', `${n1.api}/v1/infer`, {
      model: 'digits-mlp',
      inputs: jsonInput(row.pixels),
      job: replayJob,
    })
    assert.equal(again.status, 409, `replay after settlement: ${JSON.stringify(again.body)}`)
    await new Promise((r) => setTimeout(r, 2_000))
    assert.equal(await deposited(n1.api, clientDid), before - price, 'the refused requests charged nothing')

    // ---- spending the deposit to the end: the gateway refuses the job it could not pay ----------------
    const left = await deposited(n1.api, clientDid)
    for (let i = 0n; i < left / price; i++) {
      const r = rows[Number(i) % rows.length] as (typeof rows)[number]
      const spent = await call('POST', `${n1.api}/v1/infer`, {
        model: 'digits-mlp',
        inputs: jsonInput(r.pixels),
        job: signedJob(r.pixels),
      })
      assert.equal(spent.status, 200, JSON.stringify(spent.body))
    }
    const beyond = await call('POST', `${n1.api}/v1/infer`, {
      model: 'digits-mlp',
      inputs: jsonInput(row.pixels),
      job: signedJob(row.pixels),
    })
    assert.equal(beyond.status, 402, `a job beyond the deposit: ${JSON.stringify(beyond.body)}`)

    // ---- a new model published on node0 is fetched by the other workers and verified by CID --------
    const weights = Float32Array.from({ length: 8 }, () => rng.int(-100, 100) / 50)
    const tiny = buildOnnxModel({
      name: 'tiny',
      inputs: [{ name: 'x', dims: ['N', 4] }],
      outputs: [{ name: 'y', dims: ['N', 2] }],
      initializers: [{ name: 'w', dims: [4, 2], data: weights }],
      nodes: [
        { op: 'MatMul', inputs: ['x', 'w'], outputs: ['logits'] },
        { op: 'Softmax', inputs: ['logits'], outputs: ['y'], attributes: { axis: 1 } },
      ],
    })
    const tinyFile = join(dir, 'tiny.onnx')
    await writeFile(tinyFile, tiny)
    const published = await runCli([
      'model',
      'publish',
      tinyFile,
      '--name',
      'tiny',
      '--price',
      '3',
      '--node',
      n0.api,
      '--token',
      tokens[0] as string,
      '--json',
    ])
    assert.equal(published.code, 0, published.stderr)
    assert.equal((JSON.parse(published.stdout) as { cid: string }).cid, modelCid(tiny))
    await waitFor(
      'the new model fetched from node0 and served by every worker',
      async () => (await modelWorkers(n2.api, 'tiny')) === 4,
      60_000,
    )
    // OpenAI's `created` is Unix seconds: the time of the block that registered the model
    const listed = (
      await getJson<{ data: Array<{ id: string; created: number; height: number }> }>(`${n2.api}/v1/models`)
    )?.data
    const tinyListed = listed?.find((m) => m.id === 'tiny')
    const nowSeconds = Math.floor(Date.now() / 1000)
    assert.ok(
      tinyListed !== undefined &&
        tinyListed.height > 0 &&
        tinyListed.created > nowSeconds - 120 &&
        tinyListed.created <= nowSeconds + 5,
      `tiny is listed with its block's time: ${JSON.stringify(tinyListed)}`,
    )
    assert.equal(listed?.find((m) => m.id === 'digits-mlp')?.height, 0, 'the demo models come with the genesis')
    const tinyAnswer = await call(
      'POST',
      `${n2.api}/v1/infer`,
      { model: 'tiny', inputs: { x: { dims: [1, 4], type: 'float32', data: [1, 0, 0, 1] } } },
      tokens[2],
    )
    assert.equal(tinyAnswer.status, 200, JSON.stringify(tinyAnswer.body))
    const y = (tinyAnswer.body.outputs as { y: { data: number[] } }).y.data
    assert.ok(Math.abs((y[0] ?? 0) + (y[1] ?? 0) - 1) < 1e-5, 'softmax output')

    // ---- a text model published with its tokenizer: completions from a gateway that never saw it ----
    // vocab "a", "b", one character of context: after "a" comes "b", after "b" comes "a"
    const flip = buildOnnxModel({
      name: 'flip',
      inputs: [{ name: 'input', dims: ['N', 2] }],
      outputs: [{ name: 'probabilities', dims: ['N', 2] }],
      initializers: [{ name: 'w', dims: [2, 2], data: Float32Array.from([0, 10, 10, 0]) }],
      nodes: [
        { op: 'MatMul', inputs: ['input', 'w'], outputs: ['logits'] },
        { op: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], attributes: { axis: 1 } },
      ],
    })
    await writeFile(join(dir, 'flip.onnx'), flip)
    const tokenizer = { cid: modelCid(flip), vocab: ['a', 'b'], context: 1, padding: 'a' }
    await writeFile(join(dir, 'flip.json'), JSON.stringify(tokenizer))
    const flipPublished = await runCli([
      'model',
      'publish',
      join(dir, 'flip.onnx'), // flip.json beside it is the tokenizer
      '--kind',
      'text',
      '--name',
      'flip',
      '--price',
      '1',
      '--node',
      n0.api,
      '--token',
      tokens[0] as string,
      '--json',
    ])
    assert.equal(flipPublished.code, 0, flipPublished.stderr)
    await waitFor('flip served by every worker', async () => (await modelWorkers(n2.api, 'flip')) === 4, 60_000)
    const flipped = await call(
      'POST',
      `${n2.api}/v1/completions`,
      { model: 'flip', prompt: 'A', max_tokens: 5 },
      tokens[2],
    )
    assert.equal(flipped.status, 200, JSON.stringify(flipped.body))
    assert.equal((flipped.body.choices as Array<{ text: string }>)[0]?.text, 'babab')

    // ---- text: an OpenAI-style completion through the network ----------------------------------------
    const completion = await call(
      'POST',
      `${n2.api}/v1/completions`,
      { model: 'chars-mlp', prompt: 'the sea', max_tokens: 6 },
      tokens[2],
    )
    assert.equal(completion.status, 200, JSON.stringify(completion.body))
    const choice = (completion.body.choices as Array<{ text: string }>)[0]
    assert.equal(choice?.text.length, 6)
    assert.match(choice?.text ?? '', /^[a-z ,.:]+$/)

    const streamed = await fetch(`${n1.api}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[1] as string}` },
      body: JSON.stringify({
        model: 'chars-mlp',
        messages: [{ role: 'user', content: 'the morning' }],
        max_tokens: 5,
        stream: true,
      }),
    })
    assert.equal(streamed.status, 200)
    assert.match(streamed.headers.get('content-type') ?? '', /text\/event-stream/)
    const events = (await streamed.text())
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6))
    assert.equal(events.at(-1), '[DONE]')
    const pieces = events
      .slice(0, -1)
      .map((e) => JSON.parse(e) as { choices: Array<{ delta: { content?: string }; finish_reason: string | null }> })
    assert.equal(pieces.map((p) => p.choices[0]?.delta.content ?? '').join('').length, 5, 'five streamed characters')
    assert.equal(pieces.at(-1)?.choices[0]?.finish_reason, 'length')
    const aiBlock = await call('POST', `${n1.api}/chat`, { prompt: 'waves', max_tokens: 4 }, tokens[1])
    assert.equal(aiBlock.status, 200, JSON.stringify(aiBlock.body))
    assert.equal((aiBlock.body.response as string).length, 4)
    const wrongKind = await call(
      'POST',
      `${n1.api}/v1/completions`,
      { model: 'digits-mlp', prompt: 'x', stream: true },
      tokens[1],
    )
    assert.equal(wrongKind.status, 400, 'a tensor model is refused before any stream starts')

    // ---- a worker killed mid-job: the clients never notice ------------------------------------------
    process.kill(n3.pid, 'SIGKILL')
    const slow = spawn(process.execPath, [BIN, '--home', n3.home, 'node', '--password-file', info.password, '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DONGHAE_UNSAFE_WORKER: 'slow:3000' },
    })
    extra.push(slow)
    await firstJsonLine(slow)
    await waitFor('the slow node3 serving models again', () => servingItself(n3), 60_000)
    await waitFor(
      'the slow node3 advertising again',
      async () => (await workers(n0.api)).length === 4 && (await modelWorkers(n0.api, 'digits-mlp')) === 4,
      60_000,
    )
    let slowLog0 = ''
    slow.stderr?.setEncoding('utf8').on('data', (c: string) => (slowLog0 = (slowLog0 + c).slice(-30_000)))
    // waves of 12 jobs through three gateways (more than the fast workers' slots, so some wait on
    // node3) until node3 holds some: killed while it holds jobs (each takes it 3 s)
    const burst: Array<(typeof rows)[number]> = []
    const inFlight: Array<Promise<Answer>> = []
    const busyOnSlow = async (): Promise<boolean> =>
      ((await getJson<{ worker: { paid: number } }>(`${n3.api}/v1/inference/stats`))?.worker.paid ?? 0) > 0
    await waitFor(
      'node3 running jobs of the burst',
      async () => {
        for (let i = 0; i < 12; i++) {
          const k = burst.length
          const r = rows[(k * 37) % rows.length] as (typeof rows)[number]
          burst.push(r)
          inFlight.push(
            call(
              'POST',
              `${[n0, n1, n2][k % 3]?.api ?? ''}/v1/infer`,
              { model: 'digits-mlp', inputs: jsonInput(r.pixels) },
              tokens[k % 3],
            ),
          )
        }
        for (let poll = 0; poll < 10; poll++) {
          if (await busyOnSlow()) return true
          await new Promise((resolve) => setTimeout(resolve, 150))
        }
        return false
      },
      40_000,
    ).catch(async (err: unknown) => {
      const stats = await Promise.all([n0, n1, n2].map((n) => getJson(`${n.api}/v1/inference/stats`)))
      t.diagnostic(`gateways' stats: ${JSON.stringify(stats).slice(0, 4_000)}`)
      t.diagnostic(`node3's log: ${slowLog0.slice(-8_000)}`)
      throw err
    })
    slow.kill('SIGKILL')
    const results = await Promise.all(inFlight)
    let retried = 0
    for (const [i, answer] of results.entries()) {
      assert.equal(answer.status, 200, `job ${i}: ${JSON.stringify(answer.body)}`)
      const direct = await runtime.run(cid, inputOf((burst[i] as (typeof burst)[number]).pixels))
      assert.equal((answer.body.receipt as { outputHash: string }).outputHash, toHex(hashTensorMap(direct.outputs)))
      assert.notEqual(answer.body.worker, n3.did, 'no answer came from the killed worker')
      if ((answer.body.attempts as number) > 1) retried++
    }
    t.diagnostic(`${retried} of ${burst.length} jobs were retried on another worker after node3 died`)
    assert.ok(retried > 0, 'some jobs were on node3 when it died, and were retried')
    await exited(slow)

    // ---- a gateway killed after dispatching: its workers settle their receipts themselves ----------
    const patient = Ed25519KeyPair.generate()
    const patientDid = didFromEd25519PublicKey(patient.publicKey)
    const topUp = await call('POST', `${n0.api}/v1/operator/transfer`, { to: patientDid, amount: '10000' }, tokens[0])
    assert.equal(topUp.status, 202, JSON.stringify(topUp.body))
    // node3 is down: every height now needs all three others, and its proposer turns time out first
    // (60 s, as the other waits after a kill here; the heights are printed if it is not enough)
    const threeHeights = async (): Promise<void> => {
      const heights = await Promise.all(
        [n0, n1, n2].map(async (n) => (await getJson<{ height: number }>(`${n.api}/v1/status`))?.height ?? -1),
      )
      t.diagnostic(`heights of node0..2: ${heights.join(', ')}`)
    }
    await waitFor('the second client funded', async () => (await balance(n2.api, patientDid)) === 10000n, 60_000).catch(
      async (err: unknown) => {
        await threeHeights()
        throw err
      },
    )
    const patientDeposit = await sendTx(n2.api, patient, 'inference.deposit', { gateway: n2.did, amount: 9000n })
    assert.equal(patientDeposit.status, 202, JSON.stringify(patientDeposit.body))
    await waitFor('its deposit with node2', async () => (await deposited(n2.api, patientDid)) === 9000n, 60_000).catch(
      async (err: unknown) => {
        await threeHeights()
        throw err
      },
    )
    // a deposit that many waves of jobs cannot exhaust: the scenario is a dead gateway, not a dry deposit
    const slowLogFile = join(n3.home, 'slow-node.log')
    const slowAgain = spawn(
      process.execPath,
      [BIN, '--home', n3.home, 'node', '--password-file', info.password, '--json', '--log-file', slowLogFile],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DONGHAE_UNSAFE_WORKER: 'slow:3000' },
      },
    )
    extra.push(slowAgain)
    let slowLog = ''
    slowAgain.stderr?.setEncoding('utf8').on('data', (c: string) => (slowLog = (slowLog + c).slice(-30_000)))
    await firstJsonLine(slowAgain)
    await waitFor('node3 serving models again', () => servingItself(n3), 60_000)
    await waitFor(
      'node3 serving again',
      async () => (await getJson(`${n3.api}/v1/inference/stats`)) !== undefined,
      60_000,
    )
    // waves of jobs through node2 until one is running on the slow node3 (3 s each)
    const orphans: SignedJob[] = []
    const orphaned: Array<Promise<unknown>> = []
    const busyOnNode3 = async (): Promise<boolean> =>
      ((await getJson<{ worker: { paid: number } }>(`${n3.api}/v1/inference/stats`))?.worker.paid ?? 0) > 0
    await waitFor(
      'node3 running jobs dispatched by node2',
      async () => {
        for (let i = 0; i < 6; i++) {
          const r = rows[(orphans.length * 11) % rows.length] as (typeof rows)[number]
          const job = signJobOf(patient, r.pixels, n2.did, Date.now() + 12_000)
          orphans.push(job)
          orphaned.push(
            call('POST', `${n2.api}/v1/infer`, {
              model: 'digits-mlp',
              inputs: jsonInput(r.pixels),
              job: jobToJson(job),
            }).catch(() => undefined),
          )
        }
        for (let poll = 0; poll < 10; poll++) {
          if (await busyOnNode3()) return true
          await new Promise((resolve) => setTimeout(resolve, 150))
        }
        return false
      },
      40_000,
    )
    // with node2 gone, 3 of 4 validators remain: all of them must vote, so node3 (restarted
    // above) must be in consensus before the kill, or the chain stalls until it catches up
    const heightOf = async (api: string): Promise<number> =>
      (await getJson<{ height: number }>(`${api}/v1/status`))?.height ?? -1
    await waitFor(
      'node3 caught up with node0',
      async () => (await heightOf(n3.api)) >= (await heightOf(n0.api)) - 1,
      60_000,
    )
    // node3 was down long enough to miss half a downtime window when blocks are quick: jailed,
    // it has no vote, and node0 and node1 alone are not more than 2/3. It asks to rejoin. It can
    // also be jailed after it came back, while it caught up (a slow machine): that is in state at
    // once, but the validator set drops it only at the next epoch edge, so its power in the set
    // says nothing yet. node2 is killed only once node3 votes and is not jailed: from then on every
    // commit needs node3's precommit, so downtime cannot jail it again.
    const stakeOf3 = async (): Promise<{ jailed: boolean; jailedUntil: number } | null | undefined> =>
      (await getJson<{ stake: { jailed: boolean; jailedUntil: number } | null }>(`${n0.api}/v1/accounts/${n3.did}`))
        ?.stake
    const votes3 = async (): Promise<boolean> =>
      (
        (await getJson<{ validators: Array<{ did: string; power: string }> }>(`${n0.api}/v1/status`))?.validators ?? []
      ).some((v) => v.did === n3.did && BigInt(v.power) > 0n)
    for (let unjails = 0; ;) {
      const stake3 = await stakeOf3()
      if (stake3?.jailed === true) {
        assert.ok(++unjails <= 3, 'node3 jailed again and again for downtime')
        await waitFor('node3 may unjail', async () => (await heightOf(n0.api)) >= stake3.jailedUntil, 60_000)
        const unjailed = await runCli([
          '--home',
          n3.home,
          'stake',
          'unjail',
          '--password-file',
          info.password,
          '--node',
          n0.api,
          '--wait',
        ])
        assert.equal(unjailed.code, 0, unjailed.stderr)
        t.diagnostic('node3 had been jailed for its downtime; it rejoined with `donghae stake unjail`')
        continue
      }
      if ((await votes3()) && (await stakeOf3())?.jailed !== true) break
      await waitFor(
        'node3 voting again (or jailed)',
        async () => (await votes3()) || (await stakeOf3())?.jailed === true,
        60_000,
      )
    }
    process.kill(n2.pid, 'SIGKILL')
    await Promise.all(orphaned)
    const settledBy = async (job: SignedJob): Promise<string | undefined> =>
      (await getJson<{ worker: string }>(`${n0.api}/v1/jobs/${jobIdHex(job)}/settlement`))?.worker
    await waitFor(
      'node3 settled, itself, the jobs the dead gateway dispatched to it',
      async () => (await Promise.all(orphans.map(settledBy))).some((w) => w === n3.did),
      60_000,
    ).catch(async (err: unknown) => {
      const heights = await Promise.all([n0, n1, n3].map((n) => heightOf(n.api)))
      t.diagnostic(`heights of node0, node1, node3: ${heights.join(', ')}`)
      const orphanSettlements = await Promise.all(orphans.map(settledBy))
      t.diagnostic(
        `orphans: ${orphans.length}, settled with worker: ${orphanSettlements.map((w) => w?.slice(-6) ?? '-').join(' ')}`,
      )
      t.diagnostic(
        `node3's worker: ${JSON.stringify((await getJson<{ worker: unknown }>(`${n3.api}/v1/inference/stats`))?.worker)}`,
      )
      const log = (await readFile(slowLogFile, 'utf8').catch(() => '')) + slowLog
      const lines = log.split('\n').filter((l) => /settl|receipt|"level":[45]0/.test(l))
      t.diagnostic(`node3's log (settlement lines, warnings, errors): ${lines.slice(-40).join('\n').slice(-8_000)}`)
      throw err
    })
    const selfSettled = (await Promise.all(orphans.map(settledBy))).filter((w) => w === n3.did).length
    t.diagnostic(`node3 settled ${selfSettled} receipts whose gateway (node2) was killed after dispatching them`)
    // node2 comes back: its journal still holds what it had accepted, and it settles those too
    const n2Again = spawn(
      process.execPath,
      [BIN, '--home', n2.home, 'node', '--password-file', info.password, '--json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    extra.push(n2Again)
    await firstJsonLine(n2Again)
    slowAgain.kill('SIGKILL')
    await exited(slowAgain)
    await waitFor(
      'node2 serving again',
      async () => (await modelWorkers(n2.api, 'digits-mlp')) !== undefined && (await workers(n2.api)).length === 4,
      60_000,
    )

    // ---- a cheating worker is audited, out-voted and slashed ----------------------------------------
    const cheater = spawn(
      process.execPath,
      [BIN, '--home', n3.home, 'node', '--password-file', info.password, '--json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DONGHAE_UNSAFE_WORKER: 'cheat:0.5' },
      },
    )
    extra.push(cheater)
    await firstJsonLine(cheater)
    await waitFor('the cheater serving models', () => servingItself(n3), 60_000)
    const bondBefore = BigInt((await workers(n0.api)).find((w) => w.did === n3.did)?.bonded ?? '0')
    let sent = 0
    let servedByCheater = 0
    const failures = new Map<string, number>()
    const slashedWithin = waitFor(
      'the cheater slashed',
      async () => {
        const batch = await Promise.all(
          // 16 at once: more than the gateway's own two slots, so every worker gets jobs
          Array.from({ length: 16 }, (_, i) => {
            const r = rows[(sent + i) % rows.length] as (typeof rows)[number]
            return call('POST', `${n0.api}/v1/infer`, { model: 'digits-mlp', inputs: jsonInput(r.pixels) }, tokens[0])
          }),
        )
        sent += batch.length
        servedByCheater += batch.filter((a) => a.body.worker === n3.did).length
        for (const a of batch.filter((x) => x.status !== 200)) {
          const key = `${a.status} ${(a.body.error as { code?: string } | undefined)?.code ?? ''}`
          failures.set(key, (failures.get(key) ?? 0) + 1)
        }
        const w = (await workers(n0.api)).find((x) => x.did === n3.did)
        if ((w?.slashes ?? 0) > 0) return true
        // the bound is in jobs, not seconds: a slow machine only takes longer to get there
        assert.ok(servedByCheater <= 200, `the cheater served ${servedByCheater} jobs and was not slashed`)
        return false
      },
      240_000,
    )
    await slashedWithin.catch(async (err: unknown) => {
      // what the market looked like when the cheater got away: for the next person reading a CI log
      const stats = await Promise.all([n0, n1, n2].map((n) => getJson(`${n.api}/v1/inference/stats`)))
      t.diagnostic(
        JSON.stringify({
          sent,
          servedByCheater,
          failures: Object.fromEntries(failures),
          workers: await workers(n0.api),
          stats,
        }),
      )
      throw err
    })
    const after = await workers(n0.api)
    const slashed = after.find((w) => w.did === n3.did) as WorkerJson
    t.diagnostic(
      `cheater slashed after serving ${servedByCheater} of ${sent} jobs; bond ${bondBefore} → ${slashed.bonded}`,
    )
    assert.ok(BigInt(slashed.bonded) < bondBefore, 'the bond was cut')
    // the slash reset its streak; audits of its earlier honest results may have passed since
    assert.ok(slashed.streak < 10, `streak ${slashed.streak} was reset`)
    assert.equal(slashed.quarantined, true)
    for (const honest of [n0, n1, n2]) {
      const w = after.find((x) => x.did === honest.did) as WorkerJson
      assert.equal(w.slashes, 0, `honest ${honest.node} was never slashed`)
    }
    // The gateway that caught it counted the dispute: usually node0 (the cheater's own jobs), but
    // the cheater may first be drawn as the auditor of an earlier job held by node1 or node2.
    const disputes = await Promise.all(
      [n0, n1, n2].map(async (n) => {
        const text = await (await fetch(`${n.api}/metrics`)).text()
        return [...text.matchAll(/^donghae_audits_total\{result="(?:dispute|fail)"\} (\d+)$/gm)].reduce(
          (sum, m) => sum + Number(m[1]),
          0,
        )
      }),
    )
    t.diagnostic(`failed or disputed audits counted by node0..2: ${disputes.join(', ')}`)
    assert.ok(
      disputes.some((n) => n > 0),
      'a gateway counted the failed audit in donghae_audits_total',
    )
  } catch (err) {
    t.diagnostic(stderr().slice(-3000))
    throw err
  } finally {
    await runtime.close()
    for (const child of extra) child.kill('SIGTERM')
    devnet.kill('SIGINT')
    await Promise.all([exited(devnet), ...extra.map(exited)])
    await rm(dir, { recursive: true, force: true })
  }
})
