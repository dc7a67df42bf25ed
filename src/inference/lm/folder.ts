/**
 * A language model as people have it: one folder, laid out the way Hugging Face exports decoders
 * to ONNX (Optimum; transformers.js repositories put the graphs under `onnx/`):
 *
 *   tokenizer.json  tokenizer_config.json  [generation_config.json]  [config.json]
 *   model.onnx | decoder_model_merged.onnx | onnx/model.onnx | onnx/decoder_model_merged.onnx
 *
 * `decoder_model.onnx` (no past inputs) cannot keep a KV cache and is not taken. A graph whose
 * weights sit in a separate `.onnx_data` file is refused: the model safety check refuses external
 * data (onnx-check.ts), so such a model must be re-saved with its weights inside.
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidInputError, type ErrorAction } from '../../core/errors.ts'
import { LM_REQUIRED_FILES, type LmFiles } from './types.ts'
import { readLmFolder } from './model-files.ts'

/** A folder that is not a language model this network can serve; says what is missing. */
export class ModelFolderError extends InvalidInputError {
  static override readonly code: string = 'MODEL_FOLDER_INVALID'
  override name = 'ModelFolderError'
  readonly action: ErrorAction = 'reject'
}

/** Where the graph may sit, in order of preference (a merged decoder serves prefill and decode). */
export const GRAPH_CANDIDATES = [
  'decoder_model_merged.onnx',
  'model.onnx',
  'onnx/decoder_model_merged.onnx',
  'onnx/model.onnx',
] as const

export interface ModelFolder {
  /** Path of the ONNX graph inside the folder (one of GRAPH_CANDIDATES). */
  graph: string
  /** Its size, bytes. */
  graphBytes: number
  files: LmFiles
}

async function isFile(path: string): Promise<number | undefined> {
  try {
    const s = await stat(path)
    return s.isFile() ? s.size : undefined
  } catch {
    return undefined
  }
}

/** Finds a language model's graph and reads its tokenizer and configuration files. */
export async function readModelFolder(dir: string): Promise<ModelFolder> {
  const dirStat = await stat(dir).catch(() => undefined)
  if (dirStat === undefined || !dirStat.isDirectory())
    throw new ModelFolderError(`${dir} is not a folder; a language model is published as its folder`)
  let graph: string | undefined
  let graphBytes = 0
  for (const candidate of GRAPH_CANDIDATES) {
    const size = await isFile(join(dir, candidate))
    if (size !== undefined) {
      graph = candidate
      graphBytes = size
      break
    }
  }
  if (graph === undefined)
    throw new ModelFolderError(
      `${dir} has no decoder graph with a KV cache: expected one of ${GRAPH_CANDIDATES.join(', ')}`,
    )
  if (
    (await isFile(join(dir, `${graph}_data`))) !== undefined ||
    (await isFile(join(dir, `${graph}.data`))) !== undefined
  )
    throw new ModelFolderError(
      `${graph} keeps its weights in a separate data file; external data is refused (re-save the model with its weights inside)`,
    )
  const files = await readLmFolder(dir)
  const missing = LM_REQUIRED_FILES.filter((name) => files[name] === undefined)
  if (missing.length > 0)
    throw new ModelFolderError(
      `${dir} has no ${missing.join(' or ')}: a language model needs its tokenizer (${LM_REQUIRED_FILES.join(', ')}) beside the graph`,
    )
  return { graph, graphBytes, files }
}
