/**
 * The content store's index of the files it holds: one record per root CID (a file or a
 * directory), kept in the store's LevelDB under `/donghae/dag/<cid>` and in memory. A record says
 * how many bytes of blocks the file takes (while it is fetched: what its root declares, reserved),
 * whether it is complete, whether the operator pinned it, and when it was last used.
 */
import type { Datastore } from 'interface-datastore'
import { Key } from 'interface-datastore'
import { decode, encode } from '../../core/codec.ts'

export interface DagRecord {
  /** Bytes of its blocks on disk (reserved while it is fetched). */
  bytes: number
  /** The file's size; absent for a directory. */
  fileSize?: number
  complete: boolean
  /** Kept whatever the budget (publisher's files, `pin`). */
  pinned: boolean
  /** Milliseconds since the epoch. */
  lastUsed: number
}

const PREFIX = '/donghae/dag/'

export class DagRecords {
  readonly #datastore: Datastore
  readonly #records = new Map<string, DagRecord>()

  private constructor(datastore: Datastore) {
    this.#datastore = datastore
  }

  static async load(datastore: Datastore): Promise<DagRecords> {
    const records = new DagRecords(datastore)
    for await (const { key, value } of datastore.query({ prefix: PREFIX })) {
      const record = decode<DagRecord>(value)
      records.#records.set(key.toString().slice(PREFIX.length), record)
    }
    return records
  }

  get(cid: string): DagRecord | undefined {
    return this.#records.get(cid)
  }

  entries(): Array<[string, DagRecord]> {
    return [...this.#records]
  }

  /** Bytes of every record. */
  bytes(): number {
    let sum = 0
    for (const r of this.#records.values()) sum += r.bytes
    return sum
  }

  async put(cid: string, record: DagRecord): Promise<void> {
    const value: DagRecord = {
      bytes: record.bytes,
      complete: record.complete,
      pinned: record.pinned,
      lastUsed: record.lastUsed,
      ...(record.fileSize === undefined ? {} : { fileSize: record.fileSize }),
    }
    this.#records.set(cid, value)
    await this.#datastore.put(new Key(`${PREFIX}${cid}`), encode(value))
  }

  async delete(cid: string): Promise<void> {
    this.#records.delete(cid)
    await this.#datastore.delete(new Key(`${PREFIX}${cid}`))
  }
}
