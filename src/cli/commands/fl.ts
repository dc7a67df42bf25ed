/**
 * `donghae fl ...`: FL Alliance tasks (issue 15, part 3) through a node's HTTP API, signed with the
 * home keystore.
 *
 *   fl create   escrow a pool for a federated task on the digits MLP; its starting model is the
 *               consensus model (trained on the public examples) or a random one; uploads the
 *               initial model's blob once the task is on chain. With --price, the finished
 *               task's global model enters the inference market under the task's name
 *   fl join     join a task with a bond and follow it until it ends, one line per round: a
 *               long-running participant (no chain of its own) holding one non-IID shard
 *   fl show     a task's rounds: roles, votes, accuracy, pay and slashes; its registered model
 *   fl list     the tasks
 *
 * The node is `--node` > DONGHAE_NODE > DEFAULT_NODE_URL.
 */
import type { Command } from 'commander'
import { systemClock } from '../../core/clock.ts'
import { AbortError } from '../../core/errors.ts'
import { parseUint64 } from '../../core/uint.ts'
import { encodeTx, signTx } from '../../chain/tx.ts'
import type { Ed25519KeyPair } from '../../identity/keys.ts'
import { DonghaeClient } from '../../api/client.ts'
import { ApiError } from '../../api/errors.ts'
import { DEFAULT_NODE_URL, NODE_URL_ENV } from '../../api/constants.ts'
import { FlHttpClient, participantView, type FlTaskDetailJson } from '../../api/fl-api.ts'
import { AGGREGATION_RULES, isAggregationRule } from '../../fl/aggregate.ts'
import { FL_BEHAVIOURS, SIGN_FLIP_SCALE, type FlBehaviourName } from '../../fl/client.ts'
import { DEFAULT_APPROVE_TOLERANCE_PPM, FL_TRAINING_DEFAULTS } from '../../fl/round.ts'
import { createContext, type CliContext, type CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { unlockHomeKeystore } from '../password.ts'

const DIGITS_WIDTHS = [64, 32, 10]
const DIGITS_INPUT_DIVISOR = 16

function nodeUrl(command: Command, io: CliIo): string {
  return command.optsWithGlobals<{ node?: string }>().node ?? io.env[NODE_URL_ENV] ?? DEFAULT_NODE_URL
}

function whole(text: string, flag: string, min = 0): number {
  const n = Number(text)
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n) || n < min)
    throw new CliError(`${flag} must be a whole number \u2265 ${min}, e.g. ${Math.max(min, 1)}`)
  return n
}

function decimal(text: string, flag: string): number {
  const n = Number(text)
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`${flag} must be a positive number, e.g. 0.1`)
  return n
}

/** Signs and submits `fl.<kind>` transactions from one key, one at a time, each waited for. */
class TxSender {
  readonly #client: DonghaeClient
  readonly #key: Ed25519KeyPair
  readonly #did: string
  readonly #fee: bigint
  #chainId: string | undefined
  #nonce: bigint | undefined

  constructor(client: DonghaeClient, key: Ed25519KeyPair, did: string, fee: bigint) {
    this.#client = client
    this.#key = key
    this.#did = did
    this.#fee = fee
  }

  async send(
    kind: string,
    body: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<{ hash: string; height: number; ok: boolean; reason?: string }> {
    for (let attempt = 0; ; attempt++) {
      this.#chainId ??= (await this.#client.status({ ...(signal === undefined ? {} : { signal }) })).chainId
      this.#nonce ??= BigInt((await this.#client.account(this.#did)).nonce)
      const signed = signTx(this.#key, { chainId: this.#chainId, nonce: this.#nonce, fee: this.#fee, kind, body })
      try {
        const { hash } = await this.#client.submitTx(encodeTx(signed))
        this.#nonce += 1n
        const status = await this.#client.waitForTx(hash, {
          timeoutMs: 120_000,
          ...(signal === undefined ? {} : { signal }),
        })
        return {
          hash,
          height: status.height,
          ok: status.ok,
          ...(status.reason === undefined ? {} : { reason: status.reason }),
        }
      } catch (err) {
        // another client of this key moved the nonce: read it again, once
        const stale = err instanceof ApiError && ['stale-nonce', 'bad-nonce', 'nonce-in-use'].includes(err.reason ?? '')
        if (!stale || attempt > 0) throw err
        this.#nonce = undefined
      }
    }
  }
}

