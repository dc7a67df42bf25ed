/**
 * Strict decoders for the inference module's transaction bodies: every field typed and
 * bounded, unknown fields refused. Each throws TxError('malformed', ...) naming the field.
 */
import { asUint64 } from '../../core/uint.ts'
import { parseCid } from '../../core/cid.ts'
import { TxError } from '../../chain/errors.ts'
import { parseDidKey } from '../../identity/did-key.ts'
import { EXECUTION_PROVIDERS, parseReceipt, type ExecutionProvider, type Receipt } from '../job.ts'
import type { ModelSpec, TensorSpec, Tolerance } from './state.ts'
import { LM_INPUTS, LM_OUTPUTS, LM_REQUIRED_FILES } from '../lm/types.ts'

/** Element types a model's tensors may declare (ONNX's names, lower case). */
export const TENSOR_TYPES = [
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'int8',
  'uint8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'int64',
  'uint64',
  'bool',
  'string',
] as const
export const MAX_TENSORS = 32
export const MAX_DIMS = 8
/** Largest quorum one `inference.resolve` may carry. */
export const MAX_QUORUM = 32
/** Most models one `inference.serve` adds or removes. */
export const MAX_SERVE_CHANGES = 64
/** Largest encoded output map an audit or a resolution may carry (tolerance judgements). */
export const MAX_OUTPUT_BYTES = 24 * 1024
/** A registered model name: 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit. */
export const MODEL_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/

/** Refuses a transaction whose body breaks a rule, with the rule's reason. */
export function refuse(reason: string, message: string): never {
  throw new TxError(reason, message)
}

export function malformed(message: string, cause?: unknown): never {
  throw new TxError('malformed', message, { cause })
}

export function fields(body: unknown, what: string, allowed: readonly string[]): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body) || body instanceof Uint8Array)
    malformed(`${what} must be a map`)
  const extra = Object.keys(body).find((k) => !allowed.includes(k))
  if (extra !== undefined) malformed(`${what} has unknown field ${extra}`)
  return body as Record<string, unknown>
}

export function amountOf(value: unknown, field: string, { positive = false } = {}): bigint {
  let amount: bigint
  try {
    amount = asUint64(value, field)
  } catch (err) {
    return malformed((err as Error).message, err)
  }
  if (positive && amount === 0n) malformed(`${field} must be positive`)
  return amount
}

export function text(value: unknown, field: string, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max)
    malformed(`${field} must be a string of 1-${max} characters`)
  return value
}

export function uint(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    malformed(`${field} must be a non-negative integer`)
  return value
}

export function epOf(value: unknown, field: string): ExecutionProvider {
  if (typeof value !== 'string' || !(EXECUTION_PROVIDERS as readonly string[]).includes(value))
    malformed(`${field} must be one of ${EXECUTION_PROVIDERS.join(', ')}`)
  return value as ExecutionProvider
}

function tensorSpecs(value: unknown, field: string): TensorSpec[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_TENSORS)
    malformed(`${field} must list 1-${MAX_TENSORS} tensors`)
  const names = new Set<string>()
  return value.map((raw: unknown, i) => {
    const at = `${field}[${i}]`
    const t = fields(raw, at, ['name', 'type', 'dims'])
    const name = text(t.name, `${at}.name`, 128)
    if (names.has(name)) malformed(`${at}.name repeats ${JSON.stringify(name)}`)
    names.add(name)
    if (typeof t.type !== 'string' || !(TENSOR_TYPES as readonly string[]).includes(t.type))
      malformed(`${at}.type must be one of ${TENSOR_TYPES.join(', ')}`)
    if (!Array.isArray(t.dims) || t.dims.length > MAX_DIMS) malformed(`${at}.dims must list at most ${MAX_DIMS} sizes`)
    const dims = t.dims.map((d: unknown, j) => (d === null ? null : uint(d, `${at}.dims[${j}]`)))
    return { name, type: t.type, dims }
  })
}

function tolerance(value: unknown): Tolerance {
  const t = fields(value, 'tolerance', ['maxAbsPpm', 'top1'])
  if (typeof t.top1 !== 'boolean') malformed('tolerance.top1 must be a boolean')
  return { maxAbsPpm: uint(t.maxAbsPpm, 'tolerance.maxAbsPpm'), top1: t.top1 }
}

const MODEL_FIELDS = [
  'cid',
  'name',
  'version',
  'price',
  'kind',
  'inputs',
  'outputs',
  'tolerance',
  'size',
  'codec',
  'files',
  'promptPrice',
  'contextLength',
]
/** Most files a language model names besides its graph. */
export const MAX_MODEL_FILES = 8
const FILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** Largest context window a registration may declare, tokens. */
export const MAX_CONTEXT_LENGTH = 1 << 20

