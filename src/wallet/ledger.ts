/**
 * The wallet's local ledger (issue 14, part 3; seed 002): every payment sent or received is an
 * entry chained to the one before it, encrypted and authenticated under a key derived from the
 * wallet password, so that removing, editing, reordering or truncating entries is detected and
 * reported with the first bad index.
 *
 * Two files:
 *
 *   <path>        one JSON line per entry: { "i": index, "n": nonce (12 B hex), "c": ciphertext (base64) }
 *   <path>.head   one JSON object, rewritten atomically (temp file, fsync, rename) after each append:
 *                 { format, kdf: { name: 'scrypt', N, r, p, salt }, count, head, mac }
 *
 * - Keys: scrypt(password, salt, N, r, p) -> 64 bytes: an AES-256-GCM key and an HMAC-SHA-256
 *   key. The KDF parameters and salt live in the head file, so a ledger opens on any machine
 *   with its password.
 * - Entry `i` is AES-256-GCM with a random 96-bit nonce; its associated data is the format name
 *   and `i`, so an entry moved to another position no longer decrypts. Its plaintext carries
 *   `prev`, the SHA-256 of entry `i - 1`'s line (32 zero bytes for entry 0): a removed entry
 *   breaks the chain at the index where it was.
 * - The head file holds the entry count and the hash of the last line under an HMAC: removing
 *   entries from the end (which leaves the chain intact) is caught by the count, and a wrong
 *   password by the MAC, before any entry is read.
 * - An append writes and fsyncs the entry line, then the head. A crash between the two leaves
 *   one line more than the head counts; `open` accepts it when it decrypts and chains to the
 *   head (that append completed), and refuses anything else.
 *
 * Errors: `LedgerPasswordError` (wrong password, or a head file altered), `LedgerTamperedError`
 * with `index` (the first entry that fails) and `reason`, `LedgerFormatError` (not a ledger).
 * Nothing is appended to a ledger that did not verify.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomBytes,
  scrypt,
  timingSafeEqual,
} from 'node:crypto'
import { open as openFile, readFile, rename, writeFile } from 'node:fs/promises'
import { DonghaeError, InvalidInputError } from '../core/errors.ts'

export const LEDGER_FORMAT = 'donghae-ledger/1'
/** scrypt's cost: 2^15 × 8 × 128 B = 32 MiB of memory, about 0.1 s here (OWASP's minimum is 2^17 for passwords alone). */
export const DEFAULT_SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const
/** Largest entry body, bytes of JSON. */
export const MAX_ENTRY_BYTES = 64 * 1024

const ZERO_HASH = Buffer.alloc(32)

export class LedgerError extends DonghaeError {
  static override readonly code: string = 'LEDGER_ERROR'
  override name = 'LedgerError'
}

/** The password does not open this ledger (or its head file was altered). */
export class LedgerPasswordError extends LedgerError {
  static override readonly code: string = 'LEDGER_PASSWORD'
  override name = 'LedgerPasswordError'
}

/** An entry was removed, edited, reordered or truncated: `index` is the first one that fails. */
export class LedgerTamperedError extends LedgerError {
  static override readonly code: string = 'LEDGER_TAMPERED'
  override name = 'LedgerTamperedError'
  readonly index: number
  readonly reason: 'undecryptable' | 'chain' | 'index' | 'missing' | 'extra' | 'malformed'

  constructor(index: number, reason: LedgerTamperedError['reason'], message: string) {
    super(`ledger entry ${index}: ${message}`, { details: { index, reason } })
    this.index = index
    this.reason = reason
  }
}

/** The files are not a ledger this code reads. */
export class LedgerFormatError extends LedgerError {
  static override readonly code: string = 'LEDGER_FORMAT'
  override name = 'LedgerFormatError'
}

export interface ScryptParams {
  N: number
  r: number
  p: number
}

/** What an entry records (a payment sent or received); any JSON object. */
export type LedgerBody = Record<string, unknown>

export interface LedgerEntry {
  index: number
  /** Milliseconds since the Unix epoch, when it was appended. */
  at: number
  body: LedgerBody
  /** SHA-256 of its line, hex: what the next entry chains to. */
  hash: string
}

interface Head {
  format: string
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string }
  count: number
  head: string
  mac: string
}

interface Keys {
  enc: Buffer
  mac: Buffer
}

function deriveKeys(password: string, salt: Buffer, params: ScryptParams): Promise<Keys> {
  return new Promise((resolve, reject) => {
    // maxmem: scrypt needs 128·N·r bytes; leave room above it
    scrypt(password, salt, 64, { ...params, maxmem: 256 * params.N * params.r }, (err, key) => {
      if (err !== null) reject(new InvalidInputError(`scrypt parameters refused: ${err.message}`))
      else resolve({ enc: key.subarray(0, 32), mac: key.subarray(32) })
    })
  })
}

