/**
 * `donghae gov propose|deposit|vote|show|params`: governance by stake (issue 15, part 5).
 * Transactions are signed with the home keystore and sent like `donghae tx transfer` (chain.ts
 * `sendTx`); reads go to the node's GET /v1/gov/... routes. The node is `--api`/`--node` >
 * DONGHAE_NODE > http://127.0.0.1:26657. A change is `PARAM=VALUE`: a whole number for a uint
 * parameter, comma-separated items for a list (`inference.modelAllowList=digits-mlp,tiny-lm`;
 * empty for an empty list); it is checked here against the registry before anything is signed
 * (its fixed bounds; the chain also checks the bounds that depend on its genesis, e.g.
 * `chain.maxBlockTxs` never above the genesis value).
 *
 * `gov params` lists every governed parameter. A core chain parameter (`chain.*`, `staking.*`)
 * defaults to the chain's genesis value: its default, its value while no proposal has set it, and
 * its genesis-dependent bounds are taken from the genesis parameters the node reports (`fixed`).
 */
import type { Command } from 'commander'
import { untrustedText } from '../../core/untrusted-text.ts'
import { parseUint64 } from '../../core/uint.ts'
import { DonghaeClient } from '../../api/client.ts'
import { DEFAULT_NODE_URL, NODE_URL_ENV } from '../../api/constants.ts'
import { ApiError } from '../../api/errors.ts'
import type { GovParamsView, ParamView, ProposalView, TallyView } from '../../api/governance-api.ts'
import type { ChainParams } from '../../chain/genesis.ts'
import { checkGovernedValue, effectiveBounds } from '../../governance/params.ts'
import { CHAIN_PARAMS, GOVERNED_PARAMS, registeredParam } from '../../governance/registry.ts'
import { VOTE_OPTIONS, type ParamChange, type VoteOption } from '../../governance/chain/state.ts'
import { createContext, type CliContext, type CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { sendTx, txOptions } from './chain.ts'
import { explain } from './inference.ts'

const NODE_HELP = `the node's HTTP API (env ${NODE_URL_ENV}, default ${DEFAULT_NODE_URL})`
const READ_TIMEOUT_MS = 15_000

interface NodeOptions {
  api?: string
  node?: string
}

interface TxFlags extends NodeOptions {
  fee: string
  nonce?: string
  wait?: boolean
  timeout: string
  json?: boolean
  passwordFile?: string
}

function apiUrl(options: NodeOptions, command: Command, io: CliIo): string {
  return (
    options.api ??
    options.node ??
    command.optsWithGlobals<{ node?: string }>().node ??
    io.env[NODE_URL_ENV] ??
    DEFAULT_NODE_URL
  ).replace(/\/+$/, '')
}

/** Runs `action` against the node; API failures become one line that says what to do. */
async function withGov(
  command: Command,
  io: CliIo,
  options: NodeOptions,
  action: (ctx: CliContext, client: DonghaeClient, url: string) => Promise<void>,
): Promise<void> {
  const ctx = createContext(command, io)
  const url = apiUrl(options, command, io)
  const client = new DonghaeClient(url)
  try {
    await action(ctx, client, url)
  } catch (err) {
    if (err instanceof ApiError) throw new CliError(explain(err, url), { cause: err })
    throw err
  }
}

/** GET a governance route; an error answer becomes the ApiError the client would throw. */
async function getGov<T>(url: string, path: string): Promise<T> {
  let response: Response
  try {
    response = await fetch(`${url}${path}`, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(READ_TIMEOUT_MS),
    })
  } catch (err) {
    throw new ApiError({ status: 0, code: 'UNREACHABLE', message: `cannot reach ${url}`, cause: err })
  }
  const text = await response.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new ApiError({ status: response.status, code: 'BAD_RESPONSE', message: `${url}${path} did not answer JSON` })
  }
  if (response.ok) return json as T
  const error = (json as { error?: { code?: unknown; message?: unknown; reason?: unknown } } | null)?.error
  throw new ApiError({
    status: response.status,
    code: typeof error?.code === 'string' ? untrustedText(error.code, 64) : `HTTP_${response.status}`,
    message: untrustedText(error?.message ?? `HTTP ${response.status}`),
    reason: typeof error?.reason === 'string' ? untrustedText(error.reason, 64) : undefined,
  })
}

