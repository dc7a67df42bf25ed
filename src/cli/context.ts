/** What every command receives: the resolved home, a logger, and the streams it prints to. */
import type { Command } from 'commander'
import { createLogger, LOG_LEVELS, type Logger, type LogLevel } from '../core/logger.ts'
import { loadConfig, type LoadedConfig } from '../core/config.ts'
import { resolveHome, type HomeLayout } from './home.ts'
import { CliError } from './errors.ts'

export interface CliIo {
  stdout: NodeJS.WritableStream
  stderr: NodeJS.WriteStream
  stdin: NodeJS.ReadStream
  env: NodeJS.ProcessEnv
}

export interface CliContext extends CliIo {
  home: HomeLayout
  logger: Logger
  /** The effective config (flags > env > home config file > defaults). */
  config(): LoadedConfig
  /** Prints a line for people (stdout). */
  out(line: string): void
  /** Prints a value as one JSON document (stdout). */
  json(value: unknown): void
}

interface GlobalOptions {
  home?: string
  logLevel?: string
  moniker?: string
}

export function createContext(command: Command, io: CliIo): CliContext {
  const globals = command.optsWithGlobals<GlobalOptions>()
  const home = resolveHome(globals.home, io.env)
  if (globals.logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(globals.logLevel)) {
    throw new CliError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
  }
  let loaded: LoadedConfig | undefined
  const config = (): LoadedConfig => {
    loaded ??= loadConfig({
      file: home.config,
      env: io.env,
      flags: { logLevel: globals.logLevel, moniker: globals.moniker },
    })
    return loaded
  }
  const level = (globals.logLevel ?? io.env.DONGHAE_LOG_LEVEL ?? 'warn') as LogLevel
  return {
    ...io,
    home,
    logger: createLogger({ level: (LOG_LEVELS as readonly string[]).includes(level) ? level : 'warn' }),
    config,
    out: (line) => io.stdout.write(`${line}\n`),
    json: (value) => io.stdout.write(`${JSON.stringify(value, null, 2)}\n`),
  }
}
