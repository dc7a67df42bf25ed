/**
 * Errors of language models: a model folder or graph the runtime cannot serve, and a job that does
 * not fit the model.
 */
import { DonghaeError, InvalidInputError, type DonghaeErrorOptions } from '../../core/errors.ts'

/**
 * Why a language model cannot be served:
 * - `missing-file`: a required file (`LM_REQUIRED_FILES`) is absent;
 * - `bad-file`: a file is not UTF-8 JSON of the expected shape, or the tokenizer refuses it;
 * - `bad-config`: a needed value (context length, end-of-sequence id) is missing or invalid;
 * - `bad-graph`: the ONNX graph is not a decoder this runtime drives (inputs, outputs, types);
 * - `bad-template`: the chat template does not parse or render.
 */
export type LmModelProblem = 'missing-file' | 'bad-file' | 'bad-config' | 'bad-graph' | 'bad-template'

/** A language model's files or graph that cannot be served; `details.file` names the file when one is at fault. */
export class LmModelError extends DonghaeError {
  static override readonly code: string = 'LM_MODEL_INVALID'
  override name = 'LmModelError'
  readonly problem: LmModelProblem

  constructor(problem: LmModelProblem, message: string, options: DonghaeErrorOptions = {}) {
    super(message, { ...options, details: { ...options.details, problem } })
    this.problem = problem
  }
}

/** A prompt that leaves no room in the model's context window (`details`: promptTokens, contextLength). */
export class ContextLengthError extends InvalidInputError {
  static override readonly code: string = 'LM_CONTEXT_LENGTH'
  override name = 'ContextLengthError'
}