/**
 * `PARAM=VALUE`, checked against the registry (kind, bounds, items); with the chain's genesis
 * `params`, against the bounds that depend on them too.
 */
export function parseChange(text: string, params?: ChainParams): ParamChange {
  const at = text.indexOf('=')
  if (at < 1)
    throw new CliError(`--change ${JSON.stringify(text)} must be PARAM=VALUE, e.g. governance.minDeposit=20000`)
  const param = text.slice(0, at)
  const raw = text.slice(at + 1)
  const spec = registeredParam(param)
  if (spec === undefined)
    throw new CliError(`${param} is not a governed parameter; one of: ${GOVERNED_PARAMS.map((p) => p.name).join(', ')}`)
  const value =
    spec.kind === 'uint' ? parseUint64(raw, param) : raw.trim() === '' ? [] : raw.split(',').map((item) => item.trim())
  return { param, value: checkGovernedValue(spec, value, params) }
}

function proposalIdOf(text: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(text)) throw new CliError(`${text} is not a proposal id (1, 2, \u2026)`)
  return Number(text)
}

function heightOf(text: string, flag: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(text)) throw new CliError(`${flag} must be a height (a whole number \u2265 1)`)
  return Number(text)
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

/**
 * The flags with the fee floor in force when `--fee` was not given: governance may have raised
 * `chain.minFee` above the default of `--fee`, and a vote paying the old floor would be refused
 * (`fee-too-low`), the vote that lowers it again included. Read from GET /v1/gov/params; a node
 * that cannot answer leaves the flags as they are.
 */
async function withCurrentFee(command: Command, url: string, flags: TxFlags): Promise<TxFlags> {
  if (command.getOptionValueSource('fee') !== 'default') return flags
  const view = await getGov<GovParamsView>(url, '/v1/gov/params').catch(() => undefined)
  const param = view?.params.find((p) => p.name === CHAIN_PARAMS.minFee)
  if (view === undefined || param === undefined) return flags
  const floor = withGenesisDefault(param, view.fixed).value
  return typeof floor === 'string' && /^\d{1,20}$/.test(floor) && BigInt(floor) > BigInt(flags.fee)
    ? { ...flags, fee: floor }
    : flags
}

/**
 * Signs and sends one governance transaction through chain.ts `sendTx`, capturing its result
 * so that `extra` (the proposal id) can join it; prints it as JSON or as lines.
 */
async function send(
  ctx: CliContext,
  client: DonghaeClient,
  kind: string,
  body: Record<string, unknown>,
  flags: TxFlags,
  extra?: (result: Record<string, unknown>) => Promise<Record<string, unknown>>,
): Promise<void> {
  let result: Record<string, unknown> = {}
  const capture: CliContext = { ...ctx, json: (value) => void (result = value as Record<string, unknown>) }
  try {
    await sendTx(capture, client, { kind, body }, { ...flags, json: true })
  } catch (err) {
    if (flags.json === true && result.hash !== undefined) ctx.json(result)
    throw err
  }
  if (extra !== undefined && result.ok === true) result = { ...result, ...(await extra(result)) }
  if (flags.json === true) return ctx.json(result)
  ctx.out(`submitted ${kind} ${String(result.hash)}`)
  if (result.height !== undefined) ctx.out(`committed at height ${String(result.height)}`)
  if (result.proposal !== undefined) ctx.out(`proposal ${String(result.proposal)}`)
}

// ---- printing ------------------------------------------------------------------------------------

const valueText = (value: string | string[]): string => (Array.isArray(value) ? `[${value.join(', ')}]` : value)

function pct(bps: number): string {
  return `${(bps / 100).toFixed(2)} %`
}

function tallyLine(t: TallyView): string {
  const verdict = t.final
    ? t.outcome
    : `${t.outcome === 'passed' ? 'passes' : `fails (${t.reason ?? t.outcome})`} so far`
  return `yes ${t.yes}  no ${t.no}  abstain ${t.abstain}  veto ${t.veto}  of ${t.totalPower} (turnout ${pct(t.turnoutBps)}) \u2192 ${verdict}`
}

