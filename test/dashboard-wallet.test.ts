// The dashboard's Wallet page end to end, and the dashboard as an installable app: a real
// 2-process devnet and a real Chromium (Debian's, driven by playwright-core) on a phone-sized
// screen (390×844, touch). node1 registers itself in the DID directory; on node0's Wallet page the
// balance shows, node1 is found by directory search and paid through the form with a memo and an
// invoice file; the payment shows in the history as pending, then committed, then acknowledged by
// node1, whose own wallet API (its operator token) gives the memo and the invoice decrypted; the
// invoice downloads from the page. The ledger check passes, nothing is wider than the screen. Then
// the PWA: the manifest is linked and valid, its icons are PNGs of their sizes, the service worker
// is ready and controls the page after a reload, it stored none of the API's answers, and the
// dashboard starts with the network off. Screenshots go to test-artifacts/dashboard/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { chromium, type Browser } from 'playwright-core'
import { DonghaeClient } from '../src/api/client.ts'
import type { WalletPaymentView, WalletSummary } from '../src/api/wallet-api.ts'
import { runCli } from './helpers/cli.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { exited, firstJsonLine, spawnDevnet } from './helpers/processes.ts'
import {
  CHROMIUM,
  CHROMIUM_FLAGS,
  CHROMIUM_SKIP,
  DASHBOARD_ARTIFACTS,
  shoot,
  assertFitsWidth,
} from './helpers/chromium.ts'

// Functions given to page.evaluate/waitForFunction run in the page (the tests' tsconfig has no DOM).
interface PageElement {
  textContent: string | null
  getAttribute(name: string): string | null
}
declare const window: { location: { hash: string }; innerWidth: number; scrollTo(x: number, y: number): void }
declare const document: {
  documentElement: { scrollWidth: number }
  querySelector(selector: string): (PageElement & { href?: string; value?: string }) | null
  querySelectorAll(selector: string): ArrayLike<PageElement>
}
declare const navigator: {
  serviceWorker: {
    ready: Promise<{ active: { scriptURL: string; state: string } | null; scope: string }>
    controller: { scriptURL: string } | null
  }
}
declare const caches: {
  keys(): Promise<string[]>
  open(name: string): Promise<{ keys(): Promise<Array<{ url: string }>> }>
}
declare class MutationObserver {
  constructor(callback: () => void)
  observe(target: unknown, options: { subtree: boolean; childList: boolean; attributes: boolean }): void
}

const ARTIFACTS = DASHBOARD_ARTIFACTS
const SKIP = CHROMIUM_SKIP
const MEMO = 'Two bowls of chowder, harbour table 🐋 — thank you!'
const AMOUNT = '4321'
const INVOICE = { name: 'invoice-42.txt', text: 'INVOICE 42\n2 × chowder  4000\nservice      321\n' }

interface DevnetInfo {
  dashboard: string
  nodes: Array<{ node: string; did: string; api: string; home: string }>
}

/** Polls `check` every half second (the API's rate limit is per client address). */
async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(500)
  }
}

async function getJson<T>(url: string, token?: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  return { status: res.status, body: (await res.json()) as T }
}

/** A PNG's width and height (its IHDR chunk), after checking the signature. */
function pngSize(bytes: Uint8Array): { width: number; height: number } {
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG signature')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  assert.equal(new TextDecoder().decode(bytes.subarray(12, 16)), 'IHDR')
  return { width: view.getUint32(16), height: view.getUint32(20) }
}

const digitsOnly = (text: string | null): string => (text ?? '').replace(/[^0-9]/g, '')

