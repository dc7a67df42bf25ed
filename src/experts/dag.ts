/**
 * The parameter DAG's pure functions (seed 001 §8.1: "cycle detection ensures DAG validity,
 * topological sorting enables parallel expert evolution"). A proposal's blocks may depend on
 * each other through `#<index>` (the sibling whose header index is <index>); everything else a
 * block depends on is a hash already on chain, which cannot close a cycle (a hash names a block
 * that existed before this one). So cycles are only ever among a proposal's own blocks.
 */

/** `#<index>` -> the index, or undefined when `dep` is not a sibling reference. */
export function siblingRef(dep: string): number | undefined {
  const m = /^#(0|[1-9][0-9]{0,15})$/.exec(dep)
  return m === null ? undefined : Number(m[1])
}

export interface ResolvedDeps {
  /** For each block (by position): positions of the siblings it depends on. */
  internal: number[][]
  /** For each block: the hashes it depends on outside the proposal. */
  external: string[][]
  /** `#<index>` references that name no block of the proposal: [position, reference]. */
  unresolved: Array<[number, string]>
}

/** Resolves the `#<index>` references of a proposal's blocks to positions in `blocks`. */
export function resolveRefs(blocks: ReadonlyArray<{ index: number; dependsOn: readonly string[] }>): ResolvedDeps {
  const byIndex = new Map(blocks.map((b, i) => [b.index, i]))
  const internal: number[][] = []
  const external: string[][] = []
  const unresolved: Array<[number, string]> = []
  blocks.forEach((b, i) => {
    const ins: number[] = []
    const outs: string[] = []
    for (const dep of b.dependsOn) {
      if (!dep.startsWith('#')) {
        outs.push(dep)
        continue
      }
      const ref = siblingRef(dep)
      const at = ref === undefined ? undefined : byIndex.get(ref)
      if (at === undefined) unresolved.push([i, dep])
      else if (!ins.includes(at)) ins.push(at)
    }
    internal.push(ins)
    external.push(outs)
  })
  return { internal, external, unresolved }
}

/**
 * Kahn's algorithm over nodes 0..n-1 where `deps[i]` lists the nodes i depends on. Returns the
 * order (dependencies first; among ready nodes, the lowest first, so the order is deterministic)
 * or, when there is a cycle, the members of one cycle in path order.
 */
export function topoOrder(deps: readonly (readonly number[])[]): { order: number[] } | { cycle: number[] } {
  const n = deps.length
  const indegree = deps.map((d) => new Set(d).size)
  const dependents: number[][] = deps.map(() => [])
  deps.forEach((d, i) => {
    for (const j of new Set(d)) dependents[j]?.push(i)
  })
  const ready: number[] = []
  for (let i = 0; i < n; i++) if (indegree[i] === 0) ready.push(i)
  const order: number[] = []
  while (ready.length > 0) {
    ready.sort((a, b) => a - b)
    const next = ready.shift() as number
    order.push(next)
    for (const k of dependents[next] ?? []) {
      indegree[k] = (indegree[k] ?? 0) - 1
      if (indegree[k] === 0) ready.push(k)
    }
  }
  if (order.length === n) return { order }
  return { cycle: findCycle(deps) ?? [] }
}

/** The members of one cycle (path order), or undefined when the graph is acyclic. */
export function findCycle(deps: readonly (readonly number[])[]): number[] | undefined {
  const state = deps.map(() => 0) // 0 unseen, 1 on the path, 2 done
  for (let root = 0; root < deps.length; root++) {
    if (state[root] !== 0) continue
    // Iterative DFS: a stack of [node, next edge], the path being the stack's nodes.
    const stack: Array<[number, number]> = [[root, 0]]
    state[root] = 1
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as [number, number]
      const [node, edge] = top
      const next = deps[node]?.[edge]
      if (next === undefined) {
        state[node] = 2
        stack.pop()
        continue
      }
      top[1]++
      if (state[next] === 1) {
        const path = stack.map(([v]) => v)
        return path.slice(path.indexOf(next))
      }
      if (state[next] === 0) {
        state[next] = 1
        stack.push([next, 0])
      }
    }
  }
  return undefined
}
