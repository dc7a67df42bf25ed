/** Helpers for the sandboxed runner's tests: the good model, and a watch on the event loop's lag. */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { DEMO_MODELS_DIR, modelCid } from '../../src/inference/demo-models.ts'
import { OnnxRuntime } from '../../src/inference/runtime.ts'
import { createTensor, type TensorMap } from '../../src/inference/tensor.ts'

export interface GoodModel {
  cid: string
  bytes: Uint8Array
  inputs: TensorMap
  /** What in-process ONNX Runtime answers on `inputs`. */
  expected: TensorMap
}

/** digits-mlp with one row of pixels, and its answer computed in this process. */
export async function digitsModel(): Promise<GoodModel> {
  const bytes = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, 'digits-mlp.onnx')))
  const cid = modelCid(bytes)
  const inputs = {
    input: createTensor(
      'float32',
      [1, 64],
      Float32Array.from({ length: 64 }, (_, i) => (i * 7) % 17),
    ),
  }
  const runtime = new OnnxRuntime({ executionProvider: 'cpu' })
  try {
    await runtime.load(cid, bytes)
    return { cid, bytes, inputs, expected: (await runtime.run(cid, inputs)).outputs }
  } finally {
    await runtime.close()
  }
}

/**
 * Measures the event loop's worst delay from now on (a histogram timer sampling every 10 ms):
 * the node must keep serving consensus while a model misbehaves in its sandbox.
 */
export function watchLag(): { maxMs(): number; stop(): number } {
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  const maxMs = (): number => histogram.max / 1e6
  return {
    maxMs,
    stop() {
      histogram.disable()
      return maxMs()
    },
  }
}

/** The worst event-loop lag the attack tests accept while a model misbehaves (a behaviour bound, not a benchmark). */
export const LAG_BOUND_MS = 200
