/**
 * Where the keystore password comes from, in order: `--password-file`, then `DONGHAE_PASSWORD`,
 * then the platform key store when the home has opted in (`donghae keys --keychain` wrote
 * `<home>/keychain.json`; see docs/keychain.md), then an interactive prompt with echo off.
 * Without a terminal and without any source, it is an error that says how to provide one.
 * A home that opted in but whose store is unavailable, or has no entry, says so and goes on to
 * the prompt (or that error).
 */
import { readFile } from 'node:fs/promises'
import {
  checkKeychainMarker,
  describeBackend,
  keychainMarkerPath,
  KeychainError,
  KeychainMarkerError,
  KeychainPasswordMismatchError,
  openSecretStore,
  readKeychainMarker,
  type SecretStore,
} from '../identity/keychain.ts'
import { decryptKeystore, readKeystoreFile, type KeystoreFile } from '../identity/keystore.ts'
import { WrongPasswordError } from '../identity/errors.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { CliError } from './errors.ts'

export const PASSWORD_ENV = 'DONGHAE_PASSWORD'
export const MIN_PASSWORD_LENGTH = 8

/** The home's keychain opt-in, consulted after the file and the environment. */
export interface KeychainSource {
  /** The home whose `keychain.json` says whether (and where) the password is kept. */
  homeDir: string
  /** The keystore's DID: the only account the marker may name. */
  did: string
  /** Opens the platform store (default: `openSecretStore()`); a test passes an in-memory one. */
  openStore?: () => Promise<SecretStore>
}

export interface PasswordSource {
  passwordFile?: string | undefined
  env?: NodeJS.ProcessEnv
  stdin?: NodeJS.ReadStream
  stderr?: NodeJS.WriteStream
  keychain?: KeychainSource
}

export interface PasswordRequest {
  prompt: string
  /** Ask twice and require both to match (new passwords). */
  confirm?: boolean
  /** Enforce MIN_PASSWORD_LENGTH (new passwords). */
  isNew?: boolean
}

export type PasswordOrigin = 'password-file' | 'env' | 'keychain' | 'prompt'

export interface ObtainedPassword {
  password: string
  origin: PasswordOrigin
  /** Where a keychain password came from, for people ('Secret Service', 'macOS Keychain'). */
  store?: string
}

export async function obtainPassword(request: PasswordRequest, source: PasswordSource = {}): Promise<string> {
  return (await obtainPasswordWithOrigin(request, source)).password
}

/** Like `obtainPassword`, and says which source gave the password. */
export async function obtainPasswordWithOrigin(
  request: PasswordRequest,
  source: PasswordSource = {},
): Promise<ObtainedPassword> {
  const obtained = await firstSource(request, source)
  if (obtained.password.length === 0) {
    throw new CliError(
      obtained.origin === 'keychain' ? `the ${obtained.store ?? 'keychain'} entry is empty` : 'the password is empty',
    )
  }
  if (request.isNew === true && obtained.password.length < MIN_PASSWORD_LENGTH) {
    throw new CliError(`the password must have at least ${MIN_PASSWORD_LENGTH} characters`)
  }
  return obtained
}

async function firstSource(request: PasswordRequest, source: PasswordSource): Promise<ObtainedPassword> {
  const env = source.env ?? process.env
  if (source.passwordFile !== undefined) return fromFile(source.passwordFile)
  if (env[PASSWORD_ENV] !== undefined) return { password: env[PASSWORD_ENV], origin: 'env' }
  const kept = request.isNew === true || source.keychain === undefined ? undefined : await fromKeychain(source.keychain)
  if (kept !== undefined && 'password' in kept) return kept
  return fromPrompt(request, source.stdin ?? process.stdin, source.stderr ?? process.stderr, kept?.note)
}

async function fromFile(path: string): Promise<ObtainedPassword> {
  try {
    return { password: (await readFile(path, 'utf8')).replace(/\r?\n$/, ''), origin: 'password-file' }
  } catch (err) {
    throw new CliError(`cannot read the password file ${path}: ${(err as Error).message}`)
  }
}

async function fromPrompt(
  request: PasswordRequest,
  stdin: NodeJS.ReadStream,
  stderr: NodeJS.WriteStream,
  note: string | undefined,
): Promise<ObtainedPassword> {
  if (stdin.isTTY !== true) {
    const why = note === undefined ? '' : `${note}; `
    throw new CliError(`no password: ${why}set ${PASSWORD_ENV}, pass --password-file FILE, or run in a terminal`)
  }
  if (note !== undefined) stderr.write(`donghae: ${note}\n`)
  const password = await promptHidden(`${request.prompt}: `, stdin, stderr)
  if (request.confirm === true) {
    const again = await promptHidden('Repeat the password: ', stdin, stderr)
    if (again !== password) throw new CliError('the two passwords differ; nothing was written')
  }
  return { password, origin: 'prompt' }
}

/**
 * The password kept in the platform store, or the reason there is none (to print before the
 * prompt). No marker: nothing to say. A marker that names another entry: `KeychainMarkerError`.
 */
async function fromKeychain(source: KeychainSource): Promise<ObtainedPassword | { note: string } | undefined> {
  const marker = await readKeychainMarker(source.homeDir)
  if (marker === undefined) return undefined
  checkKeychainMarker(marker, source.did, keychainMarkerPath(source.homeDir))
  const wanted = describeBackend(marker.backend)
  let store: SecretStore
  let password: string | undefined
  try {
    store = await (source.openStore ?? openSecretStore)()
    if (store.backend !== marker.backend) {
      return { note: `this home keeps its password in the ${wanted}, which this machine does not have` }
    }
    password = await store.get(marker.account)
  } catch (err) {
    if (!(err instanceof KeychainError) || err instanceof KeychainMarkerError) throw err
    return { note: `this home keeps its password in the ${wanted}, but ${err.message}` }
  }
  if (password === undefined) {
    return {
      note: `the ${wanted} has no entry for ${marker.account} (run \`donghae keys --keychain\` to store it again)`,
    }
  }
  return { password, origin: 'keychain', store: store.describe() }
}

export interface UnlockedKeystore {
  file: KeystoreFile
  keyPair: Ed25519KeyPair
  origin: PasswordOrigin
  /** The password that opened it (the node derives its wallet ledger's key from it). */
  password: string
}

/**
 * Reads the home's keystore, obtains its password (the keychain included, when the home opted
 * in) and opens it. A keychain password that does not open it is a `KeychainPasswordMismatchError`
 * naming the store, not a plain wrong password.
 */
export async function unlockHomeKeystore(
  home: { dir: string; keystore: string },
  request: PasswordRequest,
  source: Omit<PasswordSource, 'keychain'> & { openStore?: () => Promise<SecretStore> } = {},
): Promise<UnlockedKeystore> {
  const file = await readKeystoreFile(home.keystore)
  const { openStore, ...rest } = source
  const obtained = await obtainPasswordWithOrigin(request, {
    ...rest,
    keychain: { homeDir: home.dir, did: file.did, openStore },
  })
  try {
    return {
      file,
      keyPair: await decryptKeystore(file, obtained.password),
      origin: obtained.origin,
      password: obtained.password,
    }
  } catch (err) {
    if (!(err instanceof WrongPasswordError) || obtained.origin !== 'keychain') throw err
    throw new KeychainPasswordMismatchError(
      `the password kept in the ${obtained.store ?? 'keychain'} for ${file.did} does not open ${home.keystore}; run \`donghae keys --keychain\` to store the right one, or \`donghae keys --no-keychain\``,
      { cause: err },
    )
  }
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
