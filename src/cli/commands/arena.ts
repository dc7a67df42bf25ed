/**
 * AI Arena from the command line (issue 15): `task create|list|show|sets` post and read training
 * tasks; `train` and `validate` make the node take part with its own key. `task create` signs with
 * the home keystore (like `donghae tx`); the others talk to a node's HTTP API (`--node` >
 * DONGHAE_NODE > http://127.0.0.1:26657), the operator ones with its token (`--token` >
 * DONGHAE_API_TOKEN > `<home>/api-token`). Progress goes to stderr so stdout stays clean for `--json`.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { toHex } from '../../core/bytes.ts'
import { describeError } from '../../core/errors.ts'
import { parseUint64 } from '../../core/uint.ts'
import { DIGITS_RECIPE, readDigitsDataset } from '../../inference/demo-models.ts'
import { splitDataset } from '../../inference/trainer.ts'
import { encodeValidationSet, validationCommit } from '../../arena/evaluate.ts'
import type { DonghaeClient } from '../../api/client.ts'
import { DEFAULT_NODE_URL, NODE_URL_ENV } from '../../api/constants.ts'
import type { CliContext, CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { sendTx, txOptions } from './chain.ts'
import { operatorToken, TOKEN_ENV, withClient } from './inference.ts'

const NODE_HELP = `the node's API (env ${NODE_URL_ENV}, default ${DEFAULT_NODE_URL})`
const TOKEN_HELP = `the node's operator token (env ${TOKEN_ENV}, default <home>/api-token)`

interface TaskJson {
  id: number
  name: string
  creator: string
  status: string
  phase: string
  pool: string
  k1: number
  k2: number
  trainers: number
  validators: number
  submissions: number
  submitDeadline: number
  publishDeadline: number
  scoreDeadline: number
  revealDeadline: number
  baseModel: { kind: string; cid?: string; hash?: string }
  validationCommitA: string
  validationCommitB: string
  result?: {
    leaderboard: Array<{
      rank: number
      index: number
      trainer: string
      status: string
      scorePpm: number
      payout: string
    }>
    validators: Array<{ did: string; trustPpm: number; payout: string; slashed: string; revealed: boolean }>
    refund: string
    winner?: { weightsCid: string; registered: boolean; reason?: string }
  }
}

interface JobJson {
  role: string
  task: number
  stage: string
  cid?: string
  error?: string
}

/** A JSON call to the node; a refusal becomes one line saying why. */
async function call<T>(
  client: DonghaeClient,
  method: 'GET' | 'POST',
  path: string,
  options: { body?: unknown; token?: string } = {},
): Promise<T> {
  let res: Response
  try {
    res = await fetch(new URL(path, client.baseUrl), {
      method,
      headers: {
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      signal: AbortSignal.timeout(600_000),
    })
  } catch (err) {
    throw new CliError(`cannot reach the node at ${client.baseUrl}: ${describeError(err)} (is it running? see --node)`)
  }
  const text = await res.text()
  if (!res.ok) {
    let message = text
    try {
      const e = (JSON.parse(text) as { error?: { message?: string; reason?: string } }).error
      message = `${e?.message ?? text}${e?.reason === undefined ? '' : ` (${e.reason})`}`
    } catch {
      // not JSON: keep the text
    }
    throw new CliError(`${method} ${path} failed with ${res.status}: ${message}`)
  }
  return JSON.parse(text) as T
}

function whole(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined
  const value = Number(text)
  if (!/^[0-9]+$/.test(text) || value < min || value > max)
    throw new CliError(`${flag} must be a whole number from ${min} to ${max} (got ${JSON.stringify(text)})`)
  return value
}

const ppm = (x: number): string => `${(x / 10_000).toFixed(2)}%`
const short = (text: string, n = 16): string => (text.length > n + 1 ? `${text.slice(0, n)}\u2026` : text)

function taskLine(t: TaskJson): string {
  return `#${String(t.id).padEnd(4)} ${t.name.padEnd(20)} ${t.phase.padEnd(11)} pool ${t.pool.padStart(9)}  k1 ${t.k1} k2 ${t.k2}  trainers ${t.trainers} validators ${t.validators}  reveal by ${t.revealDeadline}`
}

function printTask(ctx: CliContext, t: TaskJson): void {
  ctx.out(taskLine(t))
  ctx.out(`  creator    ${t.creator}`)
  ctx.out(`  base       ${t.baseModel.kind} ${t.baseModel.cid ?? t.baseModel.hash ?? ''}`)
  ctx.out(
    `  deadlines  submit ${t.submitDeadline}, publish ${t.publishDeadline}, score ${t.scoreDeadline}, reveal ${t.revealDeadline}`,
  )
  ctx.out(`  sets       A ${short(t.validationCommitA)}  B ${short(t.validationCommitB)}`)
  if (t.result === undefined) return
  ctx.out('  leaderboard')
  for (const r of t.result.leaderboard)
    ctx.out(
      `    ${r.rank === 0 ? '\u2013' : String(r.rank)}  #${r.index} ${short(r.trainer, 24)} ${r.status.padEnd(11)} ${ppm(r.scorePpm).padStart(7)}  paid ${r.payout}`,
    )
  ctx.out('  validators')
  for (const v of t.result.validators)
    ctx.out(
      `    ${short(v.did, 24)} trust ${ppm(v.trustPpm).padStart(7)}  paid ${v.payout}${v.slashed === '0' ? '' : `  slashed ${v.slashed}`}${v.revealed ? '' : '  (no reveal)'}`,
    )
  ctx.out(`  back to the creator ${t.result.refund}`)
  const w = t.result.winner
  if (w !== undefined)
    ctx.out(
      `  winner     ${w.weightsCid} ${w.registered ? '(in the inference market)' : `(not registered: ${w.reason ?? ''})`}`,
    )
}

async function readSet(path: string, flag: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path))
  } catch (err) {
    throw new CliError(`cannot read ${flag} ${path}: ${describeError(err)}`)
  }
}

