/**
 * The directory's index: signed registrations in SQLite (`node:sqlite`, built into Node 24, with
 * FTS5 for ranked full-text search - no native addon to build, one file under the node's data
 * directory, transactions for the check-then-write of sequence numbers).
 *
 * Rules: a registration replaces the stored one only with a higher `seq` (replays and older
 * sequences: 409); a deletion must be signed by the DID's key and carry a higher `seq`, and
 * leaves a tombstone that keeps the `seq`, so an old registration cannot come back. Expired
 * entries are swept into tombstones too; tombstones are forgotten `MAX_EXPIRY_MS` later, when
 * every registration signed before them has expired. Writes are rate limited per client and per
 * DID (`limits.ts`).
 *
 * Search: the user's text is cut into letter/digit terms, each quoted as an FTS5 string (so no
 * user text is ever FTS syntax), all required; ranked by bm25 over description, categories
 * (weighted highest) and tags; optional exact category/tag filters; pages of at most 50 with an
 * opaque keyset cursor.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { decode } from '../core/codec.ts'
import { DonghaeError } from '../core/errors.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import {
  DirectoryInvalidError,
  DirectoryStaleError,
  DirectoryTooLargeError,
  LABEL_PATTERN,
  MAX_EXPIRY_MS,
  encodeRegistration,
  verifyDeletion,
  verifyRegistration,
  type SignedDeletion,
  type SignedRegistration,
} from './record.ts'
import { DEFAULT_DIRECTORY_LIMITS, DirectoryRateLimiter, type DirectoryLimits } from './limits.ts'

export const DIRECTORY_DB_FILE = 'directory.sqlite'
export const MAX_SEARCH_LIMIT = 50
export const DEFAULT_SEARCH_LIMIT = 20
export const MAX_QUERY_CHARS = 256
export const MAX_QUERY_TERMS = 16
const SCHEMA_VERSION = 1
/** bm25 column weights: description, categories, tags. */
const BM25_WEIGHTS = '1.0, 4.0, 2.0'

export interface DirectoryIndexOptions {
  /** SQLite file, or ':memory:'. @default ':memory:' */
  path?: string
  clock?: Pick<Clock, 'now'>
  limits?: DirectoryLimits
}

export interface WriteOptions {
  /** Who sent the request (an IP address, `peer:<id>`); charged against the per-client limit. */
  client?: string
}

export interface SearchQuery {
  /** Free text; terms are letters and digits, every term must match. */
  query?: string
  category?: string
  tag?: string
  /** 1 to 50. @default 20 */
  limit?: number
  /** From the previous page's `cursor`. */
  cursor?: string
}

export interface SearchHit {
  record: SignedRegistration
  /** bm25 rank (lower is better; 0 when there is no text query). */
  score: number
}

export interface SearchPage {
  hits: SearchHit[]
  /** Pass back for the next page; absent on the last page. */
  cursor?: string
}

/** What a write changed: `added` (a new DID), `updated`, `deleted`. */
export type WriteResult = 'added' | 'updated' | 'deleted'

export interface RegisterOutcome {
  change: 'added' | 'updated'
  /** The verified registration as stored. */
  record: SignedRegistration
}

export interface DeleteOutcome {
  change: 'deleted'
  /** The verified deletion as applied. */
  deletion: SignedDeletion
}

interface EntryRow {
  id: number
  seq: number
  live: number
}

/**
 * Cuts user text into FTS5 terms, each a quoted string: `bar" OR x*` -> `"bar" "or" "x"`.
 * Returns undefined when the text holds no searchable term.
 */
export function ftsQuery(text: string): string | undefined {
  if (text.length > MAX_QUERY_CHARS) throw new DirectoryTooLargeError(`query longer than ${MAX_QUERY_CHARS} characters`)
  const terms =
    text
      .normalize('NFKC')
      .toLowerCase()
      .match(/[\p{L}\p{N}\p{M}]+/gu) ?? []
  if (terms.length > MAX_QUERY_TERMS) throw new DirectoryInvalidError(`query has more than ${MAX_QUERY_TERMS} terms`)
  if (terms.length === 0) return undefined
  return [...new Set(terms)].map((t) => `"${t}"`).join(' ')
}

function encodeCursor(score: number, id: number): string {
  return Buffer.from(JSON.stringify([score, id])).toString('base64url')
}

