/**
 * Talking to a running node over its HTTP API: `chain status`, `account`, `tx transfer`,
 * `tx show`, `stake bond|unbond|withdraw`, `worker bond|unbond|withdraw`. The node is `--node` > DONGHAE_NODE >
 * DEFAULT_NODE_URL. Transactions are signed here with the home keystore and posted as bytes;
 * the chain id comes from the node's status and the nonce from the sender's account.
 */
import type { Command } from 'commander'
import { utf8 } from '../../core/bytes.ts'
import { systemClock } from '../../core/clock.ts'
import { parseUint64 } from '../../core/uint.ts'
import { MAX_MEMO_BYTES } from '../../bank/bank.ts'
import { encodeTx, signTx } from '../../chain/tx.ts'
import { parseDidKey } from '../../identity/did-key.ts'
import { readKeystoreFile } from '../../identity/keystore.ts'
import { DonghaeClient } from '../../api/client.ts'
import { DEFAULT_NODE_URL, DEFAULT_WAIT_TIMEOUT_MS, NODE_URL_ENV, WAIT_POLL_INTERVAL_MS } from '../../api/constants.ts'
import { ApiError } from '../../api/errors.ts'
import type { AccountJson, StatusJson, TxStatusJson } from '../../api/schemas.ts'
import { createContext, type CliContext, type CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { unlockHomeKeystore } from '../password.ts'

interface TxOptions {
  fee: string
  nonce?: string
  wait?: boolean
  timeout: string
  json?: boolean
  passwordFile?: string
}

interface TxRequest {
  kind: string
  body: Record<string, unknown>
}

/** How often `--wait` reports that it is still waiting. */
const WAIT_REPORT_EVERY_MS = 5_000

function nodeUrl(command: Command, io: CliIo): string {
  return command.optsWithGlobals<{ node?: string }>().node ?? io.env[NODE_URL_ENV] ?? DEFAULT_NODE_URL
}

/** Runs an action against the node; API failures become one line that says what to do. */
async function withNode(
  command: Command,
  io: CliIo,
  action: (ctx: CliContext, client: DonghaeClient) => Promise<void>,
): Promise<void> {
  const ctx = createContext(command, io)
  const client = new DonghaeClient(nodeUrl(command, io))
  try {
    await action(ctx, client)
  } catch (err) {
    if (!(err instanceof ApiError)) throw err
    throw new CliError(explain(err, client.baseUrl), { cause: err })
  }
}

function explain(err: ApiError, url: string): string {
  switch (err.code) {
    case 'UNREACHABLE':
      return `${err.message}; start the node, or point --node or ${NODE_URL_ENV} at one`
    case 'TX_REJECTED':
      return `the node rejected the transaction (${err.reason ?? 'unknown reason'}): ${err.message}`
    case 'TIMEOUT':
    case 'BAD_RESPONSE':
      return err.message
    default:
      return `${url}: ${err.message}`
  }
}

function positiveAmount(text: string, flag: string): bigint {
  const amount = parseUint64(text, flag)
  if (amount === 0n) throw new CliError(`${flag} must be positive`)
  return amount
}

function waitTimeoutMs(text: string): number {
  const seconds = Number(text)
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(seconds) || seconds === 0)
    throw new CliError('--timeout must be a whole number of seconds, e.g. 60')
  return seconds * 1000
}

/** Polls until the transaction is in a block; progress goes to stderr. */
async function waitForCommit(
  ctx: CliContext,
  client: DonghaeClient,
  hash: string,
  timeoutMs: number,
): Promise<TxStatusJson> {
  const started = Date.now()
  let reported = started
  ctx.stderr.write(`waiting for ${hash} to be committed...\n`)
  for (;;) {
    try {
      return await client.tx(hash)
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'NOT_FOUND')) throw err
    }
    const now = Date.now()
    if (now - started >= timeoutMs) {
      throw new CliError(
        `transaction ${hash} was not committed within ${timeoutMs / 1000} s; it may still be pending (check: donghae tx show ${hash})`,
      )
    }
    if (now - reported >= WAIT_REPORT_EVERY_MS) {
      ctx.stderr.write(`  still waiting (${Math.round((now - started) / 1000)} s)\n`)
      reported = now
    }
    await systemClock.sleep(WAIT_POLL_INTERVAL_MS)
  }
}

