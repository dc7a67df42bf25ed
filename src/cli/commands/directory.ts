/**
 * The DID directory from the command line (issue 13): `directory register|delete` put the node's
 * own entry in its directory, signed with the node's key (operator routes: `--token` >
 * DONGHAE_API_TOKEN > `<home>/api-token`); `directory search|show` read any directory. They talk
 * to a node's HTTP API (`--api`/`--node` > DONGHAE_NODE > http://127.0.0.1:26657). Text other
 * people registered is printed through `untrustedText` (no control characters or bidi overrides
 * reach the terminal); `--json` prints it verbatim.
 */
import type { Command } from 'commander'
import { untrustedText } from '../../core/untrusted-text.ts'
import type { DirectoryEntryView, DirectoryResolution, OwnRegistration } from '../../api/client.ts'
import { DEFAULT_NODE_URL, NODE_URL_ENV } from '../../api/constants.ts'
import type { CliContext, CliIo } from '../context.ts'
import { CliError } from '../errors.ts'
import { operatorToken, TOKEN_ENV, withClient } from './inference.ts'

const NODE_HELP = `the node's API (env ${NODE_URL_ENV}, default ${DEFAULT_NODE_URL})`
const TOKEN_HELP = `the node's operator token (env ${TOKEN_ENV}, default <home>/api-token)`
/** How long `--expires` may be: the directory refuses entries that expire more than 30 days ahead. */
const MAX_EXPIRES_MS = 30 * 24 * 60 * 60 * 1000
const UNITS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000 }

const collect = (value: string, previous: string[]): string[] => [...previous, value]

/** `7d`, `12h`, `90m` -> milliseconds (1 minute to 30 days). */
export function parseExpires(text: string): number {
  const m = /^([0-9]{1,6})([mhd])$/.exec(text.trim())
  const ms = m === null ? NaN : Number(m[1]) * (UNITS[m[2] as string] as number)
  if (!(ms >= 60_000 && ms <= MAX_EXPIRES_MS))
    throw new CliError(
      `--expires must be a duration from 1m to 30d, such as 7d, 12h or 90m (got ${JSON.stringify(text)})`,
    )
  return ms
}

function wholeNumber(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined
  const value = Number(text)
  if (!/^[0-9]+$/.test(text) || value < min || value > max)
    throw new CliError(`${flag} must be a whole number from ${min} to ${max} (got ${JSON.stringify(text)})`)
  return value
}

const shown = (text: string, max = 200): string => untrustedText(text, max)
const when = (ms: number): string => new Date(ms).toISOString()

function entryLine(e: DirectoryEntryView): string {
  const labels = [...e.categories, ...e.tags.map((t) => `#${t}`)].map((l) => shown(l, 40)).join(' ')
  return `${e.did}  ${labels}  ${shown(e.description, 100)}`
}

function printEntry(ctx: CliContext, e: DirectoryEntryView): void {
  ctx.out(e.did)
  ctx.out(`  description  ${shown(e.description, 1024)}`)
  ctx.out(`  categories   ${e.categories.map((c) => shown(c, 40)).join(', ')}`)
  ctx.out(`  tags         ${e.tags.map((t) => shown(t, 40)).join(', ') || '\u2013'}`)
  ctx.out(`  endpoint     ${shown(e.endpoint, 256)}`)
  for (const [i, address] of e.bootstrap.entries())
    ctx.out(`  ${i === 0 ? 'bootstrap   ' : '            '} ${shown(address, 256)}`)
  ctx.out(`  seq          ${e.seq}`)
  ctx.out(`  expires      ${when(e.expires)}`)
}

function printResolution(ctx: CliContext, r: DirectoryResolution): void {
  printEntry(ctx, r.entry)
  if (r.document === undefined) ctx.out('  DID record   not found in the DHT')
  else
    ctx.out(
      `  DID record   seq ${r.document.seq}, ${r.document.addresses.length} addresses, expires ${when(r.document.expires)}`,
    )
  ctx.out(`  consistent   ${r.consistent ? 'yes' : 'no'}`)
  for (const problem of r.problems) ctx.out(`    - ${shown(problem, 400)}`)
}

interface RegisterOptions {
  description: string
  category: string[]
  tag: string[]
  endpoint?: string
  bootstrap: string[]
  expires: string
  token?: string
  json?: boolean
}