function windows(text: string): [number, number, number, number] {
  const parts = text.split(',').map((x) => whole(x, '--windows', 1, 100_000) as number)
  if (parts.length !== 4) throw new CliError('--windows takes four block counts: submit,publish,score,reveal')
  return parts as [number, number, number, number]
}

function registerTask(program: Command, io: CliIo): void {
  const task = program
    .command('task')
    .description('AI Arena training tasks: post, list, show')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae task list
  $ donghae task show 1
  $ donghae task create --name digits-arena --base bafkrei\u2026 --set-a a.bin --set-b b.bin --pool 100000`,
    )

  txOptions(
    task
      .command('create')
      .description('escrow a reward pool and post a training task (signed with the home keystore)')
      .requiredOption('--name <name>', 'task name, also the model name the winner is registered under')
      .requiredOption('--base <ref>', 'base model: a registered model CID, or a MetaBlock hash (64 hex)')
      .requiredOption('--set-a <file>', 'hidden validation set A (give it to your validators, not the trainers)')
      .requiredOption('--set-b <file>', 'hidden validation set B')
      .requiredOption('--pool <n>', 'reward pool, base units')
      .option('--data <cid>', 'public training data by CID (default: local data only)')
      .option('--windows <blocks>', 'blocks for submit,publish,score,reveal from the current height', '30,10,10,10')
      .option('--k1 <n>', 'trainers paid', '3')
      .option('--k2 <n>', 'validators paid', '3')
      .option('--price <n>', 'register the winner in the inference market at this fee per call')
      .option('--note <text>', 'a short description')
      .option('--node <url>', NODE_HELP),
  )
    .addHelpText(
      'after',
      `
The sets' bytes never go on chain, only their sha256; \`donghae task sets --out DIR\` writes two
demo sets from the held-out digits. The windows are counted from the node's current height.

Examples:
  $ donghae task sets --out ./sets
  $ donghae task create --name digits-arena --base bafkrei\u2026 --set-a sets/set-a.bin --set-b sets/set-b.bin --pool 100000 --wait
  $ donghae task create --name digits-arena --base bafkrei\u2026 --set-a a.bin --set-b b.bin --pool 50000 --price 3 --windows 60,20,20,20`,
    )
    .action(
      async (
        options: Parameters<typeof sendTx>[3] & {
          name: string
          base: string
          setA: string
          setB: string
          pool: string
          data?: string
          windows: string
          k1: string
          k2: string
          price?: string
          note?: string
        },
        command: Command,
      ) =>
        withClient(command, io, async (ctx, client) => {
          const [a, b] = await Promise.all([readSet(options.setA, '--set-a'), readSet(options.setB, '--set-b')])
          const [submit, publish, score, reveal] = windows(options.windows)
          const { height } = await client.status()
          const baseModel = /^[0-9a-f]{64}$/.test(options.base)
            ? { kind: 'metablock', hash: options.base }
            : { kind: 'model', cid: options.base }
          const body: Record<string, unknown> = {
            name: options.name,
            baseModel,
            data: options.data === undefined ? { kind: 'local' } : { kind: 'public', cid: options.data },
            validationCommitA: validationCommit(a),
            validationCommitB: validationCommit(b),
            submitDeadline: height + submit,
            publishDeadline: height + submit + publish,
            scoreDeadline: height + submit + publish + score,
            revealDeadline: height + submit + publish + score + reveal,
            k1: whole(options.k1, '--k1', 1, 64),
            k2: whole(options.k2, '--k2', 1, 64),
            pool: parseUint64(options.pool, '--pool'),
            ...(options.price === undefined ? {} : { price: parseUint64(options.price, '--price') }),
            ...(options.note === undefined ? {} : { note: options.note }),
          }
          await sendTx(ctx, client, { kind: 'arena.create', body }, options)
        }),
    )

  task
    .command('list')
    .description('list Arena tasks, newest first')
    .option('--status <status>', 'open or settled')
    .option('--limit <n>', 'at most this many', '50')
    .option('--node <url>', NODE_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae task list
  $ donghae task list --status open --json`,
    )
    .action(async (options: { status?: string; limit: string; json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        if (options.status !== undefined && options.status !== 'open' && options.status !== 'settled')
          throw new CliError('--status must be open or settled')
        const limit = whole(options.limit, '--limit', 1, 1000)
        const query = `?limit=${limit}${options.status === undefined ? '' : `&status=${options.status}`}`
        const { tasks } = await call<{ tasks: TaskJson[] }>(client, 'GET', `/v1/arena/tasks${query}`)
        if (options.json === true) return ctx.json(tasks)
        if (tasks.length === 0) return ctx.out('no arena tasks (post one with `donghae task create`)')
        for (const t of tasks) ctx.out(taskLine(t))
      }),
    )

  task
    .command('show <id>')
    .description('show a task: deadlines, and once settled its leaderboard and the validators\u2019 pay')
    .option('--node <url>', NODE_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae task show 1
  $ donghae task show 1 --json`,
    )
    .action(async (id: string, options: { json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const n = whole(id, 'the task id', 1, Number.MAX_SAFE_INTEGER)
        const t = await call<TaskJson>(client, 'GET', `/v1/arena/tasks/${n}`)
        if (options.json === true) return ctx.json(t)
        printTask(ctx, t)
      }),
    )

  task
    .command('sets')
    .description('write two demo hidden validation sets (halves of the held-out digits) and their commitments')
    .requiredOption('--out <dir>', 'folder to write set-a.bin and set-b.bin into')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae task sets --out ./sets`,
    )
    .action(async (options: { out: string; json?: boolean }) => {
      const digits = await readDigitsDataset()
      const halves = splitDataset(splitDataset(digits, DIGITS_RECIPE.split).test, { seed: 7, testFraction: 0.5 })
      await mkdir(options.out, { recursive: true })
      const out: Record<string, string> = {}
      for (const [name, set] of [
        ['set-a.bin', halves.train],
        ['set-b.bin', halves.test],
      ] as const) {
        const bytes = encodeValidationSet(set)
        await writeFile(join(options.out, name), bytes)
        out[name] = toHex(validationCommit(bytes))
      }
      if (options.json === true) return void io.stdout.write(`${JSON.stringify(out)}\n`)
      for (const [name, commit] of Object.entries(out))
        io.stdout.write(`${join(options.out, name)}  sha256 ${commit}\n`)
    })
}

