/**
 * Wallet costs (issue 14): payment envelopes (src/wallet/envelope.ts) and the encrypted local
 * ledger (src/wallet/ledger.ts), each against a floor measured in the same run.
 *
 *  - `wallet-seal`: `sealPayment` (details → dag-cbor, terms hash, Ed25519 signature, libsodium
 *    crypto_box_seal through sodium-native, envelope hash), µs per payment, against the raw
 *    floor of a sealed box in node:crypto: an ephemeral X25519 key pair, `diffieHellman` with
 *    the recipient's key and ChaCha20-Poly1305 over a plaintext of the same size (no KDF, no
 *    signature). `boxSealUs` / `signUs`: the seal and the signature alone, through the same calls
 *    the wallet makes.
 *  - `wallet-open`: `openPayment` (recipient key derived from the Ed25519 key, crypto_box_seal_open,
 *    canonical dag-cbor decode, checks, terms hash, Ed25519 verification), µs per payment, against
 *    parsing the ephemeral public key, `diffieHellman` and ChaCha20-Poly1305 decryption.
 *  - `wallet-ledger`, two lines. Appends: `WalletLedger.append` of 100,000 payment records in a
 *    row (each line written and fsynced, then the head file rewritten atomically: temp file, fsync,
 *    rename), µs per append (total ÷ count; `rounds` are the blocks of 10,000) and `totalS`,
 *    against AES-256-GCM of the same record, SHA-256 of its line and one write + fsync on an open
 *    file (the least a durable, encrypted, chained append can do; measured on the first 10,000).
 *    Verification: `ledger.verify(password)` (reads both files, derives the keys, decrypts and
 *    checks the chain of every entry), ms, `openMs` for `WalletLedger.open` beside it, against
 *    reading the file and decrypting and hashing every line in a plain loop.
 *    If the appends take more than 240 s (a slow disk), they stop at the next block of 10,000 and
 *    the lines say how many ran. The bench ledger uses cheap scrypt parameters (N = 2^10, r = 8): the KDF runs once per open
 *    and is not what is measured. The files go to os.tmpdir(), so fsync costs what that disk does.
 *
 *   node bench/run.ts --only wallet
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
} from 'node:crypto'
import { mkdtemp, open as openFile, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { encode } from '../src/core/codec.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import {
  boxSeal,
  openPayment,
  PAYMENT_SIGNING_KIND,
  recipientKey,
  sealPayment,
  type PaymentRequest,
} from '../src/wallet/envelope.ts'
import { WalletLedger } from '../src/wallet/ledger.ts'
import { line, measure, type BenchLine, type MeasureOptions } from './harness.ts'

export const WALLET_BENCH_NAMES = ['wallet-seal', 'wallet-open', 'wallet-ledger']
const LEDGER_ENTRIES = 100_000
const QUICK_LEDGER_ENTRIES = 200
const BASELINE_ENTRIES = 10_000
const BLOCK = 10_000
/** The appends stop here if the disk is too slow for 100,000 fsynced appends; the line says how many ran. */
const APPEND_BUDGET_MS = 240_000
/** Cheap scrypt for the bench ledger: the KDF is not what is measured. */
const BENCH_SCRYPT = { N: 2 ** 10, r: 8, p: 1 }
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex')

const usPerOp = (perSecond: number): number => 1e6 / perSecond

function aead(key: Buffer, nonce: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
}

