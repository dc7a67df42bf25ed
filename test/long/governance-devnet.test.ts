// Governance on a running devnet of four validator processes over real libp2p sockets: node0
// proposes with the CLI that `governance.votingPeriodBlocks` go from its default (100) to 10 at
// height H; all four validators vote yes with the CLI; on every node GET /v1/gov/params shows
// the old value at every height below H and 10 from H on (polled as blocks commit, then asked at H−1 and H from the
// parameter's history), the raw state key is proven at the head, and a proposal made after H
// by node1 votes for 10 blocks: the new value is in force. The same proposal raises the core
// parameter `chain.minFee` from its genesis value 1 to 2: from H a transaction paying 1 is refused
// at admission (`fee-too-low`), and the CLI, reading the floor in force, pays 2.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decode } from '../../src/core/codec.ts'
import { fromHex, toHex, utf8 } from '../../src/core/bytes.ts'
import { governedKey } from '../../src/governance/params.ts'
import type { GovParamsView, ProposalView } from '../../src/api/governance-api.ts'
import type { ProofJson } from '../../src/api/schemas.ts'
import { runCli } from '../helpers/cli.ts'
import { createRng, testSeed } from '../helpers/random.ts'
import { waitFor } from '../helpers/chain-net.ts'
import { exited, firstJsonLine, getJson, spawnDevnet } from '../helpers/processes.ts'

interface DevnetNode {
  node: string
  did: string
  api: string
  home: string
}

interface DevnetInfo {
  password: string
  nodes: DevnetNode[]
}

const PARAM = 'governance.votingPeriodBlocks'
const FEE_PARAM = 'chain.minFee'
/** Time allowed for the proposal to be committed (CLI start, keystore, a block), as blocks at the measured rate. */
const PROPOSE_ALLOWANCE_MS = 15_000

async function height(api: string): Promise<number> {
  return (await getJson<{ height: number }>(`${api}/v1/status`))?.height ?? -1
}

function valueOf(view: GovParamsView | undefined): string | string[] | undefined {
  return view?.params.find((p) => p.name === PARAM)?.value
}

