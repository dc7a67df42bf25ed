import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ProgressBar, renderProgress } from './progress.ts'

function sink(isTTY: boolean): { stream: { isTTY: boolean; write(s: string): boolean }; text(): string } {
  let out = ''
  return {
    stream: {
      isTTY,
      write: (s: string) => {
        out += s
        return true
      },
    },
    text: () => out,
  }
}

test('renderProgress draws a bar, the share, the amounts in one unit and the peers', () => {
  assert.equal(
    renderProgress({ bytes: 84e6, totalBytes: 200e6, peers: 3 }, 10),
    '[####......] 42% 84.0/200.0 MB 3 peers',
  )
  assert.equal(renderProgress({ bytes: 0, totalBytes: 2e9, peers: 1 }, 4), '[....] 0% 0.0/2.0 GB 1 peer')
  assert.equal(renderProgress({ bytes: 500, totalBytes: 500 }, 4), '[####] 100% 500/500 B')
  assert.equal(renderProgress({ bytes: 1_500_000 }), '1.5 MB')
})

test('on a terminal the line is redrawn in place, at most every interval; done ends the line', () => {
  const out = sink(true)
  let now = 0
  const bar = new ProgressBar({ stream: out.stream, width: 10, intervalMs: 100, now: () => now, label: 'model' })
  bar.update({ bytes: 10, totalBytes: 100, peers: 2 })
  now = 50
  bar.update({ bytes: 20, totalBytes: 100, peers: 2 }) // too soon: skipped
  now = 150
  bar.update({ bytes: 30, totalBytes: 100, peers: 2 })
  bar.done({ bytes: 100, totalBytes: 100, peers: 3 })
  const frames = out
    .text()
    .split('\r')
    .filter((f) => f !== '')
  assert.equal(frames.length, 3)
  assert.equal(frames[0], 'model [#.........] 10% 10/100 B 2 peers\x1b[K')
  assert.equal(frames[1], 'model [###.......] 30% 30/100 B 2 peers\x1b[K')
  assert.equal(frames[2], 'model [##########] 100% 100/100 B 3 peers\x1b[K\n')
})

test('elsewhere one line is printed per tenth reached, and nothing twice', () => {
  const out = sink(false)
  const bar = new ProgressBar({ stream: out.stream, width: 10 })
  for (let done = 0; done <= 1000; done += 7) bar.update({ bytes: done, totalBytes: 1000, peers: 3 })
  bar.update({ bytes: 1000, totalBytes: 1000, peers: 3 })
  bar.done()
  const lines = out.text().trim().split('\n')
  assert.equal(lines.length, 11) // 0%, 10% … 100%
  assert.equal(lines[4], '[####......] 40% 0.4/1.0 kB 3 peers')
  assert.equal(lines[10], '[##########] 100% 1.0/1.0 kB 3 peers')
  // an interrupted transfer ends with where it stopped
  const cut = sink(false)
  const partial = new ProgressBar({ stream: cut.stream, width: 10 })
  partial.update({ bytes: 55, totalBytes: 100 })
  partial.done({ bytes: 57, totalBytes: 100 })
  assert.deepEqual(cut.text().trim().split('\n'), ['[#####.....] 55% 55/100 B', '[#####.....] 57% 57/100 B'])
})
