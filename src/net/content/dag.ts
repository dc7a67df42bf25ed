/**
 * What the content store needs to know of a UnixFS block: its links (with the cumulative size
 * each link declares), the file size a root declares, and whether bytes are the block a CID
 * names. Only raw and dag-pb blocks over sha2-256 (and inline identity CIDs) are handled.
 */
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { createHash } from 'node:crypto'
import { DAG_PB_CODE, RAW_CODE, type CID } from '../../core/cid.ts'
import { describeError } from '../../core/errors.ts'
import { ContentFormatError } from './errors.ts'

const SHA2_256 = 0x12
const IDENTITY = 0x00

export interface DagLink {
  cid: CID
  /** Bytes of the blocks under the link, as its parent declares (dag-pb `Tsize`). */
  size?: number
}

export interface DagNode {
  links: DagLink[]
  /** Bytes of the file or directory under this node, blocks included, as far as it declares. */
  declaredBytes?: number
  /** The file's size (raw: the block; dag-pb: the UnixFS `filesize`), when this is a file node. */
  fileSize?: number
}

/** True for CIDs Donghae can fetch and store: raw or dag-pb, sha2-256 (identity: inline). */
export function assertStorable(cid: CID): void {
  if (cid.code !== RAW_CODE && cid.code !== DAG_PB_CODE)
    throw new ContentFormatError(`${cid.toString()} is neither raw nor dag-pb; only UnixFS files are stored`)
  if (cid.multihash.code !== SHA2_256 && cid.multihash.code !== IDENTITY)
    throw new ContentFormatError(`${cid.toString()} is not hashed with sha2-256`)
}

/** An identity CID carries its bytes in the CID: nothing to fetch or store. */
export function isInline(cid: CID): boolean {
  return cid.multihash.code === IDENTITY
}

/** True when `bytes` are the block `cid` names (their sha2-256 digest is the CID's). */
export function blockMatches(cid: CID, bytes: Uint8Array): boolean {
  if (cid.multihash.code === IDENTITY) return Buffer.from(cid.multihash.digest).equals(bytes)
  if (cid.multihash.code !== SHA2_256) return false
  return createHash('sha256').update(bytes).digest().equals(cid.multihash.digest)
}

/** Links, declared sizes and file size of a block (raw blocks have no links). */
export function decodeNode(cid: CID, bytes: Uint8Array): DagNode {
  if (cid.code === RAW_CODE) return { links: [], declaredBytes: bytes.byteLength, fileSize: bytes.byteLength }
  let node: dagPb.PBNode
  try {
    node = dagPb.decode(bytes)
  } catch (err) {
    throw new ContentFormatError(`block ${cid.toString()} is not dag-pb: ${describeError(err)}`, { cause: err })
  }
  const links: DagLink[] = []
  let declared: number | undefined = bytes.byteLength
  for (const link of node.Links) {
    assertStorable(link.Hash)
    links.push(link.Tsize === undefined ? { cid: link.Hash } : { cid: link.Hash, size: link.Tsize })
    declared = link.Tsize === undefined || declared === undefined ? undefined : declared + link.Tsize
  }
  let fileSize: number | undefined
  if (node.Data !== undefined) {
    try {
      const data = UnixFS.unmarshal(node.Data)
      if (data.type === 'file' || data.type === 'raw') fileSize = Number(data.fileSize())
    } catch (err) {
      throw new ContentFormatError(`block ${cid.toString()} is not a UnixFS node: ${describeError(err)}`, {
        cause: err,
      })
    }
  }
  return {
    links,
    ...(declared === undefined ? {} : { declaredBytes: declared }),
    ...(fileSize === undefined ? {} : { fileSize }),
  }
}

/** A UnixFS file node: its own bytes (before its children's) and its children in order. */
export function decodeFile(cid: CID, bytes: Uint8Array): { data?: Uint8Array; links: CID[] } {
  let node: dagPb.PBNode
  let data: UnixFS
  try {
    node = dagPb.decode(bytes)
    data = UnixFS.unmarshal(node.Data ?? new Uint8Array())
  } catch (err) {
    throw new ContentFormatError(`block ${cid.toString()} is not a UnixFS node: ${describeError(err)}`, { cause: err })
  }
  if (data.type !== 'file' && data.type !== 'raw')
    throw new ContentFormatError(`${cid.toString()} is a UnixFS ${data.type}, not a file`)
  for (const link of node.Links) assertStorable(link.Hash)
  return { ...(data.data === undefined ? {} : { data: data.data }), links: node.Links.map((l) => l.Hash) }
}
