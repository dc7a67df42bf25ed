/**
 * The trainer's side of an Arena task: train on this machine, then commit to the weights before
 * the submission deadline and publish them after it.
 *
 * Two ways to train:
 * - built in: the node's deterministic MLP trainer (`mlpTrainer`) on a dataset, fine-tuning the
 *   base model when it is an MLP of the right widths, exported as ONNX;
 * - an external command (PyTorch, MLX, ...) run in a fresh folder with this file contract
 *   (docs/arena.md): the node writes `input.json` (below) and, when it has it, `base.onnx`; the
 *   command, run there through the shell, writes `weights.onnx` and exits 0.
 *
 * Randomness (salts) is injected; nothing here reads the clock.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { unixfsCid } from '../core/cid.ts'
import { AbortError } from '../core/errors.ts'
import { mlpTrainer, type Dataset, type MlpOptions } from '../inference/trainer.ts'
import { DIGITS_RECIPE } from '../inference/demo-models.ts'
import { SALT_BYTES, submissionCommitment } from './commitments.ts'
import { TrainerCommandError, UnsupportedModelError } from './errors.ts'
import { mlpFromOnnx } from './evaluate.ts'

export interface BuiltInTraining {
  epochs: number
  seed: number
  /** @default DIGITS_RECIPE.mlp.hidden */
  hidden?: readonly number[]
  /** @default DIGITS_RECIPE.mlp.learningRate */
  learningRate?: number
  /** The base model's ONNX bytes: fine-tuned when it is an MLP of the same widths. */
  base?: Uint8Array
  signal?: AbortSignal
  onEpoch?: (epoch: number, loss: number) => void
}

/** The base model as starting weights, or undefined when it cannot seed this network. */
function initialWeights(base: Uint8Array | undefined, data: Dataset, hidden: readonly number[]) {
  if (base === undefined) return undefined
  try {
    const w = mlpFromOnnx(base)
    const widths = [w.layers[0]?.inputs, ...w.layers.map((l) => l.outputs)]
    const want = [data.featureCount, ...hidden, data.classCount]
    return widths.length === want.length && widths.every((x, i) => x === want[i]) ? w : undefined
  } catch (err) {
    if (err instanceof UnsupportedModelError) return undefined
    throw err
  }
}

/** Trains the built-in MLP on `data`; returns the weights as ONNX bytes (deterministic). */
export async function trainBuiltIn(data: Dataset, options: BuiltInTraining): Promise<Uint8Array> {
  const hidden = options.hidden ?? DIGITS_RECIPE.mlp.hidden
  const initial = initialWeights(options.base, data, hidden)
  const mlp: MlpOptions = {
    ...DIGITS_RECIPE.mlp,
    hidden,
    epochs: options.epochs,
    seed: options.seed,
    learningRate: options.learningRate ?? DIGITS_RECIPE.mlp.learningRate,
    ...(initial === undefined ? {} : { initial, inputScale: initial.inputScale }),
  }
  const context = {
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.onEpoch === undefined ? {} : { onEpoch: options.onEpoch }),
  }
  const weights = await mlpTrainer.train(data, mlp, context)
  return mlpTrainer.exportOnnx(weights, { metadata: { trainer: 'donghae-arena', epochs: String(options.epochs) } })
}

// ---- the external command -------------------------------------------------------------------------

/** What `input.json` holds for an external trainer. */
export interface CommandInput {
  task: number
  name: string
  epochs: number
  seed: number
  /** 'base.onnx' when the node wrote the base model there, else null. */
  base: string | null
  /** Public data: its CID and, when the node has it, the file it was written to; local: your own data. */
  data: { kind: 'public'; cid: string; file: string | null } | { kind: 'local' }
  /** Where to write the weights. */
  output: 'weights.onnx'
}

export interface CommandTraining {
  command: string
  /** A fresh folder for this run. */
  dir: string
  input: CommandInput
  base?: Uint8Array
  dataBytes?: Uint8Array
  /** @default 3_600_000 (one hour) */
  timeoutMs?: number
  signal?: AbortSignal
  /** Lines the command prints (stdout and stderr). */
  onOutput?: (line: string) => void
}

/** Runs an external trainer under the file contract; returns the bytes of its `weights.onnx`. */
export async function trainWithCommand(options: CommandTraining): Promise<Uint8Array> {
  await mkdir(options.dir, { recursive: true })
  if (options.base !== undefined) await writeFile(join(options.dir, 'base.onnx'), options.base)
  if (options.dataBytes !== undefined) await writeFile(join(options.dir, 'data.bin'), options.dataBytes)
  await writeFile(join(options.dir, 'input.json'), `${JSON.stringify(options.input, null, 2)}\n`)
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 3_600_000)
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout])
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(options.command, { cwd: options.dir, shell: true, signal, stdio: ['ignore', 'pipe', 'pipe'] })
    const lines = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) if (line.length > 0) options.onOutput?.(line)
    }
    child.stdout.on('data', lines)
    child.stderr.on('data', lines)
    child.on('error', (err) =>
      reject(
        signal.aborted
          ? new AbortError(timeout.aborted ? 'the training command ran past its time limit' : 'training was cancelled')
          : new TrainerCommandError(`cannot run ${JSON.stringify(options.command)}: ${err.message}`, { cause: err }),
      ),
    )
    child.on('close', resolve)
  })
  if (code !== 0) throw new TrainerCommandError(`the training command exited with ${code}; see its output above`)
  try {
    return new Uint8Array(await readFile(join(options.dir, options.input.output)))
  } catch (err) {
    throw new TrainerCommandError(`the training command wrote no ${options.input.output} in ${options.dir}`, {
      cause: err,
    })
  }
}

// ---- commit and publish ----------------------------------------------------------------------------

export interface PreparedSubmission {
  bytes: Uint8Array
  /** The file's CID as the content store names it (`unixfsCid`): what `arena.publish` names. */
  cid: string
  digest: Uint8Array
  salt: Uint8Array
  commitment: Uint8Array
}

/** The commitment to a weights file by `trainer` (the salt is secret until publication). */
export async function prepareSubmission(
  bytes: Uint8Array,
  trainer: string,
  salt: Uint8Array = new Uint8Array(randomBytes(SALT_BYTES)),
): Promise<PreparedSubmission> {
  const cid = await unixfsCid(bytes)
  const digest = cid.multihash.digest
  return {
    bytes,
    cid: cid.toString(),
    digest,
    salt,
    commitment: submissionCommitment(digest, trainer, salt),
  }
}

export const submitTxBody = (task: number, p: PreparedSubmission) => ({ task, commitment: p.commitment })

export const publishTxBody = (task: number, p: PreparedSubmission) => ({
  task,
  weightsCid: p.cid,
  size: p.bytes.length,
  salt: p.salt,
})