test('governance devnet: a proposal changes governance.votingPeriodBlocks on every node at the height it names', async (t) => {
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-governance-devnet-'))
  const base = 12_000 + rng.int(0, 200) * 8
  const { child: devnet, stderr } = spawnDevnet(dir, 4, base)
  const started = Date.now()
  try {
    const info = (await firstJsonLine(devnet)) as DevnetInfo
    const nodes = info.nodes
    const apis = nodes.map((n) => n.api)
    /** `donghae gov <args> --json` as node `n` (its home keystore; transactions also get the password file). */
    const gov = async (n: DevnetNode, args: string[], tx = false): Promise<Record<string, unknown>> => {
      const extra = tx ? ['--password-file', info.password] : []
      const out = await runCli(['--home', n.home, 'gov', ...args, ...extra, '--api', n.api, '--json'])
      assert.equal(out.code, 0, `${n.node}: donghae gov ${args.join(' ')}: ${out.stderr}`)
      return JSON.parse(out.stdout) as Record<string, unknown>
    }
    // the chain makes no empty blocks: every node answering is enough, the proposal makes blocks
    await waitFor(
      'every node to answer',
      async () => (await Promise.all(apis.map(height))).every((h) => h >= 0),
      60_000,
    )
    t.diagnostic(`devnet up in ${Date.now() - started} ms`)

    const before = await getJson<GovParamsView>(`${apis[0]}/v1/gov/params`)
    const spec = before?.params.find((p) => p.name === PARAM)
    const old = spec?.value as string
    assert.deepEqual([spec?.default, spec?.governed], [old, false])
    const fee = before?.params.find((p) => p.name === FEE_PARAM)
    assert.deepEqual([fee?.value, fee?.governed, before?.fixed.minFee], ['1', false, '1'], 'the genesis fee floor')
    const period = Number(old)
    const delay = Number(before?.params.find((p) => p.name === 'governance.minApplyDelayBlocks')?.value)
    // H leaves room for the proposal to be committed. The chain makes no empty blocks while idle,
    // so its rate now says nothing; once the proposal is open blocks come at most one per commit
    // timeout (timeoutCommitMs), which bounds how many can pass while the proposal is sent.
    const h1 = await height(apis[0] as string)
    const commitMs = Number(before?.fixed.timeoutCommitMs)
    const margin = Math.ceil(PROPOSE_ALLOWANCE_MS / commitMs) + 5
    const H = h1 + period + delay + margin
    t.diagnostic(`at most ${(1_000 / commitMs).toFixed(1)} blocks/s; ${old} → 10 at H = ${H}`)

    // node0 proposes; voting starts in the block that takes it (the deposit is the minimum)
    const proposed = await gov(
      nodes[0] as DevnetNode,
      [
        'propose',
        '--title',
        'Faster votes',
        '--description',
        'Vote for 10 blocks instead of 20.',
        '--change',
        `${PARAM}=10`,
        '--change',
        `${FEE_PARAM}=2`,
        '--apply-at-height',
        String(H),
        '--deposit',
        '10000',
        '--wait',
      ],
      true,
    )
    assert.equal(proposed.ok, true, JSON.stringify(proposed))
    const id = proposed.proposal as number
    assert.equal(proposed.status, 'voting')
    t.diagnostic(`proposal ${id} committed at ${String(proposed.height)}, applies at H = ${H}`)

    // all four validators vote yes, at once
    const voted = await Promise.all(nodes.map((n) => gov(n, ['vote', String(id), 'yes', '--wait'], true)))
    assert.ok(
      voted.every((v) => v.ok === true),
      JSON.stringify(voted),
    )
    const proposal = (await gov(nodes[1] as DevnetNode, ['show', String(id)])) as unknown as ProposalView
    assert.equal(proposal.tally?.yes, proposal.tally?.totalPower, 'every validator voted yes')
    assert.equal(proposal.applyHeight, H)

    // watch every node's effective value as blocks commit, until all are past H
    const seen: Array<{ node: string; height: number; value: unknown }> = []
    await waitFor(
      `every node past height ${H}`,
      async () => {
        const views = await Promise.all(apis.map((api) => getJson<GovParamsView>(`${api}/v1/gov/params`)))
        views.forEach(
          (v, i) => v !== undefined && seen.push({ node: nodes[i]?.node ?? '', height: v.height, value: valueOf(v) }),
        )
        return views.every((v) => v !== undefined && v.height >= H)
      },
      (H - (proposed.height as number) + 30) * 3_000,
    )
    const wrong = seen.filter((s) => s.value !== (s.height < H ? old : '10'))
    assert.deepEqual(wrong, [], 'the old value below H, the new one from H on')
    const around = seen.filter((s) => s.height >= H - 1 && s.height <= H)
    t.diagnostic(
      `observed around H: ${[...new Set(around.map((s) => `${s.node}@${s.height}=${String(s.value)}`))].join(' ')}`,
    )
    for (const n of nodes)
      assert.ok(
        seen.some((s) => s.node === n.node && s.height < H),
        `${n.node} was watched before H`,
      )

    for (const api of apis) {
      assert.equal(valueOf(await getJson<GovParamsView>(`${api}/v1/gov/params?height=${H - 1}`)), old, `${api} at H-1`)
      const at = await getJson<GovParamsView>(`${api}/v1/gov/params?height=${H}`)
      const param = at?.params.find((p) => p.name === PARAM)
      assert.deepEqual(
        [param?.value, param?.governed, param?.changedAt, param?.proposal],
        ['10', true, H, id],
        `${api} at H`,
      )
      const feeAt = at?.params.find((p) => p.name === FEE_PARAM)
      assert.deepEqual([feeAt?.value, feeAt?.governed, feeAt?.changedAt], ['2', true, H], `${api} fee at H`)
      const p = await getJson<ProposalView>(`${api}/v1/gov/proposals/${id}`)
      assert.deepEqual([p?.status, p?.appliedHeight], ['applied', H], api)
      // the raw state key at the head, with its proof against the state root
      const proof = await getJson<ProofJson>(`${api}/v1/state/proof?key=${toHex(utf8(governedKey(PARAM)))}`)
      assert.ok(proof?.value !== null && proof?.value !== undefined, api)
      assert.equal(BigInt(decode<number | bigint>(fromHex(proof.value))), 10n, api)
    }

    // the fee floor in force: paying the genesis floor is refused at admission
    const n1 = nodes[1] as DevnetNode
    const cheap = await runCli([
      ...['--home', n1.home, 'gov', 'propose', '--title', 'Cheap', '--description', 'x'],
      ...['--change', 'arena.minRewardPool=5000', '--deposit', '10000', '--fee', '1'],
      ...['--password-file', info.password, '--api', n1.api, '--json'],
    ])
    assert.equal(cheap.code, 1, cheap.stdout)
    assert.match(cheap.stderr, /fee-too-low|below the minimum 2/)

    // in force: node1's proposal made now votes for 10 blocks (the CLI pays the floor in force)
    const next = await gov(
      nodes[1] as DevnetNode,
      [
        'propose',
        '--title',
        'Bigger arena pools',
        '--description',
        'x',
        '--change',
        'arena.minRewardPool=5000',
        '--deposit',
        '10000',
        '--wait',
      ],
      true,
    )
    assert.equal(next.fee, '2')
    const second = await getJson<ProposalView>(`${apis[2]}/v1/gov/proposals/${String(next.proposal)}`)
    assert.equal(second?.votingEndHeight, (next.height as number) + 10)
    t.diagnostic(`done in ${Date.now() - started} ms`)
  } catch (err) {
    t.diagnostic(stderr().slice(-2000))
    throw err
  } finally {
    devnet.kill('SIGINT')
    await exited(devnet)
    await rm(dir, { recursive: true, force: true })
  }
})
