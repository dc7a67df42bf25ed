/**
 * The checks on jobs and receipts, as pure functions shared by the worker and gateway components
 * (and so by the simulation, which runs those components). Each throws an `InferenceError` whose
 * reason the API maps to a status; none has side effects.
 *
 * A worker accepts a job to run for pay only when:
 *   - the client signed it, for this chain, naming a gateway, with a deadline not passed and not
 *     further away than `maxJobTtlMs` (so the deposit's unlock delay covers its settlement);
 *   - the model is registered, active, served here, and its price is within the job's maxFee;
 *   - the inputs match the job's salted commitment and the model's schema;
 *   - the job's gateway signed the dispatch to THIS worker, and that gateway has not been found
 *     dispatching more than a deposit held in the last `overdraftBanBlocks`;
 *   - the client's deposit for that gateway covers the fee plus everything this worker already
 *     ran against it and has not seen settled.
 * An audit or quorum run skips the deadline and the payment checks: it is paid by the treasury,
 * and the worker checks instead that the chain drew it for this job (worker.ts).
 */
import { equals } from '../../core/bytes.ts'
import { describeError } from '../../core/errors.ts'
import type { ChainParams } from '../../chain/genesis.ts'
import { InferenceError } from '../errors.ts'
import {
  inputsCommitment,
  jobId,
  verifyDispatch,
  verifyJob,
  verifyWorkerSignature,
  type Receipt,
  type SignedJob,
  type TokenUsage,
} from '../job.ts'
import { parseGenerationTensors } from '../lm/types.ts'
import { checkAgainstSchema, hashTensorMap, type TensorMap } from '../tensor.ts'
import { feeFor, maxFeeFor, type Deposit, type ModelRecord } from '../chain/state.ts'

export interface JobContext {
  chainId: string
  /** Block time to judge deadlines by (the node's clock). */
  now: number
  params: Pick<ChainParams, 'maxJobTtlMs' | 'overdraftBanBlocks'>
  model: ModelRecord | undefined
}

/** What every node checks of a job, whoever runs it: signature, chain, model, price, inputs. */
export function checkJob(job: SignedJob, inputs: TensorMap, ctx: JobContext): ModelRecord {
  if (!verifyJob(job)) throw new InferenceError('bad-job', 'the job signature does not verify for its client')
  if (job.chainId !== ctx.chainId)
    throw new InferenceError('bad-job', `the job is for chain ${job.chainId}, not ${ctx.chainId}`)
  const model = ctx.model
  if (model === undefined) throw new InferenceError('unknown-model', `model ${job.model} is not registered`)
  if (model.status !== 'active') throw new InferenceError('unknown-model', `model ${model.name} is ${model.status}`)
  try {
    checkAgainstSchema(inputs, model.inputs)
  } catch (err) {
    throw new InferenceError('bad-input', describeError(err), { cause: err })
  }
  const fee = reservedFee(model, inputs)
  if (fee > job.maxFee)
    throw new InferenceError(
      'fee-too-low',
      `the job offers ${job.maxFee}, the model costs ${fee}${model.kind === 'lm' ? ' (prompt plus max_tokens)' : ''}`,
    )
  if (!equals(inputsCommitment(job.salt, hashTensorMap(inputs)), job.inputsHash))
    throw new InferenceError('bad-job', 'the inputs do not match the job\u2019s inputs commitment')
  return model
}

/**
 * The most a job can cost, which gateway and worker reserve against the client's deposit: the
 * price; for a language model its prompt and `max_tokens` (within the context window) at the
 * model's token prices. Throws 'bad-input' for a generation that cannot run: unreadable sampling
 * parameters, or a prompt that leaves no room in the context window.
 */
export function reservedFee(model: ModelRecord, inputs: TensorMap): bigint {
  if (model.kind !== 'lm') return model.price
  let prompt: number
  let maxTokens: number
  try {
    const g = parseGenerationTensors(inputs)
    prompt = g.promptIds.length
    maxTokens = g.params.maxTokens
  } catch (err) {
    throw new InferenceError('bad-input', describeError(err), { cause: err })
  }
  const context = model.contextLength ?? 0
  if (prompt < 1) throw new InferenceError('bad-input', 'the prompt is empty')
  if (prompt >= context)
    throw new InferenceError(
      'bad-input',
      `the prompt is ${prompt} tokens; ${model.name}'s context window is ${context} tokens (prompt plus output)`,
    )
  return maxFeeFor(model, prompt, maxTokens)
}

