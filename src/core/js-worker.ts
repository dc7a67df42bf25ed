/**
 * Worker threads without their own TypeScript stripper. A thread whose entry is a `.ts` file
 * loads its own copy of Node's TypeScript stripper (a WebAssembly compiler): about 13-18 MB more
 * resident memory per thread than the same modules as JavaScript (bench/worker-rss.bench.ts,
 * Node 24). A node keeps
 * the PoH generator's thread while its chain is busy, and starts signature and PoH verification
 * threads under load.
 *
 * `jsWorkerUrl(entry)` returns the URL to start the thread from, one of two ways:
 *
 * - **From the compile cache.** Where this thread keeps Node's compile cache
 *   (`module.enableCompileCache`, which bin/donghae.js turns on), the thread starts from a small
 *   `data:` module that turns the same cache on in the thread and imports `entry`. Node keeps each
 *   module's stripped JavaScript in that cache, so from the second start on neither the thread
 *   nor the main thread loads the stripper (the first start strips, in both, and fills the
 *   cache). The thread writes the cache as soon as its entry is loaded
 *   (`module.flushCompileCache`), so a process killed later leaves the thread's modules there too.
 * - **Stripped here.** Without a compile cache (`NODE_DISABLE_COMPILE_CACHE=1`, or a process
 *   that never turned it on) it strips the types of the entry and of every relative `.ts`
 *   module it imports, on the calling thread, and returns a `data:` URL of JavaScript whose
 *   imports are `data:` URLs of its own dependencies. Package imports become the file URLs they
 *   resolve to from here (the project's `node_modules`); `node:` builtins stay. Line numbers are
 *   kept (types become spaces), so stack traces point at the right lines, of `data:` modules.
 *   Whatever it cannot turn into JavaScript (no `module.stripTypeScriptTypes`, an import cycle, a
 *   dynamic import, `import.meta`) it gives back as the `.ts` URL it was given: the thread then
 *   runs as before.
 */
import { readFileSync } from 'node:fs'
import module from 'node:module'
import { fileURLToPath } from 'node:url'

/** Static import and re-export specifiers, after type stripping. */
const SPECIFIER = /(\bfrom\s*|\bimport\s*)(['"])([^'"\n]+)\2/g
/** What a `data:` module cannot do the way its file did. */
const UNSUPPORTED = /\bimport\s*\(|\bimport\.meta\b/

const converted = new Map<string, URL>()

class CannotConvert extends Error {}

export interface JsWorkerOptions {
  /** The compile cache's directory, or false to strip here; default: this thread's cache, if on. */
  compileCache?: string | false
}

/** The worker entry `entry` as JavaScript (a `data:` URL), or `entry` itself where it cannot be. */
export function jsWorkerUrl(entry: URL, options: JsWorkerOptions = {}): URL {
  if (entry.protocol !== 'file:' || !entry.pathname.endsWith('.ts')) return entry
  const cacheDir = options.compileCache ?? module.getCompileCacheDir?.()
  if (cacheDir !== undefined && cacheDir !== false) return fromCompileCache(entry, cacheDir)
  const known = converted.get(entry.href)
  if (known !== undefined) return known
  let url = entry
  try {
    url = new URL(moduleAsData(entry.href, new Set(), new Map()))
  } catch (err) {
    if (!(err instanceof CannotConvert) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  converted.set(entry.href, url)
  return url
}

/** A `data:` module that imports `entry` with `cacheDir`'s compile cache on, in the worker's thread. */
function fromCompileCache(entry: URL, cacheDir: string): URL {
  const boot = [
    "import module from 'node:module'",
    `module.enableCompileCache(${JSON.stringify(cacheDir)})`,
    `await import(${JSON.stringify(entry.href)})`,
    'module.flushCompileCache()',
  ].join('\n')
  return new URL(`data:text/javascript;base64,${Buffer.from(boot).toString('base64')}`)
}

function moduleAsData(href: string, visiting: Set<string>, done: Map<string, string>): string {
  const known = done.get(href)
  if (known !== undefined) return known
  if (visiting.has(href)) throw new CannotConvert(`import cycle through ${href}`)
  visiting.add(href)
  const js = stripTypes(readFileSync(fileURLToPath(href), 'utf8'))
  if (UNSUPPORTED.test(js)) throw new CannotConvert(`${href} uses a dynamic import or import.meta`)
  const linked = js.replace(SPECIFIER, (_match, keyword: string, quote: string, specifier: string) => {
    return `${keyword}${quote}${resolveSpecifier(specifier, href, visiting, done)}${quote}`
  })
  visiting.delete(href)
  const data = `data:text/javascript;base64,${Buffer.from(linked).toString('base64')}`
  done.set(href, data)
  return data
}

function resolveSpecifier(specifier: string, parent: string, visiting: Set<string>, done: Map<string, string>): string {
  if (specifier.startsWith('node:')) return specifier
  if (specifier.startsWith('./') || specifier.startsWith('../')) {
    const child = new URL(specifier, parent).href
    return child.endsWith('.ts') ? moduleAsData(child, visiting, done) : child
  }
  if (specifier.startsWith('file:') || specifier.startsWith('data:')) return specifier
  // a package: the same node_modules as every module of the project
  return import.meta.resolve(specifier)
}

/**
 * Node's type stripping without its one-time "experimental feature" warning on stderr (the
 * stripping itself is what Node runs every `.ts` module of the project through).
 */
function stripTypes(source: string): string {
  const strip = (module as { stripTypeScriptTypes?: (code: string) => string }).stripTypeScriptTypes
  if (strip === undefined) throw new CannotConvert('this Node.js has no module.stripTypeScriptTypes')
  const emitWarning = process.emitWarning
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === 'string' ? warning : warning.message
    if (text.includes('stripTypeScriptTypes')) return
    ;(emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest)
  }) as typeof process.emitWarning
  try {
    return strip(source)
  } finally {
    process.emitWarning = emitWarning
  }
}