/** Posts of one transaction at most, each with the next nonce, when another client took the last. */
const NONCE_ATTEMPTS = 8

/** Signs `request` with the home keystore, posts it, and optionally waits for its block. */
export async function sendTx(
  ctx: CliContext,
  client: DonghaeClient,
  request: TxRequest,
  options: TxOptions,
): Promise<void> {
  const fee = parseUint64(options.fee, '--fee')
  const nonceFlag = options.nonce === undefined ? undefined : parseUint64(options.nonce, '--nonce')
  const timeoutMs = waitTimeoutMs(options.timeout)
  const keystore = await readKeystoreFile(ctx.home.keystore)
  const { chainId } = await client.status()
  const { keyPair: key } = await unlockHomeKeystore(
    ctx.home,
    { prompt: `Password of ${keystore.did}` },
    { passwordFile: options.passwordFile, env: ctx.env, stdin: ctx.stdin, stderr: ctx.stderr },
  )
  // The account's next nonce, read after the password (which may wait on a person). Another client
  // of the same key (the node itself: its worker and stake transactions) can take that nonce
  // between the read and the post; unless --nonce fixed it, sign again with the next one.
  let nonce = nonceFlag ?? BigInt((await client.account(keystore.did)).nonce)
  let signed = signTx(key, { chainId, nonce, fee, kind: request.kind, body: request.body })
  let hash: string
  for (let attempt = 1; ; attempt++) {
    try {
      hash = (await client.submitTx(encodeTx(signed))).hash
      break
    } catch (err) {
      const reason = err instanceof ApiError ? err.reason : undefined
      if (
        nonceFlag !== undefined ||
        attempt >= NONCE_ATTEMPTS ||
        (reason !== 'stale-nonce' && reason !== 'nonce-in-use')
      )
        throw err
      const committed = BigInt((await client.account(keystore.did)).nonce)
      nonce = reason === 'nonce-in-use' && nonce + 1n > committed ? nonce + 1n : committed
      signed = signTx(key, { chainId, nonce, fee, kind: request.kind, body: request.body })
    }
  }
  const result: Record<string, unknown> = {
    hash,
    kind: request.kind,
    sender: signed.sender,
    nonce: nonce.toString(),
    fee: fee.toString(),
  }
  if (options.json !== true) ctx.out(`submitted ${request.kind} ${hash}`)
  let failed: TxStatusJson | undefined
  if (options.wait === true) {
    const committed = await waitForCommit(ctx, client, hash, timeoutMs)
    result.height = committed.height
    result.ok = committed.ok
    if (committed.reason !== undefined) result.reason = committed.reason
    if (!committed.ok) failed = committed
    else if (options.json !== true) ctx.out(`committed at height ${committed.height}`)
  }
  if (options.json === true) ctx.json(result)
  if (failed !== undefined)
    throw new CliError(
      `${request.kind} ${hash} was committed at height ${failed.height} but failed (${failed.reason ?? 'unknown'}); its fee was charged`,
    )
}

/** Adds the options every transaction command shares (after the command's own). */
export function txOptions(command: Command): Command {
  return command
    .option('--fee <n>', 'fee in base units', '1')
    .option('--nonce <n>', "the transaction's nonce (default: the account's next nonce, from the node)")
    .option('--wait', 'wait until the transaction is in a committed block and print its height')
    .option('--timeout <seconds>', 'how long --wait waits', String(DEFAULT_WAIT_TIMEOUT_MS / 1000))
    .option('--password-file <file>', 'read the keystore password from a file')
    .option('--json', 'print the result as JSON')
}

function printStatus(ctx: CliContext, s: StatusJson): void {
  ctx.out(`chain       ${s.chainId}`)
  ctx.out(`node        ${s.did} (${s.moniker})`)
  ctx.out(`height      ${s.height}  block ${s.latestBlockId}  at ${new Date(s.latestBlockTime).toISOString()}`)
  ctx.out(`state root  ${s.stateRoot}`)
  ctx.out(`consensus   height ${s.consensus.height} round ${s.consensus.round} ${s.consensus.step}`)
  ctx.out(`validators  ${s.validators.length}`)
  for (const v of s.validators) ctx.out(`  ${v.did}  power ${v.power}`)
  ctx.out(`mempool     ${s.mempool.size} txs, ${s.mempool.bytes} bytes`)
  ctx.out(`peers       ${s.peers}`)
}

