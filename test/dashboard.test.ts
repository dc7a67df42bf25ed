// The dashboard end to end: a real devnet (`donghae devnet --nodes 2`, separate processes over
// libp2p), a real Chromium (Debian's, driven by playwright-core) on a phone-sized screen
// (390×844, touch), then a desktop one. The chain height rises on screen, the digits model
// answers the form with a receipt whose signatures the browser checks, the demo language model
// (moby-lm) streams an answer into the chat panel and names its worker and token usage, a model
// fetch started through the API shows in the fetches table, and a transfer sent from the UI
// arrives in the recipient's balance. Screenshots go to test-artifacts/dashboard/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { DonghaeClient } from '../src/api/client.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { waitFor } from './helpers/chain-net.ts'
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

// Functions given to page.evaluate/waitForFunction run in the page; these are the browser
// globals they use (the tests' tsconfig has no DOM library).
declare const window: { location: { hash: string }; innerWidth: number; scrollTo(x: number, y: number): void }
declare const document: {
  documentElement: { scrollWidth: number }
  querySelector(selector: string): { textContent: string | null } | null
  querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }>
}
declare class MutationObserver {
  constructor(callback: () => void)
  observe(target: unknown, options: { subtree: boolean; childList: boolean; characterData: boolean }): void
  disconnect(): void
}
declare const localStorage: { getItem(key: string): string | null }

const ARTIFACTS = DASHBOARD_ARTIFACTS
const PAGES = ['overview', 'network', 'chain', 'inference', 'experts', 'accounts'] as const
const SKIP = CHROMIUM_SKIP

interface DevnetInfo {
  dashboard: string
  nodes: Array<{ node: string; did: string; api: string; home: string }>
}

async function open(page: Page, id: (typeof PAGES)[number]): Promise<void> {
  await page.click(`a[href="#${id}"]`)
  await page.waitForFunction((want) => window.location.hash === `#${want}`, id)
}

const height = async (page: Page): Promise<number> => Number(await page.textContent('[data-testid=height]'))
const digitsOnly = (text: string | null): string => (text ?? '').replace(/[^0-9]/g, '')