function printJob(ctx: CliContext, job: JobJson, json: boolean | undefined): void {
  if (json === true) return ctx.json(job)
  ctx.out(`${job.role} on task ${job.task}: ${job.stage}${job.cid === undefined ? '' : ` (${job.cid})`}`)
  if (job.error !== undefined) ctx.out(`  error: ${job.error}`)
}

export function registerArena(program: Command, io: CliIo): void {
  registerTask(program, io)

  program
    .command('train')
    .description('train for an Arena task on the node and commit to the weights (published after the deadline)')
    .requiredOption('--task <id>', 'the task')
    .option('--epochs <n>', 'built-in trainer epochs', '20')
    .option('--seed <n>', 'training seed (default: from the node\u2019s DID and the task)')
    .option(
      '--command <cmd>',
      'an external trainer run on the node\u2019s machine (docs/arena.md\u2019s file contract)',
    )
    .option('--bond <n>', 'trainer bond, base units', '100')
    .option('--node <url>', NODE_HELP)
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
The built-in trainer fine-tunes the task's base model (an MLP of the same widths) on the digits
training data. An external command runs in a fresh folder holding input.json (and base.onnx) and
must write weights.onnx there.

Examples:
  $ donghae train --task 1
  $ donghae train --task 1 --epochs 40 --bond 500
  $ donghae train --task 1 --command "python train.py"`,
    )
    .action(
      async (
        options: {
          task: string
          epochs: string
          seed?: string
          command?: string
          bond: string
          token?: string
          json?: boolean
        },
        command: Command,
      ) =>
        withClient(command, io, async (ctx, client) => {
          const token = await operatorToken(ctx, options.token, "bonds the node's funds")
          io.stderr.write(`training for task ${options.task} on the node\u2026\n`)
          const job = await call<JobJson>(client, 'POST', '/v1/operator/arena/train', {
            token,
            body: {
              task: whole(options.task, '--task', 1, Number.MAX_SAFE_INTEGER),
              bond: parseUint64(options.bond, '--bond').toString(),
              epochs: whole(options.epochs, '--epochs', 1, 100_000),
              ...(options.seed === undefined ? {} : { seed: whole(options.seed, '--seed', 0, 0xffffffff) }),
              ...(options.command === undefined ? {} : { command: options.command }),
            },
          })
          printJob(ctx, job, options.json)
        }),
    )

  program
    .command('validate')
    .description('validate an Arena task with the hidden sets: the node scores, commits and reveals by itself')
    .requiredOption('--task <id>', 'the task')
    .requiredOption('--set-a <file>', 'hidden set A from the creator (a path the node can read)')
    .requiredOption('--set-b <file>', 'hidden set B from the creator')
    .option('--bond <n>', 'validator bond, base units (your stake in the consensus)', '1000')
    .option('--node <url>', NODE_HELP)
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
The node checks the sets against the task's commitments, bonds, and after the draw scores the
submissions it is assigned on set A or B, commits to the scores and reveals them in time.

Examples:
  $ donghae validate --task 1 --set-a sets/set-a.bin --set-b sets/set-b.bin
  $ donghae validate --task 1 --set-a a.bin --set-b b.bin --bond 5000 --json`,
    )
    .action(
      async (
        options: { task: string; setA: string; setB: string; bond: string; token?: string; json?: boolean },
        command: Command,
      ) =>
        withClient(command, io, async (ctx, client) => {
          const token = await operatorToken(ctx, options.token, "bonds the node's funds")
          const job = await call<JobJson>(client, 'POST', '/v1/operator/arena/validate', {
            token,
            body: {
              task: whole(options.task, '--task', 1, Number.MAX_SAFE_INTEGER),
              bond: parseUint64(options.bond, '--bond').toString(),
              setA: resolve(options.setA),
              setB: resolve(options.setB),
            },
          })
          printJob(ctx, job, options.json)
        }),
    )
}
