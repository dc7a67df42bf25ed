/** Debian's Chromium for the dashboard's browser tests (driven by playwright-core, which downloads no browser). */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import type { Page } from 'playwright-core'

// what the page-side callbacks below read (the tests' tsconfig has no DOM library)
declare const window: { innerWidth: number; scrollTo(x: number, y: number): void }
declare const document: { documentElement: { scrollWidth: number } }

export const CHROMIUM = '/usr/bin/chromium'
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
]
/** Screenshots and traces of the browser tests. */
export const DASHBOARD_ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/dashboard/', import.meta.url))
/** The reason the browser tests skip, or false when Chromium is installed. */
export const CHROMIUM_SKIP: string | false = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is absent: install Debian's chromium (apt-get install chromium) to run the dashboard's browser tests`

/** A full-page screenshot into DASHBOARD_ARTIFACTS, named in the test's output. */
export async function shoot(t: TestContext, page: Page, name: string): Promise<void> {
  const path = join(DASHBOARD_ARTIFACTS, `${name}.png`)
  await page.evaluate(() => window.scrollTo(0, 0))
  await page.screenshot({ path, fullPage: true })
  t.diagnostic(`screenshot: ${path}`)
}

/** Nothing wider than the screen: no sideways scrolling on a phone. */
export async function assertFitsWidth(page: Page, what: string): Promise<void> {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
  }))
  assert.ok(scroll <= inner + 1, `${what}: the page is ${scroll} px wide on a ${inner} px screen`)
}
