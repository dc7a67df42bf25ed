// The dashboard's Directory page end to end: a real 2-process devnet (every devnet node is a DID
// directory and answers signed WebRTC offers) and a real Chromium (Debian's, driven by
// playwright-core). node1 registers itself under "restaurant" with the CLI; node0's dashboard
// finds it by search (the entry reached node0's directory by gossip), opens a WebRTC data channel
// to node1 straight from the page (a signed offer POSTed cross-origin to node1's endpoint, node1's
// signed answer checked against the DID the entry names), shows that DID verified (an entry whose
// endpoint answers for another DID is refused, with the reason on screen), and chats with
// node1's language model over the channel: the answer arrives in several streamed pieces, and its
// text is what node1's own HTTP API gives for the same greedy request. Disconnecting closes the
// session on node1. Screenshots go to test-artifacts/dashboard/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { DonghaeClient } from '../src/api/client.ts'
import { DEMO_LM_NAME } from '../src/inference/demo-models.ts'
import { waitFor } from './helpers/chain-net.ts'
import { runCli } from './helpers/cli.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { exited, firstJsonLine, spawnDevnet } from './helpers/processes.ts'
import { CHROMIUM, CHROMIUM_FLAGS, CHROMIUM_SKIP, DASHBOARD_ARTIFACTS, shoot } from './helpers/chromium.ts'

// Functions given to page.evaluate/waitForFunction run in the page (the tests' tsconfig has no DOM).
declare const window: { location: { hash: string }; innerWidth: number; scrollTo(x: number, y: number): void }
declare const document: {
  documentElement: { scrollWidth: number }
  querySelector(selector: string): { textContent: string | null; getAttribute(name: string): string | null } | null
}
declare class MutationObserver {
  constructor(callback: () => void)
  observe(target: unknown, options: { subtree: boolean; childList: boolean; characterData: boolean }): void
  disconnect(): void
}

const ARTIFACTS = DASHBOARD_ARTIFACTS
const SKIP = CHROMIUM_SKIP
const PROMPT = 'Is there a table for two tonight?'
const MAX_TOKENS = 40

interface DevnetInfo {
  dashboard: string
  nodes: Array<{ node: string; did: string; api: string; home: string }>
}

async function openDirectory(page: Page, dashboard: string): Promise<void> {
  await page.goto(dashboard)
  await page.waitForFunction(() => !window.location.hash.includes('token='))
  await page.click('a[href="#directory"]')
  await page.waitForSelector('[data-testid=directory-query]')
}

async function search(page: Page, did: string): Promise<void> {
  await page.fill('[data-testid=directory-query]', 'restaurant')
  await page.click('[data-testid=directory-search]')
  await page.waitForSelector(`[data-testid=directory-connect][data-did="${did}"]`, { timeout: 15_000 })
}

