/**
 * Content identifiers: CIDv1, sha2-256; dag-cbor (0x71) for values, raw (0x55) for a blob's
 * bytes, and UnixFS (dag-pb 0x70 roots over raw leaves) for files of any size (`unixfsCid`).
 */
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import type { ImporterOptions } from 'ipfs-unixfs-importer'
import { DAG_CBOR_CODE, encode } from './codec.ts'
import { sha256 } from './hash.ts'
import { InvalidInputError } from './errors.ts'

export { CID }

const SHA2_256_CODE = 0x12
export const RAW_CODE = 0x55

/** The CID of a value's canonical dag-cbor bytes. */
export function cidOf(value: unknown): CID {
  return cidOfBytes(encode(value), DAG_CBOR_CODE)
}

/** The CID of bytes already encoded with `codec` (dag-cbor by default; `RAW_CODE` for blobs). */
export function cidOfBytes(bytes: Uint8Array, codec: number = DAG_CBOR_CODE): CID {
  return CID.createV1(codec, Digest.create(SHA2_256_CODE, sha256(bytes)))
}

/** Parses a CID string, accepting only CIDv1 with sha2-256. */
export function parseCid(text: string): CID {
  let cid: CID
  try {
    cid = CID.parse(text)
  } catch (err) {
    throw new InvalidInputError(`not a CID: ${JSON.stringify(text.slice(0, 80))}`, { cause: err })
  }
  if (cid.version !== 1 || cid.multihash.code !== SHA2_256_CODE) {
    throw new InvalidInputError('only CIDv1 with sha2-256 is accepted', { details: { cid: text } })
  }
  return cid
}

/** True when `bytes` hash to `cid` (same codec, same digest). */
export function verifyCid(cid: CID, bytes: Uint8Array): boolean {
  return cidOfBytes(bytes, cid.code).equals(cid)
}

/** The dag-pb codec (UnixFS nodes). */
export const DAG_PB_CODE = 0x70

/**
 * How a file is cut into a UnixFS DAG: `ipfs add --cid-version 1 --raw-leaves` with kubo's
 * defaults - fixed 256 KiB chunks, balanced layout of at most 174 links per node, raw leaves,
 * CIDv1. A file of at most one chunk is a single raw block: its CID is the raw CID of its bytes.
 */
export interface UnixfsLayout {
  /** @default 262144 */
  chunkSize: number
  /** @default 174 */
  maxLinksPerNode: number
}

export const KUBO_LAYOUT: Readonly<UnixfsLayout> = Object.freeze({ chunkSize: 262_144, maxLinksPerNode: 174 })

// ipfs-unixfs-importer is loaded on first use: not everything that imports core needs it
function importModules() {
  return Promise.all([
    import('ipfs-unixfs-importer'),
    import('ipfs-unixfs-importer/chunker'),
    import('ipfs-unixfs-importer/layout'),
  ])
}
let importer: ReturnType<typeof importModules> | undefined

function loadImporter(): ReturnType<typeof importModules> {
  importer ??= importModules()
  return importer
}

/** Importer options for `layout` (ipfs-unixfs-importer, which builds the same DAG as kubo). */
export async function unixfsImportOptions(layout: UnixfsLayout = KUBO_LAYOUT): Promise<ImporterOptions> {
  const [, { fixedSize }, { balanced }] = await loadImporter()
  return {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    wrapWithDirectory: false,
    chunker: fixedSize({ chunkSize: layout.chunkSize }),
    layout: balanced({ maxChildrenPerNode: layout.maxLinksPerNode }),
  }
}

/**
 * The UnixFS CID of a file's bytes (a byte array, or chunks in order), as `ipfs add
 * --cid-version 1 --raw-leaves` gives it: `bafkrei...` (raw) for a file of at most one chunk,
 * else the `bafybei...` (dag-pb) root of the DAG. Blocks are hashed and dropped, not kept.
 */
export async function unixfsCid(
  content: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  layout: UnixfsLayout = KUBO_LAYOUT,
): Promise<CID> {
  const [{ importBytes }] = await loadImporter()
  const discard = { put: (cid: CID) => cid }
  const result = await importBytes(content, discard, await unixfsImportOptions(layout))
  return result.cid
}

/**
 * True when `bytes` are the file `cid` names: for a raw CID, the bytes hash to it; for a dag-pb
 * CID, the file's UnixFS DAG (kubo's layout, see `unixfsCid`) has it as its root. A file
 * chunked another way does not verify: it is refused, never mistaken for another file.
 */
export async function verifyFileCid(cid: CID, bytes: Uint8Array): Promise<boolean> {
  if (cid.code === RAW_CODE) return verifyCid(cid, bytes)
  if (cid.code !== DAG_PB_CODE) return false
  return (await unixfsCid(bytes)).equals(cid)
}
