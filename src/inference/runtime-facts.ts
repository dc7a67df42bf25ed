/**
 * What a node knows about ONNX Runtime without loading it: the runtime's name as receipts carry
 * it, the execution provider a worker starts with, and the runtime's errors. The node process
 * imports this; only model processes (and `--runner in-process`) load the binding (`runtime.ts`).
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createRequire } from 'node:module'
import { DonghaeError, InvalidInputError, type ErrorAction } from '../core/errors.ts'
import type { ExecutionProvider } from './job.ts'
import type { LmFiles } from './lm/types.ts'

const require = createRequire(import.meta.url)

/**
 * The version of the ONNX Runtime binding in use, e.g. "1.30.0": onnxruntime-node's package
 * version, which is what the binding reports as `env.versions.node`.
 */
export const ONNXRUNTIME_VERSION: string = (require('onnxruntime-node/package.json') as { version: string }).version
/**
 * What receipts name as the runtime: "onnxruntime-node/<version> <platform>-<arch>". Audits
 * compare output hashes exactly only between receipts with the same provider and runtime, and
 * different CPU architectures can differ in the last bits, so the architecture is part of it.
 */
export const RUNTIME_NAME = `onnxruntime-node/${ONNXRUNTIME_VERSION} ${process.platform}-${process.arch}`

export type ExecutionProviderChoice = 'auto' | 'cpu' | 'coreml' | 'cuda'
export const EXECUTION_PROVIDER_CHOICES: readonly ExecutionProviderChoice[] = ['auto', 'cpu', 'coreml', 'cuda']

/** Defaults of `OnnxRuntimeOptions`. */
export const RUNTIME_DEFAULTS = Object.freeze({
  executionProvider: 'auto' as ExecutionProviderChoice,
  intraOpThreads: 1,
  maxSessions: 8,
})

// ---- errors ----

/** Model bytes that do not hash to the CID they were offered under. Nothing is cached. */
export class ModelCidMismatchError extends InvalidInputError {
  static override readonly code: string = 'MODEL_CID_MISMATCH'
  override name = 'ModelCidMismatchError'
  readonly action: ErrorAction = 'reject'
}

/** `run` or `calibrate` for a CID that is not loaded (never loaded, evicted, or closed). */
export class ModelNotLoadedError extends DonghaeError {
  static override readonly code: string = 'MODEL_NOT_LOADED'
  override name = 'ModelNotLoadedError'
}

/** Verified bytes that ONNX Runtime cannot turn into a session, even on the CPU. */
export class ModelLoadError extends DonghaeError {
  static override readonly code: string = 'MODEL_LOAD_FAILED'
  override name = 'ModelLoadError'
}

/** ONNX Runtime failed while running a model on inputs that matched its schema. */
export class ModelRunError extends DonghaeError {
  static override readonly code: string = 'MODEL_RUN_FAILED'
  override name = 'ModelRunError'
}

/** The runtime was closed. */
export class RuntimeClosedError extends DonghaeError {
  static override readonly code: string = 'RUNTIME_CLOSED'
  override name = 'RuntimeClosedError'
}

// ---- execution provider choice ----

export interface BackendInfo {
  name: string
  bundled: boolean
}

export interface ExecutionProviderFacts {
  platform: string
  /** @default 'auto' */
  requested?: ExecutionProviderChoice
  /** What the binding offers. @default the binding's `listSupportedBackends()`, asked only where CUDA's library is on disk */
  backends?: readonly BackendInfo[]
  /** Whether the CUDA provider library (not bundled with the npm package) is installed. @default probed on disk */
  cudaLibraryPresent?: boolean
}

const CUDA_LIBRARY: Partial<Record<string, string>> = {
  linux: 'libonnxruntime_providers_cuda.so',
  win32: 'onnxruntime_providers_cuda.dll',
}

/** Whether onnxruntime-node's CUDA provider library sits next to its binding (installed with `--onnxruntime-node-install=cuda12`). */
export function cudaLibraryInstalled(platform: string = process.platform, arch: string = process.arch): boolean {
  const file = CUDA_LIBRARY[platform]
  if (file === undefined) return false
  const main = require.resolve('onnxruntime-node')
  return existsSync(join(dirname(main), '..', 'bin', 'napi-v6', platform, arch, file))
}

/**
 * The execution provider a runtime starts with. An explicit request wins (if it fails at session
 * creation the runtime falls back to the CPU). `auto`: CoreML on macOS; CUDA when the binding
 * lists it and its provider library is bundled or installed; otherwise the CPU.
 *
 * A bundled CUDA library sits where an installed one does, so without that file on disk the
 * answer is the CPU and the binding is not asked: the node process, which only chooses, never
 * loads ONNX Runtime (its model processes do), about 11 MB less resident.
 */
export function chooseExecutionProvider(facts: ExecutionProviderFacts): Exclude<ExecutionProvider, 'webgpu'> {
  const requested = facts.requested ?? 'auto'
  if (requested !== 'auto') return requested
  if (facts.platform === 'darwin') return 'coreml'
  const libraryPresent = facts.cudaLibraryPresent ?? cudaLibraryInstalled(facts.platform)
  if (facts.backends === undefined && !libraryPresent) return 'cpu'
  const cuda = (facts.backends ?? bindingBackends()).find((b) => b.name === 'cuda')
  return cuda !== undefined && (cuda.bundled || libraryPresent) ? 'cuda' : 'cpu'
}

/** The backends the ONNX Runtime binding was built with (loads the binding). */
function bindingBackends(): readonly BackendInfo[] {
  return (require('onnxruntime-node') as { listSupportedBackends(): BackendInfo[] }).listSupportedBackends()
}

// ---- language models ----

/**
 * Whether `files` make a model a language model: any of `LM_FILES` given (one without its
 * tokenizer then fails to load with `LmModelError('missing-file')`, not as a tensor model).
 */
export function isLmFiles(files: LmFiles | undefined): files is LmFiles {
  return files !== undefined && Object.values(files).some((b) => b !== undefined)
}

/** What calibration runs on a language model: a short greedy generation from a fixed prompt. */
export const LM_CALIBRATION = Object.freeze({ prompt: 'The', promptTokens: 8, outputTokens: 8 })
