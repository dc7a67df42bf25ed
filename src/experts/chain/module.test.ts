// The experts chain module against the real state machine (bank, staking, experts): MetaBlocks
// and forks, proposals and each of their refusal reasons, attestations deciding by stake-weighted
// medians, expiry, usage and epoch rewards, genesis. Adversarial cases: test/attacks/experts-chain.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf, totalSupply } from '../../bank/bank.ts'
import { GenesisError } from '../../chain/errors.ts'
import { genesisToJson, parseGenesis } from '../../chain/genesis.ts'
import { metaHash, signParamBlock } from '../block.ts'
import { expertName, routerName, type ParamBlockHeader } from '../types.ts'
import {
  blockHistory,
  dagBlocks,
  escrowBalance,
  listFamilies,
  listProposals,
  paramIndex,
  pendingProposals,
  poolBalance,
  readBlock,
  readFamily,
  readMeta,
  readProposal,
  readUsage,
} from './state.ts'
import { blockHash, unsignedOf } from '../block.ts'
import { findNonce, meetsDifficulty, powDigest } from '../pow.ts'
import {
  ARCH,
  BALANCE,
  advanceTo,
  attestAll,
  block,
  cid,
  createFamily,
  metaBody,
  paramBlock,
  propose,
  refusedTx,
  score,
  tx,
  world,
  type World,
} from './test-kit.ts'

const CLAIM = score(2_000_000n, 300_000)

/** Router and expert 0 of layer 0, the expert depending on its sibling router. */
function firstPair(w: World, meta: string, start = 0): ParamBlockHeader[] {
  return [
    paramBlock(w.miner, { index: start, name: routerName(0), dependsOn: [meta] }),
    paramBlock(w.miner, { index: start + 1, name: expertName(0, 0), dependsOn: [meta, `#${start}`] }),
  ]
}

/** A family with layer 0's router and expert 0 accepted at CLAIM. */
function acceptedPair(w: World): { meta: string; hashes: string[]; id: string } {
  const meta = createFamily(w)
  const blocks = firstPair(w, meta)
  const id = propose(w, blocks, CLAIM)
  attestAll(w, id, { score: CLAIM })
  return { meta, hashes: blocks.map(blockHash), id }
}

const body = (blocks: ParamBlockHeader[], claim = CLAIM) => ({ family: 'tiny-moe', version: 1, blocks, claim })

// ---- MetaBlocks ---------------------------------------------------------------------------------

test('meta: version 1 creates a family owned by the sender; later versions only by the owner, one at a time', () => {
  const w = world()
  const hash = createFamily(w)
  assert.equal(readFamily(w.state, 'tiny-moe')?.owner, w.owner.did)
  assert.equal(readMeta(w.state, 'tiny-moe')?.hash, hash)
  assert.deepEqual(
    listFamilies(w.state).map((f) => f.family),
    ['tiny-moe'],
  )
  refusedTx(w, w.outsider, 'experts.meta', metaBody(), 'family-exists')
  refusedTx(w, w.outsider, 'experts.meta', metaBody({ version: 2 }), 'not-owner')
  refusedTx(w, w.owner, 'experts.meta', metaBody({ version: 3 }), 'bad-version')
  refusedTx(w, w.owner, 'experts.meta', metaBody({ family: 'other', version: 2 }), 'unknown-family')
  refusedTx(w, w.owner, 'experts.meta', metaBody({ family: 'Bad Name' }), 'malformed')
  refusedTx(w, w.owner, 'experts.meta', metaBody({ family: 'x', arch: { ...ARCH, nHeads: 3 } }), 'malformed', /nHeads/)
  refusedTx(w, w.owner, 'experts.meta', metaBody({ family: 'x', arch: { ...ARCH, topK: 5 } }), 'malformed', /topK/)
  refusedTx(w, w.owner, 'experts.meta', metaBody({ family: 'x', arch: { ...ARCH, nLayers: 257 } }), 'malformed')
  refusedTx(w, w.owner, 'experts.meta', metaBody({ family: 'x', trunk: 'not-a-cid' }), 'malformed', /trunk/)
  tx(w, w.owner, 'experts.meta', metaBody({ version: 2 }))
  assert.equal(readFamily(w.state, 'tiny-moe')?.latest, 2)
  assert.equal(readMeta(w.state, 'tiny-moe', 1)?.hash, hash, 'the history is kept')
})

