// The demo language model on a 4-process devnet over real libp2p sockets, driven by the official
// `openai` npm client:
//  - a chat completion streams through a gateway from a remote worker; the same seed gives the
//    same text twice; usage counts tokens; the receipt (one job) verifies and is settled on chain;
//  - settled generations are audited by teacher forcing and pass;
//  - bad requests (unknown parameter, prompt longer than the context window, n > 1) are refused
//    with 400 and charge nothing;
//  - a worker restarted to swap one output token of every generation it runs (paid jobs and the
//    audits it is drawn for) is caught, out-voted and slashed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { BIN } from '../helpers/cli.ts'
import { createRng, testSeed } from '../helpers/random.ts'
import { waitFor } from '../helpers/chain-net.ts'
import { exited, firstJsonLine, getJson, spawnDevnet } from '../helpers/processes.ts'
import { verifyReceiptJson } from '../../src/api/receipts.ts'
import type { ReceiptJson } from '../../src/inference/job.ts'
import { DEMO_LM_DIR, DEMO_LM_NAME, DEMO_MODELS_DIR } from '../../src/inference/demo-models.ts'
import { buildOnnxModel } from '../../src/inference/onnx-export.ts'
import { MODEL_MEMORY_FACTOR } from '../../src/inference/models.ts'
import { unixfsCid } from '../../src/core/cid.ts'

process.env.DONGHAE_API_RATE_LIMIT = '1000000'

interface DevnetInfo {
  dir: string
  password: string
  nodes: Array<{ node: string; did: string; api: string; home: string; pid: number }>
}

interface WorkerJson {
  did: string
  bonded: string
  slashes: number
  auditsPassed: number
  auditsFailed: number
}

async function workers(api: string): Promise<WorkerJson[]> {
  return (await getJson<{ workers: WorkerJson[] }>(`${api}/v1/inference/workers`))?.workers ?? []
}

async function modelWorkers(api: string, model: string): Promise<number> {
  return (
    (await getJson<{ data: Array<{ id: string; workers: number }> }>(`${api}/v1/models`))?.data.find(
      (m) => m.id === model,
    )?.workers ?? 0
  )
}

/** A linear model of `weights` float32 weights ([1000] → [weights / 1000]), for memory bounds. */
function bigModel(weights: number): Uint8Array {
  const out = weights / 1000
  return buildOnnxModel({
    name: 'big-linear',
    inputs: [{ name: 'input', dims: [1, 1000] }],
    outputs: [{ name: 'output', dims: [1, out] }],
    initializers: [{ name: 'w', dims: [1000, out], data: new Float32Array(weights).fill(0.001) }],
    nodes: [{ op: 'MatMul', inputs: ['input', 'w'], outputs: ['output'] }],
  })
}

interface Donghae {
  worker?: string
  workers: string[]
  receipt?: Record<string, unknown> & { jobId: string; fee: string; usage?: { prompt: number; output: number } }
}

/** Streams one chat completion; returns its text, the number of content chunks and the Donghae extra. */
async function streamChat(
  client: OpenAI,
  body: { content: string; seed?: number; maxTokens?: number; temperature?: number },
): Promise<{ text: string; chunks: number; finish: string | null; donghae: Donghae; usage?: OpenAI.CompletionUsage }> {
  const stream = await client.chat.completions.create({
    model: DEMO_LM_NAME,
    messages: [{ role: 'user', content: body.content }],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: body.maxTokens ?? 24,
    temperature: body.temperature ?? 0.8,
    ...(body.seed === undefined ? {} : { seed: body.seed }),
  })
  let text = ''
  let chunks = 0
  let finish: string | null = null
  let donghae: Donghae | undefined
  let usage: OpenAI.CompletionUsage | undefined
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta.content
    if (delta !== undefined && delta !== null && delta.length > 0) {
      text += delta
      chunks++
    }
    finish = chunk.choices[0]?.finish_reason ?? finish
    const extra = (chunk as unknown as { donghae?: Donghae }).donghae
    if (extra !== undefined) donghae = extra
    if (chunk.usage !== undefined && chunk.usage !== null) usage = chunk.usage
  }
  assert.ok(donghae !== undefined, 'the last chunk carries the receipt')
  return { text, chunks, finish, donghae, ...(usage === undefined ? {} : { usage }) }
}

