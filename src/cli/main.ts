/**
 * The `donghae` command line. Every failure prints one line (`donghae: what failed - what to do`)
 * and exits non-zero: 1 for errors, 2 for usage mistakes.
 */
import { Command, CommanderError } from 'commander'
import { DEFAULT_NODE_URL, NODE_URL_ENV } from '../api/constants.ts'
import { describeError, isDonghaeError } from '../core/errors.ts'
import { LOG_LEVELS } from '../core/logger.ts'
import type { CliIo } from './context.ts'
import { addGroupExamples } from './help.ts'
import { VERSION } from './version.ts'

type Register = (program: Command, io: CliIo) => void

/**
 * The command groups, in help order: the top-level commands each one adds, and how to load it.
 * A run loads only the group of the command it was given (each group pulls in its own part of the
 * system: `donghae node` loads libp2p, ONNX Runtime and the chain, `donghae tx` an HTTP client),
 * so a short command starts in a fraction of the time; help and unknown commands load them all.
 * test/cli-help.test.ts checks this table against what each group really registers.
 */
export const COMMAND_GROUPS: ReadonlyArray<{
  readonly commands: readonly string[]
  readonly load: () => Promise<Register>
}> = [
  { commands: ['init'], load: async () => (await import('./commands/init.ts')).registerInit },
  { commands: ['id'], load: async () => (await import('./commands/id.ts')).registerId },
  { commands: ['did'], load: async () => (await import('./commands/did.ts')).registerDid },
  { commands: ['keys'], load: async () => (await import('./commands/keys.ts')).registerKeys },
  { commands: ['config'], load: async () => (await import('./commands/config.ts')).registerConfig },
  {
    commands: ['chain', 'account', 'tx', 'stake', 'worker', 'deposit'],
    load: async () => (await import('./commands/chain.ts')).registerChain,
  },
  { commands: ['genesis'], load: async () => (await import('./commands/genesis.ts')).registerGenesis },
  { commands: ['localnet'], load: async () => (await import('./commands/localnet.ts')).registerLocalnet },
  { commands: ['node'], load: async () => (await import('./commands/node.ts')).registerNode },
  { commands: ['devnet'], load: async () => (await import('./commands/devnet.ts')).registerDevnet },
  { commands: ['sim'], load: async () => (await import('./commands/sim.ts')).registerSim },
  { commands: ['nat'], load: async () => (await import('./commands/nat.ts')).registerNat },
  {
    commands: ['infer', 'model', 'receipt'],
    load: async () => (await import('./commands/inference.ts')).registerInference,
  },
  { commands: ['experts'], load: async () => (await import('./commands/experts.ts')).registerExperts },
  { commands: ['fl'], load: async () => (await import('./commands/fl.ts')).registerFl },
  { commands: ['gov'], load: async () => (await import('./commands/governance.ts')).registerGovernance },
  { commands: ['task', 'train', 'validate'], load: async () => (await import('./commands/arena.ts')).registerArena },
  { commands: ['directory'], load: async () => (await import('./commands/directory.ts')).registerDirectory },
  { commands: ['wallet'], load: async () => (await import('./commands/wallet.ts')).registerWallet },
  { commands: ['service'], load: async () => (await import('./commands/service.ts')).registerService },
  { commands: ['chaos'], load: async () => (await import('./commands/chaos.ts')).registerChaos },
]

/** The program's options that take a value (the word after them is not a command). */
const VALUE_OPTIONS = new Set(['--home', '--log-level', '--moniker', '--node'])

/**
 * The top-level command a command line names (`help X` names X), or undefined for none (help,
 * version, an option error). Options before the command are skipped as commander reads them.
 */
export function commandNamed(argv: readonly string[]): string | undefined {
  const words: string[] = []
  for (let i = 0; i < argv.length && words.length < 2; i++) {
    const arg = argv[i] ?? ''
    if (arg === '--') break
    if (arg.startsWith('-')) {
      if (VALUE_OPTIONS.has(arg)) i++
      continue
    }
    words.push(arg)
    if (arg !== 'help') break
  }
  return words[0] === 'help' ? words[1] : words[0]
}