function decodeCursor(cursor: string): { score: number; id: number } {
  const bad = (): never => {
    throw new DirectoryInvalidError('invalid search cursor')
  }
  if (typeof cursor !== 'string' || cursor.length > 128 || !/^[A-Za-z0-9_-]+$/.test(cursor)) bad()
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    return bad()
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) bad()
  const [score, id] = parsed as unknown[]
  if (typeof score !== 'number' || !Number.isFinite(score) || typeof id !== 'number' || !Number.isSafeInteger(id)) bad()
  return { score: score as number, id: id as number }
}

function checkLabel(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !LABEL_PATTERN.test(value))
    throw new DirectoryInvalidError(`${field} must be lowercase letters, digits and '-' (1-32)`)
  return value
}

function storedRecord(bytes: Uint8Array): SignedRegistration {
  return decode<SignedRegistration>(bytes)
}

export class DirectoryIndex {
  readonly #db: DatabaseSync
  readonly #clock: Pick<Clock, 'now'>
  readonly #limiter: DirectoryRateLimiter
  readonly #statements = new Map<string, StatementSync>()
  #closed = false

  constructor(options: DirectoryIndexOptions = {}) {
    const path = options.path ?? ':memory:'
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
    this.#clock = options.clock ?? systemClock
    this.#limiter = new DirectoryRateLimiter(options.limits ?? DEFAULT_DIRECTORY_LIMITS, () => this.#clock.now())
    this.#db = new DatabaseSync(path)
    const version = (this.#db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version
    if (version !== 0 && version !== SCHEMA_VERSION) {
      this.#db.close()
      throw new DonghaeError(
        `${path} holds directory schema ${version}, this node reads ${SCHEMA_VERSION}: move the file away to rebuild it`,
      )
    }
    this.#db.exec(`
      PRAGMA user_version = ${SCHEMA_VERSION};
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY,
        did TEXT NOT NULL UNIQUE,
        seq INTEGER NOT NULL,
        live INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        record BLOB
      );
      CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires);
      CREATE TABLE IF NOT EXISTS labels (label TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (label, id)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS labels_id ON labels (id);
      CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5(
        description, categories, tags, tokenize = 'unicode61 remove_diacritics 2'
      );
    `)
  }

  #stmt(sql: string): StatementSync {
    let stmt = this.#statements.get(sql)
    if (stmt === undefined) {
      stmt = this.#db.prepare(sql)
      this.#statements.set(sql, stmt)
    }
    return stmt
  }

  #row(did: string): EntryRow | undefined {
    return this.#stmt('SELECT id, seq, live FROM entries WHERE did = ?').get(did) as EntryRow | undefined
  }

  #transaction<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE')
    try {
      const out = fn()
      this.#db.exec('COMMIT')
      return out
    } catch (err) {
      this.#db.exec('ROLLBACK')
      throw err
    }
  }

  #unindex(id: number): void {
    this.#stmt('DELETE FROM entries_fts WHERE rowid = ?').run(id)
    this.#stmt('DELETE FROM labels WHERE id = ?').run(id)
  }

  /**
   * Verifies and stores a registration (object form: `SignedRegistration`, or a decoded map).
   * Throws a `DirectoryError`: 400/403/413 invalid, 409 not newer than the stored seq, 429 limited.
   */
  register(raw: unknown, options: WriteOptions = {}): RegisterOutcome {
    if (options.client !== undefined) this.#limiter.chargeClient(options.client)
    const now = this.#clock.now()
    const record = verifyRegistration(raw, now)
    return this.#transaction(() => {
      const row = this.#row(record.did)
      if (row !== undefined && row.seq >= record.seq) {
        throw new DirectoryStaleError(
          row.live === 1
            ? `seq ${record.seq} is not above the stored ${row.seq}`
            : `the entry was deleted or expired at seq ${row.seq}; register with a higher seq`,
          { details: { storedSeq: row.seq } },
        )
      }
      this.#limiter.checkDid(record.did)
      const bytes = encodeRegistration(record)
      let id: number
      if (row === undefined) {
        const info = this.#stmt('INSERT INTO entries (did, seq, live, expires, record) VALUES (?, ?, 1, ?, ?)').run(
          record.did,
          record.seq,
          record.expires,
          bytes,
        )
        id = Number(info.lastInsertRowid)
      } else {
        id = row.id
        this.#stmt('UPDATE entries SET seq = ?, live = 1, expires = ?, record = ? WHERE id = ?').run(
          record.seq,
          record.expires,
          bytes,
          id,
        )
        this.#unindex(id)
      }
      this.#stmt('INSERT INTO entries_fts (rowid, description, categories, tags) VALUES (?, ?, ?, ?)').run(
        id,
        record.description,
        record.categories.join(' '),
        record.tags.join(' '),
      )
      const label = this.#stmt('INSERT OR IGNORE INTO labels (label, id) VALUES (?, ?)')
      for (const c of record.categories) label.run(`c:${c}`, id)
      for (const t of record.tags) label.run(`t:${t}`, id)
      this.#limiter.chargeDid(record.did)
      return { change: row === undefined || row.live === 0 ? 'added' : 'updated', record }
    })
  }

  /**
   * Verifies a signed deletion and replaces the entry with a tombstone keeping its seq (a DID
   * never seen gets a tombstone too). 403 when not signed by the DID's key, 409 when not newer.
   */
  delete(raw: unknown, options: WriteOptions = {}): DeleteOutcome {
    if (options.client !== undefined) this.#limiter.chargeClient(options.client)
    const deletion: SignedDeletion = verifyDeletion(raw)
    const now = this.#clock.now()
    return this.#transaction(() => {
      const row = this.#row(deletion.did)
      if (row !== undefined && row.seq >= deletion.seq) {
        throw new DirectoryStaleError(`seq ${deletion.seq} is not above the stored ${row.seq}`, {
          details: { storedSeq: row.seq },
        })
      }
      this.#limiter.checkDid(deletion.did)
      if (row === undefined) {
        this.#stmt('INSERT INTO entries (did, seq, live, expires, record) VALUES (?, ?, 0, ?, NULL)').run(
          deletion.did,
          deletion.seq,
          now + MAX_EXPIRY_MS,
        )
      } else {
        this.#stmt('UPDATE entries SET seq = ?, live = 0, expires = ?, record = NULL WHERE id = ?').run(
          deletion.seq,
          now + MAX_EXPIRY_MS,
          row.id,
        )
        this.#unindex(row.id)
      }
      this.#limiter.chargeDid(deletion.did)
      return { change: 'deleted', deletion }
    })
  }

  /** The highest seq seen for `did` (its entry's or its tombstone's), if any. */
  seqOf(did: string): number | undefined {
    return this.#row(did)?.seq
  }

  /** The live, unexpired registration of `did`. */
  get(did: string): SignedRegistration | undefined {
    const row = this.#stmt('SELECT record FROM entries WHERE did = ? AND live = 1 AND expires > ?').get(
      did,
      this.#clock.now(),
    ) as { record: Uint8Array } | undefined
    return row === undefined ? undefined : storedRecord(row.record)
  }

  /** Live entries (expired ones count until the next sweep). */
  count(): number {
    return (this.#stmt('SELECT count(*) AS n FROM entries WHERE live = 1').get() as { n: number }).n
  }

  /**
   * Turns expired registrations into tombstones and forgets tombstones past their retention.
   * Returns how many registrations expired.
   */
  sweep(now = this.#clock.now()): number {
    return this.#transaction(() => {
      this.#stmt('DELETE FROM entries WHERE live = 0 AND expires <= ?').run(now)
      const expired = this.#stmt('SELECT id FROM entries WHERE live = 1 AND expires <= ?').all(now) as Array<{
        id: number
      }>
      const tomb = this.#stmt('UPDATE entries SET live = 0, expires = ?, record = NULL WHERE id = ?')
      for (const { id } of expired) {
        this.#unindex(id)
        tomb.run(now + MAX_EXPIRY_MS, id)
      }
      return expired.length
    })
  }

  /** Ranked, paginated search; throws `DirectoryError` (400/413) for bad parameters. */
  search(q: SearchQuery): SearchPage {
    const limit = q.limit ?? DEFAULT_SEARCH_LIMIT
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_SEARCH_LIMIT)
      throw new DirectoryInvalidError(`limit must be an integer 1-${MAX_SEARCH_LIMIT}`)
    if (q.query !== undefined && typeof q.query !== 'string') throw new DirectoryInvalidError('query must be text')
    const category = checkLabel(q.category, 'category')
    const tag = checkLabel(q.tag, 'tag')
    const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor)
    const match = q.query === undefined ? undefined : ftsQuery(q.query)
    if (match === undefined && q.query !== undefined && q.query.trim() !== '') return { hits: [] }
    const now = this.#clock.now()

    const params: Record<string, string | number> = { now, limit: limit + 1 }
    const where: string[] = ['e.live = 1', 'e.expires > :now']
    const filter = (label: string | undefined, name: string, prefix: string): void => {
      if (label === undefined) return
      params[name] = `${prefix}:${label}`
      where.push(`EXISTS (SELECT 1 FROM labels l WHERE l.label = :${name} AND l.id = e.id)`)
    }
    if (match !== undefined) return this.#ranked(match, category, tag, after, limit, now)
    if (after !== undefined) {
      params.afterId = after.id
      where.push('e.id > :afterId')
    }
    const first = category !== undefined ? { name: 'cat', label: `c:${category}` } : undefined
    const byTag = first === undefined && tag !== undefined ? { name: 'tag', label: `t:${tag}` } : undefined
    const driver = first ?? byTag
    let sql: string
    if (driver !== undefined) {
      // Drive from the label's index, in id order.
      params[driver.name] = driver.label
      if (first !== undefined) filter(tag, 'tag', 't')
      sql = `SELECT e.id AS id, e.record AS record, 0 AS score
        FROM labels d JOIN entries e ON e.id = d.id
        WHERE d.label = :${driver.name} AND ${where.join(' AND ').replaceAll('e.id > :afterId', 'd.id > :afterId')}
        ORDER BY d.id LIMIT :limit`
    } else {
      sql = `SELECT e.id AS id, e.record AS record, 0 AS score FROM entries e
        WHERE ${where.join(' AND ')} ORDER BY e.id LIMIT :limit`
    }
    const rows = this.#stmt(sql).all(params) as Array<{ id: number; record: Uint8Array; score: number }>
    const page = rows.slice(0, limit)
    const hits = page.map((r) => ({ record: storedRecord(r.record), score: r.score }))
    const last = page[page.length - 1]
    return rows.length > limit && last !== undefined ? { hits, cursor: encodeCursor(last.score, last.id) } : { hits }
  }

  /**
   * Text search. FTS5 ranks rowids alone (joining every match to `entries` before the sort would
   * cost 2-4× more at 100,000 entries); category and tag filters go into the MATCH as column
   * filters (a superset: `fast-food` is the phrase "fast food") and are then checked exactly
   * against `labels`, with the expiry. Rows that fail are rare, so the loop seldom repeats.
   */
  #ranked(
    match: string,
    category: string | undefined,
    tag: string | undefined,
    after: { score: number; id: number } | undefined,
    limit: number,
    now: number,
  ): SearchPage {
    const terms = [match]
    if (category !== undefined) terms.push(`categories : "${category}"`)
    if (tag !== undefined) terms.push(`tags : "${tag}"`)
    const fullMatch = terms.join(' ')
    const batch = limit + 1
    const rank = this.#stmt(
      `SELECT rowid AS id, bm25(entries_fts, ${BM25_WEIGHTS}) AS score FROM entries_fts
        WHERE entries_fts MATCH :match ORDER BY score, rowid LIMIT :batch`,
    )
    const rankAfter = this.#stmt(
      `SELECT rowid AS id, bm25(entries_fts, ${BM25_WEIGHTS}) AS score FROM entries_fts
        WHERE entries_fts MATCH :match AND (score > :afterScore OR (score = :afterScore AND rowid > :afterId))
        ORDER BY score, rowid LIMIT :batch`,
    )
    const read = this.#stmt(
      `SELECT e.record AS record FROM entries e WHERE e.id = :id AND e.live = 1 AND e.expires > :now
        AND (:cat IS NULL OR EXISTS (SELECT 1 FROM labels l WHERE l.label = :cat AND l.id = e.id))
        AND (:tag IS NULL OR EXISTS (SELECT 1 FROM labels l WHERE l.label = :tag AND l.id = e.id))`,
    )
    const cat = category === undefined ? null : `c:${category}`
    const tagLabel = tag === undefined ? null : `t:${tag}`
    const found: Array<{ id: number; score: number; record: Uint8Array }> = []
    let from = after
    for (;;) {
      const ranked = (
        from === undefined
          ? rank.all({ match: fullMatch, batch })
          : rankAfter.all({ match: fullMatch, batch, afterScore: from.score, afterId: from.id })
      ) as Array<{ id: number; score: number }>
      for (const r of ranked) {
        const row = read.get({ id: r.id, now, cat, tag: tagLabel }) as { record: Uint8Array } | undefined
        if (row !== undefined) found.push({ ...r, record: row.record })
        if (found.length > limit) break
      }
      const last = ranked[ranked.length - 1]
      if (found.length > limit || ranked.length < batch || last === undefined) break
      from = last
    }
    const page = found.slice(0, limit)
    const hits = page.map((r) => ({ record: storedRecord(r.record), score: r.score }))
    const last = page[page.length - 1]
    return found.length > limit && last !== undefined ? { hits, cursor: encodeCursor(last.score, last.id) } : { hits }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#statements.clear()
    this.#db.close()
  }
}
