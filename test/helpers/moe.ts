/**
 * A small random Mixture-of-Experts model for tests: the trunk, routers and experts as
 * safetensors bytes (as the content store holds them) and parsed, built from a seeded PRNG so a
 * seed gives the same model everywhere.
 */
import { writeSafetensors } from '../../src/experts/safetensors.ts'
import { expertName, payloadShapes, routerName, trunkShapes, type MoeArchitecture } from '../../src/experts/types.ts'
import {
  parseExpert,
  parseRouter,
  parseTrunk,
  type ExpertWeights,
  type MoeTrunk,
  type RouterWeights,
} from '../../src/experts/model/weights.ts'
import { createRng } from './random.ts'

/** The default test architecture: 2 layers of 8 experts, top-2, SwiGLU. */
export const SMALL_MOE: MoeArchitecture = {
  vocabSize: 64,
  dModel: 32,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  dFf: 48,
  contextLength: 64,
  ropeTheta: 10000,
  normEpsE9: 10000,
  expertsPerLayer: 8,
  topK: 2,
  gating: 'softmax-topk-renorm',
  ffn: 'swiglu',
  tieEmbeddings: false,
}

export interface RandomMoe {
  arch: MoeArchitecture
  trunkBytes: Uint8Array
  /** Per layer. */
  routerBytes: Uint8Array[]
  /** Per layer per expert. */
  expertBytes: Uint8Array[][]
  trunk: MoeTrunk
  routers: RouterWeights[]
  experts: ExpertWeights[][]
  /** Block names per layer per expert (`layer{L}.expert{J}`). */
  blocks: string[][]
  /** Every payload by block name (`layer{L}.expert{J}`, `layer{L}.router`). */
  store: Map<string, Uint8Array>
  /** The experts by block name. */
  expertMap: Map<string, ExpertWeights>
}

type Tensors = Record<string, { shape: number[]; data: Float32Array }>

/** Uniform weights scaled by 1/√fan-in (norm weights near 1). */
function randomTensors(shapes: Record<string, number[]>, next: () => number, scale = 1): Tensors {
  const out: Tensors = {}
  for (const [name, shape] of Object.entries(shapes)) {
    const size = shape.reduce((a, b) => a * b, 1)
    const data = new Float32Array(size)
    if (shape.length === 1) for (let i = 0; i < size; i++) data[i] = 1 + 0.2 * (next() - 0.5)
    else {
      const s = (scale * Math.sqrt(3)) / Math.sqrt(shape[1]!)
      for (let i = 0; i < size; i++) data[i] = s * (2 * next() - 1)
    }
    out[name] = { shape, data }
  }
  return out
}

export function randomMoe(arch: MoeArchitecture = SMALL_MOE, seed = 1): RandomMoe {
  const rng = createRng(seed)
  const next = (): number => rng.next()
  const trunkTensors = randomTensors(trunkShapes(arch), next)
  // embeddings of unit-ish scale (the 1/√d scaling above is for projections)
  const embed = trunkTensors.embed!.data
  for (let i = 0; i < embed.length; i++) embed[i] = 2 * next() - 1
  const trunkBytes = writeSafetensors(trunkTensors)
  const routerBytes: Uint8Array[] = []
  const expertBytes: Uint8Array[][] = []
  const blocks: string[][] = []
  const store = new Map<string, Uint8Array>()
  for (let l = 0; l < arch.nLayers; l++) {
    const r = writeSafetensors(randomTensors(payloadShapes(arch, 'router'), next, 3))
    routerBytes.push(r)
    store.set(routerName(l), r)
    const row: Uint8Array[] = []
    const names: string[] = []
    for (let j = 0; j < arch.expertsPerLayer; j++) {
      const e = writeSafetensors(randomTensors(payloadShapes(arch, 'expert'), next))
      row.push(e)
      names.push(expertName(l, j))
      store.set(expertName(l, j), e)
    }
    expertBytes.push(row)
    blocks.push(names)
  }
  const experts = expertBytes.map((row) => row.map((b) => parseExpert(arch, b)))
  const expertMap = new Map<string, ExpertWeights>()
  experts.forEach((row, l) => row.forEach((w, j) => expertMap.set(blocks[l]![j]!, w)))
  return {
    arch,
    trunkBytes,
    routerBytes,
    expertBytes,
    trunk: parseTrunk(arch, trunkBytes),
    routers: routerBytes.map((b) => parseRouter(arch, b)),
    experts,
    blocks,
    store,
    expertMap,
  }
}