/**
 * The CLI's commander program. With `argv`, only the group of the command it names is loaded
 * (all of them when it names none or an unknown one, so help and "did you mean" see every command).
 */
export async function buildProgram(io: CliIo, argv?: readonly string[]): Promise<Command> {
  const program = new Command('donghae')
    .description('Donghae: home computers as one trustworthy, decentralized AI service')
    .version(VERSION, '-V, --version', 'print the version')
    .option('--home <dir>', 'home directory (env DONGHAE_HOME, default ~/.donghae)')
    .option('--log-level <level>', `log verbosity: ${LOG_LEVELS.join(', ')} (env DONGHAE_LOG_LEVEL)`)
    .option('--moniker <name>', "the node's human-readable name (env DONGHAE_MONIKER)")
    // global, so it works before or after the command name (`donghae --node URL account ...`)
    .option('--node <url>', `the node's HTTP API (env ${NODE_URL_ENV}, default ${DEFAULT_NODE_URL})`)
    .showHelpAfterError('(run `donghae --help` for usage)')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride()
    .addHelpText(
      'after',
      `
Examples:
  $ donghae init                       create ~/.donghae with a new identity
  $ donghae id                         show this node's DID and PeerId
  $ donghae did resolve did:key:z6Mk\u2026  print a DID document
  $ donghae keys export --out backup.json

Docs: README.md and docs/architecture.md`,
    )

  program
    .command('version')
    .description('print the version of Donghae and of the Node.js running it')
    .option('--json', 'print as JSON')
    .action((options: { json?: boolean }) => {
      const info = { donghae: VERSION, node: process.versions.node, platform: `${process.platform}-${process.arch}` }
      io.stdout.write(
        options.json === true
          ? `${JSON.stringify(info)}\n`
          : `donghae ${info.donghae} (node ${info.node}, ${info.platform})\n`,
      )
    })

  const named = argv === undefined ? undefined : commandNamed(argv)
  const version = named === 'version' || (named === undefined && argv?.some((a) => a === '-V' || a === '--version'))
  const only = COMMAND_GROUPS.find((group) => named !== undefined && group.commands.includes(named))
  const groups = version === true ? [] : only === undefined ? COMMAND_GROUPS : [only]
  const registers = await Promise.all(groups.map((group) => group.load()))
  for (const register of registers) register(program, io)
  addGroupExamples(program)
  for (const command of program.commands) command.exitOverride()
  return program
}

/** Runs the CLI and returns the exit code (never throws). */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const program = await buildProgram(io, argv)
    await program.parseAsync([...argv], { from: 'user' })
    return 0
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version "errors" are successful exits; commander has already printed its message.
      return err.exitCode === 0 ? 0 : 2
    }
    const message = isDonghaeError(err)
      ? err.message
      : (fileErrorMessage(err) ?? `unexpected error: ${describeError(err)}`)
    io.stderr.write(`donghae: ${message.split('\n')[0] ?? ''}\n`)
    if (!isDonghaeError(err) && io.env.DONGHAE_DEBUG !== undefined) io.stderr.write(`${(err as Error).stack ?? ''}\n`)
    return 1
  }
}

/** Why the system refused a path the user gave (a name too long, no permission, a full disk), in words. */
const FILE_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENAMETOOLONG: 'file name too long',
  ENOTDIR: 'a part of the path is not a folder',
  EISDIR: 'it is a folder',
  EEXIST: 'it already exists',
  ENOSPC: 'no space left on the device',
  EROFS: 'read-only file system',
}

function fileErrorMessage(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException | undefined
  if (typeof e?.code !== 'string' || typeof e.path !== 'string') return undefined
  const why = FILE_ERRORS[e.code]
  if (why === undefined) return undefined
  return `cannot ${e.syscall ?? 'use'} ${e.path}: ${why} (${e.code})`
}

export async function main(): Promise<void> {
  const code = await run(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
  })
  process.exitCode = code
}
