/**
 * AI-Block from the command line: `experts list|show|history|top|proposals` read a node's view of
 * the Mixture-of-Experts families on chain; `experts propose` mines a block (weights from a file
 * or the node's trainer) and can wait for the validators' decision; `experts import` turns a MoE
 * checkpoint folder into a family; `experts chat` asks a family's model and shows which experts
 * and nodes answered. They talk to a node's HTTP API (`--node` > DONGHAE_NODE >
 * http://127.0.0.1:26657); operator calls send its token (`--token` > DONGHAE_API_TOKEN >
 * `<home>/api-token`). Progress lines go to stderr, so stdout stays clean for `--json`.
 */
import { readFile, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { describeError } from '../../core/errors.ts'
import { parseExpertName } from '../../experts/types.ts'
import { type ExpertJson, type ProposalJson, type ProposalStatusJson, type ScoreJson } from '../../api/client.ts'
import { DEFAULT_NODE_URL, NODE_URL_ENV } from '../../api/constants.ts'
import type { CliContext, CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { operatorToken, TOKEN_ENV, withClient } from './inference.ts'

const NODE_HELP = `the node's API (env ${NODE_URL_ENV}, default ${DEFAULT_NODE_URL})`
const TOKEN_HELP = `the node's operator token (env ${TOKEN_ENV}, default <home>/api-token)`
const STATUSES: readonly ProposalStatusJson[] = ['pending', 'accepted', 'refused', 'expired']

function wholeNumber(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined
  const value = Number(text)
  if (!/^[0-9]+$/.test(text) || value < min || value > max)
    throw new CliError(`${flag} must be a whole number from ${min} to ${max} (got ${JSON.stringify(text)})`)
  return value
}

function expertArg(name: string): string {
  if (parseExpertName(name) === undefined)
    throw new CliError(`${JSON.stringify(name)} is not an expert name: use layer{L}.expert{J} or layer{L}.router`)
  return name
}

/** A score for people: loss in nats, accuracy in percent. */
export function scoreText(s: ScoreJson | undefined): string {
  if (s === undefined) return '\u2013'
  return `loss ${(Number(s.lossMicroNats) / 1e6).toFixed(4)}, accuracy ${(s.accuracyPpm / 1e4).toFixed(2)}%`
}

const short = (text: string, n = 12): string => (text.length > n + 1 ? `${text.slice(0, n)}\u2026` : text)

function expertLine(e: ExpertJson): string {
  return `${e.name.padEnd(18)} ${short(e.block).padEnd(14)} calls ${String(e.calls).padStart(6)}  ${e.meanLatencyMs.toFixed(1).padStart(6)} ms  rewards ${e.rewards.padStart(8)}  hosts ${e.hosts.length}`
}

function proposalLine(p: ProposalJson): string {
  const why = p.reason === '' ? '' : ` (${p.reason})`
  return `${short(p.id, 16).padEnd(18)} ${`${p.status}${why}`.padEnd(24)} ${p.family} v${p.version}  h${p.height}  ${Object.keys(p.replaces).join(', ')}  claim ${scoreText(p.claim)}${p.score === undefined ? '' : `; measured ${scoreText(p.score)}`}`
}

/** Prints the decision of a proposal; throws (exit 1) when it was not accepted. */
function decision(ctx: CliContext, p: ProposalJson, json: boolean): void {
  if (json) ctx.json(p)
  else if (p.status === 'accepted')
    ctx.out(`proposal ${p.id} accepted at height ${p.height}: ${scoreText(p.score)} (was ${scoreText(p.baseline)})`)
  if (p.status !== 'accepted')
    throw new CliError(`proposal ${p.id} was ${p.status}: ${p.reason === '' ? 'no reason given' : p.reason}`)
}

export function registerExperts(program: Command, io: CliIo): void {
  const experts = program
    .command('experts')
    .description('AI-Block: Mixture-of-Experts models whose routers and experts are blocks on chain')
  const progress = (line: string): void => void io.stderr.write(`  ${line}\n`)

  experts
    .command('list')
    .description("list a family's current routers and experts with their usage and rewards")
    .option('--family <name>', 'the MoE family (default: every family)')
    .option('--layer <n>', 'only this layer')
    .option('--node <url>', NODE_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae experts list
  $ donghae experts list --family moby-moe --layer 0 --json`,
    )
    .action(async (options: { family?: string; layer?: string; json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const layer = wholeNumber(options.layer, '--layer', 0, 9999)
        const { experts: list } = await client.experts({
          ...(options.family === undefined ? {} : { family: options.family }),
          ...(layer === undefined ? {} : { layer }),
        })
        if (options.json === true) return ctx.json(list)
        if (list.length === 0) return ctx.out('no expert blocks (import a family with `donghae experts import`)')
        let family = ''
        for (const e of list) {
          if (`${e.family}/${e.version}` !== family) {
            family = `${e.family}/${e.version}`
            ctx.out(`${e.family} v${e.version}`)
          }
          ctx.out(`  ${expertLine(e)}`)
        }
      }),
    )

  experts
    .command('show <name>')
    .description('show one current router or expert: block, miner, payload, usage, hosts, ParamIndex key')
    .option('--family <name>', 'the MoE family (default: the first on chain)')
    .option('--node <url>', NODE_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
The index key is the ParamIndex entry's raw state key: \`GET /v1/state/proof?key=KEY\` proves it
against a state root.

Examples:
  $ donghae experts show layer0.expert3
  $ donghae experts show layer1.router --family moby-moe --json`,
    )
    .action(async (name: string, options: { family?: string; json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const e = await client.expert(expertArg(name), options.family === undefined ? {} : { family: options.family })
        if (options.json === true) return ctx.json(e)
        ctx.out(`${e.family} v${e.version} ${e.name}`)
        ctx.out(`  block       ${e.block} (accepted at height ${e.height})`)
        ctx.out(`  miner       ${e.miner}`)
        ctx.out(`  payload     ${e.payloadHash} (${e.payloadBytes} bytes)`)
        ctx.out(
          `  usage       ${e.calls} calls, ${e.meanLatencyMs.toFixed(1)} ms mean, last at height ${e.lastUsedHeight}`,
        )
        ctx.out(`  rewards     ${e.rewards}`)
        ctx.out(`  hosts       ${e.hosts.length === 0 ? 'none' : e.hosts.join(', ')}`)
        ctx.out(`  index key   ${e.indexKey}`)
      }),
    )

  experts
    .command('history <name>')
    .description('list every block proposed for one slot, oldest first, with its status and score')
    .option('--family <name>', 'the MoE family (default: the first on chain)')
    .option('--node <url>', NODE_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae experts history layer0.expert3
  $ donghae experts history layer0.router --family moby-moe --json`,
    )
    .action(async (name: string, options: { family?: string; json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const { blocks } = await client.expertHistory(
          expertArg(name),
          options.family === undefined ? {} : { family: options.family },
        )
        if (options.json === true) return ctx.json(blocks)
        if (blocks.length === 0) return ctx.out(`no blocks for ${name}`)
        for (const b of blocks)
          ctx.out(
            `h${String(b.height).padEnd(8)} ${b.status.padEnd(8)} ${short(b.hash, 16).padEnd(18)} miner ${short(b.header.miner, 20)}  ${scoreText(b.score)}`,
          )
      }),
    )

  experts
    .command('top')
    .description('list the most used experts')
    .option('--family <name>', 'the MoE family (default: every family)')
    .option('--limit <n>', 'how many', '10')
    .option('--node <url>', NODE_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae experts top
  $ donghae experts top --family moby-moe --limit 5 --json`,
    )
    .action(async (options: { family?: string; limit: string; json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const limit = wholeNumber(options.limit, '--limit', 1, 1000) ?? 10
        const { experts: top } = await client.topExperts({
          limit,
          ...(options.family === undefined ? {} : { family: options.family }),
        })
        if (options.json === true) return ctx.json(top)
        if (top.length === 0) return ctx.out('no experts used yet')
        top.forEach((e, i) => ctx.out(`${String(i + 1).padStart(3)}. ${e.family} ${expertLine(e)}`))
      }),
    )

  experts
    .command('training')
    .description('the built-in trainer: idle-time fine-tuning, its pauses for generations, its proposals')
    .option('--node <url>', NODE_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Idle-time training runs on a node started with expertTraining=true (DONGHAE_EXPERT_TRAINING=1): while
no generation has run for 2 s it fine-tunes a hosted expert (the busiest first, then round robin)
and proposes it when the validation score improves by the chain's \u03b4. A generation always comes
first: the trainer pauses at its next unit of work (lastYieldMs).

Examples:
  $ donghae experts training
  $ donghae experts training --json`,
    )
    .action(async (options: { json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const t = await client.expertTraining()
        if (options.json === true) return ctx.json(t)
        ctx.out(
          `idle training: ${t.enabled ? 'on' : 'off'}${t.running ? `, training ${t.expert ?? ''} (step ${t.steps})` : ''}`,
        )
        ctx.out(
          `rounds ${t.rounds}, paused for generations ${t.paused} times (last ${t.lastYieldMs ?? '\u2013'} ms, worst ${t.maxYieldMs} ms)`,
        )
        if (t.lastGainMicroNats !== null) ctx.out(`last round's validation gain: ${t.lastGainMicroNats} µnats`)
        if (t.proposals.length > 0) ctx.out(`proposals: ${t.proposals.join(', ')}`)
      }),
    )

  experts
    .command('proposals')
    .description('the accept/reject log: proposals, newest first, with the decision and its reason')
    .option('--status <status>', `only ${STATUSES.join(', ')}`)
    .option('--limit <n>', 'how many', '20')
    .option('--node <url>', NODE_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae experts proposals
  $ donghae experts proposals --status refused --limit 50 --json`,
    )
    .action(async (options: { status?: string; limit: string; json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        if (options.status !== undefined && !(STATUSES as readonly string[]).includes(options.status))
          throw new CliError(`--status must be one of ${STATUSES.join(', ')}`)
        const limit = wholeNumber(options.limit, '--limit', 1, 1000) ?? 20
        const { proposals } = await client.expertProposals({
          limit,
          ...(options.status === undefined ? {} : { status: options.status as ProposalStatusJson }),
        })
        if (options.json === true) return ctx.json(proposals)
        if (proposals.length === 0) return ctx.out('no proposals')
        for (const p of proposals) ctx.out(proposalLine(p))
      }),
    )

  experts
    .command('propose')
    .description(
      'mine a block for one slot: weights from a file or the node\u2019s trainer, score, proof of work, propose',
    )
    .requiredOption('--expert <name>', 'the slot: layer{L}.expert{J} or layer{L}.router')
    .option('--weights <file>', 'a safetensors file with the payload\u2019s tensors (on the node\u2019s disk)')
    .option('--upload', 'send the --weights file\u2019s bytes to the node (for a node on another machine)')
    .option('--train', 'train the payload with the node\u2019s built-in trainer instead')
    .option('--steps <n>', 'training steps (with --train)')
    .option(
      '--dataset <cid|file>',
      "training tokens (uint32 little-endian) by CID, or a file on the node's disk (with --train; default: the family's training set the node knows, models/moe/train.bin for moby-moe)",
    )
    .option('--family <name>', 'the MoE family (default: the first on chain)')
    .option('--wait', 'wait for the validators\u2019 decision; exit 1 unless accepted')
    .option('--timeout <seconds>', 'with --wait: how long to wait', '600')
    .option('--node <url>', NODE_HELP)
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print the proposal (and with --wait the decision) as JSON')
    .addHelpText(
      'after',
      `
The node reads the weights, scores the model with them in place on the family's public
validation set, finds the proof of work and sends the proposal, bonded from its account. The
validators reproduce the score; the proposal is accepted when it improves the model, and refused
with a reason (forged-score, no-improvement, bad-payload, stale) otherwise. The --weights path is
made absolute and read by the node from its own disk (like \`donghae model publish DIR\`): run the
command on the node's machine, or add --upload to send the file's bytes in chunks.

Examples:
  $ donghae experts propose --expert layer0.expert3 --weights e3.safetensors --wait
  $ donghae experts propose --expert layer1.expert0 --train --steps 20 --dataset models/moe/train.bin
  $ donghae experts propose --expert layer0.expert3 --weights e3.safetensors --upload --node http://node.lan:26657`,
    )
    .action(
      async (
        options: {
          expert: string
          weights?: string
          upload?: boolean
          train?: boolean
          steps?: string
          dataset?: string
          family?: string
          wait?: boolean
          timeout: string
          token?: string
          json?: boolean
        },
        command: Command,
      ) =>
        withClient(command, io, async (ctx, client) => {
          const expert = expertArg(options.expert)
          if ((options.weights === undefined) === (options.train !== true))
            throw new CliError('give either --weights FILE or --train --steps N')
          if (options.train !== true && (options.steps !== undefined || options.dataset !== undefined))
            throw new CliError('--steps and --dataset go with --train')
          if (options.upload === true && options.weights === undefined)
            throw new CliError('--upload sends --weights FILE')
          const timeoutS = wholeNumber(options.timeout, '--timeout', 1, 86_400) ?? 600
          const token = await operatorToken(ctx, options.token, "acts with the node's key")
          const family = options.family === undefined ? {} : { family: options.family }
          const stream = { token, onProgress: progress }
          let proposed
          if (options.train === true) {
            const steps = wholeNumber(options.steps, '--steps', 1, 1_000_000)
            if (steps === undefined) throw new CliError('--train needs --steps N')
            // a path that exists here is sent absolute (the node reads it from its disk); else a CID
            const dataset =
              options.dataset === undefined
                ? undefined
                : (await stat(options.dataset).catch(() => undefined))?.isFile() === true
                  ? resolve(options.dataset)
                  : options.dataset
            const train = { steps, ...(dataset === undefined ? {} : { dataset }) }
            proposed = await client.proposeExpert({ expert, train, ...family }, stream)
          } else {
            const path = resolve(options.weights as string)
            if (options.upload === true) {
              let file: Buffer
              try {
                file = await readFile(path)
              } catch (err) {
                throw new CliError(`cannot read ${path}: ${describeError(err)}`)
              }
              proposed = await client.uploadExpert({ expert, file: new Uint8Array(file), ...family }, stream)
            } else {
              // the node reads it; a missing file here is most likely missing there too
              if ((await stat(path).catch(() => undefined))?.isFile() !== true)
                progress(`note: ${path} is not a file here; the node reads it from its own disk`)
              proposed = await client.proposeExpert({ expert, weightsPath: path, ...family }, stream)
            }
          }
          if (options.wait !== true) {
            if (options.json === true) return ctx.json(proposed)
            ctx.out(`proposal ${proposed.proposal} (block ${proposed.block}, transaction ${proposed.txHash})`)
            ctx.out(`claimed ${scoreText(proposed.claim)}; proof of work in ${proposed.powMs} ms`)
            return ctx.out(`follow it with: donghae experts proposals --status pending`)
          }
          if (options.json !== true) ctx.out(`proposal ${proposed.proposal}; waiting for the validators\u2026`)
          const decided = await client.waitForProposal(proposed.proposal, { timeoutMs: timeoutS * 1000 })
          decision(ctx, decided, options.json === true)
        }),
    )

  experts
    .command('import <dir>')
    .description(
      'import a MoE checkpoint folder (safetensors) as a family: a MetaBlock and a block per router and expert',
    )
    .requiredOption('--family <name>', 'the family name (a new family, or the next version of yours)')
    .option('--node <url>', NODE_HELP)
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
The node reads the folder from its own disk (the CLI sends its absolute path): a Mixtral-style
checkpoint with config.json, tokenizer.json, tokenizer_config.json and *.safetensors. It splits
the weights into the trunk (shared), one router per layer and one block per expert, stores them
and proposes the family. Run the command on the node's machine.

Examples:
  $ donghae experts import ./tiny-mixtral --family tiny-moe
  $ donghae experts import /data/moby-moe --family moby-moe --json`,
    )
    .action(async (dir: string, options: { family: string; token?: string; json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const path = resolve(dir)
        if ((await stat(path).catch(() => undefined))?.isDirectory() !== true)
          progress(`note: ${path} is not a folder here; the node reads it from its own disk`)
        const token = await operatorToken(ctx, options.token, "acts with the node's key")
        const out = await client.importExperts({ dir: path, family: options.family }, { token, onProgress: progress })
        if (options.json === true) return ctx.json(out)
        ctx.out(`imported ${out.family} v${out.version}: ${out.blocks} blocks, proposal ${out.proposal}`)
      }),
    )

  experts
    .command('fork')
    .description("publish the family's next MetaBlock version with new router rules, carrying every block")
    .requiredOption('--family <name>', 'the family (yours: its owner publishes its versions)')
    .option('--top-k <n>', 'experts per token in the new version')
    .option('--gating <rule>', 'softmax-topk-renorm or softmax-topk')
    .option('--note <text>', 'why (kept in the MetaBlock)')
    .option('--node <url>', NODE_HELP)
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
A new MetaBlock version is a fork of the parameter DAG (seed 001's chain forking): generations and
proposals move to it, the old version stays on chain. Changing only the router rules keeps every
block's shapes, so the node carries the whole current ParamIndex into the new version.

Examples:
  $ donghae experts fork --family moby-moe --top-k 3
  $ donghae experts fork --family moby-moe --gating softmax-topk --note "Switch-style gate"`,
    )
    .action(
      async (
        options: { family: string; topK?: string; gating?: string; note?: string; token?: string; json?: boolean },
        command: Command,
      ) =>
        withClient(command, io, async (ctx, client) => {
          const topK = wholeNumber(options.topK, '--top-k', 1, 1024)
          if (
            options.gating !== undefined &&
            options.gating !== 'softmax-topk-renorm' &&
            options.gating !== 'softmax-topk'
          )
            throw new CliError('--gating must be softmax-topk-renorm or softmax-topk')
          if (topK === undefined && options.gating === undefined) throw new CliError('give --top-k N or --gating RULE')
          const token = await operatorToken(ctx, options.token, "acts with the node's key")
          const out = await client.forkExperts(
            {
              family: options.family,
              ...(topK === undefined ? {} : { topK }),
              ...(options.gating === undefined
                ? {}
                : { gating: options.gating as 'softmax-topk-renorm' | 'softmax-topk' }),
              ...(options.note === undefined ? {} : { note: options.note }),
            },
            { token },
          )
          if (options.json === true) return ctx.json(out)
          ctx.out(`${out.family} v${out.version}: ${out.carried} blocks carried (tx ${out.txHash})`)
        }),
    )

  experts
    .command('chat <prompt>')
    .description("ask a family's MoE model; shows the experts and nodes that answered, per layer")
    .option('--family <name>', 'the MoE family (default: the first on chain)')
    .option('--top-k <n>', "experts per token (default: the family's)")
    .option('--max-tokens <n>', 'tokens to generate')
    .option('--local', "use only this node's own copies of the experts (no distributed calls)")
    .option('--node <url>', NODE_HELP)
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print the whole answer as JSON')
    .addHelpText(
      'after',
      `
The node runs the shared trunk and the routers, and calls each routed expert on a node that
hosts it (or, with --local, only its own copies); an expert no host answers in time is masked.
The usage is recorded on chain, paid by the node, so the call needs its operator token.

Examples:
  $ donghae experts chat "Call me Ishmael."
  $ donghae experts chat "Call me Ishmael." --top-k 1 --local --json`,
    )
    .action(
      async (
        prompt: string,
        options: {
          family?: string
          topK?: string
          maxTokens?: string
          local?: boolean
          token?: string
          json?: boolean
        },
        command: Command,
      ) =>
        withClient(command, io, async (ctx, client) => {
          const topK = wholeNumber(options.topK, '--top-k', 1, 64)
          const maxTokens = wholeNumber(options.maxTokens, '--max-tokens', 1, 4096)
          const token = await operatorToken(ctx, options.token, "acts with the node's key")
          const answer = await client.moeChat(
            {
              prompt,
              ...(options.family === undefined ? {} : { family: options.family }),
              ...(topK === undefined ? {} : { top_k_experts: topK }),
              ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
              ...(options.local === true ? { use_distributed: false } : {}),
            },
            { token },
          )
          if (options.json === true) return ctx.json(answer)
          ctx.out(answer.text)
          ctx.out('')
          ctx.out(
            `${answer.family} v${answer.version}: ${answer.promptTokens} prompt + ${answer.outputTokens} output tokens (${answer.finish}) in ${Math.round(answer.elapsedMs)} ms${answer.masked > 0 ? `, ${answer.masked} experts masked` : ''}`,
          )
          for (const l of answer.layers)
            ctx.out(
              `  layer ${l.layer}: ${l.experts.map((e) => `${e.name.replace(/^layer\d+\./, '')} ×${e.tokens} @ ${e.hosts.length === 0 ? 'local' : e.hosts.map((h) => short(h, 20)).join('+')}`).join(', ')}`,
            )
        }),
    )
}
