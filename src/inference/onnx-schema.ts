/**
 * onnx-proto's ONNX schema (compiled by protobufjs), loaded at its first use. A node imports the
 * modules that read and write ONNX files (arena evaluation, the trainer's export) at start but
 * rarely calls them, and the schema with protobufjs is about 1 MB of heap: a node that never
 * reads an ONNX file this way does not hold it. onnx-proto is CommonJS, so it loads synchronously.
 */
import { createRequire } from 'node:module'
import type OnnxProto from 'onnx-proto'

export type Onnx = typeof OnnxProto.onnx

const require = createRequire(import.meta.url)
let schema: Onnx | undefined

/** The `onnx` namespace of onnx-proto (ModelProto, TensorProto, ...). */
export function onnxSchema(): Onnx {
  schema ??= (require('onnx-proto') as typeof OnnxProto).onnx
  return schema
}
