/**
 * How each fault kind is done to real processes, and what this machine can do. `applyFault`
 * applies one fault and resolves to the function that lifts it.
 *
 * | kind      | apply                                       | lift                               | needs            |
 * | --------- | ------------------------------------------- | ---------------------------------- | ---------------- |
 * | kill      | SIGKILL                                     | start again from the data dir      | -                |
 * | pause     | SIGSTOP                                     | SIGCONT                            | -                |
 * | restart   | SIGTERM (graceful stop)                     | start again                        | -                |
 * | partition | nft drop between the side and the rest      | delete the table                   | root, ip, nft    |
 * | loss      | nft drop of p % from one node to another    | delete the table                   | root, ip, nft    |
 * | skew      | libfaketime offset file of the node         | offset back to +0                  | libfaketime      |
 * | disk-full | fallocate the rest of the node's data tmpfs | delete the file; start if it died  | root, fallocate  |
 */
import { appendFile, statfs, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Cluster } from './cluster.ts'
import { LIBFAKETIME_PATHS } from './constants.ts'
import { ChaosFaultError } from './errors.ts'
import { exec, netnsUnavailable, onPath, type NetLab } from './netlab.ts'
import type { Fault, FaultKind } from './schedule.ts'

export interface Capabilities {
  /** Why namespaces (partition, loss) cannot be used, or undefined when they can. */
  netns?: string
  /** libfaketime's library, or undefined. */
  faketime?: string
  /** Why a data tmpfs (disk-full) cannot be used, or undefined when it can. */
  tmpfs?: string
}

export function findLibfaketime(): string | undefined {
  return LIBFAKETIME_PATHS.find((p) => existsSync(p))
}

export async function probeCapabilities(): Promise<Capabilities> {
  const caps: Capabilities = {}
  const netns = await netnsUnavailable()
  if (netns !== undefined) caps.netns = netns
  const faketime = findLibfaketime()
  if (faketime !== undefined) caps.faketime = faketime
  if (process.platform !== 'linux' || process.getuid?.() !== 0) caps.tmpfs = 'not root: a data tmpfs needs mount (root)'
  else if (!onPath('fallocate')) caps.tmpfs = 'fallocate is not installed (apt-get install util-linux)'
  return caps
}

/** Why `kind` cannot run here, or undefined when it can. */
export function unavailableReason(kind: FaultKind, caps: Capabilities): string | undefined {
  switch (kind) {
    case 'partition':
    case 'loss':
      return caps.netns
    case 'skew':
      return caps.faketime === undefined ? 'libfaketime is not installed (apt-get install faketime)' : undefined
    case 'disk-full':
      return caps.tmpfs
    default:
      return undefined
  }
}

export interface FaultTarget {
  cluster: Cluster
  lab?: NetLab
}

const FILL_FILE = 'chaos-fill'
/** Left to `fallocate`'s own bookkeeping, then filled by appends until ENOSPC. */
const FILL_MARGIN = 1 << 20

/** Fills the file system of `data` to the last byte (a file in it); resolves to the function that frees it. */
export async function fillDisk(data: string): Promise<() => Promise<void>> {
  const fill = join(data, FILL_FILE)
  const fs = await statfs(data)
  const free = Number(fs.bavail) * Number(fs.bsize)
  // fallocate all but a margin the file's own metadata may need, then append until ENOSPC
  if (free > FILL_MARGIN) {
    const r = await exec('fallocate', ['-l', String(free - FILL_MARGIN), fill])
    if (r.code !== 0) throw new ChaosFaultError(`filling ${data} failed: ${r.stderr.trim()}`)
  }
  const chunk = new Uint8Array(4_096)
  for (let i = 0; i < (2 * FILL_MARGIN) / chunk.length; i++) {
    try {
      await appendFile(fill, chunk)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break
      throw new ChaosFaultError(`filling ${data} failed: ${(err as Error).message}`, { cause: err })
    }
  }
  return async () => {
    await rm(fill, { force: true })
  }
}

/** Applies `fault`; resolves to the function that lifts it. */
export async function applyFault(fault: Fault, target: FaultTarget): Promise<() => Promise<void>> {
  const { cluster, lab } = target
  const i = fault.node
  switch (fault.kind) {
    case 'kill':
      await cluster.kill(i)
      return () => cluster.start(i)
    case 'restart':
      await cluster.stop(i)
      return () => cluster.start(i)
    case 'pause':
      cluster.pause(i)
      return async () => cluster.resume(i)
    case 'partition':
      if (lab === undefined) throw new ChaosFaultError('partition needs network namespaces')
      return lab.partition(fault.id, fault.side ?? [i])
    case 'loss':
      if (lab === undefined) throw new ChaosFaultError('loss needs network namespaces')
      return lab.loss(fault.id, i, fault.to ?? (i + 1) % cluster.nodes.length, fault.percent ?? 100)
    case 'skew':
      await cluster.setSkew(i, fault.skewMs ?? 0)
      return () => cluster.setSkew(i, 0)
    case 'disk-full': {
      const free = await fillDisk(join(cluster.node(i).home, 'data'))
      return async () => {
        await free()
        // a node that stopped on a full disk is started again once there is room
        if (cluster.node(i).state === 'down') await cluster.start(i)
      }
    }
  }
}
