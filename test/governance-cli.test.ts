// `donghae gov` and the GET /v1/gov routes, in process: the real CLI commands (registered on a
// program here, as src/cli/main.ts registers them) sign with keystores in temporary homes and
// talk to the real API server over a MemoryChain with the bank, staking and governance modules
// (consensus stands in as `commitPending`). Two validators propose, vote and watch a parameter
// change at the height the proposal names; the routes appear in the OpenAPI document; bad
// changes and votes are refused with one line before anything is signed.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, mkdir, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { Command } from 'commander'
import type { FastifyInstance } from 'fastify'
import { createApiServer } from '../src/api/server.ts'
import { governanceRoutes } from '../src/api/routes/governance.ts'
import type { GovParamsView, ProposalView } from '../src/api/governance-api.ts'
import { StateMachine } from '../src/chain/host.ts'
import { bankModule, feeCollector } from '../src/bank/bank.ts'
import { stakingModule } from '../src/staking/staking.ts'
import { governanceModule } from '../src/governance/chain/module.ts'
import { governedUint } from '../src/governance/params.ts'
import { encryptKeystore, writeKeystoreFile } from '../src/identity/keystore.ts'
import { NodeGovernance } from '../src/node/governance.ts'
import { registerChain } from '../src/cli/commands/chain.ts'
import { registerGovernance } from '../src/cli/commands/governance.ts'
import type { CliIo } from '../src/cli/context.ts'
import { isDonghaeError } from '../src/core/errors.ts'
import { actor, makeGenesis, type Actor } from './helpers/chain.ts'
import { MemoryChain } from './helpers/memory-chain.ts'

const PASSWORD = 'correct horse battery'
const v0 = actor()
const v1 = actor()
let dir: string
let chain: MemoryChain
let app: FastifyInstance
let url: string
const homes = new Map<Actor, string>()

async function writeHome(who: Actor, name: string): Promise<void> {
  const home = join(dir, name)
  await mkdir(home, { recursive: true })
  const file = await encryptKeystore(who.key, PASSWORD, { scrypt: { logN: 12, r: 8, p: 1 } })
  await writeKeystoreFile(join(home, 'keystore.json'), file)
  homes.set(who, home)
}

/** Runs `donghae <args>` in process; returns the exit code and what it printed. */
async function gov(who: Actor, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = new PassThrough().on('data', (c: Buffer) => (stdout += c.toString()))
  const err = new PassThrough().on('data', (c: Buffer) => (stderr += c.toString()))
  const io: CliIo = {
    stdout: out,
    stderr: err as unknown as NodeJS.WriteStream,
    stdin: new PassThrough() as unknown as NodeJS.ReadStream,
    env: { DONGHAE_PASSWORD: PASSWORD },
  }
  const program = new Command('donghae').option('--home <dir>').option('--log-level <level>').exitOverride()
  registerChain(program, io)
  registerGovernance(program, io)
  let code = 0
  try {
    await program.parseAsync(['--home', homes.get(who) as string, 'gov', ...args, '--api', url], { from: 'user' })
  } catch (e) {
    if (!isDonghaeError(e)) throw e
    stderr += `donghae: ${e.message}\n`
    code = 1
  }
  await new Promise((r) => setImmediate(r))
  return { code, stdout, stderr }
}

async function json<T>(who: Actor, args: string[]): Promise<T> {
  const result = await gov(who, [...args, '--json'])
  assert.equal(result.code, 0, result.stderr)
  return JSON.parse(result.stdout) as T
}

/** Runs a transaction command with --wait, committing a block once it reaches the mempool. */
async function committed<T>(who: Actor, args: string[]): Promise<T> {
  const running = json<T>(who, [...args, '--wait'])
  while (chain.mempool.size === 0) await new Promise((r) => setTimeout(r, 10))
  chain.commitPending()
  return running
}