// ---- proposals ---------------------------------------------------------------------------------

test('an accepted proposal fills the ParamIndex, appends history, returns the bond and records DAG order', () => {
  const w = world()
  const meta = createFamily(w)
  const blocks = firstPair(w, meta)
  const before = balanceOf(w.state, w.miner.did)
  const id = propose(w, blocks, CLAIM)
  assert.equal(balanceOf(w.state, w.miner.did), before - 1n - 1_000n, 'fee and bond')
  assert.equal(escrowBalance(w.state), 1_000n)
  const p = readProposal(w.state, id)
  assert.equal(p?.status, 'pending')
  assert.equal(p?.deadline, w.height + 10)
  assert.deepEqual(p?.replaces, { [routerName(0)]: '', [expertName(0, 0)]: '' })
  assert.deepEqual(
    pendingProposals(w.state).map((x) => x.id),
    [id],
  )
  assert.equal(readBlock(w.state, blockHash(blocks[0]!))?.status, 'pending')
  const events = attestAll(w, id, { score: score(2_000_100n, 300_500) })
  const accepted = events.find((e) => e.type === 'experts.accepted')
  assert.equal(accepted?.attributes.id, id)
  assert.equal(readProposal(w.state, id)?.status, 'accepted')
  assert.equal(balanceOf(w.state, w.miner.did), before - 1n, 'bond returned')
  assert.equal(escrowBalance(w.state), 0n)
  const hashes = blocks.map(blockHash)
  assert.deepEqual(paramIndex(w.state, 'tiny-moe', 1), [
    { name: routerName(0), hash: hashes[0] },
    { name: expertName(0, 0), hash: hashes[1] },
  ])
  assert.deepEqual(
    blockHistory(w.state, 'tiny-moe', expertName(0, 0)).map((h) => h.hash),
    [hashes[1]],
  )
  assert.equal(readBlock(w.state, hashes[1]!)?.status, 'accepted')
  assert.deepEqual(readBlock(w.state, hashes[1]!)?.score, score(2_000_100n, 300_500), 'the median score')
  assert.deepEqual(readFamily(w.state, 'tiny-moe')?.score, score(2_000_100n, 300_500))
  assert.deepEqual(
    dagBlocks(w.state, 'tiny-moe', 1).map((b) => b.hash),
    hashes,
  )
  assert.deepEqual(
    listProposals(w.state, { status: 'accepted' }).map((x) => x.id),
    [id],
  )
  assert.deepEqual(pendingProposals(w.state), [])
})

test('siblings are stored in topological order whatever their order in the proposal', () => {
  const w = world()
  const meta = createFamily(w)
  const expert = paramBlock(w.miner, { index: 0, name: expertName(0, 1), dependsOn: [meta, '#1'] })
  const router = paramBlock(w.miner, { index: 1, name: routerName(0), dependsOn: [meta] })
  propose(w, [expert, router], CLAIM)
  assert.deepEqual(
    dagBlocks(w.state, 'tiny-moe', 1).map((b) => b.header.expertName),
    [routerName(0), expertName(0, 1)],
  )
})

