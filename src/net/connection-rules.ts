/**
 * The process-wide changes a Donghae node makes to libp2p's connections, in one place so that
 * `createHost` and the scale simulation's nodes (src/net/sim/node.ts) install the same ones:
 * yamux window updates once half a window is used (yamux-window.ts), and Noise's frame decoder
 * without a new error per chunk read (lp-decoder.ts). Idempotent.
 */
import { quietLengthPrefixes } from './lp-decoder.ts'
import { halfWindowUpdates } from './yamux-window.ts'

export function installConnectionRules(): void {
  halfWindowUpdates()
  quietLengthPrefixes()
}
