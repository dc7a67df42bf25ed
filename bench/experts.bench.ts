/**
 * AI-Block's local MoE runtime (src/experts/model/), on a random model of 4 layers × 8 experts,
 * top-2, d 128, SwiGLU dFf 256 (each expert 384 KiB of float32; the 32 experts 12 MiB):
 *  - experts-memory-ratio: the peak resident expert memory of a generation through `LocalExperts`
 *    with a budget of top-k experts per layer (2 × 4 = 8 of the 32) ÷ every expert loaded (the
 *    baseline: a budget that holds all 32). The cost sits beside it: misses, evictions and
 *    tokens/s of each (a miss reads the payload from the in-memory store and parses it).
 *  - experts-local-tokens-per-second: tokens/s of `MoeEngine` with every expert resident (warm),
 *    best round, and the share of time in the trunk vs the experts.
 * Baselines are measured in the same run.
 *
 *   node bench/run.ts --only experts-
 */
import { performance } from 'node:perf_hooks'
import { randomMoe, type RandomMoe } from '../test/helpers/moe.ts'
import { MoeEngine, type MoeGeneration } from '../src/experts/model/engine.ts'
import { LocalExperts } from '../src/experts/model/local.ts'
import { expertBytes } from '../src/experts/model/weights.ts'
import type { MoeArchitecture } from '../src/experts/types.ts'
import { line, type BenchLine } from './harness.ts'

export const EXPERTS_BENCH_NAMES = ['experts-memory-ratio', 'experts-local-tokens-per-second']

const ARCH: MoeArchitecture = {
  vocabSize: 512,
  dModel: 128,
  nLayers: 4,
  nHeads: 8,
  nKvHeads: 4,
  dFf: 256,
  contextLength: 256,
  ropeTheta: 10000,
  normEpsE9: 10000,
  expertsPerLayer: 8,
  topK: 2,
  gating: 'softmax-topk-renorm',
  ffn: 'swiglu',
  tieEmbeddings: false,
}
const PROMPT = Array.from({ length: 16 }, (_, i) => (i * 37 + 11) % ARCH.vocabSize)
const SAMPLER = { temperatureMilli: 800, topPMilli: 950, topK: 40, seed: 1851n }

function provider(m: RandomMoe, experts: number): LocalExperts {
  return new LocalExperts({
    arch: m.arch,
    budgetBytes: experts * expertBytes(m.arch),
    load: async (block) => m.store.get(block)!,
  })
}

async function generate(m: RandomMoe, p: LocalExperts, tokens: number): Promise<{ g: MoeGeneration; ms: number }> {
  const engine = new MoeEngine(m.arch, m.trunk, m.routers, p)
  const start = performance.now()
  const g = await engine.generate(PROMPT, { maxTokens: tokens, sampler: SAMPLER })
  return { g, ms: performance.now() - start }
}

export async function expertsBenches(quick = false): Promise<BenchLine[]> {
  const m = randomMoe(ARCH, 2024)
  const tokens = quick ? 16 : 128
  const rounds = quick ? 2 : 5
  const total = ARCH.nLayers * ARCH.expertsPerLayer
  const budgetExperts = ARCH.topK * ARCH.nLayers
  const one = expertBytes(ARCH)
  const out: BenchLine[] = []

  // (a) memory: a budget of top-k per layer vs every expert resident; fresh caches each round
  const tight: Array<{ rate: number; peak: number; misses: number; hits: number; evictions: number }> = []
  const full: Array<{ rate: number; peak: number; misses: number; hits: number }> = []
  await generate(m, provider(m, total), 4) // warm-up (JIT)
  for (let r = 0; r < rounds; r++) {
    const pt = provider(m, budgetExperts)
    const t = await generate(m, pt, tokens)
    const st = pt.stats()
    tight.push({
      rate: t.g.ids.length / (t.ms / 1000),
      peak: st.peakResidentBytes,
      misses: st.misses,
      hits: st.hits,
      evictions: st.evictions,
    })
    const pf = provider(m, total)
    await pf.prefetch(m.blocks.flat())
    const f = await generate(m, pf, tokens)
    const sf = pf.stats()
    full.push({ rate: f.g.ids.length / (f.ms / 1000), peak: sf.peakResidentBytes, misses: sf.misses, hits: sf.hits })
    if (t.g.ids.join() !== f.g.ids.join()) throw new Error('the budgeted generation differs from the full one')
  }
  const kib = (b: number): number => b / 1024
  const peakTight = Math.max(...tight.map((t) => t.peak))
  const peakFull = Math.max(...full.map((f) => f.peak))
  const routings = tokens + PROMPT.length - 1
  out.push({
    ...line({
      bench: 'experts-memory-ratio',
      impl: `peak resident expert memory of a ${tokens}-token generation through LocalExperts with a budget of ${budgetExperts} experts (top-${ARCH.topK} of ${ARCH.expertsPerLayer} per layer, ${ARCH.nLayers} layers)`,
      value: kib(peakTight),
      unit: 'KiB',
      baseline: { impl: `every expert loaded (${total} × ${kib(one)} KiB)`, value: kib(peakFull) },
      rounds: tight.map((t) => kib(t.peak)),
    }),
    budgeted: {
      tokensPerSecond: Math.round(Math.max(...tight.map((t) => t.rate))),
      misses: tight[0]!.misses,
      hits: tight[0]!.hits,
      evictions: tight[0]!.evictions,
      expertCallsPerLayerAndRow: ARCH.topK,
      tokenRoutings: routings * ARCH.topK * ARCH.nLayers,
    },
    allLoaded: {
      tokensPerSecond: Math.round(Math.max(...full.map((f) => f.rate))),
      misses: full[0]!.misses,
      hits: full[0]!.hits,
    },
  } as BenchLine)

  // (b) tokens per second, every expert resident
  const warm = provider(m, total)
  await warm.prefetch(m.blocks.flat())
  const rates: number[] = []
  let last: MoeGeneration | undefined
  for (let r = 0; r < rounds; r++) {
    const t = await generate(m, warm, tokens)
    rates.push(t.g.ids.length / (t.ms / 1000))
    last = t.g
  }
  const routing = last!.routing
  out.push({
    ...line({
      bench: 'experts-local-tokens-per-second',
      impl: `MoeEngine + LocalExperts (all ${total} experts resident), ${tokens} tokens after a ${PROMPT.length}-token prompt, d ${ARCH.dModel}, ${ARCH.nLayers} layers, top-${ARCH.topK} of ${ARCH.expertsPerLayer}, best round`,
      value: Math.max(...rates),
      unit: 'tokens/s',
      rounds: rates,
    }),
    trunkShare: Number((routing.trunkMs / (routing.trunkMs + routing.expertMs)).toFixed(3)),
  } as BenchLine)
  return out
}

if (import.meta.main) {
  for (const l of await expertsBenches(process.argv.includes('--quick'))) process.stdout.write(`${JSON.stringify(l)}\n`)
}