async function unlock(
  ctx: CliContext,
  passwordFile: string | undefined,
): Promise<{ key: Ed25519KeyPair; did: string }> {
  const { keyPair, file } = await unlockHomeKeystore(
    ctx.home,
    { prompt: 'Password of the home keystore' },
    { passwordFile, env: ctx.env, stdin: ctx.stdin, stderr: ctx.stderr },
  )
  return { key: keyPair, did: file.did }
}

/** Runs an action; API failures become one line that says what to do. */
async function withApi(action: () => Promise<void>, url: string): Promise<void> {
  try {
    await action()
  } catch (err) {
    if (!(err instanceof ApiError)) throw err
    if (err.code === 'UNREACHABLE')
      throw new CliError(`${err.message}; start the node, or point --node or ${NODE_URL_ENV} at one`, { cause: err })
    if (err.code === 'TX_REJECTED')
      throw new CliError(`the node rejected the transaction (${err.reason ?? 'unknown reason'}): ${err.message}`, {
        cause: err,
      })
    throw new CliError(`${url}: ${err.message}`, { cause: err })
  }
}

const ppm = (value: number | undefined): string => (value === undefined ? '-' : `${(value / 10_000).toFixed(2)}%`)
const short = (did: string): string => `${did.slice(0, 14)}\u2026${did.slice(-4)}`

function printTask(ctx: CliContext, detail: FlTaskDetailJson): void {
  const t = detail.task
  ctx.out(`task ${t.id} ${t.name}: ${t.status}, round ${t.round}/${t.rounds} (height ${detail.height})`)
  ctx.out(
    `  rule ${t.rule} f=${t.f}, ${t.participants} participants (${t.voters} voters a round), MLP ${t.widths.join('-')}`,
  )
  ctx.out(`  pool ${t.pool} (left ${t.remaining}, paid ${t.paid}), bond ${t.bond}, slashed ${t.slashed}`)
  ctx.out(`  global model ${t.global.cid} (sha-256 ${t.global.digest.slice(0, 16)}\u2026)`)
  if (t.onnx !== undefined) ctx.out(`  ONNX export ${t.onnx.cid} (${t.onnx.bytes} bytes)`)
  if (t.model !== undefined)
    ctx.out(
      t.model.registered
        ? `  in the market: ${t.model.name} ${t.model.version} = ${t.model.cid} (round ${t.model.round}, price ${t.price ?? '?'}, ${t.model.lineage?.contributors.length ?? 0} contributors)`
        : `  not in the market: ${t.model.reason ?? 'unknown reason'}`,
    )
  else if (t.price !== undefined) ctx.out(`  market entry ${t.name} at price ${t.price} once the task finishes`)
  for (const r of detail.rounds) {
    const approvals = r.votes.filter((v) => v.approve).length
    ctx.out(
      `  round ${r.round} ${r.status.padEnd(6)} updates ${r.updates.length}/${r.proposers.length} votes ${approvals}/${r.votes.length}/${r.voters.length} accuracy ${ppm(r.accuracyPpm)} pay ${r.pay ?? '-'}` +
        (r.slashes === undefined || r.slashes.length === 0
          ? ''
          : ` slashed ${r.slashes.map((s) => `${short(s.did)} ${s.amount} (${s.reason})`).join(', ')}`),
    )
  }
  for (const p of detail.participants)
    ctx.out(
      `  ${p.did}  bond ${p.bond} paid ${p.paid} slashed ${p.slashed} proposed ${p.proposed} voted ${p.voted} excluded ${p.excluded}`,
    )
}

