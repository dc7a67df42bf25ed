/**
 * How a node process is started (by `donghae devnet` and by the service files of `donghae
 * service install`): V8's young generation capped at 4 MB a semi-space (V8 grows it to 64 MB
 * under a node's allocation rate, and the pages stay resident), and glibc's malloc held to two
 * arenas (one per thread otherwise, mostly empty). Together about 100 MB less resident memory per
 * idle node for a few more short scavenges (docs/performance.md). V8 reads the flag only at
 * start, so a node started by hand gets it through NODE_OPTIONS.
 */
export const NODE_PROCESS_FLAGS: readonly string[] = ['--max-semi-space-size=4']
export const NODE_PROCESS_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' }