function envelopeBenches(options: MeasureOptions): BenchLine[] {
  const sender = Ed25519KeyPair.generate()
  const recipient = Ed25519KeyPair.generate()
  const to = didFromEd25519PublicKey(recipient.publicKey)
  const request: PaymentRequest = {
    chainId: 'donghae-bench-1',
    to,
    amount: 1_250_000n,
    memo: 'dinner on Friday, split three ways',
  }
  const sample = sealPayment(sender, request)
  const innerBytes = sample.envelope.length - 48
  const payloadNote = `${innerBytes}-byte inner payload, ${request.memo?.length ?? 0}-character memo, no invoice`

  // --- seal ---
  const ours = measure((n) => {
    for (let i = 0; i < n; i++) sealPayment(sender, request)
  }, options)
  const recipientX = recipientKey(to)
  const recipientPublic = createPublicKey({
    key: Buffer.concat([X25519_SPKI, recipientX]),
    format: 'der',
    type: 'spki',
  })
  const plaintext = randomBytes(innerBytes)
  const floorSeal = measure((n) => {
    for (let i = 0; i < n; i++) {
      const eph = generateKeyPairSync('x25519')
      const key = diffieHellman({ privateKey: eph.privateKey, publicKey: recipientPublic })
      aead(key, randomBytes(12), plaintext)
      eph.publicKey.export({ format: 'der', type: 'spki' })
    }
  }, options)
  const seal = measure((n) => {
    for (let i = 0; i < n; i++) boxSeal(plaintext, recipientX)
  }, options)
  const signed = encode({ d: { memo: request.memo }, t: sample.terms })
  const sign = measure((n) => {
    for (let i = 0; i < n; i++) sender.sign(PAYMENT_SIGNING_KIND, signed)
  }, options)

  // --- open ---
  const ownOpen = measure((n) => {
    for (let i = 0; i < n; i++) openPayment(recipient, sample.envelope)
  }, options)
  const rx = generateKeyPairSync('x25519')
  const ephRaw = Buffer.from(
    (generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }) as Buffer).subarray(-32),
  )
  const sharedKey = diffieHellman({
    privateKey: rx.privateKey,
    publicKey: createPublicKey({ key: Buffer.concat([X25519_SPKI, ephRaw]), format: 'der', type: 'spki' }),
  })
  const nonce = randomBytes(12)
  const sealedFloor = aead(sharedKey, nonce, plaintext)
  const floorOpen = measure((n) => {
    for (let i = 0; i < n; i++) {
      const eph = createPublicKey({ key: Buffer.concat([X25519_SPKI, ephRaw]), format: 'der', type: 'spki' })
      const key = diffieHellman({ privateKey: rx.privateKey, publicKey: eph })
      const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 })
      decipher.setAuthTag(sealedFloor.subarray(sealedFloor.length - 16))
      decipher.update(sealedFloor.subarray(0, sealedFloor.length - 16))
      decipher.final()
    }
  }, options)

  return [
    {
      ...line({
        bench: 'wallet-seal',
        impl: `sealPayment (dag-cbor + terms sha256 + Ed25519 sign + libsodium crypto_box_seal), ${payloadNote}`,
        value: usPerOp(ours.perSecond),
        unit: 'µs',
        baseline: {
          impl: 'node:crypto ephemeral X25519 key pair + diffieHellman + ChaCha20-Poly1305 encrypt, same plaintext size',
          value: usPerOp(floorSeal.perSecond),
        },
        rounds: ours.rounds.map(usPerOp),
      }),
      envelopeBytes: sample.envelope.length,
      boxSealUs: Number(usPerOp(seal.perSecond).toFixed(1)),
      signUs: Number(usPerOp(sign.perSecond).toFixed(1)),
    } as BenchLine,
    {
      ...line({
        bench: 'wallet-open',
        impl: `openPayment (X25519 key from Ed25519 + crypto_box_seal_open + dag-cbor decode + checks + Ed25519 verify), ${payloadNote}`,
        value: usPerOp(ownOpen.perSecond),
        unit: 'µs',
        baseline: {
          impl: 'node:crypto X25519 public key parse + diffieHellman + ChaCha20-Poly1305 decrypt, same size',
          value: usPerOp(floorOpen.perSecond),
        },
        rounds: ownOpen.rounds.map(usPerOp),
      }),
      envelopeBytes: sample.envelope.length,
    } as BenchLine,
  ]
}

function record(i: number, peer: string): Record<string, unknown> {
  return {
    dir: i % 2 === 0 ? 'sent' : 'received',
    peer,
    amount: String(1_000 + i),
    memo: `payment #${i}: dinner on Friday`,
    envelopeHash: createHash('sha256').update(String(i)).digest('hex'),
    tx: createHash('sha256').update(`tx${i}`).digest('hex'),
    status: 'final',
  }
}

/** The floor of a durable, encrypted, chained append: AES-256-GCM + SHA-256 + write + fsync on an open file. */
async function baselineAppends(path: string, count: number, peer: string): Promise<number> {
  const key = randomBytes(32)
  const fh = await openFile(path, 'a')
  let prev = Buffer.alloc(32).toString('hex')
  const start = performance.now()
  try {
    for (let i = 0; i < count; i++) {
      const plain = Buffer.from(JSON.stringify({ index: i, prev, at: 1_700_000_000_000 + i, body: record(i, peer) }))
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', key, iv)
      const ct = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
      const text = JSON.stringify({ i, n: iv.toString('hex'), c: ct.toString('base64') })
      prev = createHash('sha256').update(text).digest('hex')
      await fh.write(`${text}\n`)
      await fh.sync()
    }
  } finally {
    await fh.close()
  }
  return ((performance.now() - start) * 1000) / count
}

/** The floor of a verification: read the file, then parse, decrypt and hash every line in a loop. */
async function baselineVerify(path: string, key: Buffer): Promise<number> {
  const start = performance.now()
  const lines = (await readFile(path, 'utf8')).split('\n')
  let prev = ''
  for (const text of lines) {
    if (text === '') continue
    const { n, c } = JSON.parse(text) as { n: string; c: string }
    const ct = Buffer.from(c, 'base64')
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(n, 'hex'))
    decipher.setAuthTag(ct.subarray(ct.length - 16))
    const plain = Buffer.concat([decipher.update(ct.subarray(0, ct.length - 16)), decipher.final()])
    JSON.parse(plain.toString('utf8'))
    prev = createHash('sha256').update(text).digest('hex')
  }
  if (prev === '') throw new Error('empty baseline ledger')
  return performance.now() - start
}

