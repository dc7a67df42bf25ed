// The test command: `npm test` runs every test except test/long/, `npm run test:long` (`--long`)
// only those; file arguments (`npm test -- test/cli.test.ts`) run just those files. Node's test
// runner, with the spec reporter and test/summary-reporter.js (slowest files, then the counts).
//
// Files run at least two at a time (DONGHAE_TEST_CONCURRENCY overrides): most of them wait on
// child processes, sockets and timers rather than on the cores, so on a 2-core machine two at once
// take about 3/4 of the time of one at a time (Node's default there), with no test slower than its
// limits allow. test/long/ keeps Node's default (cores − 1): its devnets of up to 12 processes
// each want the machine. Every process the tests start shares Node's compile cache
// (NODE_COMPILE_CACHE, default os.tmpdir()/node-compile-cache), so a module is compiled once.
//
// A test with no limit of its own gets one (--test-timeout, 10 minutes; test/long/ sets its own).
// A test past its limit is cancelled, not unwound: a child process it started keeps its file's
// process, and so the run, alive, so such a test kills what it started on `t.signal`'s abort
// (test/dashboard-tasks.test.ts). --test-force-exit is not used: a file's tests registered after a
// top-level await (test/restart-data-fixtures.test.ts and others) would silently never run.
import { spawn } from 'node:child_process'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'

const args = process.argv.slice(2)
const long = args.includes('--long')
const files = args.filter((a) => a !== '--long')
const patterns =
  files.length > 0
    ? files
    : long
      ? ['test/long/**/*.test.ts']
      : ['src/**/*.test.ts', 'test/*.test.ts', 'test/!(long)/**/*.test.ts']
const cores = availableParallelism()
const concurrency =
  process.env.DONGHAE_TEST_CONCURRENCY ?? String(long ? Math.max(1, cores - 1) : Math.max(2, cores - 1))

const child = spawn(
  process.execPath,
  [
    '--test',
    `--test-concurrency=${concurrency}`,
    ...(long ? [] : ['--test-timeout=600000']),
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=./test/summary-reporter.js',
    '--test-reporter-destination=stdout',
    ...patterns,
  ],
  {
    stdio: 'inherit',
    env: { ...process.env, NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'node-compile-cache') },
  },
)
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal))
child.on('exit', (code) => {
  process.exitCode = code ?? 1
})