function printProposal(ctx: CliContext, p: ProposalView): void {
  ctx.out(`proposal ${p.id}  ${p.status}${p.reason === undefined ? '' : ` (${p.reason})`}`)
  ctx.out(`title      ${untrustedText(p.title, 140)}`)
  ctx.out(`proposer   ${p.proposer}`)
  for (const c of p.changes) ctx.out(`change     ${c.param} = ${untrustedText(valueText(c.value), 400)}`)
  ctx.out(`deposit    ${p.totalDeposit} (voting needs ${p.minDeposit}; deposit period ends at ${p.depositEndHeight})`)
  if (p.votingStartHeight !== undefined)
    ctx.out(`voting     heights ${p.votingStartHeight}..${p.votingEndHeight ?? '?'}`)
  if (p.applyHeight !== undefined)
    ctx.out(`applies    at height ${p.applyHeight}${p.appliedHeight === undefined ? '' : ' (applied)'}`)
  if (p.tally !== undefined) ctx.out(`tally      ${tallyLine(p.tally)}`)
  for (const v of p.votes ?? []) ctx.out(`  ${v.voter}  ${v.option}  (stake ${v.power})`)
  ctx.out('')
  ctx.out(untrustedText(p.description, 5_000))
}

function proposalLine(p: ProposalView): string {
  const when =
    p.status === 'voting'
      ? `voting until ${p.votingEndHeight ?? '?'}`
      : p.status === 'passed'
        ? `applies at ${p.applyHeight ?? '?'}`
        : p.status === 'applied'
          ? `applied at ${p.appliedHeight ?? '?'}`
          : p.status === 'deposit'
            ? `deposit ${p.totalDeposit}/${p.minDeposit} until ${p.depositEndHeight}`
            : `decided at ${p.decidedHeight ?? '?'}`
  return `#${p.id}  ${p.status.padEnd(8)}  ${untrustedText(p.title, 60)}  (${when})`
}

/** The genesis parameters as the node reports them (`fixed`: amounts as decimal strings). */
function genesisParamsOf(fixed: GovParamsView['fixed']): ChainParams | undefined {
  const params: Record<string, bigint | number> = {}
  for (const [key, value] of Object.entries(fixed ?? {})) {
    if (typeof value === 'number') params[key] = value
    else if (typeof value === 'string' && /^\d{1,20}$/.test(value)) params[key] = BigInt(value)
    else return undefined
  }
  return params as unknown as ChainParams
}

/**
 * A parameter's view with its genesis default filled in: for a core chain parameter the default
 * (and the value, until governance sets it) is the chain's genesis value, and its bounds are the
 * ones on this chain.
 */
export function withGenesisDefault(p: ParamView, fixed: GovParamsView['fixed']): ParamView {
  const spec = registeredParam(p.name)
  const genesis = spec?.genesis === undefined ? undefined : fixed?.[spec.genesis]
  if (spec === undefined || genesis === undefined) return p
  const params = genesisParamsOf(fixed)
  const { min, max } = effectiveBounds(spec, params)
  const initial = String(genesis)
  return {
    ...p,
    default: initial,
    value: p.governed ? p.value : initial,
    min: min.toString(),
    ...(max === undefined ? {} : { max: max.toString() }),
  }
}

function printParams(ctx: CliContext, view: GovParamsView): void {
  ctx.out(`governed parameters at height ${view.height}`)
  for (const p of view.params) {
    const bounds = p.kind === 'uint' ? `${p.min ?? '0'}..${p.max ?? 'max'}` : `\u2264 ${p.maxItems ?? '?'} items`
    const genesis = registeredParam(p.name)?.genesis !== undefined
    const origin = p.governed
      ? `set at ${p.changedAt ?? '?'} by #${p.proposal ?? '?'}`
      : genesis
        ? 'genesis'
        : 'default'
    ctx.out(`  ${p.name.padEnd(34)} ${untrustedText(valueText(p.value), 200).padEnd(10)} ${origin}; ${bounds}`)
  }
  ctx.out(
    'chain.* and staking.* default to the genesis value; consensus timeouts, proof of history, epochLength and the other genesis parameters are fixed (--json lists them)',
  )
}

// ---- commands ------------------------------------------------------------------------------------

function nodeOptions(command: Command): Command {
  return command.option('--api <url>', NODE_HELP).option('--node <url>', 'the same as --api')
}