function headMac(keys: Keys, head: Omit<Head, 'mac'>): string {
  const { format, kdf, count } = head
  const text = JSON.stringify([format, kdf.name, kdf.N, kdf.r, kdf.p, kdf.salt, count, head.head])
  return createHmac('sha256', keys.mac).update(text).digest('hex')
}

function associated(index: number): Buffer {
  return Buffer.from(`${LEDGER_FORMAT}\n${index}`)
}

function lineHash(line: string): Buffer {
  return createHash('sha256').update(line).digest()
}

function checkParams(params: ScryptParams): void {
  const power = Number.isSafeInteger(params.N) && params.N >= 2 && (params.N & (params.N - 1)) === 0
  if (!power || params.N > 2 ** 20 || !(params.r >= 1 && params.r <= 32) || !(params.p >= 1 && params.p <= 16))
    throw new LedgerFormatError(`scrypt parameters out of range: N=${params.N} r=${params.r} p=${params.p}`)
}

function parseHead(text: string): Head {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw new LedgerFormatError('the head file is not JSON')
  }
  const h = raw as Partial<Head> | null
  if (
    h === null ||
    typeof h !== 'object' ||
    h.format !== LEDGER_FORMAT ||
    h.kdf?.name !== 'scrypt' ||
    typeof h.kdf.salt !== 'string' ||
    !/^[0-9a-f]{32,128}$/.test(h.kdf.salt) ||
    !Number.isSafeInteger(h.count) ||
    (h.count as number) < 0 ||
    typeof h.head !== 'string' ||
    !/^[0-9a-f]{64}$/.test(h.head) ||
    typeof h.mac !== 'string'
  )
    throw new LedgerFormatError(`not a ${LEDGER_FORMAT} head file`)
  checkParams(h.kdf)
  return h as Head
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`
  await writeFile(tmp, text, { mode: 0o600 })
  const fh = await openFile(tmp, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
}

export class WalletLedger {
  readonly path: string
  readonly #keys: Keys
  #head: Head
  #entries: LedgerEntry[]
  /** Appends run one at a time, in call order (each one's index is the count when it runs). */
  #tail: Promise<unknown> = Promise.resolve()

  private constructor(path: string, keys: Keys, head: Head, entries: LedgerEntry[]) {
    this.path = path
    this.#keys = keys
    this.#head = head
    this.#entries = entries
  }

  /** Creates an empty ledger at `path` (refuses to overwrite one). */
  static async create(path: string, password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<WalletLedger> {
    if (password.length === 0) throw new InvalidInputError('the ledger password is empty')
    checkParams(params)
    const salt = randomBytes(16)
    const keys = await deriveKeys(password, salt, params)
    const unsigned = {
      format: LEDGER_FORMAT,
      kdf: { name: 'scrypt' as const, ...params, salt: salt.toString('hex') },
      count: 0,
      head: ZERO_HASH.toString('hex'),
    }
    const head: Head = { ...unsigned, mac: headMac(keys, unsigned) }
    try {
      await writeFile(path, '', { flag: 'wx', mode: 0o600 })
    } catch (err) {
      throw new InvalidInputError(`cannot create the ledger ${path}: ${(err as Error).message}`)
    }
    await writeAtomic(`${path}.head`, `${JSON.stringify(head)}\n`)
    return new WalletLedger(path, keys, head, [])
  }

  /** Opens and verifies the whole ledger; throws LedgerPasswordError / LedgerTamperedError / LedgerFormatError. */
  static async open(path: string, password: string): Promise<WalletLedger> {
    let headText: string
    let body: string
    try {
      ;[headText, body] = await Promise.all([readFile(`${path}.head`, 'utf8'), readFile(path, 'utf8')])
    } catch (err) {
      throw new LedgerFormatError(`cannot read the ledger ${path}: ${(err as Error).message}`)
    }
    const head = parseHead(headText)
    const keys = await deriveKeys(password, Buffer.from(head.kdf.salt, 'hex'), head.kdf)
    const { mac, ...unsigned } = head
    const expected = Buffer.from(headMac(keys, unsigned), 'hex')
    const given = Buffer.from(mac, 'hex')
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new LedgerPasswordError('the password does not open this ledger (or its head file was changed)')
    const lines = body.split('\n')
    if (lines.at(-1) === '') lines.pop()
    const entries = verifyLines(keys, lines, head)
    const ledger = new WalletLedger(path, keys, head, entries)
    if (entries.length === head.count + 1) await ledger.#writeHead() // an append interrupted after its line
    return ledger
  }

  get count(): number {
    return this.#entries.length
  }

  /** The hash of the last entry's line (64 zeros for an empty ledger), without copying the entries. */
  get head(): string {
    return this.#entries.at(-1)?.hash ?? ZERO_HASH.toString('hex')
  }

  entries(): LedgerEntry[] {
    return this.#entries.map((e) => ({ ...e, body: structuredClone(e.body) }))
  }

  /**
   * Appends `body` chained to the last entry; the line is on disk (fsynced) when this resolves.
   * Concurrent calls are queued and written in call order.
   */
  append(body: LedgerBody, at: number = Date.now()): Promise<LedgerEntry> {
    const run = this.#tail.then(
      () => this.#append(body, at),
      () => this.#append(body, at),
    )
    this.#tail = run.catch(() => {})
    return run
  }

  async #append(body: LedgerBody, at: number): Promise<LedgerEntry> {
    const index = this.#entries.length
    const prev = this.#entries.at(-1)?.hash ?? ZERO_HASH.toString('hex')
    const plain = Buffer.from(JSON.stringify({ index, prev, at, body }))
    if (plain.length > MAX_ENTRY_BYTES)
      throw new InvalidInputError(`a ledger entry is at most ${MAX_ENTRY_BYTES} bytes (this one: ${plain.length})`)
    const nonce = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.#keys.enc, nonce)
    cipher.setAAD(associated(index))
    const ct = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
    const line = JSON.stringify({ i: index, n: nonce.toString('hex'), c: ct.toString('base64') })
    const fh = await openFile(this.path, 'a')
    try {
      await fh.write(`${line}\n`)
      await fh.sync()
    } finally {
      await fh.close()
    }
    const entry: LedgerEntry = { index, at, body: structuredClone(body), hash: lineHash(line).toString('hex') }
    this.#entries.push(entry)
    await this.#writeHead()
    return { ...entry, body: structuredClone(body) }
  }

  /** Reads the files again and verifies every entry (what `donghae wallet verify` runs). */
  async verify(password: string): Promise<{ count: number; head: string }> {
    const again = await WalletLedger.open(this.path, password)
    return { count: again.count, head: again.#head.head }
  }

  async #writeHead(): Promise<void> {
    const unsigned = {
      format: this.#head.format,
      kdf: this.#head.kdf,
      count: this.#entries.length,
      head: this.#entries.at(-1)?.hash ?? ZERO_HASH.toString('hex'),
    }
    this.#head = { ...unsigned, mac: headMac(this.#keys, unsigned) }
    await writeAtomic(`${this.path}.head`, `${JSON.stringify(this.#head)}\n`)
  }
}

