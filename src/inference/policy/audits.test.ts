import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { sha256 } from '../../core/hash.ts'
import { utf8 } from '../../core/bytes.ts'
import { AUDIT_LOSS_MARGIN, shouldAudit, stakeFloorPpm } from './audits.ts'

const params = { auditThreshold: 30, auditFloorPpm: 35_000, workerSlashBps: 1_000 }

test('stake floor: a cheated job’s expected slash is at least AUDIT_LOSS_MARGIN × its fee, for any fee and bond', () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 1n, max: 10n ** 12n }),
      fc.bigInt({ min: 1n, max: 10n ** 15n }),
      fc.integer({ min: 1, max: 10_000 }),
      (fee, bonded, bps) => {
        const ppm = stakeFloorPpm(fee, bonded, bps)
        const slash = (bonded * BigInt(bps)) / 10_000n
        if (ppm === 1_000_000) return // audited always: the most the rule can do
        // p × slash ≥ margin × fee, in integers: ppm × bonded × bps ≥ margin × fee × 10^6 × 10^4
        assert.ok(BigInt(ppm) * bonded * BigInt(bps) >= AUDIT_LOSS_MARGIN * fee * 10n ** 10n, `${ppm} ppm`)
        assert.ok(slash >= 0n)
      },
    ),
  )
})

test('stake floor: tiny beside a large bond, always audited with no slashable bond, nothing for a free job', () => {
  // fee 100, bond 100 000, slash 10 %: 2 × 100 / 10 000 = 2 %
  assert.equal(stakeFloorPpm(100n, 100_000n, 1_000), 20_000)
  assert.equal(stakeFloorPpm(10n, 100_000n, 1_000), 2_000)
  assert.equal(stakeFloorPpm(100n, 1_000n, 1_000), 1_000_000, 'a bond of 10 fees: every job is audited')
  assert.equal(stakeFloorPpm(100n, 0n, 1_000), 1_000_000)
  assert.equal(stakeFloorPpm(0n, 100_000n, 1_000), 0)
})

test('shouldAudit: always below the threshold; at a long streak the larger of 1/streak, the floor and the stake floor', () => {
  const seeds = Array.from({ length: 20_000 }, (_, i) => sha256(utf8(`seed ${i}`)))
  const share = (odds: { streak: number; fee: bigint; bonded: bigint }): number =>
    seeds.filter((s) => shouldAudit(odds, s, params)).length / seeds.length
  assert.equal(share({ streak: 29, fee: 100n, bonded: 100_000n }), 1)
  // streak 1000: 1/streak = 0.1 %, floor 3.5 %, stake floor 2 %  → 3.5 %
  const big = share({ streak: 1_000, fee: 100n, bonded: 100_000n })
  assert.ok(Math.abs(big - 0.035) < 0.006, `${big}`)
  // a bond of 2 000 (slash 200) for fee 100: stake floor 100 %
  assert.equal(share({ streak: 1_000, fee: 100n, bonded: 2_000n }), 1)
  // a bond of 20 000 (slash 2 000) for fee 100: 10 %
  const mid = share({ streak: 1_000, fee: 100n, bonded: 20_000n })
  assert.ok(Math.abs(mid - 0.1) < 0.01, `${mid}`)
})
