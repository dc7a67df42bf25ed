/**
 * A swarm of expert hosts in one process, over the in-memory transport and routing: for tests,
 * simulations and `localnet`-style demos. Each host serves `/donghae/experts/call/1` with a
 * behaviour (honest, slow, liar, wrong-size...) and announces the blocks it hosts; `client()`
 * builds a `RemoteExperts` with its own directory on the same hub.
 *
 * The "expert" is a stand-in: expert j of block b maps a row x to 2·x + j (honest hosts agree,
 * a liar does not), so tests check routing without a model runtime.
 */
import { sha256 } from '../../core/hash.ts'
import { toHex, utf8 } from '../../core/bytes.ts'
import { AbortError } from '../../core/errors.ts'
import type { ByteBudget } from '../../core/transport.ts'
import { MemoryHub, type MemoryTransport } from '../../net/memory-transport.ts'
import type { ExpertCall } from '../model/provider.ts'
import { RemoteExperts, type RemoteExpertsOptions } from './coordinator.ts'
import { ExpertDirectory } from './directory.ts'
import { MemoryRouting } from './memory-routing.ts'
import { serveExperts, type ServedCall, type ServeStats } from './protocol.ts'

/** How a swarm host answers. */
export type HostBehaviour = 'honest' | 'slow' | 'liar' | 'wrong-size' | 'garbage' | 'failing'

/** A 64-hex block hash for a test expert name. */
export function testBlock(name: string): string {
  return toHex(sha256(utf8(name)))
}

/** The stand-in expert: 2·x + expert. */
export function referenceExpert(call: Pick<ExpertCall, 'input' | 'expert'>): Float32Array {
  const out = new Float32Array(call.input.length)
  for (let i = 0; i < out.length; i++) out[i] = 2 * (call.input[i] as number) + call.expert
  return out
}

function behave(behaviour: HostBehaviour, call: ServedCall, signal: AbortSignal): Promise<Float32Array> {
  switch (behaviour) {
    case 'honest':
      return Promise.resolve(referenceExpert(call))
    case 'slow':
      return new Promise((_, reject) =>
        signal.addEventListener('abort', () => reject(new AbortError()), { once: true }),
      )
    case 'liar': {
      const out = referenceExpert(call)
      out[0] = (out[0] as number) + 5
      return Promise.resolve(out)
    }
    case 'garbage':
      return Promise.resolve(new Float32Array(call.input.length).map((_, i) => ((i * 7919) % 1000) / 3))
    case 'wrong-size':
      return Promise.resolve(new Float32Array(call.input.length + 1))
    case 'failing':
      return Promise.reject(new Error('the runtime crashed'))
  }
}

export interface SwarmHost {
  did: string
  transport: MemoryTransport
  directory: ExpertDirectory
  stats: ServeStats
  behaviour: HostBehaviour
  blocks: Set<string>
  /** Calls it ran. */
  calls: number
}

export class ExpertSwarm {
  readonly hub = new MemoryHub()
  readonly routing = new MemoryRouting()
  readonly hosts = new Map<string, SwarmHost>()

  /** Starts a host serving `blocks` and announces them. */
  async addHost(
    did: string,
    blocks: readonly string[],
    behaviour: HostBehaviour = 'honest',
    options: { budget?: ByteBudget; maxInFlight?: number } = {},
  ): Promise<SwarmHost> {
    const transport = this.hub.join(did)
    const directory = new ExpertDirectory({ routing: this.routing.for(did), self: did })
    const host: SwarmHost = {
      did,
      transport,
      directory,
      behaviour,
      blocks: new Set(blocks),
      calls: 0,
      stats: { served: 0, refused: 0, malformed: 0, inFlight: 0 },
    }
    host.stats = serveExperts({
      transport,
      hosts: (block) => host.blocks.has(block),
      run: (call, signal) => {
        host.calls++
        return behave(host.behaviour, call, signal)
      },
      ...(options.budget === undefined ? {} : { budget: options.budget }),
      ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
    })
    for (const block of blocks) await directory.announce(block)
    this.hosts.set(did, host)
    return host
  }

  /** A coordinator on its own node of the hub. */
  client(
    did: string,
    options: Partial<RemoteExpertsOptions> = {},
  ): { experts: RemoteExperts; directory: ExpertDirectory; transport: MemoryTransport } {
    const transport = this.hub.join(did)
    const directory = new ExpertDirectory({ routing: this.routing.for(did), self: did, minQueryIntervalMs: 0 })
    const experts = new RemoteExperts({ transport, directory, family: 'test-moe', version: 1, ...options })
    return { experts, directory, transport }
  }
}

/** One call of `rows`×`dModel` rows to expert `expert` of `layer`, with a deterministic input. */
export function testCall(layer: number, expert: number, rows = 2, dModel = 4): ExpertCall {
  const input = new Float32Array(rows * dModel).map((_, i) => (i + 1) / 8 + layer)
  return { layer, expert, block: testBlock(`layer${layer}.expert${expert}`), input, rows }
}