function printAccount(ctx: CliContext, a: AccountJson): void {
  ctx.out(`did      ${a.did}`)
  ctx.out(`balance  ${a.balance}`)
  ctx.out(`nonce    ${a.nonce}`)
  if (a.stake === null) {
    ctx.out('stake    none')
    return
  }
  const jail = a.stake.tombstoned
    ? ', tombstoned'
    : a.stake.jailed
      ? `, jailed until height ${a.stake.jailedUntil}`
      : ''
  ctx.out(`stake    ${a.stake.bonded} bonded${jail}`)
  for (const u of a.stake.unbonding) ctx.out(`  unbonding ${u.amount}, withdrawable at height ${u.completes}`)
}

export function registerChain(program: Command, io: CliIo): void {
  program
    .command('chain')
    .description('the chain as a node sees it')
    .command('status')
    .description("show the node's chain, height, consensus position, validators and mempool")
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ donghae chain status\n  $ donghae --node http://10.0.0.5:26657 chain status --json',
    )
    .action((options: { json?: boolean }, command: Command) =>
      withNode(command, io, async (ctx, client) => {
        const status = await client.status()
        if (options.json === true) ctx.json(status)
        else printStatus(ctx, status)
      }),
    )

  program
    .command('account')
    .description('show the balance, next nonce and stake of an account')
    .argument('<did>', 'the account, a did:key')
    .option('--json', 'print as JSON (amounts are decimal strings)')
    .addHelpText(
      'after',
      '\nExamples:\n  $ donghae account did:key:z6Mk\u2026\n  $ donghae account "$(donghae id --json | jq -r .did)" --json',
    )
    .action((did: string, options: { json?: boolean }, command: Command) =>
      withNode(command, io, async (ctx, client) => {
        parseDidKey(did)
        const account = await client.account(did)
        if (options.json === true) ctx.json(account)
        else printAccount(ctx, account)
      }),
    )

  const tx = program.command('tx').description('sign and submit transactions with the home keystore')
  const transfer = tx
    .command('transfer')
    .description('send tokens to another account')
    .requiredOption('--to <did>', 'the recipient, a did:key')
    .requiredOption('--amount <n>', 'amount in base units, e.g. 1000')
    .option('--memo <text>', `a note stored with the transfer (at most ${MAX_MEMO_BYTES} bytes of UTF-8)`)
  txOptions(transfer)
    .addHelpText(
      'after',
      `
Amounts are whole numbers of base units. The password comes from --password-file, else
DONGHAE_PASSWORD, else a prompt.

Examples:
  $ donghae tx transfer --to did:key:z6Mk\u2026 --amount 1000
  $ donghae tx transfer --to did:key:z6Mk\u2026 --amount 250 --fee 2 --memo "lunch" --wait --json`,
    )
    .action((options: TxOptions & { to: string; amount: string; memo?: string }, command: Command) =>
      withNode(command, io, async (ctx, client) => {
        const amount = positiveAmount(options.amount, '--amount')
        parseDidKey(options.to)
        const body: Record<string, unknown> = { to: options.to, amount }
        if (options.memo !== undefined) {
          const memo = utf8(options.memo)
          if (memo.length > MAX_MEMO_BYTES)
            throw new CliError(`--memo is ${memo.length} bytes of UTF-8; at most ${MAX_MEMO_BYTES} are allowed`)
          body.memo = memo
        }
        await sendTx(ctx, client, { kind: 'bank.transfer', body }, options)
      }),
    )

  tx.command('show')
    .description('show the height at which a transaction was committed')
    .argument('<hash>', 'the transaction hash printed when it was submitted')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      '\nExits 1 while the transaction is pending or unknown.\n\nExamples:\n  $ donghae tx show 3f2a\u2026',
    )
    .action((hash: string, options: { json?: boolean }, command: Command) =>
      withNode(command, io, async (ctx, client) => {
        if (!/^[0-9a-fA-F]{64}$/.test(hash)) throw new CliError(`${hash} is not a transaction hash (64 hex characters)`)
        const found = await client.tx(hash)
        if (options.json === true) ctx.json(found)
        else if (found.ok) ctx.out(`${found.hash} committed at height ${found.height}`)
        else
          ctx.out(
            `${found.hash} committed at height ${found.height} and failed (${found.reason ?? 'unknown'}); its fee was charged`,
          )
      }),
    )

  const stake = program
    .command('stake')
    .description('bond, unbond and withdraw stake, and unjail, with the home keystore')
  for (const action of ['bond', 'unbond'] as const) {
    const description =
      action === 'bond'
        ? 'bond tokens as stake (voting power from the next epoch)'
        : 'start unbonding stake (withdrawable after the unbonding period)'
    txOptions(
      stake.command(action).description(description).requiredOption('--amount <n>', 'amount in base units, e.g. 1000'),
    )
      .addHelpText(
        'after',
        `\nExamples:\n  $ donghae stake ${action} --amount 5000\n  $ donghae stake ${action} --amount 5000 --wait --json`,
      )
      .action((options: TxOptions & { amount: string }, command: Command) =>
        withNode(command, io, async (ctx, client) => {
          const amount = positiveAmount(options.amount, '--amount')
          await sendTx(ctx, client, { kind: `staking.${action}`, body: { amount } }, options)
        }),
      )
  }
  txOptions(stake.command('withdraw').description('withdraw unbonded stake whose unbonding period has completed'))
    .addHelpText('after', '\nExamples:\n  $ donghae stake withdraw --wait')
    .action((options: TxOptions, command: Command) =>
      withNode(command, io, (ctx, client) => sendTx(ctx, client, { kind: 'staking.withdraw', body: {} }, options)),
    )

  txOptions(
    stake
      .command('unjail')
      .description(
        'return to the validator set after a jail for downtime (allowed once the jail has lasted downtimeJailBlocks; never after double signing)',
      ),
  )
    .addHelpText('after', '\nExamples:\n  $ donghae stake unjail --wait')
    .action((options: TxOptions, command: Command) =>
      withNode(command, io, (ctx, client) => sendTx(ctx, client, { kind: 'staking.unjail', body: {} }, options)),
    )

  // Workers of the inference market bond separately from validators (inference.bond/unbond/withdraw).
  const worker = program
    .command('worker')
    .description('bond, unbond and withdraw a worker bond of the inference market with the home keystore')
  txOptions(
    worker
      .command('bond')
      .description('bond tokens to serve models (a worker is scheduled once its bond reaches minWorkerBond)')
      .requiredOption('--amount <n>', 'amount in base units, e.g. 1000')
      .option('--ep <provider>', 'execution provider this node runs models on: cpu, coreml or cuda', 'cpu')
      .option('--runtime <name>', 'the runtime its receipts name (default: this machine\u2019s ONNX Runtime)'),
  )
    .addHelpText(
      'after',
      `
The bond declares the provider and runtime every receipt of this worker must name (receipts on
another are refused at settlement); a running node declares what it really runs by itself with
inference.serve, so the defaults are fine for a node on this machine.

Examples:
  $ donghae worker bond --amount 5000 --wait
  $ donghae worker bond --amount 5000 --ep coreml`,
    )
    .action((options: TxOptions & { amount: string; ep: string; runtime?: string }, command: Command) =>
      withNode(command, io, async (ctx, client) => {
        if (!['cpu', 'coreml', 'cuda'].includes(options.ep)) throw new CliError('--ep must be cpu, coreml or cuda')
        const amount = positiveAmount(options.amount, '--amount')
        const runtime = options.runtime ?? (await import('../../inference/runtime-facts.ts')).RUNTIME_NAME
        await sendTx(ctx, client, { kind: 'inference.bond', body: { amount, ep: options.ep, runtime } }, options)
      }),
    )
  txOptions(
    worker
      .command('unbond')
      .description('start unbonding a worker bond (withdrawable after the unbonding period, slashable until then)')
      .requiredOption('--amount <n>', 'amount in base units, e.g. 1000'),
  )
    .addHelpText('after', '\nExamples:\n  $ donghae worker unbond --amount 5000 --wait')
    .action((options: TxOptions & { amount: string }, command: Command) =>
      withNode(command, io, async (ctx, client) => {
        const amount = positiveAmount(options.amount, '--amount')
        await sendTx(ctx, client, { kind: 'inference.unbond', body: { amount } }, options)
      }),
    )
  txOptions(worker.command('withdraw').description('withdraw a worker bond whose unbonding period has completed'))
    .addHelpText('after', '\nExamples:\n  $ donghae worker withdraw --wait')
    .action((options: TxOptions, command: Command) =>
      withNode(command, io, (ctx, client) => sendTx(ctx, client, { kind: 'inference.withdraw', body: {} }, options)),
    )

  registerDeposit(program, io)
}