/** The same records encrypted and chained in memory (no fsync), written in one go for the verification baseline. */
async function baselineLedger(
  path: string,
  count: number,
  peer: string,
): Promise<{ key: Buffer; usPerAppend: number }> {
  const key = randomBytes(32)
  const lines: string[] = []
  const start = performance.now()
  let prev = Buffer.alloc(32).toString('hex')
  for (let i = 0; i < count; i++) {
    const plain = Buffer.from(JSON.stringify({ index: i, prev, at: 1_700_000_000_000 + i, body: record(i, peer) }))
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', key, iv)
    const ct = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()])
    const text = JSON.stringify({ i, n: iv.toString('hex'), c: ct.toString('base64') })
    prev = createHash('sha256').update(text).digest('hex')
    lines.push(text)
  }
  const usPerAppend = ((performance.now() - start) * 1000) / count
  const fh = await openFile(path, 'w')
  try {
    await fh.write(`${lines.join('\n')}\n`)
  } finally {
    await fh.close()
  }
  return { key, usPerAppend }
}

async function ledgerBenches(quick: boolean): Promise<BenchLine[]> {
  const target = quick ? QUICK_LEDGER_ENTRIES : LEDGER_ENTRIES
  const block = Math.min(BLOCK, target)
  const dir = await mkdtemp(join(tmpdir(), 'donghae-wallet-bench-'))
  const password = 'bench password, not a secret'
  const peer = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
  try {
    const path = join(dir, 'ledger')
    const ledger = await WalletLedger.create(path, password, BENCH_SCRYPT)
    const blocks: number[] = []
    const start = performance.now()
    let blockStart = start
    let appended = 0
    while (appended < target) {
      await ledger.append(record(appended, peer), 1_700_000_000_000 + appended)
      appended++
      if (appended % block === 0) {
        const now = performance.now()
        blocks.push(((now - blockStart) * 1000) / block)
        blockStart = now
        if (now - start > APPEND_BUDGET_MS) break
      }
    }
    const totalMs = performance.now() - start
    const entries = appended
    const cut = entries < target ? ` (stopped after ${APPEND_BUDGET_MS / 1000} s: ${entries} of ${target})` : ''

    const baselineCount = Math.min(BASELINE_ENTRIES, entries)
    const durableUs = await baselineAppends(join(dir, 'baseline-fsync'), baselineCount, peer)
    const inMemory = await baselineLedger(join(dir, 'baseline'), entries, peer)

    let t = performance.now()
    const opened = await WalletLedger.open(path, password)
    const openMs = performance.now() - t
    if (opened.count !== entries) throw new Error(`the bench ledger holds ${opened.count} entries, not ${entries}`)
    t = performance.now()
    const verified = await opened.verify(password)
    const verifyMs = performance.now() - t
    if (verified.count !== entries) throw new Error(`verify counted ${verified.count} entries, not ${entries}`)
    const rawVerifyMs = await baselineVerify(join(dir, 'baseline'), inMemory.key)
    const fileBytes = (await readFile(path)).length

    return [
      {
        ...line({
          bench: 'wallet-ledger',
          impl: `WalletLedger.append, ${entries} entries in a row${cut} (line fsynced, then the head file rewritten atomically), mean µs per append`,
          value: totalMs * (1000 / entries),
          unit: 'µs',
          baseline: {
            impl: `AES-256-GCM + SHA-256 + write + fsync on an open file, same records, first ${baselineCount}`,
            value: durableUs,
          },
          rounds: blocks.length > 0 ? blocks : [(totalMs * 1000) / entries],
        }),
        entries,
        targetEntries: target,
        totalS: Number((totalMs / 1000).toFixed(1)),
        cryptoOnlyUs: Number(inMemory.usPerAppend.toFixed(1)),
        fileBytes,
        scrypt: BENCH_SCRYPT,
      } as BenchLine,
      {
        ...line({
          bench: 'wallet-ledger',
          impl: `WalletLedger verify (read both files, scrypt N=2^10, decrypt and check the chain of all ${entries} entries)`,
          value: verifyMs,
          unit: 'ms',
          baseline: { impl: 'read the file + JSON.parse + AES-256-GCM decrypt + SHA-256 per line', value: rawVerifyMs },
          rounds: [verifyMs],
        }),
        entries,
        openMs: Math.round(openMs),
      } as BenchLine,
    ]
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

export async function walletBenches(options: MeasureOptions, quick = false): Promise<BenchLine[]> {
  return [...envelopeBenches(options), ...(await ledgerBenches(quick))]
}
