// Attacks on AI-Block's chain module, each against the real experts module through a real state
// machine (bank, staking, experts) with signed transactions: a dependency cycle, a dependency on
// another family's block, shapes that break the MetaBlock, a block signed by someone other than
// its miner, no proof of work, a non-validator attesting, a validator attesting twice, usage
// naming an unaccepted block, an oversized proposal. Each must fail with its reason, cost the
// attacker its fee, and leave the ParamIndex, the escrow and the pool as they were.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf } from '../../src/bank/bank.ts'
import { TxError } from '../../src/chain/errors.ts'
import { decodePropose } from '../../src/experts/chain/decode.ts'
import { blockHash, signParamBlock, unsignedOf } from '../../src/experts/block.ts'
import { meetsDifficulty, powDigest } from '../../src/experts/pow.ts'
import { expertName, routerName, type ParamBlockHeader } from '../../src/experts/types.ts'
import {
  attestations,
  escrowBalance,
  paramIndex,
  poolBalance,
  readFamily,
  readProposal,
  readUsage,
} from '../../src/experts/chain/state.ts'
import {
  actor,
  advanceTo,
  attestAll,
  createFamily,
  paramBlock,
  propose,
  refusedTx,
  score,
  tx,
  world,
  type World,
} from '../../src/experts/chain/test-kit.ts'

const CLAIM = score(2_000_000n, 300_000)
const propBody = (blocks: ParamBlockHeader[]) => ({ family: 'tiny-moe', version: 1, blocks, claim: CLAIM })

/** The family with layer 0's router accepted; returns its MetaBlock hash and the router's hash. */
function setup(): { w: World; meta: string; router: string } {
  const w = world()
  const meta = createFamily(w)
  const r = paramBlock(w.miner, { index: 0, name: routerName(0), dependsOn: [meta] })
  const id = propose(w, [r], CLAIM)
  attestAll(w, id, { score: CLAIM })
  assert.equal(readProposal(w.state, id)?.status, 'accepted')
  return { w, meta, router: blockHash(r) }
}

/** Runs a proposal that must fail with `reason`; checks the attacker paid only its fee and nothing moved. */
function refusedProposal(w: World, blocks: ParamBlockHeader[], reason: string, message?: RegExp): void {
  const attacker = w.miner
  const before = balanceOf(w.state, attacker.did)
  const index = paramIndex(w.state, 'tiny-moe', 1)
  const next = readFamily(w.state, 'tiny-moe')?.nextIndex
  refusedTx(w, attacker, 'experts.propose', propBody(blocks), reason, message)
  assert.equal(balanceOf(w.state, attacker.did), before - 1n, 'the fee, no bond')
  assert.deepEqual(paramIndex(w.state, 'tiny-moe', 1), index)
  assert.equal(readFamily(w.state, 'tiny-moe')?.nextIndex, next)
  assert.equal(escrowBalance(w.state), 0n)
}