/** The tokens a language-model job used, read from its inputs and outputs (undefined for other models). */
export function usageOf(model: ModelRecord, inputs: TensorMap, outputs: TensorMap): TokenUsage | undefined {
  if (model.kind !== 'lm') return undefined
  const prompt = inputs.prompt_ids?.data.length ?? 0
  const output = outputs.output_ids?.data.length ?? 0
  return { prompt, output }
}

/** A job's deadline: not passed, and not beyond `maxJobTtlMs`. */
export function checkDeadline(job: SignedJob, ctx: Pick<JobContext, 'now' | 'params'>): void {
  if (job.deadline < ctx.now) throw new InferenceError('expired', 'the job deadline has passed')
  if (job.deadline > ctx.now + ctx.params.maxJobTtlMs)
    throw new InferenceError(
      'bad-job',
      `the job deadline is more than ${ctx.params.maxJobTtlMs / 1000} s away; a worker could not settle it in time`,
    )
}

export interface PaymentContext {
  self: string
  height: number
  params: Pick<ChainParams, 'overdraftBanBlocks'>
  /** The client's deposit for the job's gateway, as committed. */
  deposit: Deposit
  /** Fees of jobs this worker ran against that deposit and has not seen settled. */
  unsettled: bigint
  /** Height at which the job's gateway was found overdrawn, if ever. */
  overdrawnAt: number | undefined
}

/** The worker's payment checks (see the file header). */
export function checkPayment(job: SignedJob, dispatch: Uint8Array | null, fee: bigint, ctx: PaymentContext): void {
  if (dispatch === null || !verifyDispatch({ job, worker: ctx.self, dispatch } as Receipt))
    throw new InferenceError(
      'bad-job',
      `the job carries no dispatch to this worker signed by its gateway ${job.gateway}`,
    )
  if (ctx.overdrawnAt !== undefined && ctx.height < ctx.overdrawnAt + ctx.params.overdraftBanBlocks)
    throw new InferenceError(
      'bad-job',
      `gateway ${job.gateway} dispatched more than a deposit held at height ${ctx.overdrawnAt}; refused until ${ctx.overdrawnAt + ctx.params.overdraftBanBlocks}`,
    )
  if (ctx.deposit.amount < fee + ctx.unsettled)
    throw new InferenceError(
      'insufficient-deposit',
      `the client's deposit for ${job.gateway} holds ${ctx.deposit.amount}; this worker needs ${fee + ctx.unsettled} covered`,
    )
}

/** What a gateway checks of the receipt a worker returns before it answers the client. */
export function checkReceipt(
  receipt: Receipt,
  sent: {
    job: SignedJob
    worker: string
    inputs: TensorMap
    outputs: TensorMap
    model: ModelRecord
    outputHash: Uint8Array
  },
): void {
  if (receipt.worker !== sent.worker) throw new InferenceError('failed', 'the receipt is signed by another worker')
  // The job was signed or verified here: a receipt carrying it unchanged needs only the worker's signature.
  if (!equals(jobId(receipt.job), jobId(sent.job)) || !equals(receipt.job.signature, sent.job.signature))
    throw new InferenceError('failed', 'the receipt is for another job')
  if (!verifyWorkerSignature(receipt)) throw new InferenceError('failed', 'the receipt signature does not verify')
  if (!equals(sent.outputHash, receipt.outputHash))
    throw new InferenceError('failed', 'the outputs do not match the receipt\u2019s output hash')
  try {
    checkAgainstSchema(sent.outputs, sent.model.outputs, 'output')
  } catch (err) {
    throw new InferenceError('failed', `worker outputs do not fit the model: ${describeError(err)}`)
  }
  const usage = usageOf(sent.model, sent.inputs, sent.outputs)
  if (usage?.prompt !== receipt.usage?.prompt || usage?.output !== receipt.usage?.output)
    throw new InferenceError('failed', 'the receipt charges for tokens the job did not use')
  if (receipt.fee !== feeFor(sent.model, usage)) throw new InferenceError('failed', 'the receipt charges another fee')
  if (receipt.fee > sent.job.maxFee) throw new InferenceError('failed', 'the receipt charges more than the job allows')
}
