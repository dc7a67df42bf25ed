/**
 * AI-Block end to end, on the demo family (models/moe/: 2 layers × 8 experts, top-2, d 64):
 *  - moe-distributed-tokens-per-second: a 4-process devnet over loopback libp2p; generations of
 *    64 tokens through node0 with the experts on their hosts (`use_distributed`), ÷ the same
 *    generations with every expert in node0's process (the baseline, same gateway, same run).
 *    `timing` says where the time goes: the trunk and routers in the gateway vs waiting for
 *    experts (two remote round trips per token, one per layer, on loopback sessions).
 *  - moe-pol-verification-ms: what a validator spends per proposed expert block, in process:
 *    parse and check the payload, score the baseline and the candidate on the MetaBlock's
 *    validation set (16 windows × 64 tokens). Baseline: the miner's own claim (one scoring).
 *
 *   node bench/run.ts --only moe-
 */
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { readDemoMoe } from '../src/experts/demo.ts'
import { evaluateModel, parseValidationTokens } from '../src/experts/model/evaluate.ts'
import { StaticExperts } from '../src/experts/model/local.ts'
import { parseExpert, parseRouter, parseTrunk, type ExpertWeights } from '../src/experts/model/weights.ts'
import { line, type BenchLine } from './harness.ts'
import { startDevnet } from './devnet.bench.ts'

export const MOE_BENCH_NAMES = ['moe-distributed-tokens-per-second', 'moe-pol-verification-ms']

interface ChatJson {
  outputTokens: number
  elapsedMs: number
  masked: number
  timing?: { trunkMs: number; expertMs: number }
}

async function polBench(rounds: number): Promise<BenchLine> {
  const moe = await readDemoMoe()
  const arch = moe.meta.arch
  const trunk = parseTrunk(arch, moe.trunk)
  const routers = moe.routers.map((r) => parseRouter(arch, r))
  const tokens = parseValidationTokens(moe.validation, arch.vocabSize)
  const { windows, windowTokens } = moe.meta.validation
  const experts = new Map<string, ExpertWeights>()
  moe.experts.forEach((row, l) => row.forEach((b, j) => experts.set(`layer${l}.expert${j}`, parseExpert(arch, b))))
  const score = (map: Map<string, ExpertWeights>) =>
    evaluateModel({ arch, trunk, routers, provider: new StaticExperts(map), tokens, windows, windowTokens })
  const claims: number[] = []
  const verifications: number[] = []
  for (let r = 0; r < rounds; r++) {
    let start = performance.now()
    await score(experts)
    claims.push(performance.now() - start)
    start = performance.now()
    const candidate = new Map(experts)
    candidate.set(`layer${moe.pol.layer}.expert${moe.pol.expert}`, parseExpert(arch, moe.pol.improved))
    await score(experts)
    await score(candidate)
    verifications.push(performance.now() - start)
  }
  return line({
    bench: 'moe-pol-verification-ms',
    impl: `parse + baseline + candidate on ${windows}×${windowTokens} validation tokens`,
    value: Math.min(...verifications),
    unit: 'ms per proposed block',
    baseline: { impl: 'the miner scoring its claim once', value: Math.min(...claims) },
    rounds: verifications,
  })
}

async function json<T>(url: string, init?: RequestInit): Promise<T | undefined> {
  try {
    const res = await fetch(url, init)
    return res.ok ? ((await res.json()) as T) : undefined
  } catch {
    return undefined
  }
}

async function distributedBench(rounds: number, maxTokens: number): Promise<BenchLine> {
  const {
    dir,
    devnet,
    info: started,
  } = await startDevnet('donghae-bench-moe-', 12_000 + Math.floor(Math.random() * 400) * 8)
  try {
    const info = await started
    const n0 = info.nodes[0] as { api: string; home: string }
    const token = (await readFile(join(n0.home, 'api-token'), 'utf8')).trim()
    const chat = (distributed: boolean, seed: number) =>
      json<ChatJson>(`${n0.api}/v1/experts/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          prompt: 'Call me Ishmael.',
          max_tokens: maxTokens,
          temperature: 0.8,
          seed,
          use_distributed: distributed,
        }),
      })
    // wait for the network (hosts answer) and warm both paths
    for (let i = 0; i < 60; i++) {
      const a = await chat(true, 0)
      if (a !== undefined && a.masked === 0) break
      await new Promise((r) => setTimeout(r, 500))
    }
    await chat(false, 0)
    const dist: number[] = []
    const local: number[] = []
    let trunk = 0
    let expert = 0
    for (let r = 0; r < rounds; r++) {
      const d = await chat(true, r + 1)
      const l = await chat(false, r + 1)
      if (d === undefined || l === undefined) throw new Error('a generation failed')
      dist.push((d.outputTokens * 1000) / d.elapsedMs)
      local.push((l.outputTokens * 1000) / l.elapsedMs)
      trunk += d.timing?.trunkMs ?? 0
      expert += d.timing?.expertMs ?? 0
    }
    const share = Math.round((100 * expert) / Math.max(1, trunk + expert))
    return line({
      bench: 'moe-distributed-tokens-per-second',
      impl: `4-process devnet, experts on their hosts (${share}% of the time waiting for experts)`,
      value: Math.max(...dist),
      unit: 'tokens/s',
      baseline: { impl: 'every expert in the gateway process', value: Math.max(...local) },
      rounds: dist,
    })
  } finally {
    devnet.kill('SIGTERM')
    await new Promise((r) => (devnet.exitCode !== null ? r(undefined) : devnet.once('exit', r)))
    await rm(dir, { recursive: true, force: true })
  }
}

export async function moeBenches(quick = false): Promise<BenchLine[]> {
  return [await polBench(quick ? 1 : 3), await distributedBench(quick ? 1 : 5, quick ? 16 : 64)]
}
