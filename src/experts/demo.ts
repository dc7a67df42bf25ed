/**
 * The demo Mixture-of-Experts model trained in this repository: moby-moe (`models/moe/`, trained
 * by `models/train-moe.py`, described in models/README.md). Its files are what an AI-Block family
 * is made of: a trunk, one router per layer, one expert per layer × expert, moby-lm's tokenizer,
 * the public validation tokens, training tokens for the built-in trainer, and the Proof-of-Learning fixtures (layer0.expert3 improved by
 * further training, and made worse by noise).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { InvalidInputError } from '../core/errors.ts'
import { checkArchitecture } from './model/weights.ts'
import { expertName, parseExpertName, routerName, type MoeArchitecture } from './types.ts'

/** The repository's `models/moe/` folder. */
export const DEMO_MOE_DIR = fileURLToPath(new URL('../../models/moe/', import.meta.url))

/** One Proof-of-Learning fixture: an expert payload and the validation loss python measured with it. */
export interface DemoPolFixture {
  file: string
  /** Mean cross-entropy over the validation windows, nats (torch, float32). */
  validation_loss_nats: number
  delta_nats: number
}

/** `models/moe/meta.json` (the fields this module relies on; the file holds more). */
export interface DemoMoeMeta {
  family: string
  arch: MoeArchitecture
  tokenizer: { json: string; config: string }
  trunk: string
  validation: { file: string; windows: number; windowTokens: number }
  training: { validation_loss_nats: number } & Record<string, unknown>
  pol: {
    /** `layer{L}.expert{J}`. */
    expert: string
    baseline_validation_loss_nats: number
    improved: DemoPolFixture & { steps: number }
    worse: DemoPolFixture
  }
}

export interface DemoMoe {
  dir: string
  meta: DemoMoeMeta
  tokenizer: { json: Uint8Array; config: Uint8Array }
  trunk: Uint8Array
  /** routers[L]: `layer{L}.router.safetensors`. */
  routers: Uint8Array[]
  /** experts[L][J]: `layer{L}.expert{J}.safetensors`. */
  experts: Uint8Array[][]
  /** uint32 little-endian token ids: windows × windowTokens + 1. */
  validation: Uint8Array
  /** Training tokens for the built-in trainer (`train.bin`, written by models/moe-train-set.py): uint32 LE. */
  train: Uint8Array
  /** The PoL fixtures for `meta.pol.expert` (layer, expert parsed). */
  pol: { layer: number; expert: number; improved: Uint8Array; worse: Uint8Array }
}

function bad(message: string): never {
  throw new InvalidInputError(`models/moe: ${message}`)
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0
}

/** Reads every file of the demo MoE (default: the repository's `models/moe/`) and its meta.json. */
export async function readDemoMoe(dir: string = DEMO_MOE_DIR): Promise<DemoMoe> {
  const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as DemoMoeMeta
  try {
    checkArchitecture(meta.arch)
  } catch (err) {
    bad(`meta.json: ${(err as Error).message}`)
  }
  const { windows, windowTokens } = meta.validation
  if (!isPositiveInt(windows) || !isPositiveInt(windowTokens))
    bad('meta.json validation windows/windowTokens are not positive integers')
  const read = (name: string): Promise<Uint8Array> =>
    readFile(join(dir, name)).then((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength))
  const a = meta.arch
  const routers: Uint8Array[] = []
  const experts: Uint8Array[][] = []
  for (let l = 0; l < a.nLayers; l++) {
    routers.push(await read(`${routerName(l)}.safetensors`))
    const row: Uint8Array[] = []
    for (let j = 0; j < a.expertsPerLayer; j++) row.push(await read(`${expertName(l, j)}.safetensors`))
    experts.push(row)
  }
  const validation = await read(meta.validation.file)
  if (validation.length !== 4 * (windows * windowTokens + 1))
    bad(`${meta.validation.file} holds ${validation.length} bytes, expected ${4 * (windows * windowTokens + 1)}`)
  const target = parseExpertName(meta.pol.expert)
  if (target === undefined || target.expert === null)
    bad(`meta.json pol.expert ${meta.pol.expert} is not layer{L}.expert{J}`)
  return {
    dir,
    meta,
    tokenizer: { json: await read(meta.tokenizer.json), config: await read(meta.tokenizer.config) },
    trunk: await read(meta.trunk),
    routers,
    experts,
    validation,
    train: await read('train.bin'),
    pol: {
      layer: target.layer,
      expert: target.expert,
      improved: await read(meta.pol.improved.file),
      worse: await read(meta.pol.worse.file),
    },
  }
}
