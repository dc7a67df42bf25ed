/**
 * An in-process provider table behind `ExpertRouting`, for tests and single-process networks:
 * every node's `ExpertRouting` (`routing.for(did)`) provides into, and finds providers in, one
 * shared table. Unlike the DHT it forgets a provider on `cancel`.
 */
import type { CID } from '../../core/cid.ts'
import { AbortError } from '../../core/errors.ts'
import type { ExpertRouting } from './directory.ts'

export class MemoryRouting {
  readonly #providers = new Map<string, Set<string>>()
  /** find and provide calls seen (tests assert on them). */
  finds = 0
  provides = 0

  for(did: string): ExpertRouting {
    return {
      provide: async (key: CID, signal: AbortSignal): Promise<void> => {
        if (signal.aborted) throw new AbortError()
        this.provides++
        const set = this.#providers.get(key.toString()) ?? new Set<string>()
        set.add(did)
        this.#providers.set(key.toString(), set)
      },
      findProviders: (key: CID, signal: AbortSignal): AsyncIterable<string> => {
        this.finds++
        const found = [...(this.#providers.get(key.toString()) ?? [])]
        return (async function* () {
          for (const provider of found) {
            if (signal.aborted) return
            yield provider
          }
        })()
      },
      cancel: async (key: CID): Promise<void> => {
        this.#providers.get(key.toString())?.delete(did)
      },
    }
  }

  /** Removes `did` from every key (the node left). */
  drop(did: string): void {
    for (const set of this.#providers.values()) set.delete(did)
  }
}
