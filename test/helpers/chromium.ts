/** Debian's Chromium for the dashboard's browser tests (driven by playwright-core, which downloads no browser). */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

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