interface CreateOptions {
  name: string
  rule: string
  f: string
  rounds: string
  participants: string
  voters: string
  uploadBlocks: string
  voteBlocks: string
  joinBlocks: string
  pool: string
  bond: string
  slashPpm: string
  init: string
  price?: string
  fee: string
  passwordFile?: string
  json?: boolean
}

interface JoinOptions {
  task: string
  shard: string
  behaviour: string
  attackScale: string
  alpha: string
  seed: string
  epochs: string
  lr: string
  decay: string
  tolerancePpm: string
  poll: string
  fee: string
  passwordFile?: string
  json?: boolean
}

export function registerFl(program: Command, io: CliIo): void {
  const fl = program
    .command('fl')
    .description('FL Alliance: federated training rounds on chain (create, join, show, list)')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae fl create --rule multi-krum --f 3 --rounds 12 --json
  $ donghae fl join --task 1 --shard 3/12
  $ donghae fl show 1

Docs: docs/fl.md`,
    )

  fl.command('create')
    .description('create a federated task on the digits MLP, escrowing its reward pool')
    .option('--name <name>', 'task name', 'digits')
    .option('--rule <rule>', `aggregation rule: ${AGGREGATION_RULES.join(', ')}`, 'multi-krum')
    .option('--f <n>', 'Byzantine updates the rule must tolerate', '3')
    .option('--rounds <n>', 'rounds', '10')
    .option('--participants <n>', 'the task starts when this many have joined', '12')
    .option('--voters <n>', 'voters drawn each round (the others propose)', '3')
    .option('--upload-blocks <n>', "blocks of a round's upload window", '8')
    .option('--vote-blocks <n>', "blocks of a round's vote window", '8')
    .option('--join-blocks <n>', 'blocks within which the task must fill up', '600')
    .option('--pool <n>', 'reward pool, base units', '120000')
    .option('--bond <n>', 'bond per participant, base units', '1000')
    .option('--slash-ppm <n>', 'share of the remaining bond slashed per offence, ppm', '500000')
    .option('--init <kind>', 'starting model: consensus (trained on the public examples) or random', 'consensus')
    .option(
      '--price <n>',
      "put the finished task's global model in the inference market under --name at this fee per call (base units; escrows the model deposit)",
    )
    .option('--fee <n>', 'fee in base units', '1')
    .option('--password-file <file>', 'read the keystore password from a file')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The starting model is the task's consensus model (seed 003: FL fine-tunes what the arena agreed
on): DIGITS_RECIPE's MLP trained on the public examples of the digits federation; its blob is
uploaded to the node once the task is on chain.

With --price, the task names a market entry: when it finishes, the ONNX export of its global model
that the voters agreed on is registered in the inference market as --name, version fl-<task id>,
owned by the creator, with its lineage (the initial model, the creator and the paid participants,
who share the usage fees); the market's model deposit is escrowed now and stays with the model, or
comes back when it cannot be registered (the name is another account's, no round passed).

Examples:
  $ donghae fl create --rule multi-krum --f 3 --rounds 10 --pool 120000 --json
  $ donghae fl create --name digits-fl --price 10 --rounds 10
  $ donghae fl create --rule fedavg --f 0 --init random`,
    )
    .action(async (options: CreateOptions, command: Command) => {
      const ctx = createContext(command, io)
      const url = nodeUrl(command, io)
      if (!isAggregationRule(options.rule)) throw new CliError(`--rule must be one of ${AGGREGATION_RULES.join(', ')}`)
      if (options.init !== 'consensus' && options.init !== 'random')
        throw new CliError('--init must be consensus or random')
      const rule = options.rule
      const numbers = {
        f: whole(options.f, '--f'),
        rounds: whole(options.rounds, '--rounds', 1),
        participants: whole(options.participants, '--participants', 4),
        voters: whole(options.voters, '--voters', 3),
        uploadBlocks: whole(options.uploadBlocks, '--upload-blocks', 1),
        voteBlocks: whole(options.voteBlocks, '--vote-blocks', 1),
        joinBlocks: whole(options.joinBlocks, '--join-blocks', 1),
        slashPpm: whole(options.slashPpm, '--slash-ppm'),
      }
      const pool = parseUint64(options.pool, '--pool')
      const bond = parseUint64(options.bond, '--bond')
      const fee = parseUint64(options.fee, '--fee')
      const price = options.price === undefined ? undefined : parseUint64(options.price, '--price')
      if (price === 0n) throw new CliError('--price must be at least 1 base unit a call')
      await withApi(async () => {
        const { readDigitsDataset, DIGITS_RECIPE } = await import('../../inference/demo-models.ts')
        const { mlpTrainer } = await import('../../inference/trainer.ts')
        const { consensusModel, digitsFederation } = await import('../../fl/round.ts')
        const { flattenMlp, weightsDigest } = await import('../../fl/weights.ts')
        const { encodeModel, flBlobCid } = await import('../../fl/blob.ts')
        const federation = digitsFederation(await readDigitsDataset(), { clients: numbers.participants })
        const model =
          options.init === 'consensus'
            ? await consensusModel(federation.public)
            : await mlpTrainer.train(federation.public, { ...DIGITS_RECIPE.mlp, epochs: 0 })
        const weights = flattenMlp(model)
        const blob = encodeModel({ task: 0, round: 0, weights })
        const initial = { cid: flBlobCid(blob), digest: weightsDigest(weights) }
        const { key, did } = await unlock(ctx, options.passwordFile)
        const sender = new TxSender(new DonghaeClient(url), key, did, fee)
        const sent = await sender.send('fl.create', {
          name: options.name,
          widths: DIGITS_WIDTHS,
          inputDivisor: DIGITS_INPUT_DIVISOR,
          initial,
          rule,
          ...numbers,
          pool,
          bond,
          ...(price === undefined ? {} : { price }),
        })
        if (!sent.ok)
          throw new CliError(`fl.create ${sent.hash} failed (${sent.reason ?? 'unknown'}); its fee was charged`)
        const flClient = new FlHttpClient(url)
        const task = (await flClient.tasks()).find((t) => t.creator === did && t.initial.cid === initial.cid)
        if (task === undefined) throw new CliError(`fl.create ${sent.hash} committed but the node lists no such task`)
        await flClient.putBlob(blob)
        const accuracy = mlpTrainer.evaluate(model, federation.test).accuracy
        const result = {
          task: task.id,
          hash: sent.hash,
          height: sent.height,
          initial,
          initialAccuracy: accuracy,
          ...(price === undefined ? {} : { market: { name: options.name, price: String(price) } }),
        }
        if (options.json === true) ctx.json(result)
        else
          ctx.out(
            `created FL task ${task.id} at height ${sent.height}; its starting model scores ${(accuracy * 100).toFixed(2)}% on the test set`,
          )
      }, url)
    })

  fl.command('join')
    .description('join a task with a bond and take part in its rounds until it ends (long-running)')
    .requiredOption('--task <id>', 'the task id')
    .requiredOption('--shard <i/n>', 'this participant\u2019s shard of the digits federation, e.g. 3/12')
    .option('--behaviour <name>', `what it does to its updates: ${Object.keys(FL_BEHAVIOURS).join(', ')}`, 'honest')
    .option('--attack-scale <x>', 'sign-flip scale', String(SIGN_FLIP_SCALE))
    .option('--alpha <x>', 'Dirichlet concentration of the non-IID split', '0.5')
    .option('--seed <n>', 'seed of the split', '7')
    .option('--epochs <n>', 'local epochs a round', String(FL_TRAINING_DEFAULTS.epochs))
    .option('--lr <x>', 'learning rate of round 1 (SGD)', String(FL_TRAINING_DEFAULTS.learningRate))
    .option('--decay <x>', 'the learning rate is multiplied by this each round', String(FL_TRAINING_DEFAULTS.decay))
    .option(
      '--tolerance-ppm <n>',
      'a voter approves a model at most this much less accurate than the base (on its own shard), ppm',
      String(DEFAULT_APPROVE_TOLERANCE_PPM),
    )
    .option('--poll <ms>', 'how often the task is read', '500')
    .option('--fee <n>', 'fee in base units', '1')
    .option('--password-file <file>', 'read the keystore password from a file')
    .option('--json', 'print one JSON line per round, then the summary')
    .addHelpText(
      'after',
      `
Each process keeps only its shard: the digits federation is split the same way everywhere (seed,
alpha) and shard i of n stays here; only updates sealed to the round's voters leave. It exits
when the task finishes (or is cancelled), or on SIGINT/SIGTERM.

Examples:
  $ donghae fl join --task 1 --shard 0/12
  $ donghae fl join --task 1 --shard 11/12 --behaviour sign-flip --json`,
    )
    .action(async (options: JoinOptions, command: Command) => {
      const ctx = createContext(command, io)
      const url = nodeUrl(command, io)
      const id = whole(options.task, '--task', 1)
      const match = /^([0-9]+)\/([0-9]+)$/.exec(options.shard)
      if (match === null) throw new CliError('--shard must be i/n, e.g. 3/12')
      const [index, clients] = [Number(match[1]), Number(match[2])]
      if (clients < 1 || index >= clients) throw new CliError('--shard i/n needs 0 \u2264 i < n')
      if (!(options.behaviour in FL_BEHAVIOURS))
        throw new CliError(`--behaviour must be one of ${Object.keys(FL_BEHAVIOURS).join(', ')}`)
      const behaviour = options.behaviour as FlBehaviourName
      const training = {
        epochs: whole(options.epochs, '--epochs', 1),
        learningRate: decimal(options.lr, '--lr'),
        decay: decimal(options.decay, '--decay'),
      }
      const fee = parseUint64(options.fee, '--fee')
      await withApi(async () => {
        const { readDigitsDataset } = await import('../../inference/demo-models.ts')
        const { digitsFederation } = await import('../../fl/round.ts')
        const { openingKey } = await import('../../fl/blob.ts')
        const { FlParticipant } = await import('../../fl/service.ts')
        const federation = digitsFederation(await readDigitsDataset(), {
          clients,
          alpha: decimal(options.alpha, '--alpha'),
          seed: whole(options.seed, '--seed'),
        })
        const shard = federation.shards[index]
        if (shard === undefined) throw new CliError(`the federation has no shard ${index}`)
        const { key, did } = await unlock(ctx, options.passwordFile)
        const flClient = new FlHttpClient(url)
        const sender = new TxSender(new DonghaeClient(url), key, did, fee)
        const controller = new AbortController()
        const onSignal = (): void => controller.abort()
        process.once('SIGINT', onSignal)
        process.once('SIGTERM', onSignal)
        try {
          const first = await flClient.task(id)
          if (first === undefined) throw new CliError(`the node knows no FL task ${id} (donghae fl list)`)
          if (!first.participants.some((p) => p.did === did)) {
            const joined = await sender.send('fl.join', { task: id, bond: BigInt(first.task.bond) }, controller.signal)
            if (!joined.ok) throw new CliError(`fl.join failed (${joined.reason ?? 'unknown'}); its fee was charged`)
          }
          const line = (value: unknown, text: string): void => {
            if (options.json === true) ctx.stdout.write(`${JSON.stringify(value)}\n`)
            else ctx.out(text)
          }
          line(
            { joined: id, did, shard: index, examples: shard.labels.length, behaviour },
            `joined FL task ${id} as ${did} with shard ${index}/${clients} (${shard.labels.length} examples, ${behaviour})`,
          )
          const participant = new FlParticipant(
            {
              task: id,
              did,
              openingKey: openingKey(key, did),
              shard,
              training,
              behaviour,
              attackScale: decimal(options.attackScale, '--attack-scale'),
              tolerancePpm: whole(options.tolerancePpm, '--tolerance-ppm'),
              pollMs: whole(options.poll, '--poll', 50),
              onRound: (r) =>
                line(
                  r,
                  r.role === 'proposer'
                    ? `round ${r.round} proposer: ${r.outcome} (loss ${r.loss?.toFixed(3) ?? '-'}; ms ${JSON.stringify(r.ms)})`
                    : `round ${r.round} voter: ${r.outcome}, ${r.approve === true ? 'approve' : 'reject'} accuracy ${ppm(r.accuracyPpm)} (base ${ppm(r.baseAccuracyPpm)}), ${r.updates ?? 0} updates, excluded ${r.excluded?.length ?? 0}; ms ${JSON.stringify(r.ms)}`,
                ),
            },
            {
              task: async (taskId, signal) => {
                const detail = await flClient.task(taskId, { rounds: 'current', signal })
                return detail === undefined ? undefined : participantView(detail, did)
              },
              submit: (kind, body, signal) => sender.send(`fl.${kind}`, body, signal),
              putBlob: async (bytes, signal) => void (await flClient.putBlob(bytes, signal)),
              getBlob: (cid, signal) => flClient.getBlob(cid, signal),
              sleep: (ms, signal) => systemClock.sleep(ms, { signal }),
              now: () => systemClock.now(),
            },
          )
          const summary = await participant.run(controller.signal)
          const final = await flClient.task(id, { rounds: 'current' })
          const me = final?.participants.find((p) => p.did === did)
          const result = {
            task: id,
            status: summary.status,
            rounds: summary.rounds.length,
            paid: me?.paid,
            slashed: me?.slashed,
            returned: me?.returned,
          }
          line(
            { done: result },
            `FL task ${id} ${summary.status}: took part in ${result.rounds} rounds, paid ${result.paid ?? '?'}, slashed ${result.slashed ?? '?'}`,
          )
        } catch (err) {
          if (err instanceof AbortError && controller.signal.aborted) throw new CliError('stopped by a signal')
          throw err
        } finally {
          process.off('SIGINT', onSignal)
          process.off('SIGTERM', onSignal)
        }
      }, url)
    })

  fl.command('show')
    .description("a task's rounds: roles, votes, accuracy per round, pay and slashes; its model in the market")
    .argument('<id>', 'the task id')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExamples:\n  $ donghae fl show 1\n  $ donghae fl show 1 --json')
    .action(async (idText: string, options: { json?: boolean }, command: Command) => {
      const ctx = createContext(command, io)
      const url = nodeUrl(command, io)
      const id = whole(idText, '<id>', 1)
      await withApi(async () => {
        const detail = await new FlHttpClient(url).task(id)
        if (detail === undefined) throw new CliError(`the node knows no FL task ${id}`)
        if (options.json === true) ctx.json(detail)
        else printTask(ctx, detail)
      }, url)
    })

  fl.command('list')
    .description('the FL tasks, newest first')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExamples:\n  $ donghae fl list\n  $ donghae --node http://127.0.0.1:26658 fl list --json')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = createContext(command, io)
      const url = nodeUrl(command, io)
      await withApi(async () => {
        const tasks = await new FlHttpClient(url).tasks()
        if (options.json === true) return ctx.json({ tasks })
        if (tasks.length === 0) return ctx.out('no FL tasks')
        for (const t of tasks)
          ctx.out(
            `${String(t.id).padStart(4)} ${t.name} ${t.status} round ${t.round}/${t.rounds} ${t.rule} pool ${t.pool}` +
              (t.model === undefined
                ? ''
                : t.model.registered
                  ? ` model ${t.model.version} ${t.model.cid}`
                  : ` not registered (${t.model.reason ?? '?'})`),
          )
      }, url)
    })
}
