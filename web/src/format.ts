// Formatting for people: amounts with thousands separators (exact: bigint), sizes, durations, times.

export function amount(text: string | undefined): string {
  if (text === undefined) return '–'
  try {
    return BigInt(text).toLocaleString('en-US')
  } catch {
    return text
  }
}

/** Bytes in the unit that suits them (decimal: 84.0 MB), as the CLI's progress bar shows them. */
export function size(bytes: number): string {
  for (const [unit, name] of [
    [1e12, 'TB'],
    [1e9, 'GB'],
    [1e6, 'MB'],
    [1e3, 'kB'],
  ] as const)
    if (bytes >= unit) return `${(bytes / unit).toFixed(1)} ${name}`
  return `${bytes} B`
}

export function seconds(value: number): string {
  if (value < 1) return `${Math.round(value * 1000)} ms`
  if (value < 120) return `${value.toFixed(1)} s`
  if (value < 7200) return `${Math.round(value / 60)} min`
  return `${(value / 3600).toFixed(1)} h`
}

export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString()
}

export function ago(ms: number | undefined, now = Date.now()): string {
  if (ms === undefined) return '–'
  return `${seconds(Math.max(0, now - ms) / 1000)} ago`
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
