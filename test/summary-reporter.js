// node:test reporter that ends the run with the slowest test files and one plain line:
// "N passed, N failed, N skipped". Used beside the spec reporter by `npm test`, so CI logs and
// people get the counts at the end, and see where the run's time goes.
// DONGHAE_SLOWEST=N lists N files instead (all of them with a large N).
const SLOWEST = Number(process.env.DONGHAE_SLOWEST ?? 15)

export default async function* summaryReporter(source) {
  let summary
  const files = []
  for await (const event of source) {
    if (event.type !== 'test:summary') continue
    // The run-wide summary is the one without a file.
    if (event.data.file === undefined) summary = event.data.counts
    else files.push({ file: event.data.file, ms: event.data.duration_ms })
  }
  if (summary === undefined) {
    yield '0 passed, 0 failed\n'
    return
  }
  const cwd = process.cwd() + '/'
  const slowest = files.sort((a, b) => b.ms - a.ms).slice(0, SLOWEST)
  if (slowest.length > 0) {
    yield `\nslowest files:\n`
    for (const { file, ms } of slowest) yield `${(ms / 1000).toFixed(1).padStart(7)} s  ${file.replace(cwd, '')}\n`
  }
  const passed = summary.passed
  const failed = summary.failed + summary.cancelled
  const skipped = summary.skipped + summary.todo
  yield `\n${passed} passed, ${failed} failed, ${skipped} skipped\n`
}
