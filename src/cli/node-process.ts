/**
 * How a node process is started (by `donghae devnet`, the chaos runner and the service files of
 * `donghae service install`):
 *
 * - V8's young generation capped at 4 MB a semi-space (V8 grows it to 64 MB under a node's
 *   allocation rate, and the pages stay resident);
 * - glibc's malloc held to two arenas (one per thread otherwise, mostly empty);
 * - on Linux, jemalloc instead of glibc's malloc where the system has it (`libjemalloc2` on
 *   Debian and Ubuntu, `jemalloc` on Fedora and Arch), through `LD_PRELOAD`. glibc keeps what a
 *   burst of garbage freed in the middle of its heap, so a node's resident memory steps up after
 *   each burst (a sync, a major collection) and never comes back down, which is part of why the
 *   soak's hour failed. jemalloc hands freed pages back after a few seconds (docs/reliability.md).
 *   `DONGHAE_MALLOC=system` keeps glibc's; `DONGHAE_MALLOC=jemalloc` refuses to start without it.
 *
 * Together about 100 MB less resident memory per idle node, and private memory that no longer
 * only grows under load, for a few more short scavenges (docs/performance.md). V8 reads the flag
 * and the dynamic loader reads LD_PRELOAD only at start, so a node started by hand gets them from
 * its environment:
 * `NODE_OPTIONS=--max-semi-space-size=4 LD_PRELOAD=<libjemalloc.so.2> donghae node`.
 */
import { existsSync } from 'node:fs'
import { InvalidInputError } from '../core/errors.ts'

export const NODE_PROCESS_FLAGS: readonly string[] = ['--max-semi-space-size=4']

/** Where Linux distributions install jemalloc's shared library, in the order tried. */
export const JEMALLOC_PATHS: readonly string[] = [
  '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', // Debian, Ubuntu
  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
  '/usr/lib64/libjemalloc.so.2', // Fedora, openSUSE
  '/usr/lib/libjemalloc.so.2', // Arch, Alpine
]

/** `DONGHAE_MALLOC`: `auto` (jemalloc where found, the default), `jemalloc` (required) or `system`. */
export const MALLOC_CHOICES = ['auto', 'jemalloc', 'system'] as const
export type MallocChoice = (typeof MALLOC_CHOICES)[number]

export interface NodeProcessEnvOptions {
  /** The environment the node process would inherit. @default process.env */
  env?: NodeJS.ProcessEnv
  /** @default process.platform */
  platform?: NodeJS.Platform
  /** @default fs.existsSync */
  exists?: (path: string) => boolean
}

/** jemalloc's library on this machine, if one of JEMALLOC_PATHS exists (Linux only). */
export function findJemalloc(options: Omit<NodeProcessEnvOptions, 'env'> = {}): string | undefined {
  if ((options.platform ?? process.platform) !== 'linux') return undefined
  const exists = options.exists ?? existsSync
  return JEMALLOC_PATHS.find((path) => exists(path))
}

/**
 * The variables a node process gets on top of what it inherits: `MALLOC_ARENA_MAX`, and
 * `LD_PRELOAD` with jemalloc first (any preload already set kept after it). What the service
 * files write. Throws InvalidInputError for an unknown `DONGHAE_MALLOC`, or `jemalloc` where
 * there is none.
 */
export function nodeProcessVariables(options: NodeProcessEnvOptions = {}): Record<string, string> {
  const env = options.env ?? process.env
  const choice = env.DONGHAE_MALLOC === undefined || env.DONGHAE_MALLOC === '' ? 'auto' : env.DONGHAE_MALLOC
  if (!(MALLOC_CHOICES as readonly string[]).includes(choice))
    throw new InvalidInputError(`DONGHAE_MALLOC must be one of ${MALLOC_CHOICES.join(', ')}, not "${choice}"`)
  const out: Record<string, string> = { MALLOC_ARENA_MAX: '2' }
  if (choice === 'system') return out
  const preload = env.LD_PRELOAD ?? ''
  if (/(^|[/:\s])libjemalloc\.so/.test(preload)) return out // already there
  const jemalloc = findJemalloc(options)
  if (jemalloc === undefined) {
    if (choice === 'jemalloc')
      throw new InvalidInputError(
        `DONGHAE_MALLOC=jemalloc, but no jemalloc library is installed (looked for ${JEMALLOC_PATHS.join(', ')}; ` +
          `Debian and Ubuntu: apt install libjemalloc2)`,
      )
    return out
  }
  out.LD_PRELOAD = preload.trim() === '' ? jemalloc : `${jemalloc}:${preload}`
  return out
}

/**
 * The whole environment of a node process: the inherited one (`options.env`) with
 * nodeProcessVariables applied; an inherited `MALLOC_ARENA_MAX` wins.
 */
export function nodeProcessEnv(options: NodeProcessEnvOptions = {}): NodeJS.ProcessEnv {
  const env = options.env ?? process.env
  const { LD_PRELOAD, ...defaults } = nodeProcessVariables(options)
  return { ...defaults, ...env, ...(LD_PRELOAD === undefined ? {} : { LD_PRELOAD }) }
}
