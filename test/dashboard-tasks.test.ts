// The dashboard's Governance, FL and Arena pages end to end: a real 2-process devnet and a real
// Chromium (Debian's, driven by playwright-core) on a phone-sized screen (390×844, touch). First
// the three pages show their empty states. Then, with the CLI: node0 proposes a parameter change
// (`donghae gov propose`), node0 votes yes and node1 abstains (`donghae gov vote`); node1 creates
// an FL task (`donghae fl create`, 4 participants, 2 rounds) and four `donghae fl join` processes
// (their own homes, funded in the genesis) run it. The Governance page lists the proposal with the
// tally the API gives (yes and abstain, passing so far), its voting end and apply heights, the vote
// command to copy, its votes and the governed parameters; the FL page lists the task, its rounds
// with their roles and settlement, and plots the global model's accuracy per round as the API
// gives it; the Arena page shows its empty state. Nothing is wider than the screen; screenshots
// (phone, and the Governance and FL pages on a desktop) go to test-artifacts/dashboard/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { ProposalView } from '../src/api/governance-api.ts'
import type { FlTaskDetailJson } from '../src/api/fl-api.ts'
import { BIN, runCli } from './helpers/cli.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { exited, firstJsonLine, getJson } from './helpers/processes.ts'
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
  querySelector(selector: string): PageElement | null
  querySelectorAll(selector: string): ArrayLike<PageElement>
}

const ARTIFACTS = DASHBOARD_ARTIFACTS
const SKIP = CHROMIUM_SKIP
const PARTICIPANTS = 4
const ROUNDS = 2
const TITLE = 'Shorter FL rounds for the harbour 🐋 — a long title that has to wrap on a phone screen'
const CHANGE = 'fl.maxRoundBlocks=120'
/** The participants' processes run both rounds within this; the test's own limit is 240 s. */
const PARTICIPANTS_MS = 120_000

interface DevnetNode {
  node: string
  did: string
  api: string
  home: string
}

interface DevnetInfo {
  dashboard: string
  password: string
  nodes: DevnetNode[]
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

/** `donghae …` that must succeed; its stdout parsed as JSON. */
async function cliJson(args: string[]): Promise<Record<string, unknown>> {
  const out = await runCli([...args, '--json'])
  assert.equal(out.code, 0, `donghae ${args.join(' ')}: ${out.stderr}`)
  return JSON.parse(out.stdout) as Record<string, unknown>
}

/** A long-running CLI child (`fl join`, the devnet) with the tail of its stderr kept. */
function cli(args: string[]): { child: ChildProcess; stderr(): string } {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DONGHAE_PASSWORD: undefined },
  })
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-8_000)))
  child.stdout?.resume()
  return { child, stderr: () => stderr }
}

async function openPage(page: Page, id: string): Promise<void> {
  await page.click(`a[href="#${id}"]`)
  await page.waitForFunction((hash) => window.location.hash === hash, `#${id}`)
}