test('structural refusals name their reason, keep the fee and write nothing else', () => {
  const w = world()
  const meta = createFamily(w)
  const m = w.miner
  const before = balanceOf(w.state, m.did)
  const r0 = (over: Partial<Parameters<typeof paramBlock>[1]> = {}) =>
    paramBlock(m, { index: 0, name: routerName(0), dependsOn: [meta], ...over })
  let fails = 0
  const expect = (blocks: ParamBlockHeader[], reason: string, extra: Record<string, unknown> = {}, msg?: RegExp) => {
    refusedTx(w, m, 'experts.propose', { ...body(blocks), ...extra }, reason, msg)
    fails++
  }
  expect([r0()], 'unknown-family', { family: 'nope', blocks: [{ ...r0(), chainId: 'nope' }] })
  expect([r0({ index: 1 })], 'bad-index')
  expect([r0({ name: 'layer2.router' })], 'bad-name', {}, /layer2\.router/)
  expect([r0({ name: expertName(0, 4) })], 'bad-name')
  expect([{ ...r0(), blockType: 'expert' }], 'bad-name')
  expect([r0({ dependsOn: ['#0'.replace('0', '9')] })], 'unknown-dependency')
  expect([r0({ dependsOn: [meta, 'ab'.repeat(32)] })], 'unknown-dependency')
  expect([r0({ dependsOn: ['#0'] }), paramBlock(m, { index: 1, name: routerName(1), dependsOn: [meta] })], 'cycle')
  expect(
    [r0({ dependsOn: ['#1'] }), paramBlock(m, { index: 1, name: routerName(1), dependsOn: [meta] })],
    'missing-meta-dependency',
  )
  expect([paramBlock(m, { index: 0, name: expertName(0, 0), dependsOn: [meta] })], 'missing-router-dependency')
  expect([r0({ shapes: { weight: [4, 9] } })], 'shapes')
  expect([{ ...r0(), payloadSig: new Uint8Array(64) }], 'bad-signature')
  expect(
    [r0({ bits: 0 })].map((b) => ({ ...b, nonce: findBadNonce(b) })),
    'insufficient-work',
  )
  const dup = r0()
  expect(
    [dup, { ...paramBlock(m, { index: 1, name: routerName(1), dependsOn: [meta] }) }].map((b, i) =>
      i === 1 ? resign(w, { ...b, payloadHash: dup.payloadHash }) : b,
    ),
    'duplicate-payload',
  )
  const many = Array.from({ length: 65 }, (_, i) => r0({ index: i }))
  expect(many, 'too-many-blocks')
  assert.equal(balanceOf(w.state, m.did), before - BigInt(fails), 'one fee per failed proposal, no bond')
  assert.equal(escrowBalance(w.state), 0n)
  assert.equal(readFamily(w.state, 'tiny-moe')?.nextIndex, 0)
  assert.deepEqual(listProposals(w.state), [])
  // A version that is not the latest.
  tx(w, w.owner, 'experts.meta', metaBody({ version: 2 }))
  refusedTx(w, m, 'experts.propose', body([r0()]), 'unknown-version')
})

/** A nonce whose digest fails 6 bits of difficulty. */
function findBadNonce(b: ParamBlockHeader): bigint {
  for (let n = 0n; ; n++) {
    const candidate = { ...b, nonce: n }
    if (!meetsDifficulty(powDigest(candidate), 6)) return n
  }
}

/** Re-signs and re-stamps a header after an edit. */
function resign(w: World, h: ParamBlockHeader): ParamBlockHeader {
  const signed = signParamBlock(w.miner.key, unsignedOf(h))
  return { ...signed, nonce: findNonce(signed, 6) as bigint }
}

// ---- decisions ---------------------------------------------------------------------------------------

test('a forged score is refused and its bond goes to the pool', () => {
  const w = world()
  const meta = createFamily(w)
  const before = balanceOf(w.state, w.miner.did)
  const id = propose(w, firstPair(w, meta), score(1_000_000n, 300_000))
  const events = attestAll(w, id, { score: score(2_000_000n, 300_000) })
  assert.equal(events.find((e) => e.type === 'experts.refused')?.attributes.reason, 'forged-score')
  assert.equal(readProposal(w.state, id)?.status, 'refused')
  assert.equal(readProposal(w.state, id)?.reason, 'forged-score')
  assert.equal(balanceOf(w.state, w.miner.did), before - 1n - 1_000n, 'bond kept')
  assert.equal(poolBalance(w.state), 1_000n)
  assert.deepEqual(paramIndex(w.state, 'tiny-moe', 1), [])
  // The accuracy is checked too.
  const id2 = propose(w, firstPair(w, meta, 2), score(2_000_000n, 310_000))
  attestAll(w, id2, { score: score(2_000_000n, 300_000) })
  assert.equal(readProposal(w.state, id2)?.reason, 'forged-score')
})

test('the decision uses stake-weighted medians: one lying validator does not move it', () => {
  const w = world()
  const meta = createFamily(w)
  const id = propose(w, firstPair(w, meta), CLAIM)
  block(w, [
    [w.validators[0]!, 'experts.attest', { proposal: id, score: score(9_000_000n, 0) }],
    [w.validators[1]!, 'experts.attest', { proposal: id, score: CLAIM }],
  ])
  assert.equal(readProposal(w.state, id)?.status, 'pending', '2/3 of the power is not more than 2/3')
  block(w, [[w.validators[2]!, 'experts.attest', { proposal: id, score: score(2_000_200n, 300_000) }]])
  assert.equal(readProposal(w.state, id)?.status, 'accepted')
  assert.equal(readProposal(w.state, id)?.score?.lossMicroNats, 2_000_200n)
})

