/**
 * The CLI's arguments: `run(argv, io)` from src/cli/main.ts in process, with a temporary home and
 * working directory, stdin closed, and the node's API pointed at a closed port. An input is the
 * argv joined by NUL bytes; generation walks the real commander tree (commands, their options and
 * positional arguments) and fills values with odd strings and numbers.
 *
 * Oracle: the exit code is 0, 1 or 2; a failure (1) prints exactly one line, `donghae: …`, that is
 * not "unexpected error" (an untyped error that reached the top); nothing prints a stack trace.
 *
 * Only the commands on an allow-list are fed (see ALLOWED): those that run until stopped, start a
 * node or a network, or touch the system would be hangs, or worse, by design.
 * Argument values never contain '/' or '\', so nothing is written outside the temporary directory.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import type { Command } from 'commander'
import { buildProgram, run } from '../../../src/cli/main.ts'
import type { CliIo } from '../../../src/cli/context.ts'
import { OracleViolation, type FuzzTarget, type Rng } from '../harness.ts'

/**
 * The commands fed: an allow-list, so a command added later (one that starts nodes, say) is not
 * run by accident. Left out: node, devnet, localnet, sim, nat, service, chaos, train, validate,
 * `fl join`, `experts chat`, `experts propose` (they run until stopped, start a network, or touch
 * the system), and `--keychain` (it writes to the platform keychain).
 */
const ALLOWED = new Set([
  'version',
  'init',
  'id',
  'did',
  'keys',
  'config',
  'chain',
  'account',
  'tx',
  'stake',
  'worker',
  'deposit',
  'genesis',
  'infer',
  'model',
  'receipt',
  'experts',
  'fl',
  'gov',
  'task',
  'directory',
  'wallet',
])
const EXCLUDED_SUBCOMMANDS = new Set(['join', 'chat', 'propose'])
const EXCLUDED_FLAGS = new Set(['--keychain'])

function allowed(argv: readonly string[]): boolean {
  if (!ALLOWED.has(argv[0] ?? '')) return false
  if ((argv[0] === 'fl' || argv[0] === 'experts') && argv.some((a) => EXCLUDED_SUBCOMMANDS.has(a))) return false
  return !argv.some((a) => EXCLUDED_FLAGS.has(a))
}

interface CommandInfo {
  path: string[]
  args: number
  options: Array<{ flag: string; takesValue: boolean }>
}

let commands: CommandInfo[] = []
let dir = ''
let cwd = ''

function sink(): { stream: Writable; text: () => string } {
  let text = ''
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      if (text.length < 64 * 1024) text += chunk.toString()
      done()
    },
  })
  return { stream, text: () => text }
}

async function listCommands(): Promise<CommandInfo[]> {
  const io = { stdout: sink().stream, stderr: sink().stream, stdin: Readable.from([]), env: {} }
  const out: CommandInfo[] = []
  const walk = (c: Command, path: string[]): void => {
    for (const sub of c.commands) {
      const p = [...path, sub.name()]
      if (!allowed(p)) continue
      out.push({
        path: p,
        args: sub.registeredArguments.length,
        options: sub.options.map((o) => ({ flag: o.long ?? o.short ?? '', takesValue: o.required || o.optional })),
      })
      walk(sub, p)
    }
  }
  walk(await buildProgram(io as unknown as CliIo), [])
  return out
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(0, items.length - 1)] as T
const VALUES = [
  '',
  '0',
  '-1',
  '1',
  '1.5',
  '1e309',
  '18446744073709551616',
  'NaN',
  'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK',
  'did:key:z6Mk',
  'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
  'abc',
  '--',
  '-',
  '--json',
  'ä',
  '\u202e',
  'x'.repeat(300),
  'cpu',
  'tiny',
  'yes',
]

function generateArgv(rng: Rng): string[] {
  const c = pick(rng, commands)
  const argv = [...c.path]
  for (let i = 0; i < c.args + rng.int(-1, 1); i++) argv.push(pick(rng, VALUES))
  const n = rng.int(0, Math.min(4, c.options.length))
  for (let i = 0; i < n; i++) {
    const o = pick(rng, c.options)
    argv.push(o.flag)
    if (o.takesValue && rng.next() < 0.95) argv.push(rng.next() < 0.3 ? String(rng.int(-5, 1e6)) : pick(rng, VALUES))
  }
  if (rng.next() < 0.1)
    argv.splice(rng.int(0, argv.length), 0, pick(rng, ['--home', '--log-level', '--moniker', '-V', '--help']))
  return argv
}

