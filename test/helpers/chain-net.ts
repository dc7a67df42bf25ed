/** In-process networks of real nodes (real LevelDB, real consensus engine, real PoH) over a MemoryHub. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { DonghaeNode } from '../../src/node/index.ts'
import { MemoryHub } from '../../src/net/memory-transport.ts'
import type { GenesisDoc } from '../../src/chain/genesis.ts'
import { makeGenesis, type Actor } from './chain.ts'

/** Fast consensus for tests: sub-second rounds, cheap PoH. */
export const FAST_PARAMS = {
  timeoutProposeMs: 400,
  timeoutProposeDeltaMs: 100,
  timeoutPrevoteMs: 200,
  timeoutPrevoteDeltaMs: 100,
  timeoutPrecommitMs: 200,
  timeoutPrecommitDeltaMs: 100,
  timeoutCommitMs: 50,
  hashesPerTick: 200,
  ticksPerSecond: 50,
}

export interface TestNet {
  hub: MemoryHub
  genesis: GenesisDoc
  nodes: Map<string, DonghaeNode>
  dirs: Map<string, string>
  start(who: Actor): Promise<DonghaeNode>
  stop(who: Actor): Promise<void>
  close(): Promise<void>
}

export async function testNet(
  validators: Actor[],
  genesis: GenesisDoc = makeGenesis(
    validators,
    validators.map((v) => [v, 1_000_000n]),
    FAST_PARAMS,
  ),
  poh: 'worker' | 'inline' = 'inline',
  nodeOptions: { pohIdleMs?: number; pohThreadDelayMs?: number } = {},
): Promise<TestNet> {
  const root = await mkdtemp(join(tmpdir(), 'donghae-net-'))
  const hub = new MemoryHub()
  const nodes = new Map<string, DonghaeNode>()
  const dirs = new Map<string, string>()
  const net: TestNet = {
    hub,
    genesis,
    nodes,
    dirs,
    async start(who) {
      const dataDir = dirs.get(who.did) ?? join(root, `node-${dirs.size}`)
      dirs.set(who.did, dataDir)
      const node = await DonghaeNode.create({
        dataDir,
        genesis,
        key: who.key,
        transport: hub.join(who.did),
        poh,
        gossipMs: 500,
        ...nodeOptions,
      })
      nodes.set(who.did, node)
      node.start()
      return node
    },
    async stop(who) {
      hub.setUp(who.did, false)
      await nodes.get(who.did)?.stop()
      nodes.delete(who.did)
      hub.leave(who.did)
    },
    async close() {
      for (const node of nodes.values()) await node.stop()
      nodes.clear()
      await rm(root, { recursive: true, force: true })
    },
  }
  for (const v of validators) await net.start(v)
  return net
}

/** Polls `check` every 50 ms until it returns true or `ms` passes (then throws with `what`). */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(50)
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}
