// Reads that refresh on a timer (and when `key` changes), for data the event stream does not carry.
import { useEffect, useState } from 'preact/hooks'

export interface Polled<T> {
  value: T | undefined
  error: unknown
}

export function usePoll<T>(read: (signal: AbortSignal) => Promise<T>, intervalMs: number, key: unknown = 0): Polled<T> {
  const [state, setState] = useState<Polled<T>>({ value: undefined, error: undefined })
  useEffect(() => {
    const abort = new AbortController()
    const run = (): void => {
      read(abort.signal).then(
        (value) => !abort.signal.aborted && setState({ value, error: undefined }),
        (error: unknown) => !abort.signal.aborted && setState((s) => ({ value: s.value, error })),
      )
    }
    run()
    const timer = setInterval(run, intervalMs)
    return () => {
      abort.abort()
      clearInterval(timer)
    }
  }, [intervalMs, key])
  return state
}
