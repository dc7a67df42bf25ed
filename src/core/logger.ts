/**
 * Structured, namespaced logging (pino). Library code logs through a component logger
 * (`logger.forComponent('donghae:store')`) and never writes to the console; only the CLI
 * prints for people. Logs go to stderr by default so stdout stays clean for `--json` output.
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino'
import { InvalidInputError } from './errors.ts'

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export type Logger = PinoLogger & {
  /** A child logger whose lines carry `component: name`. Names are `donghae:<area>[:<sub>...]`. */
  forComponent(name: string): Logger
}

export interface LoggerOptions {
  /** @default 'info' */
  level?: LogLevel
  /** Where lines go. @default stderr, written synchronously */
  destination?: DestinationStream
}

const COMPONENT_PATTERN = /^donghae(:[a-z0-9-]+)*$/

function withComponents(logger: PinoLogger): Logger {
  return Object.assign(logger, {
    forComponent(name: string): Logger {
      if (!COMPONENT_PATTERN.test(name)) {
        throw new InvalidInputError(`logger component ${JSON.stringify(name)} must look like donghae:area:sub`)
      }
      return withComponents(logger.child({ component: name }))
    },
  })
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true })
  const base = pino(
    { level: options.level ?? 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    destination,
  )
  return withComponents(base)
}

/** A logger that drops everything (tests, library defaults). */
export function silentLogger(): Logger {
  return withComponents(pino({ level: 'silent' }))
}
