/**
 * The inference market from the command line: `infer`, `model list|publish|fetch`, `receipt verify`.
 * They talk to a node's HTTP API (`--node` > DONGHAE_NODE > http://127.0.0.1:26657); calls that
 * spend the node's funds send its operator token (`--token` > DONGHAE_API_TOKEN >
 * `<home>/api-token`).
 */
import { existsSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { fromHex, toHex, utf8 } from '../../core/bytes.ts'
import { decode } from '../../core/codec.ts'
import { describeError } from '../../core/errors.ts'
import { parseUint64 } from '../../core/uint.ts'
import { verifyMerkleProof } from '../../core/merkle.ts'
import { genesisHash, parseGenesis, readGenesisFile, type GenesisDoc } from '../../chain/genesis.ts'
import { DonghaeClient, type FetchJson } from '../../api/client.ts'
import { DEFAULT_NODE_URL, NODE_URL_ENV } from '../../api/constants.ts'
import { ApiError } from '../../api/errors.ts'
import { LightClient, LightClientError } from '../../api/light-client.ts'
import {
  jobIdHex,
  receiptFromJson,
  receiptId,
  verifyDispatch,
  verifyReceipt,
  type ReceiptJson,
} from '../../inference/job.ts'
import { jobKey } from '../../inference/chain/state.ts'
import { tensorFromJson } from '../../inference/tensor.ts'
import { createContext, type CliContext, type CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { ProgressBar } from '../progress.ts'

export const TOKEN_ENV = 'DONGHAE_API_TOKEN'

function nodeUrl(command: Command, io: CliIo): string {
  const opts = command.optsWithGlobals<{ node?: string; api?: string }>()
  return opts.api ?? opts.node ?? io.env[NODE_URL_ENV] ?? DEFAULT_NODE_URL
}

/**
 * The node's operator token: `--token`, else DONGHAE_API_TOKEN, else `<home>/api-token`. `why`
 * finishes "this command ... and needs its operator token" in the error.
 */
export async function operatorToken(
  ctx: CliContext,
  flag: string | undefined,
  why = "spends the node's funds",
): Promise<string> {
  const token = flag ?? ctx.env[TOKEN_ENV]
  if (token !== undefined && token !== '') return token
  try {
    return (await readFile(ctx.home.apiToken, 'utf8')).trim()
  } catch {
    throw new CliError(
      `this command ${why} and needs its operator token: pass --token, set ${TOKEN_ENV}, or run it with the node's --home (${ctx.home.apiToken} was not found)`,
    )
  }
}

/** An API error as one line for the terminal (what to do when the node is unreachable). */
export function explain(err: ApiError, url: string): string {
  if (err.code === 'UNREACHABLE') return `${err.message}; start the node, or point --node or ${NODE_URL_ENV} at one`
  if (err.code === 'UNAUTHORIZED') return `${url}: ${err.message}`
  return `${url}: ${err.message}${err.reason === undefined ? '' : ` (${err.reason})`}`
}

/** Runs `action` with a client of the node `--node` names; API errors become one clear CLI error. */
export async function withClient(
  command: Command,
  io: CliIo,
  action: (ctx: CliContext, client: DonghaeClient) => Promise<void>,
): Promise<void> {
  const ctx = createContext(command, io)
  const client = new DonghaeClient(nodeUrl(command, io), { timeoutMs: 60_000 })
  try {
    await action(ctx, client)
  } catch (err) {
    if (err instanceof ApiError) throw new CliError(explain(err, client.baseUrl), { cause: err })
    throw err
  }
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new CliError(`cannot read ${what} ${path}: ${describeError(err)}`)
  }
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new CliError(`${path} is not JSON`)
  }
}

/** `{ "input": tensor }`, a bare tensor (for a one-input model), or `{ "inputs": {...} }`. */
function inputsOf(raw: unknown, firstInput: string): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object') throw new CliError('the input file must hold a JSON object')
  const obj = raw as Record<string, unknown>
  if ('inputs' in obj && typeof obj.inputs === 'object') return obj.inputs as Record<string, unknown>
  if ('dims' in obj && 'data' in obj) return { [firstInput]: obj }
  return obj
}

