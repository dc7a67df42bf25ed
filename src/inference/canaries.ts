/**
 * Canary material. A canary is a job whose answer the gateway computes itself; to be worth
 * anything it must look like any other job to the worker that runs it. So canaries are made of
 * real clients' inputs (the distribution a worker sees anyway), taken from recent jobs, and sent
 * to a worker other than the one that ran those inputs: that worker has never seen them, so it
 * cannot recognise a repeat.
 */
import { randomInt } from 'node:crypto'
import type { TensorMap } from './tensor.ts'

/** Recent client inputs kept per model. */
export const CANARY_POOL = 64

export interface CanaryDraw {
  inputs: TensorMap
  /** The worker that ran these inputs for a client: never the canary's worker. */
  ranBy: string
}

export class CanaryPool {
  readonly #pools = new Map<string, CanaryDraw[]>()
  readonly #size: number
  readonly #random: (n: number) => number

  constructor(options: { size?: number; random?: (n: number) => number } = {}) {
    this.#size = options.size ?? CANARY_POOL
    this.#random = options.random ?? ((n) => randomInt(n))
  }

  /** Keeps a client job's inputs for model `cid`; when the pool is full a random entry gives way. */
  remember(cid: string, inputs: TensorMap, ranBy: string): void {
    let pool = this.#pools.get(cid)
    if (pool === undefined) this.#pools.set(cid, (pool = []))
    if (pool.length < this.#size) pool.push({ inputs, ranBy })
    else pool[this.#random(this.#size)] = { inputs, ranBy }
  }

  /** Inputs for a canary on `cid`, drawn uniformly from the pool; undefined while it is empty. */
  draw(cid: string): CanaryDraw | undefined {
    const pool = this.#pools.get(cid)
    if (pool === undefined || pool.length === 0) return undefined
    return pool[this.#random(pool.length)]
  }

  size(cid: string): number {
    return this.#pools.get(cid)?.length ?? 0
  }
}