export function registerDirectory(program: Command, io: CliIo): void {
  const directory = program
    .command('directory')
    .description('the DID directory: register this node by category and tags, search for others, check entries')

  directory
    .command('register')
    .description("register (or update) this node in its directory, signed with the node's key")
    .requiredOption('--description <text>', 'what this node offers, found by text search (at most 1024 bytes)')
    .option('--category <name>', 'a category, e.g. restaurant (repeatable, 1 to 8; at least one)', collect, [])
    .option('--tag <name>', 'a tag (repeatable, up to 16)', collect, [])
    .option('--endpoint <url>', "where the node takes signalling (default: the node's <api>/v1/webrtc/offer)")
    .option(
      '--bootstrap <multiaddr>',
      "a DHT node to find this node's DID record through (repeatable; default: the node's own addresses)",
      collect,
      [],
    )
    .option('--expires <duration>', 'how long the entry lives: 90m, 12h, 7d \u2026 up to 30d', '7d')
    .option('--api <url>', NODE_HELP)
    .option('--node <url>', 'the same as --api')
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Categories and tags are lowercase letters, digits and '-'. The node picks a sequence number above
the stored one, so running the command again updates the entry; every directory learns of it by
gossip. The node must run with directory=true (DONGHAE_DIRECTORY=1).

Examples:
  $ donghae directory register --description "Cold noodles, Gangneung" --category restaurant --tag noodles
  $ donghae directory register --description "GPU box" --category compute --endpoint https://node.example.org/v1/webrtc/offer --expires 30d --api http://127.0.0.1:26658`,
    )
    .action(async (options: RegisterOptions, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        if (options.category.length === 0) throw new CliError('give at least one --category')
        const request: OwnRegistration = {
          description: options.description,
          categories: options.category,
          tags: options.tag,
          expiresInMs: parseExpires(options.expires),
          ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
          ...(options.bootstrap.length === 0 ? {} : { bootstrap: options.bootstrap }),
        }
        const token = await operatorToken(ctx, options.token, "signs with the node's key")
        const result = await client.directoryRegisterOwn(request, { token })
        if (options.json === true) return ctx.json(result)
        ctx.out(
          `${result.change === 'added' ? 'registered' : 'updated'} ${result.did} at ${client.baseUrl} (seq ${result.seq}${result.expires === undefined ? '' : `, expires ${when(result.expires)}`})`,
        )
      }),
    )

  directory
    .command('search [query...]')
    .description('search a directory by text, category and tag (ranked by relevance when there is text)')
    .option('--category <name>', 'only entries with this category')
    .option('--tag <name>', 'only entries with this tag')
    .option('--limit <n>', 'entries per page (1-50)', '20')
    .option('--cursor <cursor>', 'the next page (printed after a full page)')
    .option('--api <url>', NODE_HELP)
    .option('--node <url>', 'the same as --api')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
Every word of the query must match the description, a category or a tag.

Examples:
  $ donghae directory search noodles --category restaurant
  $ donghae directory search --tag vegan --limit 50 --json`,
    )
    .action(
      async (
        words: string[],
        options: { category?: string; tag?: string; limit: string; cursor?: string; json?: boolean },
        command: Command,
      ) =>
        withClient(command, io, async (ctx, client) => {
          const query = words.join(' ')
          const page = await client.directorySearch({
            ...(query === '' ? {} : { query }),
            ...(options.category === undefined ? {} : { category: options.category }),
            ...(options.tag === undefined ? {} : { tag: options.tag }),
            ...(options.cursor === undefined ? {} : { cursor: options.cursor }),
            limit: wholeNumber(options.limit, '--limit', 1, 50) as number,
          })
          if (options.json === true) return ctx.json(page)
          if (page.entries.length === 0) return ctx.out('no entries match')
          for (const entry of page.entries) ctx.out(entryLine(entry))
          if (page.cursor !== undefined) ctx.out(`more: add --cursor ${page.cursor}`)
        }),
    )

  directory
    .command('show <did>')
    .description("show a DID's entry and check it against the DID's record in the DHT")
    .option('--api <url>', NODE_HELP)
    .option('--node <url>', 'the same as --api')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
The check: the DHT's record is signed by the same key, serves the entry's endpoint and lists the
bootstrap addresses the entry gives for the DID's own peer. Exit code 0 either way.

Examples:
  $ donghae directory show did:key:z6Mk\u2026
  $ donghae directory show did:key:z6Mk\u2026 --api http://127.0.0.1:26658 --json`,
    )
    .action(async (did: string, options: { json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        if (!/^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/.test(did))
          throw new CliError(`${JSON.stringify(did)} is not a did:key (did:key:z6Mk\u2026)`)
        const resolution = await client.directoryResolve(did)
        if (options.json === true) return ctx.json(resolution)
        printResolution(ctx, resolution)
      }),
    )

  directory
    .command('delete')
    .description("delete this node's entry from its directory (a deletion signed with the node's key)")
    .option('--api <url>', NODE_HELP)
    .option('--node <url>', 'the same as --api')
    .option('--token <token>', TOKEN_HELP)
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      `
The deletion reaches every directory by gossip; an older registration cannot bring the entry back.

Examples:
  $ donghae directory delete
  $ donghae directory delete --api http://127.0.0.1:26658 --json`,
    )
    .action(async (options: { token?: string; json?: boolean }, command: Command) =>
      withClient(command, io, async (ctx, client) => {
        const token = await operatorToken(ctx, options.token, "signs with the node's key")
        const result = await client.directoryDeleteOwn({ token })
        if (options.json === true) return ctx.json(result)
        ctx.out(`deleted ${result.did} from ${client.baseUrl} (seq ${result.seq})`)
      }),
    )
}
