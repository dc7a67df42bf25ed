// The dashboard's Resources page end to end: a real 1-process devnet and a real Chromium
// (Debian's, driven by playwright-core) on a phone-sized screen. The page plots the node's CPU,
// resident memory, event-loop delay and block interval as the node samples them (every 5 s), and
// shows each figure's latest value: every chart gets points, and the numbers on screen are those
// of the last sample GET /v1/node/resources answers. Nothing is wider than the screen; a
// screenshot goes to test-artifacts/dashboard/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { chromium, type Browser } from 'playwright-core'
import type { ResourceSample, ResourcesView } from '../src/api/resources-api.ts'
import { size } from '../web/src/format.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { exited, firstJsonLine, getJson, spawnDevnet } from './helpers/processes.ts'
import {
  CHROMIUM,
  CHROMIUM_FLAGS,
  CHROMIUM_SKIP,
  DASHBOARD_ARTIFACTS,
  shoot,
  assertFitsWidth,
} from './helpers/chromium.ts'

// Functions given to page.evaluate/waitForFunction run in the page (the tests' tsconfig has no DOM).
declare const document: {
  querySelector(selector: string): { getAttribute(name: string): string | null } | null
}

interface DevnetInfo {
  dashboard: string
  nodes: Array<{ api: string }>
}

const FIGURES = ['cpu', 'memory', 'event-loop', 'block-interval'] as const

/** What the page shows for each figure of a sample (web/src/resources.tsx). */
const SHOWN: Record<(typeof FIGURES)[number], (s: ResourceSample) => string> = {
  cpu: (s) => `${(s.cpu * 100).toFixed(1)} %`,
  memory: (s) => size(s.rssBytes),
  'event-loop': (s) => `${s.eventLoopDelayMs.toFixed(1)} ms`,
  'block-interval': (s) => (s.blockIntervalMs === null ? '–' : `${(s.blockIntervalMs / 1000).toFixed(2)} s`),
}

test(
  'dashboard Resources page in Chromium: four charts with points, the latest numbers of /v1/node/resources',
  { skip: CHROMIUM_SKIP, timeout: 180_000 },
  async (t) => {
    const rng = createRng(testSeed())
    const dir = await mkdtemp(join(tmpdir(), 'donghae-dash-resources-'))
    const base = 8_200 + rng.int(0, 60) * 8 // 8200-8780: this file's range
    await mkdir(DASHBOARD_ARTIFACTS, { recursive: true })
    const { child: devnet, stderr } = spawnDevnet(dir, 1, base)
    let browser: Browser | undefined
    const pageErrors: string[] = []
    const traffic = new AbortController()
    try {
      const info = (await firstJsonLine(devnet)) as DevnetInfo
      const api = info.nodes[0]?.api ?? ''
      // The chain makes no empty blocks: a transfer every second gives the block-interval chart
      // its points (and the node some work to show), however busy the machine.
      const token = new URL(info.dashboard).hash.replace('#token=', '')
      const sink = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
      void (async () => {
        while (!traffic.signal.aborted) {
          await fetch(`${api}/v1/operator/transfer`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: JSON.stringify({ to: sink, amount: '1' }),
            signal: traffic.signal,
          }).catch(() => undefined)
          await sleep(1_000).catch(() => undefined)
        }
      })()
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS })
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
      const page = await phone.newPage()
      page.on('pageerror', (err) => pageErrors.push(err.message))
      await page.goto(info.dashboard)
      assert.ok(await page.$('a[href="#resources"]'), 'a Resources tab')
      await page.goto(`${api}/#resources`)

      // every chart gets at least two points (the node samples every 5 s)
      await page.waitForFunction(
        (ids) =>
          ids.every(
            (id) => Number(document.querySelector(`[data-testid=resources-${id}]`)?.getAttribute('data-points')) >= 2,
          ),
        [...FIGURES],
        { timeout: 90_000, polling: 250 },
      )
      for (const id of FIGURES)
        assert.ok(await page.$(`[data-testid=resources-${id}-chart] canvas`), `${id}: a uPlot chart`)

      // the numbers on screen are the route's last sample (the page polls every 3 s: wait until it has it)
      let checked = false
      for (let i = 0; i < 40 && !checked; i++) {
        const view = await getJson<ResourcesView>(`${api}/v1/node/resources`)
        const last = view?.samples.at(-1)
        assert.ok(last !== undefined, 'the route has samples')
        const shownAt = FIGURES.map((id) =>
          page.getAttribute(`[data-testid=resources-${id}]`, 'data-at').then((at) => Number(at)),
        )
        if ((await Promise.all(shownAt)).every((at) => at === last.at)) {
          const points = Number(await page.getAttribute('[data-testid=resources-cpu]', 'data-points'))
          assert.ok(points >= 2 && points <= (view?.samples.length ?? 0), `cpu points ${points}`)
          for (const id of FIGURES)
            assert.equal(
              (await page.textContent(`[data-testid=resources-${id}-value]`))?.trim(),
              SHOWN[id](last),
              `${id} shows the last sample`,
            )
          // a node that commits blocks: an interval under a minute, and some memory in use
          assert.ok(last.blockIntervalMs !== null && last.blockIntervalMs > 0 && last.blockIntervalMs < 60_000)
          assert.ok(last.rssBytes > 20e6 && last.cpu >= 0)
          t.diagnostic(
            `last sample: cpu ${SHOWN.cpu(last)}, rss ${SHOWN.memory(last)}, loop ${SHOWN['event-loop'](last)}, block ${SHOWN['block-interval'](last)}`,
          )
          checked = true
        } else await sleep(500)
      }
      assert.ok(checked, 'the page caught up with the route')
      await shoot(t, page, 'phone-resources')
      await assertFitsWidth(page, 'resources')
      assert.deepEqual(pageErrors, [])
    } catch (err) {
      t.diagnostic(stderr().slice(-3000))
      throw err
    } finally {
      traffic.abort()
      await browser?.close()
      devnet.kill('SIGTERM')
      await exited(devnet)
      await rm(dir, { recursive: true, force: true })
    }
  },
)
