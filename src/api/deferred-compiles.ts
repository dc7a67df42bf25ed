/** Compilations put off until their first use (serializers.ts, validators.ts), and those still waiting. */
export class DeferredCompiles {
  readonly #pending = new Set<() => unknown>()

  /** A function that runs `compile` at its first call (again after a throw) and then returns its result. */
  defer<T>(compile: () => T): () => T {
    let compiled: { value: T } | undefined
    const get = (): T => {
      if (compiled === undefined) {
        compiled = { value: compile() }
        this.#pending.delete(get)
      }
      return compiled.value
    }
    this.#pending.add(get)
    return get
  }

  /** How many compilations wait for their first use. */
  get waiting(): number {
    return this.#pending.size
  }

  /** Runs every compilation still waiting: one that cannot compile throws here. */
  compileAll(): void {
    for (const get of [...this.#pending]) get()
  }
}
