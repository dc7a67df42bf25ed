/**
 * Builds the dashboard (web/ → web/dist) with Vite, but only when a source is newer than the
 * build, so `npm start` and `npm test` (which run it first) cost nothing when nothing changed.
 * `donghae devnet` runs it too (with --quiet), so a devnet started directly finds its dashboard.
 *
 *   node scripts/build-web.ts              # build if stale
 *   node scripts/build-web.ts --force      # always build
 *   node scripts/build-web.ts --out DIR    # build into DIR instead of web/dist
 *   node scripts/build-web.ts --quiet      # say nothing when the build is up to date
 *
 * Sources: web/ (but dist/) and src/api/ and src/core/ (the client the dashboard bundles).
 * Builds of one output directory take turns (a lock directory in the system's temp folder), so
 * processes started together build once and the others find that build up to date.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const WEB = join(ROOT, 'web')
/** Where the node looks for the dashboard (src/api/server.ts DASHBOARD_DIR). */
export const DEFAULT_OUT = join(WEB, 'dist')
const SOURCES = [WEB, join(ROOT, 'src', 'api'), join(ROOT, 'src', 'core'), join(ROOT, 'package.json')]
/** A lock older than this belongs to a build that died: it is taken over. */
const STALE_LOCK_MS = 120_000

/** The newest modification time under `path` (files only), and which file it is. */
function newest(path: string, skip: ReadonlySet<string>): { mtime: number; file: string } {
  const stat = statSync(path)
  if (!stat.isDirectory()) return { mtime: stat.mtimeMs, file: path }
  let best = { mtime: 0, file: path }
  for (const entry of readdirSync(path)) {
    const child = join(path, entry)
    if (skip.has(child) || entry.endsWith('.test.ts')) continue
    const found = newest(child, skip)
    if (found.mtime > best.mtime) best = found
  }
  return best
}

function builtAt(outDir: string): number | undefined {
  try {
    return statSync(join(outDir, 'index.html')).mtimeMs
  } catch {
    return undefined
  }
}

/** Why `outDir` needs a build (not built yet, or the newest source), or undefined when it is up to date. */
export function staleBecause(outDir = DEFAULT_OUT): string | undefined {
  const skip = new Set([DEFAULT_OUT, resolve(outDir), join(WEB, 'node_modules')])
  const source = SOURCES.map((s) => newest(s, skip)).reduce((a, b) => (b.mtime > a.mtime ? b : a))
  const built = builtAt(outDir)
  if (built === undefined) return 'not built yet'
  return built >= source.mtime ? undefined : `${relative(ROOT, source.file)} changed`
}

async function lock(outDir: string): Promise<() => void> {
  const name = createHash('sha256').update(resolve(outDir)).digest('hex').slice(0, 16)
  const dir = join(tmpdir(), `donghae-build-web-${name}.lock`)
  for (;;) {
    try {
      mkdirSync(dir)
      return () => rmSync(dir, { recursive: true, force: true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    try {
      if (Date.now() - statSync(dir).mtimeMs > STALE_LOCK_MS) rmSync(dir, { recursive: true, force: true })
    } catch {
      // released meanwhile
    }
    await sleep(200)
  }
}

export type BuildOutcome =
  { state: 'fresh' } | { state: 'built'; seconds: number } | { state: 'failed'; message: string }

/** Builds the dashboard into `outDir` when it is stale (or always, with `force`); `log` gets the progress lines. */
export async function buildWeb(
  options: { outDir?: string; force?: boolean; quiet?: boolean; log?: (line: string) => void } = {},
): Promise<BuildOutcome> {
  const outDir = resolve(options.outDir ?? DEFAULT_OUT)
  const log = options.log ?? ((line: string) => void process.stdout.write(`${line}\n`))
  const shown = relative(ROOT, outDir).startsWith('..') ? outDir : relative(ROOT, outDir)
  if (options.force !== true && staleBecause(outDir) === undefined) {
    if (options.quiet !== true) log(`dashboard: ${shown} is up to date`)
    return { state: 'fresh' }
  }
  const release = await lock(outDir)
  try {
    // another process may have built it while this one waited for the lock
    const why = options.force === true ? 'forced' : staleBecause(outDir)
    if (why === undefined) {
      if (options.quiet !== true) log(`dashboard: ${shown} is up to date`)
      return { state: 'fresh' }
    }
    log(`dashboard: building ${shown} (${why})…`)
    const started = Date.now()
    try {
      const { build } = await import('vite')
      await build({ configFile: join(WEB, 'vite.config.ts'), logLevel: 'warn', build: { outDir } })
    } catch (err) {
      return { state: 'failed', message: err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err) }
    }
    const seconds = (Date.now() - started) / 1000
    log(`dashboard: built in ${seconds.toFixed(1)} s`)
    return { state: 'built', seconds }
  } finally {
    release()
  }
}

if (import.meta.main) {
  const args = process.argv.slice(2)
  const out = args.indexOf('--out')
  const outcome = await buildWeb({
    force: args.includes('--force'),
    quiet: args.includes('--quiet'),
    ...(out >= 0 && args[out + 1] !== undefined ? { outDir: args[out + 1] } : {}),
  })
  if (outcome.state === 'failed') {
    process.stderr.write(`dashboard: the build failed (${outcome.message}); fix web/ and run \`npm run build:web\`\n`)
    process.exit(1)
  }
}