function verifyLines(keys: Keys, lines: readonly string[], head: Head): LedgerEntry[] {
  const entries: LedgerEntry[] = []
  let prev: Buffer = ZERO_HASH
  for (const [index, line] of lines.entries()) {
    if (index > head.count) throw new LedgerTamperedError(index, 'extra', 'more entries than the head records')
    let record: { i?: unknown; n?: unknown; c?: unknown }
    try {
      record = JSON.parse(line) as typeof record
    } catch {
      throw new LedgerTamperedError(index, 'malformed', 'not a ledger line')
    }
    if (typeof record.n !== 'string' || !/^[0-9a-f]{24}$/.test(record.n) || typeof record.c !== 'string')
      throw new LedgerTamperedError(index, 'malformed', 'not a ledger line')
    if (record.i !== index)
      throw new LedgerTamperedError(
        index,
        'index',
        `found where entry ${String(record.i)} was written (reordered or removed)`,
      )
    const ct = Buffer.from(record.c, 'base64')
    let plain: Buffer
    try {
      if (ct.length < 17) throw new Error('short')
      const decipher = createDecipheriv('aes-256-gcm', keys.enc, Buffer.from(record.n, 'hex'))
      decipher.setAAD(associated(index))
      decipher.setAuthTag(ct.subarray(ct.length - 16))
      plain = Buffer.concat([decipher.update(ct.subarray(0, ct.length - 16)), decipher.final()])
    } catch {
      throw new LedgerTamperedError(
        index,
        'undecryptable',
        'fails authentication (edited, or moved from another index)',
      )
    }
    const value = JSON.parse(plain.toString('utf8')) as { index: number; prev: string; at: number; body: LedgerBody }
    if (value.index !== index || value.prev !== prev.toString('hex'))
      throw new LedgerTamperedError(
        index,
        'chain',
        'does not chain to the entry before it (an entry was removed or replaced)',
      )
    const hash = lineHash(line)
    entries.push({ index, at: value.at, body: value.body, hash: hash.toString('hex') })
    prev = hash
  }
  if (entries.length < head.count)
    throw new LedgerTamperedError(
      entries.length,
      'missing',
      `the head records ${head.count} entries; ${entries.length} are left`,
    )
  const boundary = entries.length === head.count ? entries.at(-1) : entries.at(-2)
  if ((boundary?.hash ?? ZERO_HASH.toString('hex')) !== head.head)
    throw new LedgerTamperedError(
      Math.max(0, head.count - 1),
      'chain',
      'the last entry is not the one the head records',
    )
  return entries
}