function registerPropose(gov: Command, io: CliIo): void {
  const propose = gov
    .command('propose')
    .description('propose changes of governed parameters, with a deposit (validators then vote by stake)')
    .requiredOption('--title <text>', 'a short title (at most 140 characters)')
    .requiredOption('--description <text>', 'what the change does and why (at most 5000 characters)')
    .requiredOption(
      '--change <param=value>',
      'a change, PARAM=VALUE (repeatable; `donghae gov params` lists them)',
      collect,
    )
    .option('--apply-at-height <h>', 'the height the changes apply at (default: the earliest allowed)')
    .requiredOption('--deposit <n>', 'deposit in base units (governance.minDeposit opens voting at once)')
  txOptions(nodeOptions(propose))
    .addHelpText(
      'after',
      `
The deposit is held until the end of voting: refunded if the proposal passes or is rejected,
burned if vetoed. A list value is comma-separated (empty for an empty list). With --wait the
proposal's id is printed once its block is committed.

Examples:
  $ donghae gov propose --title "Faster votes" --description "Vote for 10 blocks" --change governance.votingPeriodBlocks=10 --deposit 10000 --wait
  $ donghae gov propose --title "Allow-list" --description "Only these" --change inference.modelAllowList=digits-mlp,tiny-lm --apply-at-height 5000 --deposit 10000`,
    )
    .action(
      (
        options: TxFlags & {
          title: string
          description: string
          change: string[]
          applyAtHeight?: string
          deposit: string
        },
        command: Command,
      ) =>
        withGov(command, io, options, async (ctx, client, url) => {
          if (options.change.length === 0) throw new CliError('give at least one --change PARAM=VALUE')
          let changes = options.change.map((text) => parseChange(text))
          if (changes.some((c) => registeredParam(c.param)?.genesisBounds !== undefined)) {
            // bounds that depend on the genesis (chain.maxBlockTxs <= its genesis value): check them
            // before signing too, from the genesis the node reports (the chain checks them anyway)
            const fixed = await getGov<GovParamsView>(url, '/v1/gov/params').then(
              (view) => view.fixed,
              () => undefined,
            )
            const params = fixed === undefined ? undefined : genesisParamsOf(fixed)
            if (params !== undefined) changes = options.change.map((text) => parseChange(text, params))
          }
          const deposit = parseUint64(options.deposit, '--deposit')
          if (deposit === 0n) throw new CliError('--deposit must be positive')
          const body: Record<string, unknown> = {
            title: options.title,
            description: options.description,
            changes,
            deposit,
            ...(options.applyAtHeight === undefined
              ? {}
              : { applyAtHeight: heightOf(options.applyAtHeight, '--apply-at-height') }),
          }
          const flags = await withCurrentFee(command, url, options)
          await send(ctx, client, 'governance.propose', body, flags, async (result) => {
            const page = await getGov<{ proposals: ProposalView[] }>(url, '/v1/gov/proposals?limit=100')
            const mine = page.proposals.find(
              (p) => p.proposer === result.sender && p.submitHeight === result.height && p.title === options.title,
            )
            return mine === undefined ? {} : { proposal: mine.id, status: mine.status }
          })
        }),
    )
}

function registerDeposit(gov: Command, io: CliIo): void {
  txOptions(
    nodeOptions(
      gov
        .command('deposit')
        .description('add to the deposit of a proposal (reaching governance.minDeposit starts its voting)')
        .argument('<id>', 'the proposal id')
        .requiredOption('--amount <n>', 'amount in base units'),
    ),
  )
    .addHelpText('after', '\nExamples:\n  $ donghae gov deposit 3 --amount 5000 --wait')
    .action((id: string, options: TxFlags & { amount: string }, command: Command) =>
      withGov(command, io, options, async (ctx, client, url) => {
        const amount = parseUint64(options.amount, '--amount')
        if (amount === 0n) throw new CliError('--amount must be positive')
        const flags = await withCurrentFee(command, url, options)
        await send(ctx, client, 'governance.deposit', { proposal: proposalIdOf(id), amount }, flags)
      }),
    )
}

