// Idle-time training comes after inference (seed 001 §6): a one-node devnet started with
// expertTraining=true fine-tunes its hosted experts with the built-in trainer whenever no
// generation has run for 2 s. Generations sent while it trains must be as fast as generations
// sent while it does not (within 50 ms at the median), the trainer must record that it paused
// within 50 ms whenever a generation found it mid-unit, and training must make progress between them. `propose --train`
// through the API trains one expert on the demo training set and proposes it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createRng, testSeed } from '../helpers/random.ts'
import { waitFor } from '../helpers/chain-net.ts'
import { exited, firstJsonLine, getJson, spawnDevnet } from '../helpers/processes.ts'

process.env.DONGHAE_API_RATE_LIMIT = '1000000'

interface TrainingJson {
  enabled: boolean
  running: boolean
  rounds: number
  steps: number
  paused: number
  lastYieldMs: number | null
  maxYieldMs: number
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

test('idle-time expert training yields to generations within 50 ms, and --train proposes a trained expert', async (t) => {
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-train-'))
  const base = 30_800 + rng.int(0, 150) * 8
  const { child: devnet, stderr } = spawnDevnet(dir, 1, base, { ...process.env, DONGHAE_EXPERT_TRAINING: 'true' })
  try {
    const info = (await firstJsonLine(devnet)) as { nodes: Array<{ api: string; home: string }> }
    const n0 = info.nodes[0] as { api: string; home: string }
    const token = (await readFile(join(n0.home, 'api-token'), 'utf8')).trim()
    const training = async (): Promise<TrainingJson> =>
      (await getJson<TrainingJson>(`${n0.api}/v1/experts/training`)) as TrainingJson
    const chat = async (): Promise<number> => {
      const started = performance.now()
      const res = await fetch(`${n0.api}/v1/experts/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'Call me Ishmael.', max_tokens: 4 }),
      })
      assert.equal(res.status, 200, await res.text())
      await res.arrayBuffer().catch(() => undefined)
      return performance.now() - started
    }
    await waitFor(
      'the node answers',
      async () => (await getJson(`${n0.api}/v1/experts/families`)) !== undefined,
      60_000,
    )
    assert.equal((await training()).enabled, true)

    // generations back to back: the node never idles 2 s, so no training round starts
    await chat()
    const quiet: number[] = []
    for (let i = 0; i < 9; i++) {
      const before = await training()
      const ms = await chat()
      if (!before.running) quiet.push(ms)
    }
    assert.ok(quiet.length >= 5, 'generations measured while the trainer was idle')

    // now let it train, and send a generation each time it is in the middle of a round
    const busy: number[] = []
    let rounds = 0
    for (let i = 0; i < 6; i++) {
      await waitFor('a training round running', async () => (await training()).running, 60_000)
      busy.push(await chat())
      rounds = (await training()).rounds
    }
    const after = await training()
    t.diagnostic(
      `generation latency p50: ${median(quiet).toFixed(1)} ms idle vs ${median(busy).toFixed(1)} ms while training; ` +
        `trainer paused ${after.paused} times, worst ${after.maxYieldMs} ms; ${rounds} rounds`,
    )
    // a short generation may run whole between two of the trainer's units; the others pause it
    assert.ok(after.paused >= 1, `the trainer paused for generations (${after.paused} times)`)
    assert.ok(after.maxYieldMs < 50, `the trainer paused within 50 ms of a generation (worst ${after.maxYieldMs} ms)`)
    assert.ok(
      median(busy) - median(quiet) < 50,
      `a generation during training costs < 50 ms more (${median(busy).toFixed(1)} vs ${median(quiet).toFixed(1)} ms)`,
    )
    await waitFor('a training round completes', async () => (await training()).rounds > 0, 120_000)

    // propose --train: the node trains layer1.expert2 on the demo training set and proposes it
    const res = await fetch(`${n0.api}/v1/operator/experts/propose`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ expert: 'layer1.expert2', train: { steps: 3 } }),
    })
    const lines = (await res.text()).split('\n').filter((l) => l.startsWith('data: {'))
    const messages = lines.map((l) => JSON.parse(l.slice(6)) as { progress?: string; result?: { proposal: string } })
    assert.ok(
      messages.some((m) => m.progress?.startsWith('step 3/3') === true),
      `training progress was streamed: ${lines.slice(0, 5).join(' | ')}`,
    )
    const proposal = messages.find((m) => m.result !== undefined)?.result?.proposal
    assert.ok(proposal !== undefined, lines.join('\n').slice(-400))
    let decided: { status: string; reason: string } | undefined
    await waitFor(
      'the trained proposal is decided by the validator',
      async () => {
        decided = await getJson<{ status: string; reason: string }>(`${n0.api}/v1/experts/proposals/${proposal}`)
        return decided !== undefined && decided.status !== 'pending'
      },
      90_000,
    )
    t.diagnostic(`--train proposal: ${decided?.status} ${decided?.reason ?? ''}`)
    assert.ok(
      decided?.status === 'accepted' || decided?.reason === 'no-improvement',
      `an honest trained expert is accepted or refused for not improving enough, never as forged: ${JSON.stringify(decided)}`,
    )
  } catch (err) {
    t.diagnostic(stderr().slice(-3_000))
    throw err
  } finally {
    devnet.kill('SIGTERM')
    await exited(devnet)
    await rm(dir, { recursive: true, force: true })
  }
})
