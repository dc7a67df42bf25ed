/**
 * Limits of the sandboxed model runner (`sandbox.ts`) with their defaults. A model that breaks one
 * fails the job with a `ModelLimitError` naming the limit; where the limit requires it its process
 * is killed and replaced.
 *
 * What is enforced where:
 * - load time, run time: a timer in the parent; on expiry the child is killed (SIGKILL) - ONNX
 *   Runtime's calls are synchronous inside the child and cannot be interrupted otherwise;
 * - memory: the parent polls each busy child's resident set (`/proc/<pid>/status` on Linux, `ps`
 *   elsewhere) and kills a child above `maxRssBytes`; on Linux the child also runs under an
 *   address-space rlimit (`ulimit -v`, CPU provider only: CUDA reserves far more address space
 *   than it uses), so one huge allocation fails at once (an error, or the child aborts: `crashed`)
 *   instead of waiting for the next poll. macOS has no working RLIMIT_AS: the poll is the bound;
 * - output size: the child refuses to send more (an error; the child lives on), and the parent
 *   refuses a frame longer than that before buffering it (the child is killed);
 * - input and model size: checked in the parent before anything is sent.
 *
 * A large model gets room to match: its process may hold `lmMemoryPerModelByte` × its file size
 * more than `maxRssBytes` (and as much more address space). A language model (loaded with its
 * tokenizer files) may have a file up to `maxLmModelBytes`, and a run may take `lmTokenTimeMs` more per
 * token it may process (prompt, claimed and generated tokens) on top of `runTimeMs`. A
 * generation's tokens stream to the node as they come; the other limits apply unchanged.
 *
 * Model files travel over the pipe like everything else (the child verifies the CID and runs the
 * safety check on the bytes it received, never on a path the node names): a frame's length is a
 * u32, and an ONNX file without external data (which the safety check refuses) is a protobuf
 * message, at most 2 GiB, so every servable file fits one frame.
 */
import { DEFAULT_TENSOR_LIMITS } from '../tensor.ts'

export interface RunnerLimits {
  /** Starting a model's process and opening its session, ms. @default 20_000 */
  loadTimeMs: number
  /** One run, ms. Below the gateway's 8 s job timeout (gateway.ts), so a worker answers first. @default 5_000 */
  runTimeMs: number
  /** Resident memory of one model's process, bytes. @default 2 GiB */
  maxRssBytes: number
  /** Address-space rlimit of one model's process (Linux, CPU provider), bytes; 0 for none. @default 8 GiB */
  addressSpaceBytes: number
  /** Output bytes of one run, all tensors together. @default 16 MiB (DEFAULT_TENSOR_LIMITS.maxBytes) */
  maxOutputBytes: number
  /** Input bytes of one run, all tensors together. @default 16 MiB (DEFAULT_TENSOR_LIMITS.maxBytes) */
  maxInputBytes: number
  /** Size of a model file (protobuf's 2 GiB bound; the content store holds files of any size). @default 2 GiB - 1 */
  maxModelBytes: number
  /** How often a busy child's resident memory is read, ms. @default 100 on Linux, 500 elsewhere (a `ps` each) */
  memoryPollMs: number
  /** Size of a language model's file (protobuf's 2 GiB bound). @default 2 GiB - 1 */
  maxLmModelBytes: number
  /** A language model's tokenizer and config files, together. @default 64 MiB */
  maxLmFileBytes: number
  /**
   * Resident memory (and address space) a language model's process may use per byte of its file,
   * beyond `maxRssBytes`: ONNX Runtime keeps the weights and their pre-packed copies, the load frame
   * holds the file until it is collected (bench/lm.bench.ts measures 2.4-4× on the demo model, the
   * process's own noise included). @default 4
   */
  lmMemoryPerModelByte: number
  /** Run time a language model's run may use per token (prompt, claimed, max_tokens), beyond `runTimeMs`, ms. @default 250 */
  lmTokenTimeMs: number
}

const GiB = 1024 ** 3

export const RUNNER_LIMITS: Readonly<RunnerLimits> = Object.freeze({
  loadTimeMs: 20_000,
  runTimeMs: 5_000,
  maxRssBytes: 2 * GiB,
  addressSpaceBytes: 8 * GiB,
  maxOutputBytes: DEFAULT_TENSOR_LIMITS.maxBytes,
  maxInputBytes: DEFAULT_TENSOR_LIMITS.maxBytes,
  maxModelBytes: 2 * GiB - 1,
  memoryPollMs: process.platform === 'linux' ? 100 : 500,
  maxLmModelBytes: 2 * GiB - 1,
  maxLmFileBytes: 64 * 1024 ** 2,
  lmMemoryPerModelByte: 4,
  lmTokenTimeMs: 250,
})

/** Room in a frame for its JSON header (names, dims, error messages) besides the tensor bytes. */
export const FRAME_HEADER_ALLOWANCE = 1024 * 1024

/** The last bytes of a child's stderr kept for the error when it dies (ONNX Runtime's or V8's last words). */
export const STDERR_TAIL_BYTES = 8_192

/** How long a closed child has to remove its directory and exit before it is killed, ms. */
export const CLOSE_GRACE_MS = 1_000

/**
 * A generation's tokens leave the child in one `tokens` frame per this many milliseconds at most:
 * the first `LEADING_TOKENS` (and any token after a pause this long) go at once, those drawn
 * sooner wait for the next frame. A frame costs a pipe write and a wake-up of the node (0.1-0.3 ms
 * of the child's time on a small VM, comparable to a small model's token), then a libp2p frame
 * and an SSE chunk; 5 ms is far below what a reader of the stream can see.
 */
export const TOKEN_FRAME_MS = 5

/** Tokens a generation sends one by one before gathering them (its first text may need 4: one UTF-8 character). */
export const LEADING_TOKENS = 4

/** V8 heap of a child, MiB: tensors live outside it (ArrayBuffers); this bounds the JS objects only. */
export const CHILD_HEAP_MIB = 512

/**
 * Environment variables a child keeps: what ONNX Runtime and its providers need to find their
 * libraries and devices. Everything else (HOME, tokens, DONGHAE_*) is dropped; TMPDIR, TMP and
 * TEMP point into the child's own empty directory.
 */
export const SANDBOX_ENV_KEYS: readonly string[] = [
  'PATH',
  'LD_LIBRARY_PATH',
  'DYLD_LIBRARY_PATH',
  'CUDA_VISIBLE_DEVICES',
  'CUDA_PATH',
  'SystemRoot',
  'SYSTEMROOT',
  'WINDIR',
]

/** Names of the sandbox directories (`mkdtemp` in `process.ts`); a child removes only such a directory. */
export const SANDBOX_DIR_PREFIX = 'donghae-model-'

/**
 * Niceness of model processes (0 is the node's own, 19 the lowest): a model that spins keeps a
 * core busy at the lowest priority, and consensus, in the node's process, comes first. @default 19
 */
export const MODEL_PROCESS_NICE = 19