function registerVote(gov: Command, io: CliIo): void {
  txOptions(
    nodeOptions(
      gov
        .command('vote')
        .description("vote on a proposal in its voting period, weighed by this validator's bonded stake")
        .argument('<id>', 'the proposal id')
        .argument('<option>', VOTE_OPTIONS.join(' | ')),
    ),
  )
    .addHelpText(
      'after',
      `
Only validators of the current set vote; a new vote replaces this validator's previous one.
veto is a no that, above a third of the votes, burns the deposit.

Examples:
  $ donghae gov vote 1 yes --wait
  $ donghae gov vote 1 veto --password-file ./password`,
    )
    .action((id: string, option: string, options: TxFlags, command: Command) =>
      withGov(command, io, options, async (ctx, client, url) => {
        if (!(VOTE_OPTIONS as readonly string[]).includes(option))
          throw new CliError(`the vote must be one of ${VOTE_OPTIONS.join(', ')}, not ${JSON.stringify(option)}`)
        const flags = await withCurrentFee(command, url, options)
        await send(ctx, client, 'governance.vote', { proposal: proposalIdOf(id), option: option as VoteOption }, flags)
      }),
    )
}

function registerShow(gov: Command, io: CliIo): void {
  nodeOptions(
    gov
      .command('show')
      .description('show one proposal with its tally and votes, or list the proposals')
      .argument('[id]', 'a proposal id (default: list them, newest first)')
      .option('--status <status>', 'list only: deposit, voting, passed, applied, rejected, vetoed or expired')
      .option('--limit <n>', 'list only: at most this many (\u2264 100)', '20')
      .option('--json', 'print as JSON'),
  )
    .addHelpText(
      'after',
      '\nExamples:\n  $ donghae gov show\n  $ donghae gov show --status voting\n  $ donghae gov show 1 --json',
    )
    .action(
      (
        id: string | undefined,
        options: NodeOptions & { status?: string; limit: string; json?: boolean },
        command: Command,
      ) =>
        withGov(command, io, options, async (ctx, _client, url) => {
          if (id !== undefined) {
            const p = await getGov<ProposalView>(url, `/v1/gov/proposals/${proposalIdOf(id)}`)
            return options.json === true ? ctx.json(p) : printProposal(ctx, p)
          }
          const query = new URLSearchParams({ limit: options.limit })
          if (options.status !== undefined) query.set('status', options.status)
          const page = await getGov<{ height: number; proposals: ProposalView[] }>(url, `/v1/gov/proposals?${query}`)
          if (options.json === true) return ctx.json(page)
          if (page.proposals.length === 0) return ctx.out('no proposals (make one with `donghae gov propose`)')
          for (const p of page.proposals) ctx.out(proposalLine(p))
        }),
    )
}

function registerParams(gov: Command, io: CliIo): void {
  nodeOptions(
    gov
      .command('params')
      .description('show the governed parameters: effective values, defaults, bounds, and which governance set')
      .option('--height <h>', 'their values at a past committed height')
      .option('--json', 'print as JSON (with the fixed genesis parameters)'),
  )
    .addHelpText('after', '\nExamples:\n  $ donghae gov params\n  $ donghae gov params --height 120 --json')
    .action((options: NodeOptions & { height?: string; json?: boolean }, command: Command) =>
      withGov(command, io, options, async (ctx, _client, url) => {
        const at = options.height === undefined ? '' : `?height=${heightOf(options.height, '--height')}`
        const answer = await getGov<GovParamsView>(url, `/v1/gov/params${at}`)
        const view = { ...answer, params: answer.params.map((p) => withGenesisDefault(p, answer.fixed)) }
        if (options.json === true) ctx.json(view)
        else printParams(ctx, view)
      }),
    )
}

export function registerGovernance(program: Command, io: CliIo): void {
  const gov = program
    .command('gov')
    .description('governance by stake: propose parameter changes, deposit, vote, and follow them')
    .addHelpText(
      'after',
      `
Examples:
  $ donghae gov params
  $ donghae gov propose --title "Faster votes" --description "Vote for 10 blocks" --change governance.votingPeriodBlocks=10 --deposit 10000 --wait
  $ donghae gov vote 1 yes --wait
  $ donghae gov show 1`,
    )
  registerPropose(gov, io)
  registerDeposit(gov, io)
  registerVote(gov, io)
  registerShow(gov, io)
  registerParams(gov, io)
}