test(
  'Wallet page in Chromium on a phone: balance, a payment found by directory search with a sealed memo, pending → committed → acknowledged, decrypted on the other node; the dashboard installs as a PWA',
  { skip: SKIP, timeout: 300_000 },
  async (t) => {
    const rng = createRng(testSeed())
    const dir = await mkdtemp(join(tmpdir(), 'donghae-dashboard-wallet-'))
    const base = 18_200 + rng.int(0, 200) * 8
    await mkdir(ARTIFACTS, { recursive: true })
    const { child: devnet, stderr } = spawnDevnet(dir, 2, base)
    let browser: Browser | undefined
    const pageErrors: string[] = []
    try {
      const info = (await firstJsonLine(devnet)) as DevnetInfo
      const [n0, n1] = info.nodes as [DevnetInfo['nodes'][number], DevnetInfo['nodes'][number]]
      const origin = new URL(info.dashboard).origin
      const token0 = new URL(info.dashboard).hash.replace(/^#token=/, '')
      const token1 = (await readFile(join(n1.home, 'api-token'), 'utf8')).trim()
      const api0 = new DonghaeClient(n0.api)
      // the chain makes no empty blocks: the node answering is enough, the payments make blocks
      await eventually('the node to answer', async () => ((await api0.status()).height >= 0 ? true : undefined), 60_000)
      const summary = await eventually(
        "node0's wallet",
        async () => {
          const res = await getJson<WalletSummary>(`${n0.api}/v1/operator/wallet`, token0)
          return res.status === 200 ? res.body : undefined
        },
        30_000,
      )
      assert.equal(summary.did, n0.did)
      t.diagnostic(`node0's wallet: balance ${summary.balance}, fee ${summary.fee}, ${summary.ledger.entries} entries`)

      // node1 in the directory, so that the form can find it by search.
      const registered = await runCli([
        '--home',
        n1.home,
        'directory',
        'register',
        '--description',
        'Moby Dick chowder house',
        '--category',
        'restaurant',
        '--api',
        n1.api,
        '--json',
      ])
      assert.equal(registered.code, 0, registered.stderr)
      await eventually(
        "node1's entry in node0's directory",
        async () =>
          (await api0.directorySearch({ query: 'chowder' })).entries.some((e) => e.did === n1.did) ? true : undefined,
        30_000,
      )

      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS })
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
      const page = await phone.newPage()
      page.on('pageerror', (err) => pageErrors.push(err.message))
      await page.goto(info.dashboard)
      await page.waitForFunction(() => !window.location.hash.includes('token='))
      await page.click('a[href="#wallet"]')
      await page.waitForFunction(() => window.location.hash === '#wallet')

      // The balance, as the node's wallet says it.
      await page.waitForFunction(
        () => /[0-9]/.test(document.querySelector('[data-testid=wallet-balance]')?.textContent ?? ''),
        undefined,
        { timeout: 20_000 },
      )
      const shown = BigInt(digitsOnly(await page.textContent('[data-testid=wallet-balance]')))
      assert.ok(shown > 0n, `a balance shows (${shown})`)
      await assertFitsWidth(page, 'the wallet page')

      // Every status a payment card showed, in order (the page may move fast on a quick chain).
      await page.evaluate(() => {
        const w = window as unknown as { states: string[] }
        w.states = []
        const record = (): void => {
          const cards = document.querySelectorAll('[data-testid=payment][data-direction=sent]')
          for (let i = 0; i < cards.length; i++) {
            const card = cards[i] as PageElement
            const state = `${card.getAttribute('data-id')}:${card.getAttribute('data-status')}:${card.getAttribute('data-delivery')}`
            if (!w.states.includes(state)) w.states.push(state)
          }
        }
        new MutationObserver(record).observe(document, { subtree: true, childList: true, attributes: true })
      })

      // The recipient, found by directory search; amount and memo; send.
      await page.fill('[data-testid=wallet-directory-query]', 'chowder')
      await page.click('[data-testid=wallet-directory-search]')
      await page.click(`[data-testid=wallet-pick][data-did="${n1.did}"]`, { timeout: 15_000 })
      assert.equal(await page.inputValue('[data-testid=wallet-to]'), n1.did)
      await page.fill('[data-testid=wallet-amount]', AMOUNT)
      await page.fill('[data-testid=wallet-memo]', MEMO)
      await page.setInputFiles('[data-testid=wallet-invoice]', {
        name: INVOICE.name,
        mimeType: 'text/plain',
        buffer: Buffer.from(INVOICE.text),
      })
      await page.waitForFunction(
        (name) => (document.querySelector('[data-testid=wallet-send-form]')?.textContent ?? '').includes(name),
        INVOICE.name,
      )
      await assertFitsWidth(page, 'the filled send form')
      await page.click('[data-testid=wallet-send]')
      await page.waitForSelector('[data-testid=payment][data-direction=sent], [data-testid=wallet-send-error]', {
        timeout: 30_000,
      })
      const sendError = await page.$('[data-testid=wallet-send-error]')
      assert.equal(sendError, null, `the send failed: ${(await sendError?.textContent()) ?? ''}`)
      const id = await eventually(
        'the payment in the history',
        async () => {
          const sent = await getJson<{ payments: WalletPaymentView[] }>(
            `${n0.api}/v1/operator/wallet/payments?direction=sent`,
            token0,
          )
          return sent.body.payments.find((p) => p.to === n1.did && p.amount === AMOUNT && p.memo === MEMO)?.id
        },
        15_000,
      )
      const card = `[data-testid=payment][data-id="${id}"]`
      await page.waitForSelector(card)
      assert.equal(await page.textContent(`${card} [data-testid=payment-memo]`), MEMO)
      assert.equal(digitsOnly(await page.textContent(`${card} [data-testid=payment-amount]`)), AMOUNT)
      // the invoice downloads from the history (an operator call: fetched with the token, saved as a file)
      const download = page.waitForEvent('download')
      await page.click(`${card} [data-testid=invoice-download]`)
      const saved = await download
      assert.equal(saved.suggestedFilename(), INVOICE.name)
      assert.equal(await readFile(await saved.path(), 'utf8'), INVOICE.text)

      // pending, then committed (a block), then acknowledged (node1's signed receipt came back)
      await page.waitForSelector(`${card}[data-status=committed]`, { timeout: 90_000 })
      await page.waitForSelector(`${card}[data-delivery=acknowledged]`, { timeout: 90_000 })
      const states = (await page.evaluate(() => (window as unknown as { states: string[] }).states))
        .filter((s) => s.startsWith(`${id}:`))
        .map((s) => s.slice(id.length + 1))
      t.diagnostic(`the payment's card showed: ${states.join(' → ')}`)
      const firstPending = states.findIndex((s) => s.startsWith('pending:'))
      const firstCommitted = states.findIndex((s) => s.startsWith('committed:'))
      assert.ok(firstPending >= 0, `shown as pending first (${states.join(', ')})`)
      assert.ok(firstCommitted > firstPending, `then committed (${states.join(', ')})`)
      assert.ok(!states.some((s) => s.startsWith('failed:')), 'never failed')

      // node1 holds it, its memo decrypted, under the same id.
      const received = await eventually(
        'the payment in node1’s wallet',
        async () => {
          const res = await getJson<{ payments: WalletPaymentView[] }>(
            `${n1.api}/v1/operator/wallet/payments?direction=received`,
            token1,
          )
          return res.body.payments.find((p) => p.id === id)
        },
        60_000,
      )
      assert.equal(received.memo, MEMO)
      assert.equal(received.amount, AMOUNT)
      assert.equal(received.from, n0.did)
      assert.equal(received.counterparty, n0.did)
      assert.equal(received.direction, 'received')
      assert.deepEqual(received.invoice, { name: INVOICE.name, bytes: Buffer.byteLength(INVOICE.text) })
      const invoice1 = await fetch(`${n1.api}/v1/operator/wallet/payments/${id}/invoice`, {
        headers: { authorization: `Bearer ${token1}` },
      })
      assert.equal(invoice1.status, 200)
      assert.equal(await invoice1.text(), INVOICE.text, 'node1 opened the invoice sealed with the payment')
      // node1's API refuses without its token: the history is private
      assert.equal((await fetch(`${n1.api}/v1/operator/wallet/payments`)).status, 401)

      // Nothing left on its way; the ledger checks out.
      await page.waitForFunction(
        (pid) => document.querySelector(`[data-testid=delivery][data-id="${pid}"]`) === null,
        id,
        { timeout: 30_000 },
      )
      await page.click('[data-testid=wallet-verify]')
      await page.waitForSelector('[data-testid=verify-result]', { timeout: 30_000 })
      const verdict = await page.getAttribute('[data-testid=verify-result] [data-ok]', 'data-ok')
      assert.equal(
        verdict,
        'true',
        `the ledger verifies: ${(await page.textContent('[data-testid=verify-result]')) ?? ''}`,
      )
      await assertFitsWidth(page, 'the wallet page with a payment')
      await shoot(t, page, 'phone-wallet')

      // ---- the dashboard as an installable app ----
      const linked = await page.evaluate(() => document.querySelector('link[rel=manifest]')?.href ?? '')
      assert.equal(linked, `${origin}/manifest.webmanifest`)
      const manifestRes = await fetch(`${origin}/manifest.webmanifest`)
      assert.equal(manifestRes.status, 200)
      assert.match(manifestRes.headers.get('content-type') ?? '', /^application\/manifest\+json/)
      const manifest = (await manifestRes.json()) as {
        name: string
        short_name: string
        start_url: string
        scope: string
        display: string
        theme_color: string
        background_color: string
        icons: Array<{ src: string; sizes: string; type: string }>
      }
      assert.ok(manifest.name.length > 0 && manifest.short_name.length > 0)
      assert.equal(manifest.display, 'standalone')
      assert.equal(manifest.scope, '/')
      assert.ok(manifest.start_url.startsWith('/'))
      assert.match(manifest.theme_color, /^#[0-9a-f]{6}$/i)
      assert.match(manifest.background_color, /^#[0-9a-f]{6}$/i)
      for (const want of [192, 512]) {
        const icon = manifest.icons.find((i) => i.sizes === `${want}x${want}`)
        assert.ok(icon !== undefined, `a ${want}×${want} icon`)
        assert.equal(icon.type, 'image/png')
        const res = await fetch(new URL(icon.src, origin))
        assert.equal(res.status, 200)
        assert.equal(res.headers.get('content-type'), 'image/png')
        assert.deepEqual(pngSize(new Uint8Array(await res.arrayBuffer())), { width: want, height: want })
      }
      const sw = await fetch(`${origin}/sw.js`)
      assert.equal(sw.status, 200)
      assert.match(sw.headers.get('content-type') ?? '', /javascript/)

      const ready = await page.evaluate(async () => {
        const registration = await navigator.serviceWorker.ready
        return { script: registration.active?.scriptURL ?? '', scope: registration.scope }
      })
      // its URL names the build (the entry script), so that a new build installs it again
      const script = /^(.+)\/sw\.js\?build=index-[\w-]+\.js$/.exec(ready.script)
      assert.equal(script?.[1], origin, `the service worker is /sw.js of this build (${ready.script})`)
      assert.equal(ready.scope, `${origin}/`)
      await page.reload()
      await page.waitForSelector('[data-testid=wallet-balance]')
      const controller = await page.evaluate(() => navigator.serviceWorker.controller?.scriptURL ?? null)
      assert.equal(controller, ready.script, 'the service worker controls the page after a reload')
      await page.waitForFunction(() =>
        /[0-9]/.test(document.querySelector('[data-testid=wallet-balance]')?.textContent ?? ''),
      )
      await page.waitForSelector(card)

      // It keeps the app shell, and not one answer of the API.
      const cached = await page.evaluate(async () => {
        const urls: string[] = []
        for (const name of await caches.keys())
          for (const request of await (await caches.open(name)).keys()) urls.push(request.url)
        return urls
      })
      t.diagnostic(`the service worker's cache: ${cached.map((u) => u.replace(origin, '')).join(', ')}`)
      assert.ok(cached.includes(`${origin}/`), 'the page is cached')
      assert.ok(
        cached.some((u) => /\/assets\/index-[\w-]+\.js$/.test(u)),
        "the page's script is cached",
      )
      assert.ok(
        cached.some((u) => /\/assets\/wallet-[\w-]+\.js$/.test(u)),
        "the wallet page's script is cached",
      )
      assert.deepEqual(
        cached.filter((u) => new URL(u).pathname.startsWith('/v1')),
        [],
        'no API answer is cached',
      )

      // With the network off, the installed app still starts (its data then says it is offline).
      await phone.setOffline(true)
      await page.reload()
      await page.waitForSelector('header.top strong', { timeout: 15_000 })
      assert.equal(await page.textContent('header.top strong'), 'Donghae')
      await page.waitForSelector('[data-testid=wallet-send]', { timeout: 15_000 })
      await phone.setOffline(false)
      await phone.close()

      // The same page on a desktop screen.
      const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } })
      const wide = await desktop.newPage()
      wide.on('pageerror', (err) => pageErrors.push(err.message))
      await wide.goto(info.dashboard)
      await wide.waitForFunction(() => !window.location.hash.includes('token='))
      await wide.click('a[href="#wallet"]')
      await wide.waitForSelector(`[data-testid=payment][data-id="${id}"][data-status=committed]`, { timeout: 20_000 })
      await shoot(t, wide, 'desktop-wallet')
      await desktop.close()
      assert.deepEqual(pageErrors, [], 'no uncaught errors in the page')
    } catch (err) {
      t.diagnostic(`devnet stderr: ${stderr().slice(-3000)}`)
      if (pageErrors.length > 0) t.diagnostic(`page errors: ${pageErrors.join(' | ')}`)
      throw err
    } finally {
      await browser?.close()
      devnet.kill('SIGINT')
      await exited(devnet)
      await rm(dir, { recursive: true, force: true })
    }
  },
)
