// Attacks on the expert-call protocol (/donghae/experts/call/1): lying and oversized requests
// are refused as the sender's fault before any computation, a flood past the per-peer byte budget
// is answered OverBudget, a host that answers with the wrong size is failed over, and a host that
// answers garbage is caught by an audit and quarantined.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as dagCbor from '@ipld/dag-cbor'
import { DecodeError } from '../../src/core/errors.ts'
import { createRng } from '../../src/core/rng.ts'
import { OverBudgetError } from '../../src/core/transport.ts'
import {
  EXPERT_CALL_PROTOCOL,
  MAX_CALL_BYTES,
  encodeCallAnswer,
  encodeCallRequest,
  floatsToBytes,
} from '../../src/experts/net/protocol.ts'
import { expertHostKey } from '../../src/experts/net/directory.ts'
import { ExpertSwarm, referenceExpert, testCall } from '../../src/experts/net/swarm.ts'

function rawRequest(fields: Record<string, unknown>): Uint8Array {
  const call = testCall(0, 0)
  return dagCbor.encode({
    family: 'test-moe',
    version: 1,
    block: call.block,
    layer: 0,
    expert: 0,
    rows: call.rows,
    dModel: 4,
    input: floatsToBytes(call.input),
    deadlineMs: 1_000,
    ...fields,
  })
}

async function refusal(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (err) {
    return err
  }
  return assert.fail('expected a refusal')
}

test('a lying or oversized request is refused as the sender’s fault before the expert runs', async () => {
  const swarm = new ExpertSwarm()
  const block = testCall(0, 0).block
  const host = await swarm.addHost('did:host', [block])
  const attacker = swarm.hub.join('did:attacker')
  const cases: Array<[string, Uint8Array]> = [
    ['rows·dModel ≠ bytes (claims 4096 rows, sends 8)', rawRequest({ rows: 4_096 })],
    ['bytes beyond rows·dModel·4', rawRequest({ input: new Uint8Array(1_000) })],
    ['rows over the limit', rawRequest({ rows: 5_000, input: new Uint8Array(5_000 * 16) })],
    ['dModel over the limit', rawRequest({ rows: 1, dModel: 20_000, input: new Uint8Array(80_000) })],
    ['over 16 MiB in all', new Uint8Array(MAX_CALL_BYTES + 16)],
    ['not dag-cbor', new Uint8Array([0xff, 0x00])],
  ]
  for (const [what, bytes] of cases) {
    const err = await refusal(attacker.request('did:host', EXPERT_CALL_PROTOCOL, bytes, { session: true }))
    const cause = (err as { cause?: unknown }).cause
    assert.ok(cause instanceof DecodeError, what)
    assert.equal(cause.action, 'reject', `${what}: the transport penalizes the sender`)
  }
  assert.equal(host.calls, 0, 'the expert never ran')
  assert.equal(host.stats.malformed, cases.length)
})

test('a flood beyond the per-peer byte budget is answered OverBudget, and the coordinator does not blame the host', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(0, 0, 16, 16) // 1 KiB answers
  await swarm.addHost('did:host', [call.block], 'honest', { budget: { bytes: 4_096, perMs: 60_000 } })
  const attacker = swarm.hub.join('did:flood')
  const request = encodeCallRequest({
    family: 'test-moe',
    version: 1,
    block: call.block,
    layer: 0,
    expert: 0,
    rows: 16,
    dModel: 16,
    input: floatsToBytes(call.input),
    deadlineMs: 1_000,
  })
  let answered = 0
  let overBudget = 0
  for (let i = 0; i < 20; i++) {
    try {
      await attacker.request('did:host', EXPERT_CALL_PROTOCOL, request, { session: true })
      answered++
    } catch (err) {
      assert.ok(err instanceof OverBudgetError)
      overBudget++
    }
  }
  assert.ok(answered >= 3 && answered <= 5, `answered ${answered}`)
  assert.equal(overBudget, 20 - answered)
  assert.ok((swarm.hosts.get('did:host')?.calls ?? 0) <= 5, 'refused calls never ran')
  // Another peer still has its own budget.
  const { experts } = swarm.client('did:gw', { callTimeoutMs: 500 })
  assert.equal((await experts.runLayer([call]))[0]?.host, 'did:host')
  // An over-budget refusal reroutes without counting as the host's failure.
  const greedy = swarm.client('did:greedy', { callTimeoutMs: 500 }).experts
  for (let i = 0; i < 8; i++) await greedy.runLayer([call]).catch(() => {})
  assert.equal(greedy.host('did:host')?.failures ?? 0, 0)
})

test('a host that answers with the wrong size is failed and the call re-routed', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(0, 3)
  // did:a serves the protocol itself, answering one value short.
  const liar = swarm.hub.join('did:a')
  liar.handle(EXPERT_CALL_PROTOCOL, async () => encodeCallAnswer(new Float32Array(call.input.length - 1)), {
    session: true,
  })
  const keyed = swarm.routing.for('did:a')
  await keyed.provide(expertHostKey(call.block), new AbortController().signal)
  await swarm.addHost('did:b', [call.block])
  const { experts } = swarm.client('did:gw', { callTimeoutMs: 500 })
  const [answer] = await experts.runLayer([call])
  assert.equal(answer?.host, 'did:b')
  assert.deepEqual(answer?.output, referenceExpert(call))
  assert.equal(experts.host('did:a')?.failures, 1)
  assert.equal(experts.stats().failovers, 1)
})

test('a host answering garbage values is caught by an audit and quarantined', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(1, 2)
  await swarm.addHost('did:a-garbage', [call.block], 'garbage')
  await swarm.addHost('did:b', [call.block])
  await swarm.addHost('did:c', [call.block])
  const { experts } = swarm.client('did:gw', {
    callTimeoutMs: 500,
    auditPpm: 1_000_000,
    toleranceMicro: 100,
    rng: createRng(42),
  })
  const [first] = await experts.runLayer([call])
  assert.equal(first?.host, 'did:a-garbage', 'the garbage is used once: audits are after the fact')
  await experts.idle()
  assert.ok(experts.isQuarantined('did:a-garbage'))
  assert.ok(!experts.isQuarantined('did:b') && !experts.isQuarantined('did:c'))
  assert.equal(experts.stats().audits.failed, 1)
  for (let i = 0; i < 5; i++) {
    const [answer] = await experts.runLayer([call])
    assert.notEqual(answer?.host, 'did:a-garbage')
    assert.deepEqual(answer?.output, referenceExpert(call))
  }
  await experts.idle()
  assert.equal(experts.stats().audits.failed, 1)
})
