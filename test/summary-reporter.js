// node:test reporter that ends the run with one plain line: "N passed, N failed, N skipped".
// Used beside the spec reporter by `npm test`, so CI logs and people get the counts at the end.
export default async function* summaryReporter(source) {
  let summary
  for await (const event of source) {
    // The run-wide summary is the one without a file.
    if (event.type === 'test:summary' && event.data.file === undefined) summary = event.data.counts
  }
  if (summary === undefined) {
    yield '0 passed, 0 failed\n'
    return
  }
  const passed = summary.passed
  const failed = summary.failed + summary.cancelled
  const skipped = summary.skipped + summary.todo
  yield `\n${passed} passed, ${failed} failed, ${skipped} skipped\n`
}