function argmaxRows(tensor: { dims: number[]; data: unknown[] }): number[] {
  const cols = tensor.dims[tensor.dims.length - 1] ?? 1
  const rows: number[] = []
  for (let r = 0; r * cols < tensor.data.length; r++) {
    let best = 0
    for (let c = 1; c < cols; c++)
      if (Number(tensor.data[r * cols + c]) > Number(tensor.data[r * cols + best])) best = c
    rows.push(best)
  }
  return rows
}

/**
 * One line about a finished fetch: `fetched moby-lm (bafy...): 12.3 MB in 2.1 s, 5.9 MB/s; blocks
 * from 2 peers: did:key:z6Mk...a1b2 30, did:key:z6Mk...c3d4 18`. The seconds are the node's (from the
 * fetch's start, which is earlier than `localSeconds` when the command joined a running fetch).
 */
export function fetchSummary(f: FetchJson, localSeconds: number): string {
  const seconds = f.finishedAt === undefined ? localSeconds : Math.max(0, f.finishedAt - f.startedAt) / 1000
  const mb = f.bytes / 1e6
  const rate = seconds > 0 ? `${(mb / seconds).toFixed(1)} MB/s` : 'at once'
  const peers = Object.entries(f.fromPeers).sort(([, a], [, b]) => b - a)
  const short = (did: string): string => (did.length > 24 ? `${did.slice(0, 14)}\u2026${did.slice(-4)}` : did)
  const from =
    peers.length === 0
      ? 'no blocks from peers (all were here already)'
      : `blocks from ${peers.length} ${peers.length === 1 ? 'peer' : 'peers'}: ${peers.map(([did, n]) => `${short(did)} ${n}`).join(', ')}`
  const time = seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(1)
  return `fetched ${f.name} (${f.model}): ${mb.toFixed(1)} MB in ${time} s, ${rate}; ${from}`
}

/** A node to check a settlement on, and the light client that checks the node's answers. */
export interface SettlementCheck {
  client: DonghaeClient
  light: LightClient
}

export interface ReceiptVerification {
  valid: boolean
  receiptId: string
  jobId: string
  worker: string
  client: string
  fee: string
  signatures: 'valid' | 'invalid'
  settlement?: {
    height: number
    batchKey: string
    root: string
    inBatch: boolean
    inState: boolean
    /** The height of the certified header whose state root the batch record is proven against. */
    stateHeight: number
    stateRoot: string
  }
  reason?: string
  /** With a node: the receipt's signatures are valid, but the chain has no settlement for its job yet. */
  pending?: true
}

/**
 * The time of a certified header whose state is proven to hold no `key`, or undefined when the
 * node gives no proof that checks out (then nothing is concluded from the absence).
 */
async function certifiedTimeWithout(node: SettlementCheck, key: string): Promise<number | undefined> {
  try {
    const bytes = utf8(key)
    const proven = await node.light.checkProof(bytes, await node.client.proof(toHex(bytes)))
    return proven.value === undefined ? proven.header.header.time : undefined
  } catch {
    return undefined
  }
}

/**
 * Checks a receipt's signatures and, with a node, that it is settled on chain: the Merkle path to
 * its batch root, and the batch record in the chain state, proven against the state root of a
 * header the light client certified (api/light-client.ts) - not the root the node reports.
 */
