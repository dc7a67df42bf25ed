/**
 * The platform's key store, holding the keystore's password so that a home can be unlocked
 * without typing it: the macOS Keychain, the Secret Service on Linux (gnome-keyring, KWallet,
 * KeePassXC... over the D-Bus session bus) or the Windows Credential Manager, through the
 * maintained keyring-rs binding `@napi-rs/keyring`. See docs/keychain.md.
 *
 * What is stored is the password, never the key: the keystore file stays the one encrypted copy
 * of the seed, and the password keeps opening it when the platform store is gone.
 *
 * Entry: service `donghae`, account = the keystore's DID (`did:key:z6Mk...`), so that the entry
 * names what it unlocks. Homes holding the same keystore (an export imported elsewhere) share
 * one entry; they share the password too.
 *
 * Opt-in marker `<home>/keychain.json` (mode 0600), written by `donghae keys --keychain`:
 *   { "version": 1, "service": "donghae", "account": "<the keystore's DID>", "backend": "secret-service" }
 * Without it the home never touches the platform store. A marker naming another service or
 * another account than the home's keystore is refused (`KeychainMarkerError`) before the store
 * is opened: a file in the home cannot make Donghae read some other entry.
 *
 * The binding is loaded lazily, on first use: a machine without its native library, without a
 * D-Bus session or without a Secret Service gets `KeychainUnavailableError`, and everything else
 * keeps working on the file keystore.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs, constants as fsConstants } from 'node:fs'
import { join } from 'node:path'
import { DonghaeError } from '../core/errors.ts'
import { WrongPasswordError } from './errors.ts'

/** The service name of every Donghae entry in the platform store. */
export const KEYCHAIN_SERVICE = 'donghae'
/** The opt-in marker's file name inside the home. */
export const KEYCHAIN_MARKER_FILE = 'keychain.json'
export const KEYCHAIN_MARKER_VERSION = 1
const MARKER_FILE_MODE = 0o600
const MAX_MARKER_BYTES = 4096

export const KEYCHAIN_BACKENDS = ['macos-keychain', 'secret-service', 'windows-credential-manager'] as const
export type KeychainBackend = (typeof KEYCHAIN_BACKENDS)[number]

const BACKEND_NAMES: Readonly<Record<KeychainBackend, string>> = {
  'macos-keychain': 'macOS Keychain',
  'secret-service': 'Secret Service',
  'windows-credential-manager': 'Windows Credential Manager',
}

/** Any failure of the platform store other than its absence. Never carries a secret. */
export class KeychainError extends DonghaeError {
  static override readonly code: string = 'KEYCHAIN_ERROR'
  override name = 'KeychainError'
}

/** No platform store here: the native binding, the D-Bus session or the Secret Service is missing, or it is locked. */
export class KeychainUnavailableError extends KeychainError {
  static override readonly code: string = 'KEYCHAIN_UNAVAILABLE'
  override name = 'KeychainUnavailableError'
}

/** `<home>/keychain.json` is malformed, or names another service or account than the home's keystore. */
export class KeychainMarkerError extends KeychainError {
  static override readonly code: string = 'KEYCHAIN_MARKER_INVALID'
  override name = 'KeychainMarkerError'
}

/** The password kept in the platform store does not open the keystore (it was replaced or re-encrypted). */
export class KeychainPasswordMismatchError extends WrongPasswordError {
  static override readonly code: string = 'KEYCHAIN_WRONG_PASSWORD'
  override name = 'KeychainPasswordMismatchError'
}

/** What Donghae needs from a platform store: one secret per account, under one service. */
export interface SecretStore {
  readonly backend: KeychainBackend
  /** For people: 'macOS Keychain', 'Secret Service'... */
  describe(): string
  /** The secret of `account`, or undefined when there is no entry. */
  get(account: string, options?: { signal?: AbortSignal }): Promise<string | undefined>
  set(account: string, secret: string, options?: { signal?: AbortSignal }): Promise<void>
  /** True when an entry was removed, false when there was none. */
  delete(account: string, options?: { signal?: AbortSignal }): Promise<boolean>
}

export function describeBackend(backend: KeychainBackend): string {
  return BACKEND_NAMES[backend]
}

/** The store keyring-rs uses on `platform`, or undefined where it has none. */
export function platformBackend(platform: NodeJS.Platform = process.platform): KeychainBackend | undefined {
  if (platform === 'darwin') return 'macos-keychain'
  if (platform === 'linux' || platform === 'freebsd') return 'secret-service'
  if (platform === 'win32') return 'windows-credential-manager'
  return undefined
}