function sameSchema(a: readonly unknown[], b: readonly unknown[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/** A language model's extra fields: its files (tokenizer and configs by CID), prompt price, context. */
function lmFields(b: Record<string, unknown>): Pick<ModelSpec, 'files' | 'promptPrice' | 'contextLength'> {
  if (b.files === null || typeof b.files !== 'object' || Array.isArray(b.files) || b.files instanceof Uint8Array)
    malformed('files must map file names to CIDs')
  const entries = Object.entries(b.files as Record<string, unknown>)
  if (entries.length > MAX_MODEL_FILES) malformed(`files may name at most ${MAX_MODEL_FILES} files`)
  const files: Record<string, string> = {}
  for (const [name, cid] of entries) {
    if (!FILE_NAME_PATTERN.test(name)) malformed(`files: ${JSON.stringify(name.slice(0, 80))} is not a file name`)
    files[name] = canonicalCid(cid, `files.${name}`)
  }
  for (const name of LM_REQUIRED_FILES)
    if (files[name] === undefined) malformed(`a language model needs ${name} among its files`)
  const contextLength = uint(b.contextLength, 'contextLength')
  if (contextLength < 2 || contextLength > MAX_CONTEXT_LENGTH)
    malformed(`contextLength must be 2-${MAX_CONTEXT_LENGTH} tokens`)
  return { files, promptPrice: amountOf(b.promptPrice ?? 0n, 'promptPrice'), contextLength }
}

export function canonicalCid(value: unknown, field: string): string {
  const cid = text(value, field, 128)
  try {
    if (parseCid(cid).toString() !== cid) malformed(`${field} must be in its canonical (base32) form`)
  } catch (err) {
    if (err instanceof TxError) throw err
    malformed(`${field} is not a CIDv1 sha2-256: ${(err as Error).message}`, err)
  }
  return cid
}

/** An `inference.registerModel` body. */
export function decodeModelSpec(body: unknown): ModelSpec {
  const b = fields(body, 'inference.registerModel', MODEL_FIELDS)
  const cid = canonicalCid(b.cid, 'cid')
  if (typeof b.name !== 'string' || !MODEL_NAME_PATTERN.test(b.name))
    malformed('name must be 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit')
  if (b.kind !== 'tensor' && b.kind !== 'text' && b.kind !== 'lm') malformed('kind must be "tensor", "text" or "lm"')
  if (b.kind !== 'lm' && (b.files !== undefined || b.promptPrice !== undefined || b.contextLength !== undefined))
    malformed('files, promptPrice and contextLength are for language models (kind "lm") only')
  const size = uint(b.size, 'size')
  if (size === 0) malformed('size must be positive')
  const codec = b.codec === undefined ? undefined : canonicalCid(b.codec, 'codec')
  if (codec !== undefined && b.kind !== 'text') malformed('codec (a tokenizer) is for text models only')
  const inputs = tensorSpecs(b.inputs, 'inputs')
  const outputs = tensorSpecs(b.outputs, 'outputs')
  if (b.kind === 'lm' && (!sameSchema(inputs, LM_INPUTS) || !sameSchema(outputs, LM_OUTPUTS)))
    malformed('a language model takes and gives the generation tensors of inference/lm/types.ts')
  return {
    cid,
    name: b.name,
    version: text(b.version, 'version', 32),
    price: amountOf(b.price, 'price'),
    kind: b.kind,
    inputs,
    outputs,
    tolerance: tolerance(b.tolerance),
    size,
    ...(codec === undefined ? {} : { codec }),
    ...(b.kind === 'lm' ? lmFields(b) : {}),
  }
}

export function receiptOf(value: unknown, field: string): Receipt {
  try {
    return parseReceipt(value)
  } catch (err) {
    return malformed(`${field}: ${(err as Error).message}`, err)
  }
}

export function receiptList(value: unknown, field: string, max: number): Receipt[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > max)
    malformed(`${field} must list 1-${max} receipts`)
  return value.map((r: unknown, i) => receiptOf(r, `${field}[${i}]`))
}

export function bytes32(value: unknown, field: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== 32) malformed(`${field} must be 32 bytes`)
  return value
}

/** An Ed25519 did:key. */
export function didOf(value: unknown, field: string): string {
  const did = text(value, field, 128)
  try {
    if (parseDidKey(did).type !== 'Ed25519') malformed(`${field} must be an Ed25519 did:key`)
  } catch (err) {
    if (err instanceof TxError) throw err
    malformed(`${field} is not a did:key: ${(err as Error).message}`, err)
  }
  return did
}

/** A runtime name as receipts carry it (`onnxruntime-node/1.30.0 linux-x64`). */
export function runtimeOf(value: unknown, field: string): string {
  return text(value, field, 64)
}

export function cidList(value: unknown, field: string, max: number): string[] {
  if (!Array.isArray(value) || value.length > max) malformed(`${field} must list at most ${max} model CIDs`)
  const out = value.map((v: unknown, i) => canonicalCid(v, `${field}[${i}]`))
  if (new Set(out).size !== out.length) malformed(`${field} repeats a CID`)
  return out
}

export function uintList(value: unknown, field: string, max: number): number[] {
  if (!Array.isArray(value) || value.length > max) malformed(`${field} must list at most ${max} integers`)
  return value.map((v: unknown, i) => uint(v, `${field}[${i}]`))
}

/** Encoded tensor maps (checked against hashes by the handler), each at most MAX_OUTPUT_BYTES. */
export function outputList(value: unknown, field: string, max: number): Uint8Array[] {
  if (!Array.isArray(value) || value.length > max) malformed(`${field} must list at most ${max} output maps`)
  return value.map((v: unknown, i) => {
    if (!(v instanceof Uint8Array) || v.length === 0 || v.length > MAX_OUTPUT_BYTES)
      malformed(`${field}[${i}] must be 1-${MAX_OUTPUT_BYTES} bytes of an encoded tensor map`)
    return v
  })
}
