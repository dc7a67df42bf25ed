/**
 * Builds the dashboard (web/ → web/dist) with Vite, but only when a source is newer than the
 * build, so `npm start` and `npm test` (which run it first) cost nothing when nothing changed.
 *
 *   node scripts/build-web.ts            # build if stale
 *   node scripts/build-web.ts --force    # always build
 *
 * Sources: web/ (but dist/) and src/api/ and src/core/ (the client the dashboard bundles).
 */
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const WEB = join(ROOT, 'web')
const OUT = join(WEB, 'dist')
const STAMP = join(OUT, 'index.html')
const SOURCES = [WEB, join(ROOT, 'src', 'api'), join(ROOT, 'src', 'core'), join(ROOT, 'package.json')]
const SKIP = new Set([OUT, join(WEB, 'node_modules')])

/** The newest modification time under `path` (files only), and which file it is. */
function newest(path: string): { mtime: number; file: string } {
  const stat = statSync(path)
  if (!stat.isDirectory()) return { mtime: stat.mtimeMs, file: path }
  let best = { mtime: 0, file: path }
  for (const entry of readdirSync(path)) {
    const child = join(path, entry)
    if (SKIP.has(child) || entry.endsWith('.test.ts')) continue
    const found = newest(child)
    if (found.mtime > best.mtime) best = found
  }
  return best
}

function builtAt(): number | undefined {
  try {
    return statSync(STAMP).mtimeMs
  } catch {
    return undefined
  }
}

const force = process.argv.includes('--force')
const source = SOURCES.map(newest).reduce((a, b) => (b.mtime > a.mtime ? b : a))
const built = builtAt()
if (!force && built !== undefined && built >= source.mtime) {
  process.stdout.write(`dashboard: ${relative(ROOT, OUT)} is up to date\n`)
} else {
  const why = built === undefined ? 'not built yet' : `${relative(ROOT, source.file)} changed`
  process.stdout.write(`dashboard: building ${relative(ROOT, OUT)} (${why})…\n`)
  const started = Date.now()
  try {
    const { build } = await import('vite')
    await build({ configFile: join(WEB, 'vite.config.ts'), logLevel: 'warn' })
  } catch (err) {
    process.stderr.write(
      `dashboard: the build failed (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); fix web/ and run \`npm run build:web\`\n`,
    )
    process.exit(1)
  }
  process.stdout.write(`dashboard: built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
}