test(
  'Governance, FL and Arena pages in Chromium on a phone: a CLI proposal with its tally after votes, an FL task with its rounds and accuracy plotted, empty states',
  { skip: SKIP, timeout: 240_000 },
  async (t) => {
    const rng = createRng(testSeed())
    const started = Date.now()
    const dir = await mkdtemp(join(tmpdir(), 'donghae-dashboard-tasks-'))
    await mkdir(ARTIFACTS, { recursive: true })
    const passwordFile = join(dir, 'password')
    await writeFile(passwordFile, 'dashboard participants\n', { mode: 0o600 })
    // FL participants: homes of their own, funded in the genesis (a bond each, and fees)
    const homes = Array.from({ length: PARTICIPANTS }, (_, i) => join(dir, `participant${i}`))
    const dids: string[] = []
    for (let i = 0; i < homes.length; i += 2)
      dids.push(
        ...(await Promise.all(
          homes
            .slice(i, i + 2)
            .map(
              async (home) => (await cliJson(['--home', home, 'init', '--password-file', passwordFile])).did as string,
            ),
        )),
      )
    // spawnDevnet's command, with --fund for the participants
    const base = 19_800 + rng.int(0, 200) * 8
    const devnet = cli([
      '--home',
      join(dir, 'devnet'),
      'devnet',
      '--nodes',
      '2',
      '--base-port',
      String(base),
      '--json',
      ...dids.flatMap((did) => ['--fund', `${did}:1000000`]),
    ])
    const joins: Array<{ child: ChildProcess; stderr(): string }> = []
    // a test past its limit is cancelled, not unwound: its processes go with it, so what awaits them ends
    t.signal.addEventListener('abort', () => {
      for (const j of joins) j.child.kill('SIGKILL')
      devnet.child.kill('SIGINT')
    })
    let browser: Browser | undefined
    const pageErrors: string[] = []
    try {
      const info = (await firstJsonLine(devnet.child)) as DevnetInfo
      const [n0, n1] = info.nodes as [DevnetNode, DevnetNode]
      // the chain makes no empty blocks: the node answering is enough, the commands make blocks
      await eventually(
        'the node to answer',
        async () => ((await getJson<{ height: number }>(`${n0.api}/v1/status`))?.height ?? -1) >= 0 || undefined,
        60_000,
      )
      t.diagnostic(`devnet up in ${Date.now() - started} ms`)
      /** A signed command as a devnet node (its home keystore, the devnet's password). */
      const asNode = (n: DevnetNode, args: string[]): Promise<Record<string, unknown>> =>
        cliJson(['--home', n.home, '--node', n.api, ...args, '--password-file', info.password])

      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS })
      const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true })
      const page = await phone.newPage()
      page.on('pageerror', (err) => pageErrors.push(err.message))
      await page.goto(info.dashboard)
      await page.waitForFunction(() => !window.location.hash.includes('token='))

      // ---- empty states ----
      await openPage(page, 'governance')
      await page.waitForSelector('[data-testid=gov-empty]', { timeout: 20_000 })
      await page.waitForSelector('[data-testid=gov-params]')
      assert.match((await page.textContent('[data-testid=gov-empty]')) ?? '', /donghae gov propose/)
      await assertFitsWidth(page, 'the empty Governance page')
      await openPage(page, 'fl')
      await page.waitForFunction(() => (document.querySelector('main')?.textContent ?? '').includes('no FL tasks'), {
        timeout: 20_000,
      })
      await assertFitsWidth(page, 'the empty FL page')
      await openPage(page, 'arena')
      await page.waitForFunction(() => (document.querySelector('main')?.textContent ?? '').includes('no arena tasks'), {
        timeout: 20_000,
      })
      await assertFitsWidth(page, 'the empty Arena page')
      await shoot(t, page, 'phone-arena-empty')

      // ---- with the CLI: a proposal (node0) and an FL task (node1), at once ----
      const [proposed, created] = await Promise.all([
        asNode(n0, [
          'gov',
          'propose',
          '--title',
          TITLE,
          '--description',
          'Rounds of at most 120 blocks.\nA second line.',
          '--change',
          CHANGE,
          '--deposit',
          '10000',
          '--wait',
        ]),
        asNode(n1, [
          'fl',
          'create',
          '--name',
          'harbour-digits',
          '--rule',
          'fedavg',
          '--f',
          '0',
          '--rounds',
          String(ROUNDS),
          '--participants',
          String(PARTICIPANTS),
          '--voters',
          '3',
          '--upload-blocks',
          '6',
          '--vote-blocks',
          '6',
          '--bond',
          '1000',
        ]),
      ])
      assert.equal(proposed.ok, true, JSON.stringify(proposed))
      assert.equal(proposed.status, 'voting')
      const id = proposed.proposal as number
      const task = created.task as number
      t.diagnostic(`proposal ${id} at height ${String(proposed.height)}; FL task ${task} at ${String(created.height)}`)

      // the participants run the task's rounds while the votes are cast
      for (const [i, home] of homes.entries())
        joins.push(
          cli([
            '--home',
            home,
            '--node',
            (i % 2 === 0 ? n0 : n1).api,
            'fl',
            'join',
            '--task',
            String(task),
            '--shard',
            `${i}/${PARTICIPANTS}`,
            '--password-file',
            passwordFile,
            '--json',
          ]),
        )
      const votes = await Promise.all([
        asNode(n0, ['gov', 'vote', String(id), 'yes', '--wait']),
        asNode(n1, ['gov', 'vote', String(id), 'abstain', '--wait']),
      ])
      assert.ok(
        votes.every((v) => v.ok === true),
        JSON.stringify(votes),
      )

      // ---- the Governance page: the proposal with the API's tally ----
      const api = await eventually(
        'both votes in the tally',
        async () => {
          const p = await getJson<ProposalView>(`${n0.api}/v1/gov/proposals/${id}`)
          return p?.tally !== undefined && p.tally.yes !== '0' && p.tally.abstain !== '0' ? p : undefined
        },
        20_000,
      )
      const tally = api.tally as NonNullable<ProposalView['tally']>
      assert.equal(tally.outcome, 'passed', 'yes and abstain, no no: passing so far')
      await openPage(page, 'governance')
      const item = `[data-testid=gov-proposal][data-id="${id}"]`
      await page.waitForSelector(`${item} [data-testid=gov-tally][data-abstain="${tally.abstain}"]`, {
        timeout: 20_000,
      })
      assert.equal(await page.getAttribute(`${item} [data-testid=gov-tally]`, 'data-yes'), tally.yes)
      assert.equal(await page.getAttribute(`${item} [data-testid=gov-tally]`, 'data-no'), '0')
      assert.equal(await page.getAttribute(`${item} [data-testid=gov-tally]`, 'data-total'), tally.totalPower)
      assert.equal(await page.getAttribute(item, 'data-status'), 'voting')
      assert.match((await page.textContent(`${item} [data-testid=gov-status]`)) ?? '', /voting/)
      assert.match((await page.textContent(item)) ?? '', new RegExp(`#${id} Shorter FL rounds`))
      assert.match((await page.textContent(`${item} [data-testid=gov-verdict]`)) ?? '', /passing so far/)
      const heights = (await page.textContent(`${item} [data-testid=gov-heights]`)) ?? ''
      assert.match(heights, new RegExp(`voting ends at ${api.votingEndHeight}`))
      assert.match(heights, new RegExp(`applies at ${api.applyHeight}`))
      // its detail: the change, both votes, the command to vote
      await page.waitForSelector(`[data-testid=gov-detail][data-id="${id}"] [data-testid=gov-votes]`)
      assert.equal(await page.textContent('[data-testid=gov-vote-cmd]'), `donghae gov vote ${id} yes`)
      assert.match((await page.textContent('[data-testid=gov-changes]')) ?? '', /fl\.maxRoundBlocks/)
      const voteText = (await page.textContent('[data-testid=gov-votes]')) ?? ''
      assert.ok(voteText.includes('yes') && voteText.includes('abstain'), voteText)
      // the parameters: the one proposed, at its default, not governed
      const paramsText = (await page.textContent('[data-testid=gov-params]')) ?? ''
      assert.match(paramsText, /fl\.maxRoundBlocks/)
      assert.match(paramsText, /default/)
      await assertFitsWidth(page, 'the Governance page with a proposal')
      await shoot(t, page, 'phone-governance')

      // ---- the FL page: the task, its rounds, the accuracy plotted ----
      await openPage(page, 'fl')
      await page.waitForSelector(`[data-testid=fl-task-link][data-id="${task}"]`, { timeout: 20_000 })
      await page.waitForSelector(`[data-testid=fl-task][data-id="${task}"]`)
      await assertFitsWidth(page, 'the FL page with a task')
      const codes = await Promise.race([
        Promise.all(joins.map((j) => exited(j.child).then(() => j.child.exitCode))),
        sleep(PARTICIPANTS_MS).then(() => {
          throw new Error(`the participants did not finish within ${PARTICIPANTS_MS} ms`)
        }),
      ])
      codes.forEach((code, i) => assert.equal(code, 0, `participant ${i}: ${joins[i]?.stderr() ?? ''}`))
      const detail = await eventually(
        'the FL task finished',
        async () => {
          const d = await getJson<FlTaskDetailJson>(`${n0.api}/v1/fl/tasks/${task}`)
          return d?.task.status === 'finished' ? d : undefined
        },
        30_000,
      )
      const settled = detail.rounds.filter((r) => r.status !== 'open').sort((a, b) => a.round - b.round)
      assert.equal(settled.length, ROUNDS)
      assert.deepEqual(
        settled.map((r) => `${r.round} ${r.status}`),
        settled.map((r) => `${r.round} passed`),
        'honest participants with time to train: every round passes (a failed round has no accuracy to plot)',
      )
      const points = settled.map((r) => `${r.round}:${r.accuracyPpm ?? '-'}`).join(',')
      t.diagnostic(
        `FL task ${task}: ${settled.map((r) => `round ${r.round} ${r.status} ${((r.accuracyPpm ?? 0) / 1e4).toFixed(2)}%`).join(', ')}`,
      )
      await page.waitForSelector(`[data-testid=fl-task][data-id="${task}"][data-status=finished]`, { timeout: 20_000 })
      await page.waitForSelector(`[data-testid=fl-accuracy][data-points="${points}"]`, { timeout: 10_000 })
      // uPlot drew it: a canvas and the series in its legend
      await page.waitForSelector('[data-testid=fl-accuracy-chart] canvas')
      assert.match((await page.textContent('[data-testid=fl-accuracy-chart]')) ?? '', /global model/)
      assert.equal((await page.$$('[data-testid=fl-round]')).length, ROUNDS)
      const roles = (await page.textContent('[data-testid=fl-round] [data-testid=fl-roles]')) ?? ''
      assert.ok(roles.includes('proposer') && roles.includes('voter'), roles)
      assert.equal((await page.$$('[data-testid=fl-participants] tbody tr')).length, PARTICIPANTS)
      assert.match((await page.textContent('[data-testid=fl-task-round]')) ?? '', new RegExp(`${ROUNDS} / ${ROUNDS}`))
      await assertFitsWidth(page, 'the FL page with a finished task')
      await shoot(t, page, 'phone-fl')
      await phone.close()

      // The same pages on a desktop screen.
      const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } })
      const wide = await desktop.newPage()
      wide.on('pageerror', (err) => pageErrors.push(err.message))
      await wide.goto(info.dashboard)
      await wide.waitForFunction(() => !window.location.hash.includes('token='))
      await openPage(wide, 'governance')
      await wide.waitForSelector(`[data-testid=gov-detail][data-id="${id}"] [data-testid=gov-votes]`, {
        timeout: 20_000,
      })
      await shoot(t, wide, 'desktop-governance')
      await openPage(wide, 'fl')
      await wide.waitForSelector(`[data-testid=fl-accuracy][data-points="${points}"]`, { timeout: 20_000 })
      await shoot(t, wide, 'desktop-fl')
      await desktop.close()
      assert.deepEqual(pageErrors, [], 'no uncaught errors in the page')
      t.diagnostic(`done in ${Date.now() - started} ms`)
    } catch (err) {
      t.diagnostic(`devnet stderr: ${devnet.stderr().slice(-3000)}`)
      for (const [i, j] of joins.entries()) t.diagnostic(`participant ${i} stderr: ${j.stderr().slice(-1000)}`)
      if (pageErrors.length > 0) t.diagnostic(`page errors: ${pageErrors.join(' | ')}`)
      throw err
    } finally {
      await browser?.close()
      for (const j of joins) if (j.child.exitCode === null) j.child.kill('SIGTERM')
      devnet.child.kill('SIGINT')
      await exited(devnet.child)
      await rm(dir, { recursive: true, force: true })
    }
  },
)