/** The part of `@napi-rs/keyring` used here. */
export interface KeyringBinding {
  AsyncEntry: new (
    service: string,
    account: string,
    options?: { linux?: { store?: 'secret-service' | 'keyutils' } },
  ) => {
    getPassword(signal?: AbortSignal | null): Promise<string | null>
    setPassword(password: string, signal?: AbortSignal | null): Promise<void>
    deletePassword(signal?: AbortSignal | null): Promise<boolean>
  }
}

export interface OpenSecretStoreOptions {
  /** @default KEYCHAIN_SERVICE */
  service?: string
  /** @default process.platform */
  platform?: NodeJS.Platform
  /** Loads the binding; a test stands for a machine without it by passing one that throws. */
  loadBinding?: () => Promise<KeyringBinding>
}

async function loadKeyring(): Promise<KeyringBinding> {
  const mod = (await import('@napi-rs/keyring')) as unknown as KeyringBinding & { default?: KeyringBinding }
  return typeof mod.AsyncEntry === 'function' ? mod : (mod.default ?? mod)
}

/** The first line of a library message, without the secret should it ever appear in it. */
function reason(err: unknown, secret?: string): string {
  let text = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? ''
  if (secret !== undefined && secret.length > 0) text = text.split(secret).join('[redacted]')
  return text.length > 240 ? `${text.slice(0, 240)}\u2026` : text
}

/**
 * keyring-rs reports every failure as a `GenericFailure` whose text is its error's Display, so the
 * kind is read from that text's fixed prefix (the one place here that looks at a message): a
 * platform failure (no bus, no service) or no storage access (a locked store) means the store is
 * unavailable; the rest (an ambiguous entry, a bad encoding) is a `KeychainError`.
 */
function storeError(err: unknown, what: string, name: string, secret?: string): KeychainError {
  const text = reason(err, secret)
  const unavailable = /^(Platform failure|Platform secure storage failure|Couldn't access platform secure storage)/i
  const Kind = unavailable.test(text) ? KeychainUnavailableError : KeychainError
  return new Kind(`the ${name} could not ${what}: ${text}`, { cause: secret === undefined ? err : undefined })
}

class KeyringStore implements SecretStore {
  readonly backend: KeychainBackend
  readonly #binding: KeyringBinding
  readonly #service: string

  constructor(binding: KeyringBinding, service: string, backend: KeychainBackend) {
    this.#binding = binding
    this.#service = service
    this.backend = backend
  }

  describe(): string {
    return describeBackend(this.backend)
  }

  /** Pinned to the Secret Service on Linux: keyring-rs would otherwise fall back to the kernel keyring, which forgets at reboot. */
  entry(account: string): InstanceType<KeyringBinding['AsyncEntry']> {
    try {
      return new this.#binding.AsyncEntry(this.#service, account, { linux: { store: 'secret-service' } })
    } catch (err) {
      const hint =
        this.backend === 'secret-service'
          ? ' (it needs the D-Bus session of a desktop login, DBUS_SESSION_BUS_ADDRESS, with gnome-keyring, KWallet or KeePassXC)'
          : ''
      throw new KeychainUnavailableError(`no ${this.describe()} is reachable${hint}: ${reason(err)}`, { cause: err })
    }
  }

  async get(account: string, options: { signal?: AbortSignal } = {}): Promise<string | undefined> {
    const entry = this.entry(account)
    try {
      return (await entry.getPassword(options.signal)) ?? undefined
    } catch (err) {
      throw storeError(err, 'read the entry', this.describe())
    }
  }

  async set(account: string, secret: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const entry = this.entry(account)
    try {
      await entry.setPassword(secret, options.signal)
    } catch (err) {
      throw storeError(err, 'store the entry', this.describe(), secret)
    }
  }

  async delete(account: string, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const entry = this.entry(account)
    try {
      return await entry.deletePassword(options.signal)
    } catch (err) {
      throw storeError(err, 'remove the entry', this.describe())
    }
  }
}

/**
 * Loads the binding and checks that this machine's store is reachable (on Linux: a D-Bus session
 * with a Secret Service). Throws `KeychainUnavailableError` otherwise.
 */
export async function openSecretStore(options: OpenSecretStoreOptions = {}): Promise<SecretStore> {
  const backend = platformBackend(options.platform)
  if (backend === undefined) {
    throw new KeychainUnavailableError(`Donghae knows no platform key store on ${options.platform ?? process.platform}`)
  }
  let binding: KeyringBinding
  try {
    binding = await (options.loadBinding ?? loadKeyring)()
    if (typeof binding.AsyncEntry !== 'function') throw new Error('the binding has no AsyncEntry')
  } catch (err) {
    throw new KeychainUnavailableError(
      `the native keyring binding (@napi-rs/keyring) cannot be loaded: ${reason(err)}; reinstall Donghae with its optional dependencies`,
      { cause: err },
    )
  }
  const store = new KeyringStore(binding, options.service ?? KEYCHAIN_SERVICE, backend)
  store.entry('probe')
  return store
}

/** The home's opt-in: which store and which entry hold its keystore's password. */
export interface KeychainMarker {
  version: typeof KEYCHAIN_MARKER_VERSION
  service: string
  account: string
  backend: KeychainBackend
}

export function keychainMarkerPath(homeDir: string): string {
  return join(homeDir, KEYCHAIN_MARKER_FILE)
}

/** A short, printable rendering of a value read from a file someone else may have written. */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 80 ? `${text.slice(0, 80)}\u2026` : text
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** Checks the marker's shape; throws `KeychainMarkerError` naming the first problem. */
export function parseKeychainMarker(text: string, path = KEYCHAIN_MARKER_FILE): KeychainMarker {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new KeychainMarkerError(`${path} is not valid JSON; run \`donghae keys --no-keychain\` to remove it`)
  }
  if (!isRecord(value)) throw new KeychainMarkerError(`${path} is not a JSON object`)
  if (value.version !== KEYCHAIN_MARKER_VERSION) {
    throw new KeychainMarkerError(`${path} has version ${shown(value.version)}; this Donghae reads version 1`)
  }
  for (const key of ['service', 'account'] as const) {
    const field = value[key]
    if (typeof field !== 'string' || field.length === 0 || field.length > 256) {
      throw new KeychainMarkerError(`${path} field ${key} must be a non-empty string`)
    }
  }
  if (!(KEYCHAIN_BACKENDS as readonly unknown[]).includes(value.backend)) {
    throw new KeychainMarkerError(`${path} names an unknown backend ${shown(value.backend)}`)
  }
  const extra = Object.keys(value).filter((k) => !['version', 'service', 'account', 'backend'].includes(k))
  if (extra.length > 0) throw new KeychainMarkerError(`${path} has an unexpected field ${shown(extra[0])}`)
  return value as unknown as KeychainMarker
}

