/**
 * `donghae service install|uninstall|status`: keep this home's node running under the OS's
 * service manager (systemd user unit on Linux, launchd agent on macOS; service-files.ts). The
 * file is written or removed here; systemctl/launchctl are called only when present and not
 * `--dry-run`, and the output says when they were not. Install and uninstall are idempotent.
 */
import { execFile } from 'node:child_process'
import { constants } from 'node:fs'
import { access, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { createContext, type CliContext, type CliIo } from '../context.ts'
import { CliError, HomeStateError } from '../errors.ts'
import {
  SERVICE_PLATFORMS,
  managerCommands,
  parseServiceCommand,
  serviceFile,
  serviceFilePath,
  type ManagerStep,
  type ServicePlatform,
  type ServiceSpec,
} from '../service-files.ts'
import { nodeProcessVariables } from '../node-process.ts'

const BIN = fileURLToPath(new URL('../../../bin/donghae.js', import.meta.url))

/** Limit on one systemctl/launchctl call. */
const MANAGER_TIMEOUT_MS = 20_000

interface ServiceOptions {
  platform?: string
  dryRun?: boolean
  json?: boolean
}

interface InstallOptions extends ServiceOptions {
  passwordFile?: string
  logFile?: string
}

interface StepResult {
  command: string
  ok: boolean
  output?: string
}

function platformOf(flag: string | undefined): ServicePlatform {
  const platform = flag ?? process.platform
  if ((SERVICE_PLATFORMS as readonly string[]).includes(platform)) return platform as ServicePlatform
  throw new CliError(
    `service install supports linux (systemd) and darwin (launchd), not ${platform}; run \`donghae node\` under your own supervisor`,
  )
}

/** The user's home: $HOME (so tests and sandboxes can move it), else the OS's idea of it. */
function userHome(io: CliIo): string {
  return io.env.HOME ?? homedir()
}

/** The executable named `tool` on $PATH, if any. */
async function findOnPath(tool: string, io: CliIo): Promise<string | undefined> {
  for (const dir of (io.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, tool)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

function run(argv: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((done) => {
    execFile(argv[0] as string, argv.slice(1), { timeout: MANAGER_TIMEOUT_MS }, (err, stdout, stderr) => {
      done({ ok: err === null, output: `${stdout}${stderr}`.trim() })
    })
  })
}

/**
 * Runs the steps unless `--dry-run` or the tool is missing; then says why not. A step that
 * fails (and may not) stops the rest and becomes the command's error.
 */
async function runSteps(
  io: CliIo,
  tool: string,
  steps: ManagerStep[],
  dryRun: boolean,
): Promise<{ ran: boolean; skipped?: string; steps: StepResult[] }> {
  const commands = steps.map((s) => s.argv.join(' '))
  if (dryRun) return { ran: false, skipped: `dry run: not running ${commands.join('; ') || 'anything'}`, steps: [] }
  if ((await findOnPath(tool, io)) === undefined)
    return { ran: false, skipped: `${tool} is not available here: not running ${commands.join('; ')}`, steps: [] }
  const results: StepResult[] = []
  for (const step of steps) {
    const { ok, output } = await run(step.argv)
    results.push({ command: step.argv.join(' '), ok, ...(output === '' ? {} : { output }) })
    if (!ok && step.mayFail !== true)
      throw new CliError(
        `\`${step.argv.join(' ')}\` failed${output === '' ? '' : `: ${output.split('\n')[0] ?? ''}`}; the service file is in place, fix the cause and run the command again`,
      )
  }
  return { ran: true, steps: results }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

async function installSpec(
  ctx: CliContext,
  options: InstallOptions,
  platform: ServicePlatform,
  env: NodeJS.ProcessEnv,
): Promise<ServiceSpec> {
  try {
    await access(ctx.home.keystore)
  } catch {
    throw new HomeStateError(`${ctx.home.dir} has no keystore; run \`donghae init\` (or pass --home) first`)
  }
  if (options.passwordFile === undefined)
    throw new CliError(
      'a service cannot type the keystore password: pass --password-file FILE (a file readable only by you that holds it)',
    )
  const passwordFile = resolve(options.passwordFile)
  let mode: number
  try {
    mode = (await stat(passwordFile)).mode
  } catch {
    throw new CliError(
      `--password-file ${passwordFile} does not exist; create it (mode 0600) with the keystore password`,
    )
  }
  if ((mode & 0o077) !== 0) ctx.stderr.write(`warning: ${passwordFile} is readable by others; chmod 600 it\n`)
  return {
    node: process.execPath,
    bin: BIN,
    home: ctx.home.dir,
    passwordFile,
    logFile: resolve(options.logFile ?? join(ctx.home.dir, 'logs', 'node.log')),
    // the allocator (jemalloc where installed): a Linux choice; macOS's own malloc returns freed memory
    env: platform === 'linux' ? nodeProcessVariables({ env, platform }) : {},
  }
}

function report(ctx: CliContext, json: boolean, result: Record<string, unknown>, lines: string[]): void {
  if (json) ctx.json(result)
  else for (const line of lines) ctx.out(line)
}

function uid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0
}

function sharedOptions(command: Command): Command {
  return command
    .option('--platform <os>', `service manager to target: ${SERVICE_PLATFORMS.join(' or ')} (default: this machine's)`)
    .option(
      '--dry-run',
      'write or remove the file only; print the systemctl/launchctl commands instead of running them',
    )
    .option('--json', 'print the result as JSON')
}

export function registerService(program: Command, io: CliIo): void {
  const service = program
    .command('service')
    .description("run this home's node as a background service (systemd user unit on Linux, launchd agent on macOS)")
    .addHelpText(
      'after',
      `
Examples:
  $ donghae service install --password-file ~/.donghae/password
  $ donghae service status --json
  $ donghae service uninstall`,
    )

  sharedOptions(
    service
      .command('install')
      .description('write the service file for this home and start the service (idempotent)')
      .option('--password-file <file>', 'file holding the keystore password (required: a service cannot prompt)')
      .option('--log-file <file>', "the node's log, rotated by size (default <home>/logs/node.log)"),
  )
    .addHelpText(
      'after',
      `
Linux: ~/.config/systemd/user/donghae.service (systemctl --user; to keep it running while you
are logged out: loginctl enable-linger). macOS: ~/Library/LaunchAgents/org.donghae.node.plist.
The service restarts the node when it fails; logs go to --log-file, 10 MiB × 6 files at most.
On Linux the unit preloads jemalloc where it is installed (apt install libjemalloc2; found when
you install the service): it returns memory that glibc's malloc would keep. DONGHAE_MALLOC=system
leaves it out; DONGHAE_MALLOC=jemalloc refuses to install without it.

Examples:
  $ donghae service install --password-file ~/.donghae/password
  $ donghae --home /srv/donghae service install --password-file /srv/donghae/password --json
  $ donghae service install --platform darwin --dry-run --password-file pw   # only write the plist`,
    )
    .action(async (options: InstallOptions, command: Command) => {
      const ctx = createContext(command, io)
      const platform = platformOf(options.platform)
      const spec = await installSpec(ctx, options, platform, io.env)
      const file = serviceFilePath(platform, userHome(io))
      const text = serviceFile(platform, spec)
      const before = await readIfExists(file)
      const changed = before !== text
      if (changed) {
        await mkdir(dirname(file), { recursive: true })
        await mkdir(dirname(spec.logFile), { recursive: true, mode: 0o700 })
        await writeFile(file, text, { mode: 0o644 })
      }
      const manager = managerCommands(platform, file, uid())
      const activation = await runSteps(io, manager.tool, manager.install, options.dryRun === true)
      const state = before === undefined ? 'installed' : changed ? 'updated' : 'unchanged'
      report(ctx, options.json === true, { platform, file, state, ...activation, command: spec }, [
        `${state} ${file}`,
        activation.ran ? `started with ${manager.tool}` : (activation.skipped ?? ''),
        `logs: ${spec.logFile}`,
      ])
    })

  sharedOptions(service.command('uninstall').description('stop the service and remove its file (idempotent)'))
    .addHelpText('after', '\nExamples:\n  $ donghae service uninstall\n  $ donghae service uninstall --dry-run --json')
    .action(async (options: ServiceOptions, command: Command) => {
      const ctx = createContext(command, io)
      const platform = platformOf(options.platform)
      const file = serviceFilePath(platform, userHome(io))
      if ((await readIfExists(file)) === undefined) {
        report(ctx, options.json === true, { platform, file, state: 'not-installed', ran: false, steps: [] }, [
          `not installed (${file} does not exist); nothing to do`,
        ])
        return
      }
      const manager = managerCommands(platform, file, uid())
      const stop = await runSteps(io, manager.tool, manager.uninstall, options.dryRun === true)
      await rm(file, { force: true })
      const after = stop.ran ? await runSteps(io, manager.tool, manager.afterRemove, false) : stop
      report(
        ctx,
        options.json === true,
        {
          platform,
          file,
          state: 'removed',
          ran: stop.ran,
          ...(stop.skipped === undefined ? {} : { skipped: stop.skipped }),
          steps: [...stop.steps, ...(stop.ran ? after.steps : [])],
        },
        [`removed ${file}`, stop.ran ? `stopped with ${manager.tool}` : (stop.skipped ?? '')],
      )
    })

  sharedOptions(service.command('status').description('say whether the service is installed and running'))
    .addHelpText(
      'after',
      '\nExits 0 either way; see "installed" and "running".\n\nExamples:\n  $ donghae service status --json',
    )
    .action(async (options: ServiceOptions, command: Command) => {
      const ctx = createContext(command, io)
      const platform = platformOf(options.platform)
      const file = serviceFilePath(platform, userHome(io))
      const text = await readIfExists(file)
      const manager = managerCommands(platform, file, uid())
      let running: boolean | null = null
      let detail = options.dryRun === true ? 'dry run: not asking the service manager' : ''
      if (text !== undefined && options.dryRun !== true) {
        if ((await findOnPath(manager.tool, io)) === undefined) detail = `${manager.tool} is not available here`
        else {
          const answer = await run(manager.status)
          running = answer.ok
          detail = answer.output.split('\n')[0] ?? ''
        }
      }
      const argv = text === undefined ? undefined : parseServiceCommand(platform, text)
      const at = argv?.indexOf('--home') ?? -1
      const home = at >= 0 ? argv?.[at + 1] : undefined
      report(
        ctx,
        options.json === true,
        { platform, file, installed: text !== undefined, running, ...(home === undefined ? {} : { home }), detail },
        [
          text === undefined ? `not installed (${file} does not exist)` : `installed ${file}`,
          running === null ? detail : running ? 'running' : `not running (${detail})`,
        ].filter((l) => l !== ''),
      )
    })
}