test('a bad payload (faults from 2/3 of the attesters) is refused, bond kept', () => {
  const w = world()
  const meta = createFamily(w)
  const id = propose(w, firstPair(w, meta), CLAIM)
  attestAll(w, id, { fault: 'payload missing' })
  assert.equal(readProposal(w.state, id)?.reason, 'bad-payload')
  assert.equal(poolBalance(w.state), 1_000n)
})

test('replacing a block needs a gain of polMinGainMicroNats over the baseline, else the bond is kept', () => {
  const w = world()
  const { meta, hashes } = acceptedPair(w)
  const replace = () => [
    paramBlock(w.miner, {
      index: readFamily(w.state, 'tiny-moe')!.nextIndex,
      name: expertName(0, 0),
      dependsOn: [meta, hashes[0]!],
    }),
  ]
  const baseline = score(2_000_000n, 300_000)
  const before = balanceOf(w.state, w.miner.did)
  const weak = propose(w, replace(), score(1_999_500n, 300_000))
  assert.deepEqual(readProposal(w.state, weak)?.replaces, { [expertName(0, 0)]: hashes[1] })
  attestAll(w, weak, { score: score(1_999_500n, 300_000), baseline })
  assert.equal(readProposal(w.state, weak)?.reason, 'no-improvement')
  assert.equal(balanceOf(w.state, w.miner.did), before - 1n - 1_000n)
  const good = propose(w, replace(), score(1_990_000n, 310_000))
  attestAll(w, good, { score: score(1_990_000n, 310_000), baseline })
  assert.equal(readProposal(w.state, good)?.status, 'accepted')
  const history = blockHistory(w.state, 'tiny-moe', expertName(0, 0))
  assert.equal(history.length, 2)
  assert.equal(history[0]?.hash, hashes[1])
  assert.equal(paramIndex(w.state, 'tiny-moe', 1)[1]?.hash, history[1]?.hash)
})

test('a proposal whose slot changed since it was made is stale (bond returned); one left alone expires (bond returned)', () => {
  const w = world()
  const { meta, hashes } = acceptedPair(w)
  const next = () => readFamily(w.state, 'tiny-moe')!.nextIndex
  const a = propose(
    w,
    [paramBlock(w.miner, { index: next(), name: expertName(0, 0), dependsOn: [meta, hashes[0]!] })],
    score(1_900_000n, 300_000),
  )
  const b = propose(
    w,
    [paramBlock(w.miner, { index: next(), name: expertName(0, 0), dependsOn: [meta, hashes[0]!] })],
    score(1_800_000n, 300_000),
  )
  const before = balanceOf(w.state, w.miner.did)
  attestAll(w, a, { score: score(1_900_000n, 300_000), baseline: CLAIM })
  assert.equal(readProposal(w.state, a)?.status, 'accepted')
  attestAll(w, b, { score: score(1_800_000n, 300_000), baseline: score(1_900_000n, 300_000) })
  assert.equal(readProposal(w.state, b)?.reason, 'stale')
  assert.equal(balanceOf(w.state, w.miner.did), before + 2_000n, 'both bonds returned')
  const c = propose(
    w,
    [paramBlock(w.miner, { index: next(), name: expertName(0, 1), dependsOn: [meta, hashes[0]!] })],
    CLAIM,
  )
  const deadline = readProposal(w.state, c)!.deadline
  advanceTo(w, deadline - 1)
  assert.equal(readProposal(w.state, c)?.status, 'pending')
  const events = advanceTo(w, deadline)
  assert.equal(readProposal(w.state, c)?.status, 'expired')
  assert.equal(events.find((e) => e.type === 'experts.refused')?.attributes.status, 'expired')
  assert.equal(balanceOf(w.state, w.miner.did), before + 2_000n - 1n, 'bond back, one fee paid')
  assert.equal(escrowBalance(w.state), 0n)
  refusedTx(w, w.validators[0]!, 'experts.attest', { proposal: c, score: CLAIM }, 'not-pending')
})

// ---- forks -----------------------------------------------------------------------------------------

