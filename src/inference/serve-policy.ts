/**
 * Which registered models an operator lets their worker serve. Anyone can register a model on
 * chain; the operator decides what runs on their computer:
 *
 *   all                                   every registered model (the default)
 *   models:digits-mlp,bafkrei...            these names or CIDs only
 *   publishers:did:key:z6Mk...,did:key:z6Mk...  models registered by these accounts only
 *
 * Parsed once from a config string (`parseServePolicy`), then `allows(policy, record)` is a pure
 * check the worker makes before fetching or loading a model.
 */
import { parseCid } from '../core/cid.ts'
import { ConfigError } from '../core/errors.ts'
import { parseDidKey } from '../identity/did-key.ts'
import { MODEL_NAME_PATTERN } from './chain/decode.ts'
import type { ModelRecord } from './chain/state.ts'

export type ServePolicy =
  | { kind: 'all' }
  | { kind: 'models'; names: ReadonlySet<string>; cids: ReadonlySet<string> }
  | { kind: 'publishers'; dids: ReadonlySet<string> }

export const SERVE_ALL: ServePolicy = Object.freeze({ kind: 'all' })

/** Most entries in one policy (a config value, not a registry). */
export const MAX_POLICY_ENTRIES = 1_024

const USAGE = 'use all, models:<name or CID>,\u2026 or publishers:<did:key>,\u2026'

function fail(message: string, key: string): never {
  throw new ConfigError(`${key}: ${message}; ${USAGE}`, { details: { key } })
}

function entriesOf(list: string, key: string): string[] {
  const entries = list.split(',').map((e) => e.trim())
  if (entries.some((e) => e === '')) fail('an entry is empty', key)
  if (entries.length > MAX_POLICY_ENTRIES) fail(`more than ${MAX_POLICY_ENTRIES} entries`, key)
  return entries
}

function cidOrUndefined(text: string): string | undefined {
  try {
    return parseCid(text).toString()
  } catch {
    return undefined
  }
}

/**
 * Parses an operator's policy. `key` names the setting in errors (e.g. `DONGHAE_SERVE`). Throws
 * `ConfigError` for an unknown kind, an empty entry, a name that cannot be registered, a DID that
 * is not a did:key.
 */
export function parseServePolicy(text: string, key = 'serve'): ServePolicy {
  const value = text.trim()
  if (value === '' || value === 'all') return SERVE_ALL
  const colon = value.indexOf(':')
  const kind = colon < 0 ? value : value.slice(0, colon)
  const list = colon < 0 ? '' : value.slice(colon + 1)
  if (kind === 'models') {
    const names = new Set<string>()
    const cids = new Set<string>()
    for (const entry of entriesOf(list, key)) {
      const cid = cidOrUndefined(entry)
      if (cid !== undefined) cids.add(cid)
      else if (MODEL_NAME_PATTERN.test(entry)) names.add(entry)
      else fail(`${JSON.stringify(entry)} is neither a model name nor a CID`, key)
    }
    return { kind: 'models', names, cids }
  }
  if (kind === 'publishers') {
    const dids = new Set<string>()
    for (const entry of entriesOf(list, key)) {
      try {
        parseDidKey(entry)
      } catch {
        fail(`${JSON.stringify(entry)} is not a did:key`, key)
      }
      dids.add(entry)
    }
    return { kind: 'publishers', dids }
  }
  return fail(`unknown policy ${JSON.stringify(kind)}`, key)
}

/** Whether the policy lets this worker serve `model`. */
export function allows(policy: ServePolicy, model: Pick<ModelRecord, 'name' | 'cid' | 'owner'>): boolean {
  switch (policy.kind) {
    case 'all':
      return true
    case 'models':
      return policy.names.has(model.name) || policy.cids.has(model.cid)
    case 'publishers':
      return policy.dids.has(model.owner)
  }
}

/** The policy as its config string (names and CIDs, or DIDs, sorted). */
export function formatServePolicy(policy: ServePolicy): string {
  switch (policy.kind) {
    case 'all':
      return 'all'
    case 'models':
      return `models:${[...policy.names, ...policy.cids].sort().join(',')}`
    case 'publishers':
      return `publishers:${[...policy.dids].sort().join(',')}`
  }
}