export async function verifyReceiptFile(raw: unknown, node?: SettlementCheck): Promise<ReceiptVerification> {
  const body = raw !== null && typeof raw === 'object' && 'receipt' in raw ? (raw as { receipt: unknown }).receipt : raw
  let receipt
  try {
    receipt = receiptFromJson(body)
  } catch (err) {
    throw new CliError(`not a receipt: ${describeError(err)}`)
  }
  const json = body as ReceiptJson
  const result: ReceiptVerification = {
    valid: false,
    receiptId: toHex(receiptId(receipt)),
    jobId: json.jobId ?? '',
    worker: receipt.worker,
    client: receipt.job.client,
    fee: receipt.fee.toString(),
    // the worker's, the client's, and the gateway's dispatch to that worker (a paid run carries one)
    signatures: verifyReceipt(receipt) && (receipt.dispatch === null || verifyDispatch(receipt)) ? 'valid' : 'invalid',
  }
  if (result.signatures === 'invalid') return { ...result, reason: 'a signature does not verify' }
  if (node === undefined) return { ...result, valid: true }
  result.jobId = jobIdHex(receipt.job)
  let settled
  try {
    settled = await node.client.settlement(result.jobId)
  } catch (err) {
    if (err instanceof ApiError && err.code === 'NOT_FOUND') {
      // The chain keeps a settled job's record until its deadline plus the settle window (then
      // it is pruned: inference/chain/prune.ts); past that, "not yet" would never come true.
      const closed = receipt.job.deadline + node.light.genesis.params.settleWindowMs
      // the time of a certified state without the record; this machine's clock when the node proves nothing
      const at = (await certifiedTimeWithout(node, jobKey(result.jobId))) ?? Date.now()
      if (at > closed)
        return {
          ...result,
          reason: `the chain holds no settlement for its job, and its settle window closed at ${new Date(closed).toISOString()}: it was settled and its record pruned since, or it was never settled`,
        }
      return { ...result, pending: true, reason: 'not settled yet: the chain has no settlement for its job' }
    }
    throw err
  }
  if (settled.receiptId !== result.receiptId)
    return { ...result, reason: `the chain settled another receipt for this job (${settled.receiptId})` }
  const inBatch = verifyMerkleProof(fromHex(settled.root), fromHex(result.receiptId), {
    index: settled.index,
    count: settled.count,
    siblings: settled.proof.map((s) => ({ hash: fromHex(s.hash), right: s.right })),
  })
  if (!inBatch) return { ...result, reason: 'the Merkle proof does not lead to the batch root' }
  // The batch record, proven against a certified state root: its root must be the one above.
  const key = utf8(settled.batchKey)
  let proven
  try {
    proven = await node.light.checkProof(key, await node.client.proof(toHex(key)))
  } catch (err) {
    if (err instanceof LightClientError)
      return {
        ...result,
        reason: `the node's answer does not check out against the chain (${err.reason}): ${err.message}`,
      }
    throw err
  }
  let inState = false
  if (proven.value !== undefined) {
    const record = decode(proven.value) as { root?: unknown }
    inState = record.root instanceof Uint8Array && toHex(record.root) === settled.root
  }
  result.settlement = {
    height: settled.height,
    batchKey: settled.batchKey,
    root: settled.root,
    inBatch,
    inState,
    stateHeight: proven.height,
    stateRoot: toHex(proven.header.header.stateRoot),
  }
  if (!inState)
    return { ...result, reason: `the certified state of height ${proven.height} holds no such batch record` }
  return { ...result, valid: true }
}

/**
 * The genesis the light client starts from: --genesis FILE, or the node's genesis if it hashes to
 * --trust-hash, or <home>/genesis.json.
 */
async function trustedGenesis(
  ctx: CliContext,
  client: DonghaeClient,
  options: { genesis?: string; trustHash?: string },
): Promise<GenesisDoc> {
  const read = async (path: string): Promise<GenesisDoc> => {
    try {
      return await readGenesisFile(path)
    } catch (err) {
      throw new CliError(describeError(err), { cause: err })
    }
  }
  if (options.genesis !== undefined) return read(options.genesis)
  if (options.trustHash !== undefined) {
    const want = options.trustHash.toLowerCase().replace(/^0x/, '')
    if (!/^[0-9a-f]{64}$/.test(want)) throw new CliError('--trust-hash must be the genesis hash: 64 hex digits')
    let doc: GenesisDoc
    try {
      doc = parseGenesis(await client.genesis())
    } catch (err) {
      if (err instanceof ApiError) throw err
      throw new CliError(`the node's genesis document is not valid: ${describeError(err)}`, { cause: err })
    }
    const got = toHex(genesisHash(doc))
    if (got !== want)
      throw new CliError(
        `the node's genesis hashes to ${got}, not the trusted ${want}: it is another chain, or it lies`,
      )
    return doc
  }
  const inHome = join(ctx.home.dir, 'genesis.json')
  if (existsSync(inHome)) return read(inHome)
  throw new CliError(
    `checking a settlement needs the chain's genesis, to check the node's answers against: pass --genesis FILE or --trust-hash HASH (\`donghae genesis --check FILE\` prints it), or use a home that has genesis.json (${inHome} does not exist)`,
  )
}