const encodeArgv = (argv: string[]): Uint8Array => new TextEncoder().encode(argv.join('\0'))

/** The argv an input stands for: NUL-separated, with path separators taken out. */
export function decodeArgv(input: Uint8Array): string[] {
  const argv = new TextDecoder().decode(input).replace(/[/\\]/g, '_').split('\0').slice(0, 32)
  // `did resolve` would look the DID up in the DHT (a network start): always offline here.
  if (argv[0] === 'did' && argv[1] === 'resolve') argv.push('--no-dht')
  return argv
}

async function runArgv(input: Uint8Array): Promise<string> {
  const argv = decodeArgv(input)
  if (!allowed(argv)) return 'not fed'
  const stdout = sink()
  const stderr = sink()
  const io = {
    stdout: stdout.stream,
    stderr: stderr.stream,
    stdin: Readable.from([]),
    env: {
      DONGHAE_HOME: join(dir, 'home'),
      // a closed port: never a node another test or person runs on the default 26657
      DONGHAE_NODE: 'http://127.0.0.1:9',
      DONGHAE_API_PORT: '9',
      DONGHAE_API_HOST: '127.0.0.1',
      DONGHAE_MDNS: 'false',
    },
  } as unknown as CliIo
  const code = await run(argv, io)
  const err = stderr.text()
  const where = `donghae ${JSON.stringify(argv).slice(0, 300)}`
  if (code !== 0 && code !== 1 && code !== 2) throw new OracleViolation(`${where}: exit code ${code}`)
  if (/\n\s+at .+:\d+:\d+\)?\n/.test(err) || /\n\s+at .+:\d+:\d+\)?\n/.test(stdout.text()))
    throw new OracleViolation(`${where}: a stack trace was printed: ${err.slice(0, 300)}`)
  if (code === 1) {
    // indented "  note: …" lines before the error are advice the command printed on purpose
    const lines = err.split('\n').filter((l) => l !== '' && !l.startsWith('  note: '))
    if (lines.length !== 1 || !lines[0]?.startsWith('donghae: '))
      throw new OracleViolation(
        `${where}: the failure is not one line "donghae: …": ${JSON.stringify(err.slice(0, 300))}`,
      )
    // a system error about a path the user gave (ENAMETOOLONG, EACCES…) is one clear line too
    // (docs/fuzzing.md, finding 5); any other untyped error reaching the top is a finding
    if (lines[0].startsWith('donghae: unexpected error') && !/^donghae: unexpected error: E[A-Z]+: /.test(lines[0]))
      throw new OracleViolation(`${where}: an untyped error reached the top: ${lines[0].slice(0, 300)}`)
    return `1 ${argv.slice(0, 2).join(' ')} ${lines[0].slice(9, 50).replace(/\d+/g, '#')}`
  }
  return `${code} ${argv.slice(0, 2).join(' ')}`
}

export const cliTarget: FuzzTarget = {
  name: 'cli',
  description: "the CLI's arguments: run(argv) in process, temporary home, API on a closed port",
  async open() {
    if (dir !== '') return
    dir = mkdtempSync(join(tmpdir(), 'donghae-fuzz-cli-'))
    cwd = process.cwd()
    // relative paths in arguments (--out x) land in the temporary directory
    try {
      process.chdir(dir)
    } catch {
      // a worker thread cannot chdir: the long runner moved the whole process to a temporary directory
      cwd = ''
    }
    commands = await listCommands()
  },
  async close() {
    if (dir === '') return
    if (cwd !== '') process.chdir(cwd)
    rmSync(dir, { recursive: true, force: true })
    dir = ''
  },
  async seeds() {
    await cliTarget.open?.()
    const seeds = [
      ['version', '--json'],
      ['id'],
      ['config', 'show', '--json'],
      ['did', 'resolve', 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'],
      ['chain', 'status'],
      ['tx', 'transfer', '--to', 'x', '--amount', '1'],
      ['genesis', '--check'],
    ]
    return [...seeds, ...commands.map((c) => c.path)].map(encodeArgv)
  },
  generate: (rng) => encodeArgv(generateArgv(rng)),
  run: runArgv,
  dictionary: ['\0', '\0--json', '\0--help', '\0--', '\0-', '=', '\0--password-file\0', '\0--amount\0', '\0--node\0'],
  timeoutMs: 5_000,
  maxInputBytes: 4 * 1024,
}