/**
 * `donghae deposit add|withdraw|reclaim|show`: the funds a client locks with one gateway to pay for
 * its jobs there (inference.deposit/undeposit/reclaim), signed with the home keystore.
 */
function registerDeposit(program: Command, io: CliIo): void {
  const deposit = program
    .command('deposit')
    .description('lock funds with a gateway to pay for inference jobs through it, and take them back')
  const gatewayOption = (c: Command): Command =>
    c.requiredOption('--gateway <did>', "the gateway's DID (a node's `did` in `donghae chain status`)")
  txOptions(
    gatewayOption(deposit.command('add').description('lock funds for jobs through a gateway')).requiredOption(
      '--amount <n>',
      'amount in base units',
    ),
  )
    .addHelpText(
      'after',
      `
A worker runs a job only when the client's deposit with the job's gateway covers it, so a balance
cannot pay at two gateways at once. Jobs you sign yourself name the gateway they go through.

Examples:
  $ donghae deposit add --gateway did:key:z6Mk\u2026 --amount 10000 --wait`,
    )
    .action((options: TxOptions & { gateway: string; amount: string }, command: Command) =>
      withNode(command, io, async (ctx, client) => {
        parseDidKey(options.gateway)
        const amount = positiveAmount(options.amount, '--amount')
        await sendTx(ctx, client, { kind: 'inference.deposit', body: { gateway: options.gateway, amount } }, options)
      }),
    )
  txOptions(
    gatewayOption(
      deposit
        .command('withdraw')
        .description('ask a deposit back (it stays spendable by settlements until it unlocks, then `reclaim`)'),
    ).requiredOption('--amount <n>', 'amount in base units'),
  )
    .addHelpText('after', '\nExamples:\n  $ donghae deposit withdraw --gateway did:key:z6Mk\u2026 --amount 5000')
    .action((options: TxOptions & { gateway: string; amount: string }, command: Command) =>
      withNode(command, io, async (ctx, client) => {
        parseDidKey(options.gateway)
        const amount = positiveAmount(options.amount, '--amount')
        await sendTx(ctx, client, { kind: 'inference.undeposit', body: { gateway: options.gateway, amount } }, options)
      }),
    )
  txOptions(gatewayOption(deposit.command('reclaim').description('move unlocked deposits back to the balance')))
    .addHelpText('after', '\nExamples:\n  $ donghae deposit reclaim --gateway did:key:z6Mk\u2026 --wait')
    .action((options: TxOptions & { gateway: string }, command: Command) =>
      withNode(command, io, async (ctx, client) => {
        parseDidKey(options.gateway)
        await sendTx(ctx, client, { kind: 'inference.reclaim', body: { gateway: options.gateway } }, options)
      }),
    )
  deposit
    .command('show')
    .description('what a client has deposited with the node asked (as gateway), and what its jobs in flight hold')
    .argument('<client>', "the client's DID")
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nExamples:\n  $ donghae --node http://127.0.0.1:26657 deposit show did:key:z6Mk\u2026')
    .action((clientDid: string, options: { json?: boolean }, command: Command) =>
      withNode(command, io, async (ctx, client) => {
        parseDidKey(clientDid)
        const view = await client.deposit(clientDid)
        if (options.json === true) return ctx.json(view)
        ctx.out(`deposit of ${clientDid} with ${view.gateway}: ${view.amount} (in flight ${view.reserved})`)
        for (const u of view.unlocking) ctx.out(`  unlocking ${u.amount} at ${new Date(u.at).toISOString()}`)
      }),
    )
}