export function registerInference(program: Command, io: CliIo): void {
  program
    .command('infer')
    .description('run a model on the network through a node and print the output and its receipt')
    .requiredOption('--model <name>', 'registered model name or CID (see `donghae model list`)')
    .requiredOption('--input <file>', 'JSON file: { "<input name>": { "dims", "type", "data" } } or one bare tensor')
    .option('--node <url>', `the node's API (env ${NODE_URL_ENV}, default ${DEFAULT_NODE_URL})`)
    .option('--api <url>', 'the same as --node')
    .option('--token <token>', `the node's operator token (env ${TOKEN_ENV}, default <home>/api-token)`)
    .option('--receipt-out <file>', 'also write the receipt to this file (for `donghae receipt verify`)')
    .option('--json', 'print the whole answer as JSON')
    .addHelpText(
      'after',
      `
The node signs the job and pays the model's price from its own account, so the call needs the
node's operator token. The answer names the worker that computed it and carries its receipt.

Examples:
  $ donghae infer --model digits-mlp --input digit.json
  $ donghae infer --model digits-mlp --input digit.json --receipt-out receipt.json --json`,
    )
    .action(
      async (
        options: { model: string; input: string; token?: string; receiptOut?: string; json?: boolean },
        command: Command,
      ) =>
        withClient(command, io, async (ctx, client) => {
          const token = await operatorToken(ctx, options.token)
          const models = await client.models()
          const model = models.data.find((m) => m.id === options.model || m.cid === options.model)
          if (model === undefined)
            throw new CliError(
              `unknown model ${options.model}; known: ${models.data.map((m) => m.id).join(', ') || 'none'}`,
            )
          const raw = inputsOf(await readJson(options.input, 'input file'), model.inputs[0]?.name ?? 'input')
          for (const [name, t] of Object.entries(raw)) {
            try {
              tensorFromJson(t, name)
            } catch (err) {
              throw new CliError(`${options.input}: ${describeError(err)}`)
            }
          }
          const answer = await client.infer({ model: options.model, inputs: raw as never }, { token })
          if (options.receiptOut !== undefined) {
            const { writeFile } = await import('node:fs/promises')
            await writeFile(options.receiptOut, `${JSON.stringify(answer.receipt, null, 2)}\n`)
          }
          if (options.json === true) return ctx.json(answer)
          for (const [name, t] of Object.entries(answer.outputs)) {
            const tensor = t as { dims: number[]; data: unknown[] }
            ctx.out(`${name} [${tensor.dims.join(',')}]`)
            if (model.kind === 'tensor' && tensor.dims.length === 2)
              ctx.out(`  argmax per row: ${argmaxRows(tensor).join(', ')}`)
            ctx.out(`  ${JSON.stringify(tensor.data.slice(0, 10))}${tensor.data.length > 10 ? ' \u2026' : ''}`)
          }
          ctx.out(`worker   ${answer.worker}`)
          ctx.out(
            `receipt  ${answer.receipt.id} (fee ${answer.receipt.fee}, ${answer.receipt.ep}, ${answer.latencyMs} ms)`,
          )
        }),
    )

  const model = program.command('model').description('the on-chain model registry')
  model
    .command('list')
    .description('list registered models and how many workers serve each')
    .option('--node <url>', `the node's API (env ${NODE_URL_ENV})`)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae model list
  $ donghae model list --node http://127.0.0.1:26658 --json`,
    )
    .action(async (options: { json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const { data } = await client.models()
        if (options.json === true) return ctx.json(data)
        if (data.length === 0) return ctx.out('no models registered')
        for (const m of data)
          ctx.out(
            `${m.id.padEnd(16)} v${m.version}  ${m.kind.padEnd(6)}  price ${m.price.padStart(6)}  workers ${m.workers}  ${m.cid}`,
          )
      }),
    )
  model
    .command('fetch <model>')
    .description("fetch a registered model's files into the node's content store from its peers, with progress")
    .option('--node <url>', `the node's API (env ${NODE_URL_ENV}, default ${DEFAULT_NODE_URL})`)
    .option('--api <url>', 'the same as --node')
    .option('--token <token>', `the node's operator token (env ${TOKEN_ENV}, default <home>/api-token)`)
    .option('--json', 'print the finished fetch as JSON')
    .addHelpText(
      'after',
      `
The node fetches the model's files (its graph, and a language model's tokenizer and configs)
block by block from every peer that has them, and keeps them in its content store; a worker does
this by itself before it serves a model, and this command does it ahead of time. If the node is
already fetching the model, the command follows that fetch. Progress goes to stderr; at the end
a summary (bytes, seconds, MB/s, blocks from each peer), or with --json the finished fetch, goes
to stdout. Interrupting the command does not stop the node's fetch; a failed fetch keeps the
blocks it got, and running the command again resumes it.

Examples:
  $ donghae model fetch moby-lm
  $ donghae model fetch bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi --node http://127.0.0.1:26658
  $ donghae model fetch moby-lm --json > fetch.json`,
    )
    .action(async (name: string, options: { token?: string; json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const token = await operatorToken(ctx, options.token)
        const bar = new ProgressBar({ stream: io.stderr, label: name })
        const state = (p: FetchJson) => ({
          bytes: p.bytes,
          ...(p.totalBytes === undefined ? {} : { totalBytes: p.totalBytes }),
          peers: Object.keys(p.fromPeers).length,
        })
        const started = Date.now()
        let done: FetchJson
        try {
          done = await client.fetchModel(name, { token, onProgress: (p) => bar.update(state(p)) })
        } finally {
          bar.done()
        }
        if (options.json === true) return ctx.json(done)
        ctx.out(fetchSummary(done, (Date.now() - started) / 1000))
      }),
    )
  model
    .command('publish <path>')
    .description(
      'store a model on the node and register it on chain under the node\u2019s key: an ONNX file, or a language model\u2019s folder',
    )
    .requiredOption('--name <name>', 'registry name (lowercase letters, digits, . _ -)')
    .requiredOption('--price <n>', 'fee per call, base units (a language model: per output token)')
    .option('--prompt-price <n>', 'language models: fee per prompt token, base units', '0')
    .option('--version <v>', 'version label', '1')
    .option('--kind <kind>', 'tensor or text (a folder is always a language model, lm)', 'tensor')
    .option('--codec <file>', 'text models: the tokenizer JSON (default: the .json beside the .onnx file, if any)')
    .option('--node <url>', `the node's API (env ${NODE_URL_ENV})`)
    .option('--token <token>', `the node's operator token (env ${TOKEN_ENV})`)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
