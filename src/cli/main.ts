/**
 * The `donghae` command line. Every failure prints one line (`donghae: what failed — what to do`)
 * and exits non-zero: 1 for errors, 2 for usage mistakes.
 */
import { Command, CommanderError } from 'commander'
import { describeError, isDonghaeError } from '../core/errors.ts'
import { LOG_LEVELS } from '../core/logger.ts'
import type { CliIo } from './context.ts'
import { registerChain } from './commands/chain.ts'
import { registerConfig } from './commands/config.ts'
import { registerDid } from './commands/did.ts'
import { registerId } from './commands/id.ts'
import { registerInit } from './commands/init.ts'
import { registerKeys } from './commands/keys.ts'
import { registerGenesis } from './commands/genesis.ts'
import { registerLocalnet } from './commands/localnet.ts'
import { registerNode } from './commands/node.ts'
import { registerDevnet } from './commands/devnet.ts'
import { registerSim } from './commands/sim.ts'
import { registerNat } from './commands/nat.ts'
import { registerInference } from './commands/inference.ts'
import { registerExperts } from './commands/experts.ts'
import { registerFl } from './commands/fl.ts'
import { registerGovernance } from './commands/governance.ts'
import { registerArena } from './commands/arena.ts'
import { registerDirectory } from './commands/directory.ts'
import { registerWallet } from './commands/wallet.ts'
import { registerService } from './commands/service.ts'
import { registerChaos } from './commands/chaos.ts'
import { addGroupExamples } from './help.ts'
import { VERSION } from './version.ts'

export function buildProgram(io: CliIo): Command {
  const program = new Command('donghae')
    .description('Donghae: home computers as one trustworthy, decentralized AI service')
    .version(VERSION, '-V, --version', 'print the version')
    .option('--home <dir>', 'home directory (env DONGHAE_HOME, default ~/.donghae)')
    .option('--log-level <level>', `log verbosity: ${LOG_LEVELS.join(', ')} (env DONGHAE_LOG_LEVEL)`)
    .option('--moniker <name>', "the node's human-readable name (env DONGHAE_MONIKER)")
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
  $ donghae did resolve did:key:z6Mk…  print a DID document
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

  registerInit(program, io)
  registerId(program, io)
  registerDid(program, io)
  registerKeys(program, io)
  registerConfig(program, io)
  registerChain(program, io)
  registerGenesis(program, io)
  registerLocalnet(program, io)
  registerNode(program, io)
  registerDevnet(program, io)
  registerSim(program, io)
  registerNat(program, io)
  registerInference(program, io)
  registerExperts(program, io)
  registerFl(program, io)
  registerGovernance(program, io)
  registerArena(program, io)
  registerDirectory(program, io)
  registerWallet(program, io)
  registerService(program, io)
  registerChaos(program, io)
  addGroupExamples(program)
  for (const command of program.commands) command.exitOverride()
  return program
}

/** Runs the CLI and returns the exit code (never throws). */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const program = buildProgram(io)
  try {
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
