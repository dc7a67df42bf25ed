// `--param key=value` for the commands that make a genesis (`donghae genesis`, `donghae devnet`).
import { DEFAULT_PARAMS } from '../chain/genesis.ts'
import { CliError } from './errors.ts'

/**
 * `--param key=value` options as genesis JSON parameters: bigint ones as decimal strings, the
 * others as numbers (parseGenesis checks the values); an unknown key is a CliError naming the known.
 */
export function parseParamOverrides(specs: readonly string[]): Record<string, unknown> {
  const params: Record<string, unknown> = {}
  for (const spec of specs) {
    const eq = spec.indexOf('=')
    const key = spec.slice(0, eq)
    if (eq < 1 || !(key in DEFAULT_PARAMS))
      throw new CliError(
        `--param ${JSON.stringify(spec)}: expected key=value with a key among ${Object.keys(DEFAULT_PARAMS).join(', ')}`,
      )
    const value = spec.slice(eq + 1)
    params[key] = typeof DEFAULT_PARAMS[key as keyof typeof DEFAULT_PARAMS] === 'bigint' ? value : Number(value)
  }
  return params
}
