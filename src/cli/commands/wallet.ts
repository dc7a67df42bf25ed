/**
 * The wallet from the command line (issue 14; docs/wallet.md).
 *
 * Through the running node (operator routes: `--token` > DONGHAE_API_TOKEN > `<home>/api-token`;
 * `--api`/`--node` > DONGHAE_NODE > http://127.0.0.1:26657):
 *   wallet status · wallet send · wallet history · wallet show · wallet deliveries · wallet verify
 * On the ledger's files in `<home>/data/wallet/` (the keystore password opens them; the node may
 * be running for `export` and `verify --offline`, and must be stopped for `import`):
 *   wallet verify --offline · wallet export · wallet import
 * Memos are other people's text: printed through `untrustedText` unless `--json`.
 */
import type { Command } from 'commander'
import { readFile, writeFile, mkdir, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { describeError } from '../../core/errors.ts'
import { untrustedText } from '../../core/untrusted-text.ts'
import { LedgerError, LedgerTamperedError, WalletLedger } from '../../wallet/ledger.ts'
import { MAX_INVOICE_BYTES } from '../../wallet/envelope.ts'
import type { WalletPaymentView } from '../../api/client.ts'
import { DEFAULT_NODE_URL, NODE_URL_ENV } from '../../api/constants.ts'
import { createContext, type CliContext, type CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { unlockHomeKeystore } from '../password.ts'
import { operatorToken, TOKEN_ENV, withClient } from './inference.ts'

const NODE_HELP = `the node's API (env ${NODE_URL_ENV}, default ${DEFAULT_NODE_URL})`
const TOKEN_HELP = `the node's operator token (env ${TOKEN_ENV}, default <home>/api-token)`
export const EXPORT_FORMAT = 'donghae-wallet-export/1'

interface ApiOptions {
  token?: string
  json?: boolean
}

const when = (ms: number): string => new Date(ms).toISOString()

function amountOf(text: string, flag: string): string {
  if (!/^[1-9][0-9]{0,19}$/.test(text) || BigInt(text) >= 2n ** 64n)
    throw new CliError(`${flag} must be a whole number of base units, 1 or more (got ${JSON.stringify(text)})`)
  return text
}

function statusOf(p: WalletPaymentView): string {
  const status = p.status === 'failed' ? `failed (${untrustedText(p.failure ?? '', 80)})` : p.status
  return p.direction === 'sent' ? `${status}, ${p.delivery}` : status
}

function paymentLine(p: WalletPaymentView): string {
  const arrow = p.direction === 'sent' ? '\u2192' : '\u2190'
  const memo = p.memo === '' ? '' : `  "${untrustedText(p.memo, 60)}"`
  return `${p.id.slice(0, 8)}  ${when(p.createdAt)}  ${arrow} ${p.counterparty}  ${p.amount}  ${statusOf(p)}${memo}`
}

function printPayment(ctx: CliContext, p: WalletPaymentView): void {
  ctx.out(`payment ${p.id} (${p.direction})`)
  ctx.out(`  from        ${p.from}`)
  ctx.out(`  to          ${p.to}`)
  ctx.out(`  amount      ${p.amount}`)
  ctx.out(`  memo        ${p.memo === '' ? '\u2013' : untrustedText(p.memo, 1024)}`)
  if (p.invoice !== undefined)
    ctx.out(`  invoice     ${untrustedText(p.invoice.name, 255)} (${p.invoice.bytes} bytes; --save-invoice FILE)`)
  ctx.out(`  created     ${when(p.createdAt)}`)
  ctx.out(`  status      ${statusOf(p)}${p.height === undefined ? '' : ` at height ${p.height}`}`)
  ctx.out(`  transfer    ${p.txHash ?? '\u2013'}`)
  ctx.out(`  envelope    ${p.envelopeHash}`)
  if (p.receipt !== undefined) ctx.out(`  receipt     signed by the recipient at ${when(p.receipt.at)}`)
  ctx.out(`  ledger      entry ${p.ledgerIndex}`)
}

function ledgerPath(ctx: CliContext): string {
  return join(ctx.home.data, 'wallet', 'ledger')
}

/** The keystore's password (the ledger's key derives from it), checked by opening the keystore. */
async function ledgerPassword(ctx: CliContext, passwordFile: string | undefined): Promise<string> {
  const { password } = await unlockHomeKeystore(
    ctx.home,
    { prompt: 'Keystore password (it opens the wallet ledger)' },
    { passwordFile, env: ctx.env, stdin: ctx.stdin, stderr: ctx.stderr },
  )
  return password
}

function explainLedgerError(err: unknown, path: string): never {
  if (err instanceof LedgerTamperedError)
    throw new CliError(`the ledger ${path} was altered: ${err.message} (first bad entry: ${err.index})`, {
      cause: err,
    })
  if (err instanceof LedgerError) throw new CliError(`${path}: ${err.message}`, { cause: err })
  throw err
}

const SUBCOMMAND_EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  status: ['donghae wallet status', 'donghae wallet status --json'],
  send: [
    'donghae wallet send --to did:key:z6Mk\u2026 --amount 250 --memo "dinner, Friday" --wait',
    'donghae wallet send --to did:key:z6Mk\u2026 --amount 1200 --memo "March" --invoice invoice-0312.pdf',
  ],
  history: ['donghae wallet history', 'donghae wallet history --direction received --limit 10 --json'],
  show: ['donghae wallet show 3f2a', 'donghae wallet show 3f2a --save-invoice invoice.pdf'],
  deliveries: ['donghae wallet deliveries', 'donghae wallet deliveries --json'],
  verify: ['donghae wallet verify', 'donghae wallet verify --offline --password-file ~/.donghae/password'],
  export: ['donghae wallet export --out wallet-backup.json', 'donghae wallet export --out wallet.json --plain'],
  import: ['donghae wallet import wallet-backup.json', 'donghae wallet import wallet-backup.json --force'],
}

export function registerWallet(program: Command, io: CliIo): void {
  const wallet = program
    .command('wallet')
    .description(
      'payments: value on chain, memo and invoice sealed to the recipient and delivered peer to peer; the encrypted local ledger',
    )
    .addHelpText(
      'after',
      `
The node keeps the wallet: its ledger (data/wallet/ledger) is encrypted under a key derived from
the keystore password, and every entry is chained to the one before it. See docs/wallet.md.

Examples:
  $ donghae wallet send --to did:key:z6Mk\u2026 --amount 250 --memo "dinner, Friday"
  $ donghae wallet history
  $ donghae wallet show 3f2a\u2026
  $ donghae wallet verify --offline
  $ donghae wallet export --out wallet-backup.json`,
    )

  wallet
    .command('status')
    .description("the wallet's balance, pending payments, deliveries waiting and the ledger's head")
    .option('--api <url>', NODE_HELP)
    .option('--node <url>', 'the same as --api')
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print as JSON')
    .action(async (options: ApiOptions, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const token = await operatorToken(ctx, options.token, 'reads the private wallet')
        const s = await client.walletSummary({ token })
        if (options.json === true) return ctx.json(s)
        ctx.out(`wallet ${s.did}`)
        ctx.out(`  balance     ${s.balance}`)
        ctx.out(`  pending     ${s.pending.count} payments, ${s.pending.amount}`)
        ctx.out(`  deliveries  ${s.deliveriesPending} waiting for their recipients`)
        ctx.out(`  ledger      ${s.ledger.entries} entries, head ${s.ledger.head.slice(0, 16)}\u2026`)
      }),
    )

  wallet
    .command('send')
    .description('pay a DID: the transfer on chain carries only the hash of the sealed envelope')
    .requiredOption('--to <did>', "the recipient's DID (did:key)")
    .requiredOption('--amount <units>', 'base units to pay')
    .option('--memo <text>', 'a note only the recipient can read (at most 1024 bytes)')
    .option('--invoice <file>', `a file to attach, sealed with the memo (at most ${MAX_INVOICE_BYTES} bytes)`)
    .option('--fee <units>', "the transaction fee (default: the chain's minimum)")
    .option('--wait', 'wait until the transfer is committed (at most 60 s)')
    .option('--api <url>', NODE_HELP)
    .option('--node <url>', 'the same as --api')
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print as JSON')
    .action(
      async (
        options: ApiOptions & {
          to: string
          amount: string
          memo?: string
          invoice?: string
          fee?: string
          wait?: boolean
        },
        command: Command,
      ) =>
        withClient(command, io, async (ctx, client) => {
          const amount = amountOf(options.amount, '--amount')
          const fee = options.fee === undefined ? undefined : amountOf(options.fee, '--fee')
          let invoice: { name: string; base64: string } | undefined
          if (options.invoice !== undefined) {
            let bytes: Buffer
            try {
              if ((await stat(options.invoice)).size > MAX_INVOICE_BYTES)
                throw new CliError(`the invoice ${options.invoice} is larger than ${MAX_INVOICE_BYTES} bytes`)
              bytes = await readFile(options.invoice)
            } catch (err) {
              if (err instanceof CliError) throw err
              throw new CliError(`cannot read the invoice ${options.invoice}: ${describeError(err)}`)
            }
            invoice = { name: basename(options.invoice), base64: bytes.toString('base64') }
          }
          const token = await operatorToken(ctx, options.token)
          let payment = await client.walletSend(
            {
              to: options.to,
              amount,
              ...(options.memo === undefined ? {} : { memo: options.memo }),
              ...(invoice === undefined ? {} : { invoice }),
              ...(fee === undefined ? {} : { fee }),
            },
            { token },
          )
          if (options.wait === true) {
            const deadline = Date.now() + 60_000
            while (payment.status === 'pending' && Date.now() < deadline) {
              await new Promise((resolve) => setTimeout(resolve, 250))
              payment = await client.walletPayment(payment.id, { token })
            }
          }
          if (options.json === true) return ctx.json(payment)
          ctx.out(`payment ${payment.id}: ${payment.amount} to ${payment.to}, ${statusOf(payment)}`)
          if (payment.txHash !== undefined) ctx.out(`  transfer ${payment.txHash}`)
          if (payment.status === 'pending') ctx.out(`  follow it with: donghae wallet show ${payment.id}`)
        }),
    )

  wallet
    .command('history')
    .description('payments sent and received, newest first, with their memos')
    .option('--limit <n>', 'how many (1\u2013500)', '50')
    .option('--direction <dir>', 'sent or received')
    .option('--api <url>', NODE_HELP)
    .option('--node <url>', 'the same as --api')
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print as JSON')
    .action(async (options: ApiOptions & { limit: string; direction?: string }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const limit = Number(options.limit)
        if (!/^[0-9]+$/.test(options.limit) || limit < 1 || limit > 500)
          throw new CliError(`--limit must be a whole number from 1 to 500 (got ${JSON.stringify(options.limit)})`)
        if (options.direction !== undefined && options.direction !== 'sent' && options.direction !== 'received')
          throw new CliError('--direction must be sent or received')
        const token = await operatorToken(ctx, options.token, 'reads the private wallet')
        const page = await client.walletHistory(
          { limit, ...(options.direction === undefined ? {} : { direction: options.direction }) },
          { token },
        )
        if (options.json === true) return ctx.json(page)
        if (page.payments.length === 0) return ctx.out('no payments yet')
        for (const p of page.payments) ctx.out(paymentLine(p))
      }),
    )

  wallet
    .command('show <id>')
    .description('one payment: parties, amount, memo, status on chain, delivery and receipt')
    .option('--save-invoice <file>', "write the payment's invoice to this file")
    .option('--api <url>', NODE_HELP)
    .option('--node <url>', 'the same as --api')
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print as JSON')
    .action(async (id: string, options: ApiOptions & { saveInvoice?: string }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const token = await operatorToken(ctx, options.token, 'reads the private wallet')
        let full = id.toLowerCase()
        if (!/^[0-9a-f]{32}$/.test(full)) {
          if (!/^[0-9a-f]{4,31}$/.test(full))
            throw new CliError('give the payment id in hex (its first 4 or more digits are enough)')
          const matches = (await client.walletHistory({ limit: 500 }, { token })).payments.filter((p) =>
            p.id.startsWith(full),
          )
          if (matches.length !== 1)
            throw new CliError(matches.length === 0 ? `no payment starts with ${full}` : `${full} is ambiguous`)
          full = (matches[0] as WalletPaymentView).id
        }
        const payment = await client.walletPayment(full, { token })
        if (options.saveInvoice !== undefined) {
          if (payment.invoice === undefined) throw new CliError(`payment ${full} has no invoice`)
          const response = await fetch(`${client.baseUrl}/v1/operator/wallet/payments/${full}/invoice`, {
            headers: { authorization: `Bearer ${token}` },
          })
          if (!response.ok) throw new CliError(`the node did not give the invoice (HTTP ${response.status})`)
          await writeFile(options.saveInvoice, Buffer.from(await response.arrayBuffer()), { flag: 'wx' }).catch(
            (err: unknown) => {
              throw new CliError(`cannot write ${options.saveInvoice}: ${describeError(err)}`)
            },
          )
        }
        if (options.json === true) return ctx.json(payment)
        printPayment(ctx, payment)
        if (options.saveInvoice !== undefined) ctx.out(`  invoice written to ${options.saveInvoice}`)
      }),
    )

  wallet
    .command('deliveries')
    .description('envelopes waiting for their recipients: attempts, next attempt, peers holding a copy')
    .option('--api <url>', NODE_HELP)
    .option('--node <url>', 'the same as --api')
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print as JSON')
    .action(async (options: ApiOptions, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const token = await operatorToken(ctx, options.token, 'reads the private wallet')
        const { deliveries } = await client.walletDeliveries({ token })
        if (options.json === true) return ctx.json({ deliveries })
        if (deliveries.length === 0) return ctx.out('no deliveries waiting')
        for (const d of deliveries)
          ctx.out(
            `${d.id.slice(0, 8)}  to ${d.to}  ${d.attempts} attempts, next ${when(d.nextAttemptAt)}, stored with ${d.storedWith.length} peers${d.lastError === undefined ? '' : `  (${untrustedText(d.lastError, 120)})`}`,
          )
      }),
    )

  wallet
    .command('verify')
    .description('check every ledger entry: chain of hashes, encryption, order and count (the first bad index if not)')
    .option('--offline', "read the ledger's files directly (the node need not run; asks the keystore password)")
    .option('--password-file <file>', 'with --offline: read the password from a file')
    .option('--api <url>', NODE_HELP)
    .option('--node <url>', 'the same as --api')
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print as JSON')
    .action(async (options: ApiOptions & { offline?: boolean; passwordFile?: string }, command: Command) => {
      if (options.offline === true) {
        const ctx = createContext(command, io)
        const path = ledgerPath(ctx)
        const password = await ledgerPassword(ctx, options.passwordFile)
        let result: { count: number; head: string }
        try {
          result = await (await WalletLedger.open(path, password)).verify(password)
        } catch (err) {
          explainLedgerError(err, path)
        }
        if (options.json === true) return ctx.json({ ok: true, entries: result.count, head: result.head })
        return ctx.out(`ledger ${path}: ${result.count} entries verified, head ${result.head}`)
      }
      return withClient(command, io, async (ctx, client) => {
        const token = await operatorToken(ctx, options.token, 'reads the private wallet')
        const result = await client.walletVerify({ token })
        if (options.json === true) return ctx.json(result)
        ctx.out(`ledger verified: ${result.entries} entries, head ${result.head}`)
      })
    })

  wallet
    .command('export')
    .description('write the ledger to one file: encrypted as it is (a backup), or decrypted with --plain')
    .requiredOption('--out <file>', 'the file to write (refuses to overwrite)')
    .option('--plain', 'write the decrypted entries as JSON (keep that file private)')
    .option('--password-file <file>', 'read the keystore password from a file')
    .option('--json', 'print the result as JSON')
    .action(
      async (options: { out: string; plain?: boolean; passwordFile?: string; json?: boolean }, command: Command) => {
        const ctx = createContext(command, io)
        const path = ledgerPath(ctx)
        const password = await ledgerPassword(ctx, options.passwordFile)
        let ledger: WalletLedger
        try {
          ledger = await WalletLedger.open(path, password)
        } catch (err) {
          explainLedgerError(err, path)
        }
        const [lines, head] = await Promise.all([readFile(path, 'utf8'), readFile(`${path}.head`, 'utf8')])
        const document =
          options.plain === true
            ? { format: `${EXPORT_FORMAT}+plain`, entries: ledger.entries() }
            : {
                format: EXPORT_FORMAT,
                head: JSON.parse(head) as unknown,
                lines: lines.split('\n').filter((l) => l !== ''),
              }
        try {
          await writeFile(options.out, `${JSON.stringify(document, null, options.plain === true ? 2 : 0)}\n`, {
            flag: 'wx',
            mode: 0o600,
          })
        } catch (err) {
          throw new CliError(`cannot write ${options.out}: ${describeError(err)}`)
        }
        if (options.json === true)
          return ctx.json({ out: options.out, entries: ledger.count, plain: options.plain === true })
        ctx.out(
          `exported ${ledger.count} entries to ${options.out}${options.plain === true ? ' (decrypted)' : ' (encrypted)'}`,
        )
      },
    )

  wallet
    .command('import <file>')
    .description(
      'restore a ledger exported with `wallet export` (encrypted form) into this home; the node must be stopped',
    )
    .option('--force', 'replace a ledger that already has entries (it is kept as ledger.replaced-<time>)')
    .option('--password-file <file>', 'read the password of the exported ledger from a file')
    .option('--json', 'print the result as JSON')
    .action(
      async (file: string, options: { force?: boolean; passwordFile?: string; json?: boolean }, command: Command) => {
        const ctx = createContext(command, io)
        const path = ledgerPath(ctx)
        let document: { format?: unknown; head?: unknown; lines?: unknown }
        try {
          document = JSON.parse(await readFile(file, 'utf8')) as typeof document
        } catch (err) {
          throw new CliError(`cannot read ${file} as a wallet export: ${describeError(err)}`)
        }
        if (document.format !== EXPORT_FORMAT || !Array.isArray(document.lines) || document.head === undefined)
          throw new CliError(
            `${file} is not an encrypted wallet export (format ${EXPORT_FORMAT}); --plain exports cannot be imported`,
          )
        const password = await ledgerPassword(ctx, options.passwordFile)
        // write beside the ledger, verify there, then move into place: a bad file changes nothing
        const dir = dirname(path)
        await mkdir(dir, { recursive: true, mode: 0o700 })
        const staged = join(dir, `ledger.import-${process.pid}`)
        await writeFile(staged, document.lines.map((l) => `${String(l)}\n`).join(''), { mode: 0o600 })
        await writeFile(`${staged}.head`, `${JSON.stringify(document.head)}\n`, { mode: 0o600 })
        let imported: WalletLedger
        try {
          imported = await WalletLedger.open(staged, password)
        } catch (err) {
          await Promise.all([rmQuiet(staged), rmQuiet(`${staged}.head`)])
          explainLedgerError(err, file)
        }
        let existing = 0
        try {
          existing = (await WalletLedger.open(path, password)).count
        } catch {
          existing = (await stat(path).catch(() => undefined)) === undefined ? 0 : -1
        }
        if (existing !== 0 && options.force !== true) {
          await Promise.all([rmQuiet(staged), rmQuiet(`${staged}.head`)])
          throw new CliError(
            `${path} already holds ${existing > 0 ? `${existing} entries` : 'a ledger this password does not open'}; stop the node and pass --force to replace it`,
          )
        }
        if (existing !== 0) {
          const stamp = new Date().toISOString().replace(/[:.]/g, '-')
          await rename(path, `${path}.replaced-${stamp}`).catch(() => {})
          await rename(`${path}.head`, `${path}.head.replaced-${stamp}`).catch(() => {})
        }
        await rename(`${staged}.head`, `${path}.head`)
        await rename(staged, path)
        if (options.json === true) return ctx.json({ imported: imported.count, ledger: path })
        ctx.out(`imported ${imported.count} entries into ${path}`)
      },
    )
  addExamples(wallet)
}

function addExamples(wallet: Command): void {
  for (const command of wallet.commands) {
    const examples = SUBCOMMAND_EXAMPLES[command.name()]
    if (examples !== undefined)
      command.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}`)
  }
}

async function rmQuiet(path: string): Promise<void> {
  await rm(path, { force: true })
}
