/**
 * Where the keystore password comes from: `--password-file`, then `DONGHAE_PASSWORD`, then an
 * interactive prompt with echo off. Without a terminal and without either source, it is an error
 * that says how to provide one.
 */
import { readFile } from 'node:fs/promises'
import { CliError } from './errors.ts'

export const PASSWORD_ENV = 'DONGHAE_PASSWORD'
export const MIN_PASSWORD_LENGTH = 8

export interface PasswordSource {
  passwordFile?: string | undefined
  env?: NodeJS.ProcessEnv
  stdin?: NodeJS.ReadStream
  stderr?: NodeJS.WriteStream
}

export interface PasswordRequest {
  prompt: string
  /** Ask twice and require both to match (new passwords). */
  confirm?: boolean
  /** Enforce MIN_PASSWORD_LENGTH (new passwords). */
  isNew?: boolean
}

export async function obtainPassword(request: PasswordRequest, source: PasswordSource = {}): Promise<string> {
  const env = source.env ?? process.env
  const stdin = source.stdin ?? process.stdin
  const stderr = source.stderr ?? process.stderr
  let password: string
  if (source.passwordFile !== undefined) {
    try {
      password = (await readFile(source.passwordFile, 'utf8')).replace(/\r?\n$/, '')
    } catch (err) {
      throw new CliError(`cannot read the password file ${source.passwordFile}: ${(err as Error).message}`)
    }
  } else if (env[PASSWORD_ENV] !== undefined) {
    password = env[PASSWORD_ENV]
  } else if (stdin.isTTY === true) {
    password = await promptHidden(`${request.prompt}: `, stdin, stderr)
    if (request.confirm === true) {
      const again = await promptHidden('Repeat the password: ', stdin, stderr)
      if (again !== password) throw new CliError('the two passwords differ; nothing was written')
    }
  } else {
    throw new CliError(`no password: set ${PASSWORD_ENV}, pass --password-file FILE, or run in a terminal`)
  }
  if (password.length === 0) throw new CliError('the password is empty')
  if (request.isNew === true && password.length < MIN_PASSWORD_LENGTH) {
    throw new CliError(`the password must have at least ${MIN_PASSWORD_LENGTH} characters`)
  }
  return password
}

/** Reads one line from a TTY without echoing it. Ctrl-C or Ctrl-D cancels. */
function promptHidden(question: string, stdin: NodeJS.ReadStream, stderr: NodeJS.WriteStream): Promise<string> {
  return new Promise((resolve, reject) => {
    stderr.write(question)
    const wasRaw = stdin.isRaw
    stdin.setRawMode(true)
    stdin.resume()
    let value = ''
    const finish = (error?: Error): void => {
      stdin.setRawMode(wasRaw)
      stdin.pause()
      stdin.removeListener('data', onData)
      stderr.write('\n')
      if (error === undefined) resolve(value)
      else reject(error)
    }
    const onData = (chunk: Buffer): void => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish()
        if (char === '\u0003' || char === '\u0004') return finish(new CliError('cancelled; nothing was written'))
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1)
        else value += char
      }
    }
    stdin.on('data', onData)
  })
}
