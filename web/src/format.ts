// Formatting for people: amounts with thousands separators (exact: bigint), durations, times.

export function amount(text: string | undefined): string {
  if (text === undefined) return '–'
  try {
    return BigInt(text).toLocaleString('en-US')
  } catch {
    return text
  }
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