test('the demo language model on a 4-process devnet: openai client streaming, seeds, receipts, audits, cheater slashed', async (t) => {
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-lm-'))
  const base = 27_500 + rng.int(0, 200) * 8
  // each worker holds just the demo models (the language model's graph × MODEL_MEMORY_FACTOR and
  // some room): a model of more than half that budget cannot be held by anyone
  const lmBytes = (await stat(join(DEMO_MODELS_DIR, DEMO_LM_DIR, 'model.onnx'))).size
  const budgetMiB = Math.ceil((lmBytes * MODEL_MEMORY_FACTOR) / 2 ** 20) + 2
  const { child: devnet, stderr } = spawnDevnet(dir, 4, base, {
    ...process.env,
    DONGHAE_WORKER_MEMORY: String(budgetMiB),
  })
  const extra: ChildProcess[] = []
  try {
    const info = (await firstJsonLine(devnet)) as DevnetInfo
    const [n0, , , n3] = info.nodes as [DevnetInfo['nodes'][number], unknown, unknown, DevnetInfo['nodes'][number]]
    const token = (await readFile(join(n0.home, 'api-token'), 'utf8')).trim()
    await waitFor(
      `${DEMO_LM_NAME} served by the 4 workers`,
      async () => (await modelWorkers(n0.api, DEMO_LM_NAME)) === 4,
      120_000,
    )
    const client = new OpenAI({ baseURL: `${n0.api}/v1`, apiKey: token, maxRetries: 0, timeout: 60_000 })

    // ---- streaming from a remote worker; the same seed twice gives the same text -------------------
    let remote: Awaited<ReturnType<typeof streamChat>> | undefined
    for (let i = 0; i < 12 && remote === undefined; i++) {
      const answer = await streamChat(client, { content: 'Tell me of the white whale.', seed: 42, maxTokens: 120 })
      if (answer.donghae.worker !== undefined && answer.donghae.worker !== n0.did) remote = answer
    }
    assert.ok(remote !== undefined, 'a generation ran on another process than the gateway')
    assert.ok(remote.chunks > 1, `tokens streamed as they came (${remote.chunks} chunks)`)
    assert.ok(remote.text.length > 0)
    t.diagnostic(`remote generation: ${JSON.stringify(remote.text)} by ${remote.donghae.worker?.slice(-8)}`)
    const again = await streamChat(client, { content: 'Tell me of the white whale.', seed: 42, maxTokens: 120 })
    assert.equal(again.text, remote.text, 'the same request with the same seed gives the same text')
    assert.ok(remote.usage !== undefined && remote.usage.completion_tokens > 0 && remote.usage.prompt_tokens > 0)

    // ---- the receipt verifies, charges tokens, and is settled on chain ----------------------------
    const receipt = remote.donghae.receipt
    assert.ok(receipt !== undefined, 'one job, one receipt')
    assert.deepEqual(await verifyReceiptJson(receipt as unknown as ReceiptJson), { valid: true })
    assert.equal(receipt.usage?.output, remote.usage?.completion_tokens)
    assert.equal(receipt.usage?.prompt, remote.usage?.prompt_tokens)
    await waitFor(
      'the generation settled on chain',
      async () => (await getJson(`${n0.api}/v1/jobs/${receipt.jobId}/settlement`)) !== undefined,
      60_000,
    )

    // ---- audited by teacher forcing, and passed ----------------------------------------------------
    await waitFor(
      'a generation audited by teacher forcing and passed',
      async () => (await workers(n0.api)).reduce((sum, w) => sum + w.auditsPassed, 0) > 0,
      90_000,
    )
    assert.equal(
      (await workers(n0.api)).reduce((sum, w) => sum + w.auditsFailed, 0),
      0,
      'no honest generation failed its audit',
    )

    // ---- bad requests: 400, nothing charged -------------------------------------------------------
    const stats = async (): Promise<{ jobs: number; failures: number }> => {
      const s = await getJson<{ jobs: number; failures: number }>(`${n0.api}/v1/inference/stats`)
      return { jobs: s?.jobs ?? -1, failures: s?.failures ?? -1 }
    }
    const before = await stats()
    const refusedWith = async (body: Record<string, unknown>, pattern: RegExp): Promise<void> => {
      await assert.rejects(
        client.chat.completions.create({
          model: DEMO_LM_NAME,
          messages: [{ role: 'user', content: 'hello' }],
          ...body,
        } as never),
        (err: unknown) => err instanceof OpenAI.APIError && err.status === 400 && pattern.test(err.message),
      )
    }
    await refusedWith({ frobnicate: 1 }, /frobnicate/)
    await refusedWith({ n: 2 }, /\bn\b/)
    await refusedWith({ top_p: 7 }, /top_p/)
    await refusedWith({ messages: [{ role: 'user', content: 'whale '.repeat(2_000) }] }, /context window/)
    assert.deepEqual(await stats(), before, 'no job was run or charged for a refused request')

    // a model folder without a tokenizer is refused at publishing, naming what is missing
    const bare = join(dir, 'no-tokenizer')
    await mkdir(bare)
    await copyFile(join(DEMO_MODELS_DIR, DEMO_LM_DIR, 'model.onnx'), join(bare, 'model.onnx'))
    const publish = async (
      body: Record<string, unknown>,
    ): Promise<{ status: number; body: { error?: { message?: string } } }> => {
      const res = await fetch(`${n0.api}/v1/operator/models`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(body),
      })
      return { status: res.status, body: (await res.json()) as { error?: { message?: string } } }
    }
    const noTokenizer = await publish({ name: 'bare-lm', price: '1', kind: 'lm', dir: bare })
    assert.equal(noTokenizer.status, 400, JSON.stringify(noTokenizer.body))
    assert.match(noTokenizer.body.error?.message ?? '', /tokenizer\.json/)

    // a model no worker can hold in memory: refused with a clear error, nothing charged
    const big = bigModel(Math.ceil((budgetMiB * 2 ** 20) / MODEL_MEMORY_FACTOR / 4 / 1000 + 1) * 1000)
    const bigCid = (await unixfsCid(big)).toString()
    const published = await publish({ name: 'big-linear', price: '3', file: Buffer.from(big).toString('base64') })
    assert.equal(published.status, 202, JSON.stringify(published.body))
    await waitFor(
      'big-linear registered',
      async () =>
        (await getJson<{ data: Array<{ cid: string }> }>(`${n0.api}/v1/models`))?.data.some((m) => m.cid === bigCid) ===
        true,
      30_000,
    )
    const before2 = await stats()
    const tooLarge = await fetch(`${n0.api}/v1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        model: 'big-linear',
        inputs: { input: { dims: [1, 1000], type: 'float32', data: Array.from({ length: 1000 }, () => 0.5) } },
      }),
    })
    const tooLargeBody = (await tooLarge.json()) as { error?: { message?: string; reason?: string } }
    assert.equal(tooLarge.status, 503, JSON.stringify(tooLargeBody))
    assert.match(tooLargeBody.error?.message ?? '', /no worker can hold big-linear in memory/)
    assert.equal((await stats()).jobs, before2.jobs, 'no job ran')

    // ---- a worker that swaps one output token is caught and slashed ------------------------------
    process.kill(n3.pid, 'SIGKILL')
    const cheater = spawn(
      process.execPath,
      [BIN, '--home', n3.home, 'node', '--password-file', info.password, '--json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DONGHAE_UNSAFE_WORKER: 'cheat:1' },
      },
    )
    extra.push(cheater)
    await firstJsonLine(cheater)
    let byCheater = 0
    await waitFor(
      'the cheater slashed',
      async () => {
        const answer = await streamChat(client, { content: `And the ship? ${byCheater}`, temperature: 0 }).catch(
          () => undefined,
        )
        if (answer?.donghae.worker === n3.did) byCheater++
        return ((await workers(n0.api)).find((w) => w.did === n3.did)?.slashes ?? 0) > 0
      },
      180_000,
    )
    // it is caught either on a generation it served (audited by teacher forcing) or on an audit it
    // was drawn for (it swaps a token there too, and the quorum out-votes it): both are its lies
    t.diagnostic(`the cheater served ${byCheater} of this test's generations before it was slashed`)
    const honest = (await workers(n0.api)).filter((w) => w.did !== n3.did)
    assert.ok(
      honest.every((w) => w.slashes === 0),
      'no honest worker was slashed',
    )
  } catch (err) {
    t.diagnostic(`devnet stderr: ${stderr().slice(-6_000)}`)
    throw err
  } finally {
    for (const child of extra) child.kill('SIGKILL')
    devnet.kill('SIGINT')
    await exited(devnet)
    await Promise.all(extra.map(exited))
    await rm(dir, { recursive: true, force: true })
  }
})