test('a new version carries compatible blocks into its ParamIndex; incompatible ones are refused with carry-shapes', () => {
  const w = world()
  const { hashes } = acceptedPair(w)
  refusedTx(
    w,
    w.owner,
    'experts.meta',
    metaBody({ version: 2, arch: { ...ARCH, dFf: 32 }, carry: [hashes[1]!] }),
    'carry-shapes',
  )
  refusedTx(
    w,
    w.owner,
    'experts.meta',
    metaBody({ version: 2, arch: { ...ARCH, expertsPerLayer: 8, topK: 2 }, carry: [hashes[0]!] }),
    'carry-shapes',
    /router/,
  )
  refusedTx(w, w.owner, 'experts.meta', metaBody({ version: 2, carry: ['cd'.repeat(32)] }), 'bad-carry')
  const v2 = metaBody({ version: 2, arch: { ...ARCH, dFf: 32 }, carry: [hashes[0]!] })
  tx(w, w.owner, 'experts.meta', v2)
  assert.deepEqual(paramIndex(w.state, 'tiny-moe', 2), [{ name: routerName(0), hash: hashes[0] }])
  assert.equal(paramIndex(w.state, 'tiny-moe', 1).length, 2, 'v1 is untouched')
  // v2's experts use v2's shapes and may depend on the carried router.
  const next = readFamily(w.state, 'tiny-moe')!.nextIndex
  const ok = paramBlock(w.miner, {
    index: next,
    version: 2,
    name: expertName(0, 0),
    dependsOn: [metaHash(v2), hashes[0]!],
    arch: { ...ARCH, dFf: 32 },
  })
  const id = propose(w, [ok], CLAIM)
  attestAll(w, id, { score: CLAIM })
  assert.equal(readProposal(w.state, id)?.status, 'accepted')
  assert.equal(paramIndex(w.state, 'tiny-moe', 2).length, 2)
  const old = paramBlock(w.miner, {
    index: next + 1,
    version: 2,
    name: expertName(0, 1),
    dependsOn: [metaHash(v2), hashes[0]!],
  })
  refusedTx(w, w.miner, 'experts.propose', { ...body([old]), version: 2 }, 'shapes')
})

// ---- usage and rewards ------------------------------------------------------------------------------

test('usage is paid into the pool; at the epoch edge the pool is split pro rata to the reward weight, nothing minted', () => {
  const w = world()
  const { meta, hashes } = acceptedPair(w)
  const other = paramBlock(w.outsider, { index: 2, name: expertName(0, 1), dependsOn: [meta, hashes[0]!] })
  const id = propose(w, [other], score(2_000_000n, 300_000), w.outsider)
  attestAll(w, id, { score: score(2_000_000n, 300_000), baseline: CLAIM })
  const otherHash = blockHash(other)
  // A forged proposal adds a kept bond to the pool.
  const forged = propose(
    w,
    [paramBlock(w.miner, { index: 3, name: expertName(0, 2), dependsOn: [meta, hashes[0]!] })],
    score(1n, 0),
  )
  attestAll(w, forged, { score: CLAIM })
  assert.equal(poolBalance(w.state), 1_000n)
  const actors = [...w.validators, w.owner, w.miner, w.gateway, w.outsider]
  const held = () =>
    actors.reduce((s, a) => s + balanceOf(w.state, a.did), 0n) + poolBalance(w.state) + escrowBalance(w.state)
  const supply = totalSupply(w.state)
  const total = held()
  assert.equal(total + 30_000n, supply, 'every token is in an account, the pool, the escrow or bonded stake')
  refusedTx(
    w,
    w.gateway,
    'experts.usage',
    {
      family: 'tiny-moe',
      version: 1,
      entries: [{ block: hashes[1]!, calls: 1, latencyMs: 0 }],
      generations: 1,
      extra: 1,
    },
    'malformed',
  )
  tx(w, w.gateway, 'experts.usage', {
    family: 'tiny-moe',
    version: 1,
    entries: [
      { block: hashes[1]!, calls: 100, latencyMs: 50_000 },
      { block: otherHash, calls: 300, latencyMs: 0 },
    ],
    generations: 4,
  })
  assert.equal(poolBalance(w.state), 1_400n)
  assert.equal(readUsage(w.state, hashes[1]!)?.epochCalls, 100n)
  assert.equal(readFamily(w.state, 'tiny-moe')?.calls, 400n)
  const minerBefore = balanceOf(w.state, w.miner.did)
  const outsiderBefore = balanceOf(w.state, w.outsider.did)
  const events = advanceTo(w, 20)
  const rewards = events.filter((e) => e.type === 'experts.reward')
  assert.equal(rewards.length, 2)
  // miner's expert: usage 1.0, speed 2 − 0.5 = 1.5, quality 1.3 → 1 950 000
  // outsider's:     usage 2.0, speed 2.0,         quality 1.3 → 5 200 000
  const weightOf = (h: string) => rewards.find((e) => e.attributes.block === h)?.attributes.weightPpm
  assert.equal(weightOf(hashes[1]!), '1950000')
  assert.equal(weightOf(otherHash), '5200000')
  const minerShare = (1_400n * 1_950_000n) / 7_150_000n
  const outsiderShare = (1_400n * 5_200_000n) / 7_150_000n
  assert.equal(balanceOf(w.state, w.miner.did) - minerBefore, minerShare)
  assert.equal(balanceOf(w.state, w.outsider.did) - outsiderBefore, outsiderShare)
  assert.equal(poolBalance(w.state), 1_400n - minerShare - outsiderShare, 'the rounding stays in the pool')
  assert.equal(totalSupply(w.state), supply, 'nothing minted')
  assert.equal(held(), total, 'money conserved')
  assert.equal(readUsage(w.state, hashes[1]!)?.epochCalls, 0n, 'epoch counters reset')
  assert.equal(readUsage(w.state, hashes[1]!)?.rewards, minerShare)
  assert.equal(readUsage(w.state, hashes[1]!)?.calls, 100n)
  assert.equal(readFamily(w.state, 'tiny-moe')?.epochCalls, 0n)
  assert.equal(advanceTo(w, 40).filter((e) => e.type === 'experts.reward').length, 0, 'no usage, no reward')
})

