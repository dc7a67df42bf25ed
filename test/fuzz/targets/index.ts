/** The fuzz targets, in the order the runner visits them. */
import type { FuzzTarget } from '../harness.ts'
import { decoderTargets } from './decoders.ts'
import { httpTarget } from './http.ts'
import { cliTarget } from './cli.ts'
import { p2pTarget } from './p2p.ts'
import { netWireTargets } from './net-wire.ts'
import { txBodiesTarget } from './tx-bodies.ts'
import { blobsTarget } from './blobs.ts'

export const targets: readonly FuzzTarget[] = [
  ...decoderTargets,
  txBodiesTarget,
  blobsTarget,
  ...netWireTargets,
  httpTarget,
  cliTarget,
  p2pTarget,
]

export function targetNamed(name: string): FuzzTarget {
  const found = targets.find((t) => t.name === name)
  if (found === undefined)
    throw new Error(`no fuzz target ${name}; the targets are ${targets.map((t) => t.name).join(', ')}`)
  return found
}
