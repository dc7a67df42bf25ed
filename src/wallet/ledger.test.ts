import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LedgerFormatError, LedgerPasswordError, LedgerTamperedError, WalletLedger, type LedgerBody } from './ledger.ts'

// cheap scrypt for tests; the default (2^15) is exercised once below
const FAST = { N: 2 ** 10, r: 8, p: 1 }
const PASSWORD = 'correct horse battery staple'

async function withLedger(entries: number, run: (path: string, ledger: WalletLedger) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-ledger-'))
  try {
    const path = join(dir, 'ledger')
    const ledger = await WalletLedger.create(path, PASSWORD, FAST)
    for (let i = 0; i < entries; i++) await ledger.append(payment(i), 1_000 + i)
    await run(path, ledger)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const payment = (i: number): LedgerBody => ({
  dir: i % 2 === 0 ? 'sent' : 'received',
  amount: String(100 + i),
  memo: `dinner #${i}`,
})

async function lines(path: string): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '')
}

async function tampered(path: string): Promise<LedgerTamperedError> {
  const err = await WalletLedger.open(path, PASSWORD).then(
    () => undefined,
    (e: unknown) => e,
  )
  assert.ok(err instanceof LedgerTamperedError, `expected LedgerTamperedError, got ${String(err)}`)
  return err
}

test('entries chain, survive a reopen, and the files hold no plaintext', async () => {
  await withLedger(5, async (path, ledger) => {
    assert.equal(ledger.count, 5)
    const again = await WalletLedger.open(path, PASSWORD)
    assert.deepEqual(
      again.entries().map((e) => [e.index, e.at, e.body]),
      ledger.entries().map((e) => [e.index, e.at, e.body]),
    )
    await again.append({ dir: 'sent', amount: '7', memo: 'a tip for the cook' })
    assert.equal((await WalletLedger.open(path, PASSWORD)).count, 6)
    const raw = (await readFile(path, 'utf8')) + (await readFile(`${path}.head`, 'utf8'))
    assert.ok(!raw.includes('dinner #') && !raw.includes('tip for the cook'), 'memos are encrypted')
    assert.deepEqual(await again.verify(PASSWORD), { count: 6, head: again.entries().at(-1)?.hash })
    assert.equal(again.head, again.entries().at(-1)?.hash)
  })
})

test('a wrong password is refused before any entry is read; an empty one cannot create a ledger', async () => {
  await withLedger(2, async (path) => {
    await assert.rejects(WalletLedger.open(path, 'wrong'), LedgerPasswordError)
    await assert.rejects(WalletLedger.create(`${path}-2`, '', FAST), /empty/)
    await assert.rejects(WalletLedger.create(path, PASSWORD, FAST), /cannot create/, 'never overwrites a ledger')
  })
})

test('an edited entry is reported at its index', async () => {
  await withLedger(6, async (path) => {
    const all = await lines(path)
    const record = JSON.parse(all[3] as string) as { i: number; n: string; c: string }
    const ct = Buffer.from(record.c, 'base64')
    ct[5] = (ct[5] as number) ^ 1
    all[3] = JSON.stringify({ ...record, c: ct.toString('base64') })
    await writeFile(path, `${all.join('\n')}\n`)
    const err = await tampered(path)
    assert.deepEqual([err.index, err.reason], [3, 'undecryptable'])
  })
})

test('a removed entry is reported where it was', async () => {
  await withLedger(6, async (path) => {
    const all = await lines(path)
    all.splice(2, 1)
    await writeFile(path, `${all.join('\n')}\n`)
    const err = await tampered(path)
    assert.equal(err.index, 2)
  })
})

test('reordered entries are reported at the first moved index, even with their line numbers rewritten', async () => {
  await withLedger(6, async (path) => {
    const all = await lines(path)
    ;[all[1], all[4]] = [all[4] as string, all[1] as string]
    await writeFile(path, `${all.join('\n')}\n`)
    assert.equal((await tampered(path)).index, 1)
    // an attacker rewrites "i" to match the new positions: the authenticated index still fails
    const relabelled = all.map((l, i) => JSON.stringify({ ...(JSON.parse(l) as object), i }))
    await writeFile(path, `${relabelled.join('\n')}\n`)
    const err = await tampered(path)
    assert.deepEqual([err.index, err.reason], [1, 'undecryptable'])
  })
})

test('entries cut from the end are caught by the head', async () => {
  await withLedger(6, async (path) => {
    const all = await lines(path)
    await writeFile(path, `${all.slice(0, 4).join('\n')}\n`)
    const err = await tampered(path)
    assert.deepEqual([err.index, err.reason], [4, 'missing'])
  })
})

test('the head cannot be rolled back or edited without the password', async () => {
  await withLedger(4, async (path) => {
    const head = JSON.parse(await readFile(`${path}.head`, 'utf8')) as { count: number }
    await writeFile(`${path}.head`, JSON.stringify({ ...head, count: 2 }))
    await assert.rejects(WalletLedger.open(path, PASSWORD), LedgerPasswordError)
    await writeFile(`${path}.head`, 'not json')
    await assert.rejects(WalletLedger.open(path, PASSWORD), LedgerFormatError)
  })
})

test('a crash between the entry line and the head: the completed append is kept; a forged extra line is refused', async () => {
  await withLedger(3, async (path, ledger) => {
    const headBefore = await readFile(`${path}.head`, 'utf8')
    await ledger.append(payment(3), 2_000)
    await writeFile(`${path}.head`, headBefore) // as if the process died before the head was written
    const recovered = await WalletLedger.open(path, PASSWORD)
    assert.equal(recovered.count, 4)
    assert.equal((await WalletLedger.open(path, PASSWORD)).count, 4, 'the head was brought up to date')
    // a line nobody with the key wrote
    await appendFile(path, `${JSON.stringify({ i: 4, n: '00'.repeat(12), c: Buffer.alloc(40).toString('base64') })}\n`)
    const err = await tampered(path)
    assert.equal(err.index, 4)
  })
})

test('nothing is appended to a ledger that did not verify, and an oversized body is refused', async () => {
  await withLedger(2, async (path, ledger) => {
    await assert.rejects(ledger.append({ memo: 'x'.repeat(70_000) }), /at most/)
    assert.equal((await lines(path)).length, 2)
    const all = await lines(path)
    await writeFile(path, `${all[1] as string}\n`)
    await assert.rejects(WalletLedger.open(path, PASSWORD), LedgerTamperedError)
  })
})

test('the default scrypt cost opens with the parameters stored in the head', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-ledger-'))
  try {
    const path = join(dir, 'ledger')
    const ledger = await WalletLedger.create(path, PASSWORD)
    await ledger.append({ memo: 'hello' })
    const head = JSON.parse(await readFile(`${path}.head`, 'utf8')) as { kdf: { N: number } }
    assert.equal(head.kdf.N, 2 ** 15)
    assert.equal((await WalletLedger.open(path, PASSWORD)).entries()[0]?.body.memo, 'hello')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