// ---- genesis --------------------------------------------------------------------------------------

test('genesis loads MetaBlocks and accepted blocks (signatures checked, no work), and survives its JSON', () => {
  const owner = world().owner
  const meta = metaBody()
  const mh = metaHash(meta)
  const router = signParamBlock(owner.key, {
    index: 0,
    chainId: 'tiny-moe',
    version: 1,
    dependsOn: [mh],
    blockType: 'router',
    expertName: routerName(0),
    layerId: 0,
    payloadHash: cid('genesis router'),
    payloadBytes: 128,
    shapes: { weight: [4, 8] },
  })
  const experts = {
    metas: [{ owner: owner.did, body: meta }],
    blocks: [{ header: router, score: score(3_000_000n, 100_000) }],
  }
  const w = world({ experts })
  assert.equal(readFamily(w.state, 'tiny-moe')?.owner, owner.did)
  assert.deepEqual(paramIndex(w.state, 'tiny-moe', 1), [{ name: routerName(0), hash: blockHash(router) }])
  assert.equal(readBlock(w.state, blockHash(router))?.status, 'accepted')
  assert.equal(readFamily(w.state, 'tiny-moe')?.nextIndex, 1)
  const again = parseGenesis(JSON.parse(JSON.stringify(genesisToJson(w.genesis))))
  assert.deepEqual(again.experts, w.genesis.experts)
  assert.throws(
    () => world({ experts: { ...experts, blocks: [{ header: { ...router, payloadSig: new Uint8Array(64) } }] } }),
    (err: unknown) => err instanceof GenesisError && /bad-signature/.test(err.message),
  )
  assert.throws(
    () => world({ experts: { metas: [], blocks: experts.blocks } }),
    (err: unknown) => err instanceof GenesisError && /unknown-family/.test(err.message),
  )
})

test('genesis JSON without experts parameters takes the defaults and writes none of them', () => {
  const w = world({ params: { polBond: 1_000n, polDifficultyBits: 12, polWindowBlocks: 30, epochLength: 20 } })
  const json = genesisToJson({ ...w.genesis, params: { ...w.genesis.params, polDifficultyBits: 12 } }) as {
    params: Record<string, unknown>
  }
  assert.equal(json.params.polBond, undefined)
  assert.equal(json.params.polDifficultyBits, undefined)
  const parsed = parseGenesis({ ...json, params: { ...json.params, polBond: '5' } })
  assert.equal(parsed.params.polBond, 5n)
  assert.equal(parsed.params.expertCallPrice, 1n)
  assert.equal(BALANCE, 1_000_000n)
})