test(
  'dashboard on a devnet in Chromium: live height, digits inference with a receipt, a chat with moby-lm, model fetches, a transfer from the UI',
  { skip: SKIP, timeout: 300_000 },
  async (t) => {
    const rng = createRng(testSeed())
    const dir = await mkdtemp(join(tmpdir(), 'donghae-dashboard-'))
    const base = 28_000 + rng.int(0, 200) * 8
    await mkdir(ARTIFACTS, { recursive: true })
    const { child: devnet, stderr } = spawnDevnet(dir, 2, base)
    let browser: Browser | undefined
    const pageErrors: string[] = []
    try {
      const info = (await firstJsonLine(devnet)) as DevnetInfo
      const [n0] = info.nodes as [DevnetInfo['nodes'][number]]
      const api = new DonghaeClient(n0.api)
      assert.match(info.dashboard, /^http:\/\/127\.0\.0\.1:\d+\/#token=[A-Za-z0-9_-]{20,}$/)
      // the chain makes no empty blocks: its first ones carry the workers' serving declarations
      await waitFor('the node to answer', async () => (await api.status().catch(() => undefined)) !== undefined, 60_000)
      await waitFor(
        'a worker serving digits-mlp',
        async () => {
          const models = await api.models().catch(() => undefined)
          return models?.data.some((m) => m.id === 'digits-mlp' && m.workers > 0) === true
        },
        90_000,
      )

      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS })
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
      const page = await phone.newPage()
      page.on('pageerror', (err) => pageErrors.push(err.message))
      await page.goto(info.dashboard)

      // The token moves from the URL fragment to localStorage, and out of the address bar.
      await page.waitForFunction(() => !window.location.hash.includes('token='))
      assert.match(
        String(await page.evaluate(() => localStorage.getItem('donghae.operatorToken'))),
        /^[A-Za-z0-9_-]{20,}$/,
      )

      // The height rises on screen, pushed by the event stream: three transfers from node0's
      // operator make three blocks on a chain that otherwise idles.
      // Start from the height the page shows once it has loaded the status (the moniker appears), whatever
      // it is: an idle chain makes no empty blocks, and says so in its status.
      await page.waitForFunction(() => (document.querySelector('.brand .muted')?.textContent ?? '') !== '')
      await waitFor('the chain to idle', async () => (await api.status()).consensus.idle, 30_000)
      const first = await height(page)
      const token = new URL(info.dashboard).hash.replace('#token=', '')
      const sink = (info.nodes[1] as DevnetInfo['nodes'][number]).did
      for (let i = 0; i < 3; i++) {
        const sent = await fetch(`${n0.api}/v1/operator/transfer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ to: sink, amount: '1' }),
        })
        const { hash } = (await sent.json()) as { hash: string }
        await waitFor(
          `transfer ${i + 1} committed`,
          async () => (await api.tx(hash).catch(() => undefined)) !== undefined,
        )
      }
      await page.waitForFunction(
        (h) => Number(document.querySelector('[data-testid=height]')?.textContent) >= h + 3,
        first,
        { timeout: 60_000 },
      )
      assert.equal(await page.textContent('[data-testid=health]'), 'live')
      await shoot(t, page, 'phone-overview')
      await assertFitsWidth(page, 'overview')

      await open(page, 'network')
      await page.waitForFunction(() => Number(document.querySelector('[data-testid=peer-count]')?.textContent) >= 1)
      await shoot(t, page, 'phone-network')
      await assertFitsWidth(page, 'network')

      await open(page, 'chain')
      await page.waitForSelector('[data-testid=blocks] tbody tr')
      await page.waitForSelector('[data-testid=validators] tbody tr')
      await page.waitForSelector('[data-testid=finality-chart] canvas')
      await shoot(t, page, 'phone-chain')
      await assertFitsWidth(page, 'chain')

      // Inference: a sample digit, run by the network, answered with a signed receipt.
      await open(page, 'inference')
      await page.click('[data-testid=digit-sample-3]')
      await page.click('[data-testid=run-model]')
      await page.waitForSelector('[data-testid=prediction], [data-testid=run-error]', { timeout: 90_000 })
      const runError = await page.$('[data-testid=run-error]')
      assert.equal(runError, null, `the run failed: ${(await runError?.textContent()) ?? ''}`)
      const predicted = digitsOnly(await page.textContent('[data-testid=prediction]'))
      assert.match(predicted, /^[0-9]$/)
      assert.match((await page.textContent('[data-testid=receipt-worker]')) ?? '', /^did:key:z6Mk/)
      assert.match(digitsOnly(await page.textContent('[data-testid=receipt-fee]')), /^[0-9]+$/)
      await page.waitForSelector('[data-testid=receipt-valid]', { timeout: 10_000 })
      await page.locator('[data-testid=receipt]').scrollIntoViewIfNeeded()
      t.diagnostic(`sample 3 predicted as ${predicted}`)
      await shoot(t, page, 'phone-inference')
      await assertFitsWidth(page, 'inference')

      // Chat: the demo language model streams an answer, then the worker, the usage and the fee.
      await waitFor(
        'a worker serving moby-lm',
        async () => {
          const models = await api.models().catch(() => undefined)
          return models?.data.some((m) => m.id === 'moby-lm' && m.workers > 0) === true
        },
        120_000,
      )
      await page.waitForSelector('[data-testid=chat-prompt]', { timeout: 30_000 })
      await page.fill('[data-testid=chat-prompt]', 'Call me Ishmael.')
      await page.fill('input[name=max_tokens]', '24')
      // whether text showed while the answer was still coming (a diagnostic: a fast worker may
      // deliver it in one piece)
      await page.evaluate(() => {
        const w = window as unknown as { streamedWhileBusy: boolean }
        w.streamedWhileBusy = false
        new MutationObserver(() => {
          const answer = document.querySelector('[data-testid=chat-answer]')
          if (document.querySelector('[data-testid=chat-answer] .caret') !== null && (answer?.textContent ?? '') !== '')
            w.streamedWhileBusy = true
        }).observe(document, { subtree: true, childList: true, characterData: true })
      })
      await page.click('[data-testid=chat-send]')
      await page.waitForSelector('[data-testid=chat-worker], [data-testid=chat-error]', { timeout: 120_000 })
      const chatError = await page.$('[data-testid=chat-error]')
      assert.equal(chatError, null, `the chat failed: ${(await chatError?.textContent()) ?? ''}`)
      const answer = (await page.textContent('[data-testid=chat-answer]')) ?? ''
      assert.ok(answer.length > 0, 'a non-empty answer (a small model may begin with blank lines)')
      assert.match((await page.textContent('[data-testid=chat-worker]')) ?? '', /^did:key:z6Mk/)
      const usage = (await page.textContent('[data-testid=chat-usage]')) ?? ''
      const tokens = /^([0-9]+) prompt \+ ([0-9]+) completion = ([0-9]+)/.exec(usage)
      assert.ok(tokens !== null, `usage shown: ${usage}`)
      assert.ok(Number(tokens[2]) > 0 && Number(tokens[2]) <= 24, `completion tokens: ${usage}`)
      assert.match(digitsOnly(await page.textContent('[data-testid=chat-fee]')), /^[0-9]+$/)
      t.diagnostic(
        `moby-lm answered ${JSON.stringify(answer.slice(0, 80))} (${usage}); streamed while busy: ${String(
          await page.evaluate(() => (window as unknown as { streamedWhileBusy: boolean }).streamedWhileBusy),
        )}`,
      )
      await page.locator('[data-testid=chat-result]').scrollIntoViewIfNeeded()
      await shoot(t, page, 'phone-chat')
      await assertFitsWidth(page, 'chat')

      // A model fetch started through the API (moby-lm: its files are here already, so it ends at
      // once) shows in the fetches table.
      const fetched = await new DonghaeClient(n0.api, { token }).fetchModel('moby-lm')
      assert.equal(fetched.state, 'done')
      await page.waitForFunction(
        () =>
          Array.from(document.querySelectorAll('[data-testid=fetches] tbody tr')).some((row) =>
            /moby-lm[\s\S]*done/.test(row.textContent ?? ''),
          ),
        undefined,
        { timeout: 30_000 },
      )
      await assertFitsWidth(page, 'fetches')

      // A transfer from the UI to a fresh account shows up in its balance.
      const recipient = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
      await open(page, 'accounts')
      await page.fill('input[name=to]', recipient)
      await page.fill('input[name=amount]', '12345')
      await page.fill('input[name=memo]', 'from the dashboard test')
      await page.click('[data-testid=send]')
      await page.waitForFunction(
        () => /committed at height/.test(document.querySelector('[data-testid=transfer-status]')?.textContent ?? ''),
        undefined,
        { timeout: 90_000 },
      )
      await page.fill('[data-testid=lookup-did]', recipient)
      await page.click('[data-testid=lookup]')
      await page.waitForSelector('[data-testid=lookup-balance]')
      assert.equal(digitsOnly(await page.textContent('[data-testid=lookup-balance]')), '12345')
      assert.equal((await api.account(recipient)).balance, '12345')
      await shoot(t, page, 'phone-accounts')
      await assertFitsWidth(page, 'accounts')
      await phone.close()

      // The same pages on a desktop screen.
      const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } })
      const wide = await desktop.newPage()
      wide.on('pageerror', (err) => pageErrors.push(err.message))
      await wide.goto(info.dashboard)
      await wide.waitForFunction(() => Number(document.querySelector('[data-testid=height]')?.textContent) > 0)
      for (const id of PAGES) {
        await open(wide, id)
        await wide.waitForTimeout(1_000)
        if (id === 'experts') {
          // the devnet's MoE family drawn from the chain: its DAG (MetaBlock, 2 routers, 16 experts)
          await wide.waitForSelector('[data-testid=experts-dag] svg', { timeout: 20_000 })
          const text = (await wide.textContent('main')) ?? ''
          assert.ok(text.includes('moby-moe'), 'the Experts page names the demo family')
          assert.ok(text.includes('layer0.expert3'), 'and its experts')
        }
        await shoot(t, wide, `desktop-${id}`)
      }
      await desktop.close()
      assert.deepEqual(pageErrors, [], 'no uncaught errors in the page')
    } catch (err) {
      t.diagnostic(`devnet stderr: ${stderr().slice(-2000)}`)
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