/** node1's answer to the same greedy chat over its HTTP API (OpenAI chat completions). */
async function httpAnswer(api: string, token: string, model: string): Promise<string> {
  const res = await fetch(`${api}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      model,
      messages: [{ role: 'user', content: PROMPT }],
      max_tokens: MAX_TOKENS,
      temperature: 0,
    }),
  })
  assert.equal(res.status, 200, await res.clone().text())
  const body = (await res.json()) as { choices: Array<{ message: { content: string } }> }
  return body.choices[0]?.message.content ?? ''
}

test(
  'Directory page in Chromium: search the directory, connect over WebRTC to the DID found, see it verified, chat with its language model streamed',
  { skip: SKIP, timeout: 300_000 },
  async (t) => {
    const rng = createRng(testSeed())
    const dir = await mkdtemp(join(tmpdir(), 'donghae-dashboard-directory-'))
    const base = 29_700 + rng.int(0, 200) * 8
    await mkdir(ARTIFACTS, { recursive: true })
    const { child: devnet, stderr } = spawnDevnet(dir, 2, base)
    let browser: Browser | undefined
    const pageErrors: string[] = []
    try {
      const info = (await firstJsonLine(devnet)) as DevnetInfo
      const [n0, n1] = info.nodes as [DevnetInfo['nodes'][number], DevnetInfo['nodes'][number]]
      const token1 = (await readFile(join(n1.home, 'api-token'), 'utf8')).trim()
      const api0 = new DonghaeClient(n0.api)
      const api1 = new DonghaeClient(n1.api, { token: token1 })
      await waitFor(
        `${DEMO_LM_NAME} served`,
        async () =>
          (await api1.models().catch(() => undefined))?.data.some((m) => m.id === DEMO_LM_NAME && m.workers > 0) ===
          true,
        120_000,
      )

      // node1 registers itself with the CLI (signed with its key); gossip brings it to node0. node0
      // registers too, under its own DID but with node1's endpoint: a wrong address, which the
      // page must refuse to trust (node1 answers for node1 only).
      const register = async (node: DevnetInfo['nodes'][number], description: string, endpoint?: string) => {
        const out = await runCli([
          '--home',
          node.home,
          'directory',
          'register',
          '--description',
          description,
          '--category',
          'restaurant',
          '--tag',
          'seafood',
          ...(endpoint === undefined ? [] : ['--endpoint', endpoint]),
          '--api',
          node.api,
          '--json',
        ])
        assert.equal(out.code, 0, out.stderr)
        assert.equal((JSON.parse(out.stdout) as { did: string }).did, node.did)
      }
      await register(n1, 'Moby Dick chowder house: whale-sized portions, harbour view')
      await register(n0, 'Pequod grill (its endpoint is another node’s)', `${n1.api}/v1/webrtc/offer`)
      await waitFor(
        "node1's entry in node0's directory",
        async () => {
          const page = await api0.directorySearch({ query: 'restaurant' }).catch(() => undefined)
          return [n0.did, n1.did].every((did) => page?.entries.some((e) => e.did === did) === true)
        },
        30_000,
      )
      const entry = (await api0.directoryEntry(n1.did)).endpoint
      t.diagnostic(`node1's signalling endpoint: ${entry}; node0's dashboard: ${new URL(info.dashboard).origin}`)

      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS })
      const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } })
      const page = await desktop.newPage()
      page.on('pageerror', (err) => pageErrors.push(err.message))
      await openDirectory(page, info.dashboard)
      await search(page, n1.did)

      // The entry whose endpoint answers for another DID: refused, and the page says why.
      await page.click(`[data-testid=directory-connect][data-did="${n0.did}"]`)
      await page.waitForSelector('[data-testid=webrtc-failed], [data-testid=webrtc-verified]', { timeout: 30_000 })
      const refusal = (await page.textContent('[data-testid=webrtc-failed]')) ?? ''
      t.diagnostic(`wrong endpoint: ${refusal}`)
      assert.match(refusal, /SIGNAL_WRONG_PEER/)
      assert.equal(await page.$('[data-testid=webrtc-verified]'), null)

      const started = Date.now()
      await page.click(`[data-testid=directory-connect][data-did="${n1.did}"]`)
      await page.waitForSelector('[data-testid=webrtc-verified], [data-testid=webrtc-failed]', { timeout: 30_000 })
      const failed = await page.$('[data-testid=webrtc-failed]')
      assert.equal(failed, null, `the connection failed: ${(await failed?.textContent()) ?? ''}`)
      assert.equal(await page.textContent('[data-testid=webrtc-peer-did]'), n1.did)
      const check = await page.getAttribute('[data-testid=webrtc-check]', 'data-check')
      t.diagnostic(`connected and verified in ${Date.now() - started} ms; certificate check: ${String(check)}`)
      assert.ok(check === 'certificate' || check === 'stats', `Chromium exposes the DTLS certificate (${check})`)
      await page.waitForFunction(
        (model) => (document.querySelector('[data-testid=webrtc-models]')?.textContent ?? '').includes(model),
        DEMO_LM_NAME,
      )

      // Every distinct answer text seen while the answer is still coming (the caret shows).
      await page.evaluate(() => {
        const w = window as unknown as { seen: string[] }
        w.seen = []
        new MutationObserver(() => {
          const text = document.querySelector('[data-testid=webrtc-answer]')?.textContent ?? ''
          const busy = document.querySelector('[data-testid=webrtc-answer] .caret') !== null
          if (busy && text !== '' && w.seen[w.seen.length - 1] !== text) w.seen.push(text)
        }).observe(document, { subtree: true, childList: true, characterData: true })
      })
      await page.fill('[data-testid=webrtc-prompt]', PROMPT)
      await page.fill('input[name=webrtc-temperature]', '0')
      await page.fill('input[name=webrtc-max-tokens]', String(MAX_TOKENS))
      await page.click('[data-testid=webrtc-send]')
      await page.waitForSelector('[data-testid=webrtc-result], [data-testid=webrtc-chat-error]', { timeout: 120_000 })
      const chatError = await page.$('[data-testid=webrtc-chat-error]')
      assert.equal(chatError, null, `the chat failed: ${(await chatError?.textContent()) ?? ''}`)
      const answer = (await page.textContent('[data-testid=webrtc-answer]')) ?? ''
      const pieces = Number(await page.getAttribute('[data-testid=webrtc-pieces]', 'data-count'))
      const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen)
      const model = (await page.textContent('[data-testid=webrtc-model]')) ?? ''
      const usage = (await page.textContent('[data-testid=webrtc-usage]')) ?? ''
      t.diagnostic(
        `${model} answered ${JSON.stringify(answer.slice(0, 80))} over the data channel in ${pieces} pieces (${seen.length} shown before the end); ${usage}`,
      )
      assert.ok(answer.length > 0, 'a non-empty answer')
      assert.ok(pieces > 1, `more than one progress frame (${pieces})`)
      assert.ok(seen.length > 1, `the answer grew on screen before it was complete (${seen.length} states)`)
      assert.ok(
        seen.every((s) => answer.startsWith(s)),
        'every streamed state is a prefix of the answer',
      )
      assert.equal(answer, await httpAnswer(n1.api, token1, model), "node1's HTTP API gives the same greedy answer")
      await shoot(t, page, 'desktop-directory-chat')

      // Disconnect: the page says so, and node1 closed the session (the page's DELETE).
      await page.click('[data-testid=webrtc-disconnect]')
      await page.waitForSelector('[data-testid=webrtc-closed]')
      await waitFor(
        "node1's session closed",
        async () => {
          const { sessions } = (await (
            await fetch(`${n1.api}/v1/webrtc/sessions`, { headers: { authorization: `Bearer ${token1}` } })
          ).json()) as { sessions: Array<{ state: string }> }
          return sessions.length > 0 && sessions.every((s) => s.state === 'closed')
        },
        15_000,
      )
      await desktop.close()

      // On a phone: the search results fit the screen.
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
      const small = await phone.newPage()
      small.on('pageerror', (err) => pageErrors.push(err.message))
      await openDirectory(small, info.dashboard)
      await search(small, n1.did)
      const { scroll, inner } = await small.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        inner: window.innerWidth,
      }))
      assert.ok(scroll <= inner + 1, `the Directory page is ${scroll} px wide on a ${inner} px screen`)
      await shoot(t, small, 'phone-directory')
      await phone.close()
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