/**
 * Reads `<home>/keychain.json`: undefined when the home has not opted in. A symlink, a device,
 * a FIFO or an oversized file is refused, so a hostile home cannot block or exhaust the reader.
 */
export async function readKeychainMarker(homeDir: string): Promise<KeychainMarker | undefined> {
  const path = keychainMarkerPath(homeDir)
  let handle: fs.FileHandle
  try {
    handle = await fs.open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP') throw new KeychainMarkerError(`${path} is a symbolic link; refusing to follow it`)
    throw err
  }
  try {
    const stats = await handle.stat()
    if (!stats.isFile()) throw new KeychainMarkerError(`${path} is not a regular file`)
    if (stats.size > MAX_MARKER_BYTES) throw new KeychainMarkerError(`${path} is too large to be a keychain marker`)
    return parseKeychainMarker(await handle.readFile('utf8'), path)
  } finally {
    await handle.close()
  }
}

/**
 * The entry a marker may name for a keystore: service `donghae` and the keystore's own DID.
 * Anything else (a marker copied from another home, or written to make Donghae read someone
 * else's entry) throws `KeychainMarkerError` before any store is opened.
 */
export function checkKeychainMarker(marker: KeychainMarker, did: string, path = KEYCHAIN_MARKER_FILE): void {
  if (marker.service !== KEYCHAIN_SERVICE) {
    throw new KeychainMarkerError(
      `${path} names the service ${shown(marker.service)}, not ${KEYCHAIN_SERVICE}; refusing to read it (run \`donghae keys --no-keychain\`)`,
    )
  }
  if (marker.account !== did) {
    throw new KeychainMarkerError(
      `${path} names the account ${shown(marker.account)}, but this home's keystore is ${did}; run \`donghae keys --keychain\` to store this keystore's password, or \`donghae keys --no-keychain\``,
    )
  }
}

/** Writes the marker atomically with mode 0600 (replacing an older one). */
export async function writeKeychainMarker(homeDir: string, marker: KeychainMarker): Promise<void> {
  const path = keychainMarkerPath(homeDir)
  const temp = join(homeDir, `.${KEYCHAIN_MARKER_FILE}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  const text = `${JSON.stringify(parseKeychainMarker(JSON.stringify(marker)), null, 2)}\n`
  try {
    await fs.writeFile(temp, text, { mode: MARKER_FILE_MODE, flag: 'wx' })
    await fs.rename(temp, path)
  } finally {
    await fs.rm(temp, { force: true })
  }
}

/** Removes the marker; true when there was one. */
export async function removeKeychainMarker(homeDir: string): Promise<boolean> {
  try {
    await fs.unlink(keychainMarkerPath(homeDir))
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}