test("a cycle among a proposal's blocks is refused, naming its members", () => {
  const { w, meta, router } = setup()
  const blocks = [
    paramBlock(w.miner, { index: 1, name: expertName(0, 0), dependsOn: [meta, router, '#3'] }),
    paramBlock(w.miner, { index: 2, name: expertName(0, 1), dependsOn: [meta, router] }),
    paramBlock(w.miner, { index: 3, name: expertName(0, 2), dependsOn: [meta, router, '#1'] }),
  ]
  refusedProposal(w, blocks, 'cycle', /#1 → #3|#3 → #1/)
  refusedProposal(
    w,
    [paramBlock(w.miner, { index: 1, name: expertName(0, 0), dependsOn: [meta, router, '#1'] })],
    'cycle',
  )
})

test("a block depending on another family's block or MetaBlock is refused as a foreign dependency", () => {
  const { w, meta, router } = setup()
  const otherMeta = createFamily(w, { family: 'rival' })
  const rivalRouter = paramBlock(w.outsider, { family: 'rival', index: 0, name: routerName(0), dependsOn: [otherMeta] })
  const id = propose(w, [rivalRouter], CLAIM, w.outsider)
  attestAll(w, id, { score: CLAIM })
  const foreign = blockHash(rivalRouter)
  refusedProposal(
    w,
    [paramBlock(w.miner, { index: 1, name: expertName(0, 0), dependsOn: [meta, foreign] })],
    'foreign-dependency',
    /rival/,
  )
  refusedProposal(
    w,
    [paramBlock(w.miner, { index: 1, name: expertName(0, 0), dependsOn: [meta, router, otherMeta] })],
    'foreign-dependency',
    /rival/,
  )
})

test('shapes that break the MetaBlock are refused', () => {
  const { w, meta, router } = setup()
  const dep = [meta, router]
  refusedProposal(
    w,
    [paramBlock(w.miner, { index: 1, name: expertName(0, 0), dependsOn: dep, shapes: { w1: [16, 8], w2: [8, 16] } })],
    'shapes',
  )
  refusedProposal(
    w,
    [
      paramBlock(w.miner, {
        index: 1,
        name: expertName(0, 0),
        dependsOn: dep,
        shapes: { w1: [16, 8], w2: [8, 16], w3: [16, 9] },
      }),
    ],
    'shapes',
  )
  refusedProposal(
    w,
    [
      paramBlock(w.miner, {
        index: 1,
        name: expertName(0, 0),
        dependsOn: dep,
        shapes: { w1: [16, 8], w2: [8, 16], w3: [16, 8], extra: [1] },
      }),
    ],
    'shapes',
  )
})

test('a block signed by someone other than its miner is refused (rewards would go to a stolen identity)', () => {
  const { w, meta, router } = setup()
  const thief = actor()
  const honest = paramBlock(w.miner, { index: 1, name: expertName(0, 0), dependsOn: [meta, router] })
  // The attacker names the miner (to frame it) but signs with its own key.
  const forged = signParamBlock(thief.key, { ...unsignedOf(honest), miner: w.miner.did })
  refusedProposal(w, [{ ...forged, nonce: honest.nonce }], 'bad-signature')
  // Or copies the miner's block and puts its own DID in as miner.
  refusedProposal(w, [{ ...honest, miner: thief.did }], 'bad-signature')
})

test('a block without proof of work is refused', () => {
  const { w, meta, router } = setup()
  const b = paramBlock(w.miner, { index: 1, name: expertName(0, 0), dependsOn: [meta, router] })
  let nonce = 0n
  while (meetsDifficulty(powDigest({ ...b, nonce }), 6)) nonce++
  refusedProposal(w, [{ ...b, nonce }], 'insufficient-work')
})

test('an oversized proposal is refused', () => {
  const { w, meta, router } = setup()
  const blocks = Array.from({ length: 65 }, (_, i) =>
    paramBlock(w.miner, { index: 1 + i, name: expertName(0, i % 4), dependsOn: [meta, router], bits: 0 }),
  )
  refusedProposal(w, blocks, 'too-many-blocks')
  // Past four times the limit the body does not even decode (the transaction is invalid: no fee, not
  // included); a transaction that large is also past the chain's size limit.
  const huge = Array.from({ length: 257 }, () => blocks[0]!)
  assert.throws(
    () => decodePropose(propBody(huge)),
    (err: unknown) => err instanceof TxError && err.reason === 'malformed',
  )
})

test('only validators attest, and each once', () => {
  const { w, meta, router } = setup()
  const id = propose(w, [paramBlock(w.miner, { index: 1, name: expertName(0, 0), dependsOn: [meta, router] })], CLAIM)
  refusedTx(w, w.outsider, 'experts.attest', { proposal: id, score: CLAIM }, 'not-validator')
  refusedTx(w, w.miner, 'experts.attest', { proposal: id, score: CLAIM }, 'not-validator')
  tx(w, w.validators[0]!, 'experts.attest', { proposal: id, score: CLAIM })
  refusedTx(w, w.validators[0]!, 'experts.attest', { proposal: id, score: CLAIM }, 'already-attested')
  tx(w, w.validators[1]!, 'experts.attest', { proposal: id, score: CLAIM })
  assert.equal(readProposal(w.state, id)?.status, 'pending', 'one validator attesting twice did not reach 2/3')
  assert.equal(attestations(w.state, id).length, 2)
  refusedTx(w, w.validators[2]!, 'experts.attest', { proposal: 'ab'.repeat(32), score: CLAIM }, 'unknown-proposal')
})

test('usage naming a block that is not accepted is refused, and costs nothing but the fee', () => {
  const { w, meta, router } = setup()
  const pending = paramBlock(w.miner, { index: 1, name: expertName(0, 0), dependsOn: [meta, router] })
  propose(w, [pending], CLAIM)
  const pool = poolBalance(w.state)
  const before = balanceOf(w.state, w.gateway.did)
  const usage = (block: string) => ({
    family: 'tiny-moe',
    version: 1,
    entries: [{ block, calls: 1_000, latencyMs: 0 }],
    generations: 1,
  })
  refusedTx(w, w.gateway, 'experts.usage', usage(blockHash(pending)), 'unknown-block')
  refusedTx(w, w.gateway, 'experts.usage', usage('ef'.repeat(32)), 'unknown-block')
  refusedTx(w, w.gateway, 'experts.usage', { ...usage(router), family: 'rival' }, 'unknown-family')
  refusedTx(
    w,
    w.gateway,
    'experts.usage',
    { ...usage(router), entries: [{ block: router, calls: 1_000_001, latencyMs: 0 }] },
    'malformed',
  )
  assert.equal(
    balanceOf(w.state, w.gateway.did),
    before - 3n,
    'three fees (the malformed one is invalid, not included)',
  )
  assert.equal(poolBalance(w.state), pool)
  assert.equal(readUsage(w.state, blockHash(pending)), undefined)
})

test('washed usage: a miner reporting calls of its own expert pays for them and earns nothing from them', () => {
  const { w, meta, router } = setup()
  // two experts: the miner's and the outsider's
  const mine = paramBlock(w.miner, { index: 1, name: expertName(0, 0), dependsOn: [meta, router] })
  const theirs = paramBlock(w.outsider, { index: 2, name: expertName(0, 1), dependsOn: [meta, router] })
  attestAll(w, propose(w, [mine, theirs], CLAIM), { score: CLAIM })
  const [mineHash, theirsHash] = [blockHash(mine), blockHash(theirs)]
  // the miner, acting as a gateway, reports 200 calls of its own expert (the cap of the usage
  // factor); an honest gateway reports 50 calls of each
  tx(w, w.miner, 'experts.usage', {
    family: 'tiny-moe',
    version: 1,
    entries: [{ block: mineHash, calls: 200, latencyMs: 0 }],
    generations: 50,
  })
  tx(w, w.gateway, 'experts.usage', {
    family: 'tiny-moe',
    version: 1,
    entries: [
      { block: mineHash, calls: 50, latencyMs: 0 },
      { block: theirsHash, calls: 50, latencyMs: 0 },
    ],
    generations: 25,
  })
  assert.equal(readUsage(w.state, mineHash)?.calls, 250n, 'every call is recorded (and ranked)')
  assert.equal(readUsage(w.state, mineHash)?.epochCalls, 50n, 'but only others’ calls weigh for rewards')
  const minerBefore = balanceOf(w.state, w.miner.did)
  const outsiderBefore = balanceOf(w.state, w.outsider.did)
  const pool = poolBalance(w.state)
  advanceTo(w, 20)
  const minerGain = balanceOf(w.state, w.miner.did) - minerBefore
  const outsiderGain = balanceOf(w.state, w.outsider.did) - outsiderBefore
  assert.equal(minerGain, outsiderGain, 'the same weight as an expert with the same honest usage')
  assert.ok(minerGain <= pool / 2n)
  assert.ok(minerGain < 200n, `washing 200 calls cost 200 and earned back ${minerGain}: it does not pay`)
})