The node reads the model's input and output schema with ONNX Runtime, keeps the file in its
content store (UnixFS, the CID \`ipfs add --cid-version 1 --raw-leaves\` gives; other workers fetch
it block by block from every peer that has it) and registers it. A text model's tokenizer (a
JSON file like models/chars-mlp.json) is registered by CID with it.

A folder is a decoder-only language model exported the Hugging Face way (Optimum's layout:
model.onnx or decoder_model_merged.onnx, at the top or under onnx/, with tokenizer.json,
tokenizer_config.json and optionally generation_config.json and config.json). The node reads the
folder from its own disk (the CLI sends its absolute path), so the model may be of any size; run
the command on the node's machine. Each file is registered by CID.

Examples:
  $ donghae model publish models/digits-mlp.onnx --name my-digits --price 5
  $ donghae model publish my-chars.onnx --kind text --codec my-chars.json --name my-chars --price 2
  $ donghae model publish ./Qwen2.5-0.5B-Instruct-onnx --name qwen-0.5b --price 2 --prompt-price 1`,
    )
    .action(
      async (
        file: string,
        options: {
          name: string
          price: string
          promptPrice: string
          version: string
          kind: string
          codec?: string
          token?: string
          json?: boolean
        },
        command: Command,
      ) =>
        withClient(command, io, async (ctx, client) => {
          const price = parseUint64(options.price, '--price')
          const token = await operatorToken(ctx, options.token)
          if ((await stat(file).catch(() => undefined))?.isDirectory() === true) {
            if (options.codec !== undefined)
              throw new CliError('--codec is for text models; a folder carries its tokenizer')
            const promptPrice = parseUint64(options.promptPrice, '--prompt-price')
            const out = await client.publishModel(
              {
                name: options.name,
                price: price.toString(),
                promptPrice: promptPrice.toString(),
                version: options.version,
                kind: 'lm',
                dir: resolve(file),
              },
              { token },
            )
            if (options.json === true) return ctx.json(out)
            return ctx.out(`published language model ${options.name} as ${out.cid} (transaction ${out.txHash})`)
          }
          if (options.kind !== 'tensor' && options.kind !== 'text')
            throw new CliError('--kind must be tensor or text for a file (a language model is published as its folder)')
          let bytes: Buffer
          try {
            bytes = await readFile(file)
          } catch (err) {
            throw new CliError(`cannot read ${file}: ${describeError(err)}`)
          }
          let codec: Buffer | undefined
          if (options.codec !== undefined && options.kind !== 'text')
            throw new CliError('--codec is for text models: add --kind text')
          if (options.kind === 'text') {
            const path = options.codec ?? (/\.onnx$/i.test(file) ? file.replace(/\.onnx$/i, '.json') : undefined)
            if (path !== undefined)
              try {
                codec = await readFile(path)
              } catch (err) {
                // the sidecar is optional; a tokenizer asked for by name is not
                if (options.codec !== undefined)
                  throw new CliError(`cannot read the tokenizer ${path}: ${describeError(err)}`)
              }
          }
          const out = await client.publishModel(
            {
              name: options.name,
              price: price.toString(),
              version: options.version,
              kind: options.kind,
              file: bytes.toString('base64'),
              ...(codec === undefined ? {} : { codec: codec.toString('base64') }),
            },
            { token },
          )
          if (options.json === true) return ctx.json(out)
          ctx.out(`published ${options.name} as ${out.cid} (transaction ${out.txHash})`)
        }),
    )

  program
    .command('receipt')
    .description('inference receipts')
    .command('verify <file>')
    .description("check a receipt's signatures and, with --node, its settlement on chain")
    .option('--node <url>', 'also check its settlement on chain, through this node')
    .option(
      '--genesis <file>',
      "the chain's genesis, where the check of the node's answers starts (default <home>/genesis.json)",
    )
    .option('--trust-hash <hex>', "instead of a file: the genesis hash; the node's genesis is used if it has this hash")
    .option('--json', 'print the verdict as JSON')
    .addHelpText(
      'after',
      `
Exit code 0 when the receipt is valid (and settled, with --node), 1 otherwise. The file holds a
receipt as POST /v1/infer answers it (or the whole answer).

With --node the node is not trusted: the batch record is proven against the state root of a block
header whose commit certificate carries more than 2/3 of the validator set's power, the set being
followed from the genesis across every epoch (each change proven in a certified state). A node
that forges a state root, a header, a certificate or a validator-set change is caught, and the
reason printed. The genesis comes from --genesis, --trust-hash (its hash, as
\`donghae genesis --check FILE\` prints it) or the home's genesis.json.

Examples:
  $ donghae receipt verify receipt.json
  $ donghae receipt verify receipt.json --node http://127.0.0.1:26657 --genesis genesis.json --json
  $ donghae receipt verify receipt.json --node http://node.lan:26657 --trust-hash 5f0c\u2026e1`,
    )
    .action(
      async (
        file: string,
        options: { node?: string; genesis?: string; trustHash?: string; json?: boolean },
        command: Command,
      ) => {
        const ctx = createContext(command, io)
        const raw = await readJson(file, 'receipt')
        // --node is also a program-wide option (commands/chain.ts), which takes the value when
        // both are defined: read it with the globals, or it is silently ignored.
        const url = command.optsWithGlobals<{ node?: string }>().node ?? options.node ?? io.env[NODE_URL_ENV]
        let verdict: ReceiptVerification
        try {
          let node: SettlementCheck | undefined
          if (url !== undefined) {
            const client = new DonghaeClient(url, { timeoutMs: 60_000 })
            node = { client, light: new LightClient(await trustedGenesis(ctx, client, options), client) }
          }
          verdict = await verifyReceiptFile(raw, node)
        } catch (err) {
          if (err instanceof ApiError) throw new CliError(explain(err, url ?? ''), { cause: err })
          throw err
        }
        if (options.json === true) ctx.json(verdict)
        else if (verdict.valid)
          ctx.out(
            `valid: receipt ${verdict.receiptId} by ${verdict.worker}${verdict.settlement === undefined ? ' (signatures only; add --node to check its settlement)' : `, settled at height ${verdict.settlement.height} (proven in the certified state of height ${verdict.settlement.stateHeight})`}`,
          )
        if (verdict.pending === true)
          throw new CliError(
            `receipt ${verdict.receiptId} is not settled yet: its signatures are valid, but job ${verdict.jobId} is not settled on chain (asked ${url ?? 'the node'}); a receipt settles in a batch some blocks after the run, so try again shortly`,
          )
        if (!verdict.valid)
          throw new CliError(`receipt ${verdict.receiptId} is not valid: ${verdict.reason ?? 'unknown'}`)
      },
    )
}