function advanceTo(height: number): void {
  while (chain.height < height) chain.commitPending()
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'donghae-gov-cli-'))
  const genesis = makeGenesis(
    [v0, v1],
    [
      [v0, 1_000_000n],
      [v1, 1_000_000n],
    ],
    // not the default: a core parameter's default is the genesis value, not DEFAULT_PARAMS'
    { maxBlockTxs: 4_000 },
  )
  const machine = new StateMachine({
    chainId: genesis.chainId,
    modules: [bankModule, stakingModule(genesis.params), governanceModule(genesis.params)],
    fees: feeCollector,
    minFee: genesis.params.minFee,
  })
  chain = new MemoryChain({ genesis, validators: [v0, v1], machine })
  app = createApiServer({ chain })
  // what the lead's wiring in server.ts does for a node
  app.register(governanceRoutes, {
    governance: new NodeGovernance({ state: () => chain.state, height: () => chain.height, genesis }),
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  await writeHome(v0, 'v0')
  await writeHome(v1, 'v1')
})

after(async () => {
  await app?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

test('gov propose, vote, show and params: a parameter changes at the height the proposal names', async () => {
  const params = await json<GovParamsView>(v0, ['params'])
  const period = params.params.find((p) => p.name === 'governance.votingPeriodBlocks')
  const old = period?.value as string
  assert.deepEqual([period?.default, period?.governed], [old, false])
  assert.equal(params.fixed.maxBlockTxs, 4_000)
  assert.equal(params.fixed.minFee, '1')
  // the core chain parameters: default and value the genesis one, bounds those on this chain
  const view = (name: string) => params.params.find((p) => p.name === name)
  const minFee = view('chain.minFee')
  assert.deepEqual(
    [minFee?.value, minFee?.default, minFee?.governed, minFee?.min, minFee?.max],
    ['1', '1', false, '1', '1000000'],
  )
  const blockTxs = view('chain.maxBlockTxs')
  assert.deepEqual([blockTxs?.value, blockTxs?.default, blockTxs?.min, blockTxs?.max], ['4000', '4000', '16', '4000'])
  assert.deepEqual([view('staking.unbondingBlocks')?.value, view('staking.unbondingBlocks')?.min], ['100', '100'])
  for (const name of ['staking.slashDoubleSignBps', 'staking.minBond', 'staking.blockReward', 'staking.maxValidators'])
    assert.ok(view(name) !== undefined, name)
  const printed = await gov(v0, ['params'])
  assert.match(printed.stdout, /chain\.minFee +1 +genesis; 1\.\.1000000/)
  assert.match(printed.stdout, /consensus timeouts, proof of history/)

  const H = 20 + Number(old) + 5
  const proposed = await committed<{ proposal: number; status: string; height: number; ok: boolean }>(v0, [
    'propose',
    '--title',
    'Faster votes',
    '--description',
    'Vote for 12 blocks',
    '--change',
    'governance.votingPeriodBlocks=12',
    '--change',
    'inference.modelAllowList=digits-mlp,tiny-lm',
    '--apply-at-height',
    String(H),
    '--deposit',
    '10000',
  ])
  assert.deepEqual([proposed.ok, proposed.proposal, proposed.status], [true, 1, 'voting'])
  await committed(v0, ['vote', '1', 'yes'])
  await committed(v1, ['vote', '1', 'no'])
  await committed(v1, ['vote', '1', 'yes']) // changed: counts once

  const shown = await json<ProposalView>(v0, ['show', '1'])
  assert.equal(shown.status, 'voting')
  assert.deepEqual(shown.changes, [
    { param: 'governance.votingPeriodBlocks', value: '12' },
    { param: 'inference.modelAllowList', value: ['digits-mlp', 'tiny-lm'] },
  ])
  assert.deepEqual(
    [shown.tally?.yes, shown.tally?.no, shown.tally?.totalPower, shown.tally?.final, shown.tally?.outcome],
    ['20000', '0', '20000', false, 'passed'],
  )
  assert.deepEqual(
    shown.votes?.map((v) => v.option),
    ['yes', 'yes'],
  )
  const text = await gov(v0, ['show', '1'])
  assert.match(text.stdout, /^proposal 1 {2}voting$/m)
  assert.match(text.stdout, /passes so far/)

  advanceTo(shown.votingEndHeight as number)
  const decided = await json<ProposalView>(v0, ['show', '1'])
  assert.deepEqual([decided.status, decided.applyHeight, decided.tally?.final], ['passed', H, true])

  advanceTo(H - 1)
  const still = await json<GovParamsView>(v0, ['params'])
  assert.equal(still.params.find((p) => p.name === 'governance.votingPeriodBlocks')?.value, old)
  chain.commitPending()
  const now = await json<GovParamsView>(v0, ['params'])
  const changed = now.params.find((p) => p.name === 'governance.votingPeriodBlocks')
  assert.deepEqual([changed?.value, changed?.governed, changed?.changedAt, changed?.proposal], ['12', true, H, 1])
  assert.deepEqual(now.params.find((p) => p.name === 'inference.modelAllowList')?.value, ['digits-mlp', 'tiny-lm'])
  // the history answers past heights, and agrees with the state the chain had then
  const before = await json<GovParamsView>(v0, ['params', '--height', String(H - 1)])
  assert.equal(before.params.find((p) => p.name === 'governance.votingPeriodBlocks')?.value, old)
  assert.equal(governedUint(chain.stateAt(H - 1)!, 'governance.votingPeriodBlocks', 0n), 0n, 'not set before H')
  assert.equal(governedUint(chain.stateAt(H)!, 'governance.votingPeriodBlocks', 0n), 12n)
  const listed = await json<{ proposals: ProposalView[] }>(v0, ['show'])
  assert.deepEqual(
    listed.proposals.map((p) => [p.id, p.status, p.appliedHeight]),
    [[1, 'applied', H]],
  )

  // the new voting period governs the next proposal
  const next = await committed<{ proposal: number; height: number }>(v1, [
    'propose',
    '--title',
    'Bigger arena pools',
    '--description',
    'x',
    '--change',
    'arena.minRewardPool=5000',
    '--deposit',
    '10000',
  ])
  const second = await json<ProposalView>(v1, ['show', String(next.proposal)])
  assert.equal(second.votingEndHeight, next.height + 12)
})

test('bad changes and votes are refused before signing, with one line', async () => {
  const cases: Array<[string[], RegExp]> = [
    [
      ['propose', '--title', 't', '--description', 'd', '--change', 'chain.epochLength=10', '--deposit', '1'],
      /not a governed parameter/,
    ],
    [
      ['propose', '--title', 't', '--description', 'd', '--change', 'chain.maxBlockTxs=6000', '--deposit', '1'],
      /chain\.maxBlockTxs must be in 16\.\.4000 on this chain/,
    ],
    [
      ['propose', '--title', 't', '--description', 'd', '--change', 'staking.unbondingBlocks=0', '--deposit', '1'],
      /must be in 1\.\.10000000/,
    ],
    [
      ['propose', '--title', 't', '--description', 'd', '--change', 'governance.quorumBps=0', '--deposit', '1'],
      /must be in 500\.\.10000/,
    ],
    [
      ['propose', '--title', 't', '--description', 'd', '--change', 'governance.minDeposit', '--deposit', '1'],
      /PARAM=VALUE/,
    ],
    [
      ['propose', '--title', 't', '--description', 'd', '--change', 'governance.minDeposit=-5', '--deposit', '1'],
      /whole number/,
    ],
    [['vote', '1', 'maybe'], /must be one of yes, no, abstain, veto/],
    [['vote', 'x', 'yes'], /not a proposal id/],
    [['show', '99'], /no proposal 99/],
    [['params', '--height', '999999'], /above the latest committed height/],
  ]
  const pool = chain.mempool.size
  for (const [args, message] of cases) {
    const result = await gov(v0, args)
    assert.equal(result.code, 1, args.join(' '))
    assert.match(result.stderr, message, args.join(' '))
    assert.equal(result.stderr.trim().split('\n').length, 1)
  }
  assert.equal(chain.mempool.size, pool, 'nothing was sent')
  // a vote the chain refuses (proposal 1 is no longer voting) is included as failed, with its reason
  const running = gov(v0, ['vote', '1', 'yes', '--wait'])
  while (chain.mempool.size === pool) await new Promise((r) => setTimeout(r, 10))
  chain.commitPending()
  const late = await running
  assert.equal(late.code, 1)
  assert.match(late.stderr, /failed \(not-voting\); its fee was charged/)
})

test('the governance routes are in the OpenAPI document', async () => {
  const doc = (await (await fetch(`${url}/docs/json`)).json()) as { paths: Record<string, unknown> }
  for (const path of ['/v1/gov/proposals', '/v1/gov/proposals/{id}', '/v1/gov/params'])
    assert.ok(doc.paths[path] !== undefined, path)
})
