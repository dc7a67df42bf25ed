/**
 * Model weights as one flat vector, and that vector's deterministic bytes (issue 15, part 3).
 *
 * Federated rounds move and aggregate updates as a single Float32Array: the MLP's layers in
 * order, each layer's weight matrix (row-major) then its bias. `inputScale` is a fixed part of the
 * architecture, not trained, so it stays in the `like` weights and never travels. On the wire a
 * vector is a small header (magic, count) and the float32 values little-endian; its digest is the
 * SHA-256 of those values' bytes (no header), so every machine names the same weights alike.
 */
import { DecodeError, EncodeError, InvalidInputError } from '../core/errors.ts'
import { sha256 } from '../core/hash.ts'
import { toHex } from '../core/bytes.ts'
import type { MlpWeights } from '../inference/trainer.ts'

/** 'DFV1': Donghae federated vector, version 1. */
export const VECTOR_MAGIC = Uint8Array.of(0x44, 0x46, 0x56, 0x31)
/** Magic, then the value count as a little-endian uint32. */
export const VECTOR_HEADER_BYTES = 8

const LITTLE_ENDIAN_HOST = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1

/** How many parameters the network has (every weight and bias). */
export function parameterCount(weights: MlpWeights): number {
  return weights.layers.reduce((sum, l) => sum + l.weight.length + l.bias.length, 0)
}

/** The layers' weights then biases, layer by layer, in one new vector. */
export function flattenMlp(weights: MlpWeights): Float32Array {
  const out = new Float32Array(parameterCount(weights))
  let at = 0
  for (const l of weights.layers) {
    if (l.weight.length !== l.inputs * l.outputs || l.bias.length !== l.outputs)
      throw new InvalidInputError(
        `a ${l.inputs}×${l.outputs} layer holds ${l.weight.length} weights, ${l.bias.length} biases`,
      )
    out.set(l.weight, at)
    out.set(l.bias, at + l.weight.length)
    at += l.weight.length + l.bias.length
  }
  return out
}

/** Weights shaped like `like` (same layers, same inputScale) holding a copy of `vector`'s values. */
export function unflattenMlp(vector: Float32Array, like: MlpWeights): MlpWeights {
  const expected = parameterCount(like)
  if (vector.length !== expected)
    throw new InvalidInputError(`the vector holds ${vector.length} values, the network has ${expected} parameters`)
  let at = 0
  const take = (count: number): Float32Array => vector.slice(at, (at += count))
  return {
    inputScale: like.inputScale,
    layers: like.layers.map((l) => ({
      inputs: l.inputs,
      outputs: l.outputs,
      weight: take(l.inputs * l.outputs),
      bias: take(l.outputs),
    })),
  }
}

function vectorOf(weights: MlpWeights | Float32Array): Float32Array {
  return weights instanceof Float32Array ? weights : flattenMlp(weights)
}

/**
 * `global + scale × update`, each value computed in float64 and rounded to float32 once. Given
 * weights, returns weights of the same shape; given a vector, a new vector.
 */
export function applyUpdate(global: MlpWeights, update: Float32Array, scale?: number): MlpWeights
export function applyUpdate(global: Float32Array, update: Float32Array, scale?: number): Float32Array
export function applyUpdate(
  global: MlpWeights | Float32Array,
  update: Float32Array,
  scale = 1,
): MlpWeights | Float32Array {
  if (!Number.isFinite(scale)) throw new InvalidInputError(`the scale must be finite, got ${scale}`)
  const g = vectorOf(global)
  if (update.length !== g.length)
    throw new InvalidInputError(`the update holds ${update.length} values, the weights ${g.length}`)
  const out = new Float32Array(g.length)
  for (let j = 0; j < g.length; j++) out[j] = g[j]! + scale * update[j]!
  return global instanceof Float32Array ? out : unflattenMlp(out, global)
}

/** `local - global` (the update a client sends), as a vector. */
export function updateOf(local: MlpWeights | Float32Array, global: MlpWeights | Float32Array): Float32Array {
  const l = vectorOf(local)
  const g = vectorOf(global)
  if (l.length !== g.length)
    throw new InvalidInputError(`the local weights hold ${l.length} values, the global ${g.length}`)
  const out = new Float32Array(l.length)
  for (let j = 0; j < l.length; j++) out[j] = l[j]! - g[j]!
  return out
}

/** The values' bytes, float32 little-endian, whatever the host's byte order. */
function littleEndianBytes(vector: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength)
  const out = new Uint8Array(vector.length * 4)
  const view = new DataView(out.buffer)
  vector.forEach((v, i) => view.setFloat32(i * 4, v, true))
  return out
}

/** SHA-256 of the values' little-endian float32 bytes, hex: the name of these weights. */
export function weightsDigest(vector: Float32Array): string {
  return toHex(sha256(littleEndianBytes(vector)))
}

/** Index of the first NaN or ±Infinity, or -1. */
function firstNonFinite(vector: Float32Array): number {
  for (let j = 0; j < vector.length; j++) {
    const x = vector[j]!
    if (x - x !== 0) return j
  }
  return -1
}

/** The vector on the wire: 'DFV1', the count (uint32 LE), the values (float32 LE). Finite values only. */
export function encodeVector(vector: Float32Array): Uint8Array {
  if (!(vector instanceof Float32Array)) throw new EncodeError('only a Float32Array can be encoded as a vector')
  if (vector.length > 0xffffffff) throw new EncodeError(`a vector holds at most 2³² \u2212 1 values`)
  const bad = firstNonFinite(vector)
  if (bad >= 0) throw new EncodeError(`value ${bad} is ${vector[bad]}: only finite values are encoded`)
  const out = new Uint8Array(VECTOR_HEADER_BYTES + vector.length * 4)
  out.set(VECTOR_MAGIC, 0)
  new DataView(out.buffer).setUint32(4, vector.length, true)
  out.set(littleEndianBytes(vector), VECTOR_HEADER_BYTES)
  return out
}

/**
 * Reads `encodeVector`'s bytes back, strictly: the magic, a count that matches the byte length
 * exactly (and `expectedLength` when given), finite values. Throws DecodeError (reject the sender).
 */
export function decodeVector(bytes: Uint8Array, expectedLength?: number): Float32Array {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('a vector must be given as bytes')
  if (bytes.length < VECTOR_HEADER_BYTES) throw new DecodeError(`${bytes.length} bytes is shorter than a vector header`)
  for (let i = 0; i < VECTOR_MAGIC.length; i++)
    if (bytes[i] !== VECTOR_MAGIC[i]) throw new DecodeError('these bytes are not a Donghae vector (bad magic)')
  const count = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true)
  if (bytes.length !== VECTOR_HEADER_BYTES + count * 4)
    throw new DecodeError(`the header says ${count} values, the body holds ${bytes.length - VECTOR_HEADER_BYTES} bytes`)
  if (expectedLength !== undefined && count !== expectedLength)
    throw new DecodeError(`the vector holds ${count} values, ${expectedLength} were expected`, {
      details: { count, expectedLength },
    })
  const out = new Float32Array(count)
  if (LITTLE_ENDIAN_HOST) new Uint8Array(out.buffer).set(bytes.subarray(VECTOR_HEADER_BYTES))
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset + VECTOR_HEADER_BYTES, count * 4)
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true)
  }
  const bad = firstNonFinite(out)
  if (bad >= 0) throw new DecodeError(`value ${bad} is not finite`, { details: { index: bad } })
  return out
}
