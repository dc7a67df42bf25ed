import { DonghaeError } from '../core/errors.ts'

/** A database operation failed (I/O, corruption, or use after close). */
export class StoreError extends DonghaeError {
  static override readonly code: string = 'STORE_ERROR'
  override name = 'StoreError'
}

/** Another process holds the database's lock. */
export class StoreLockedError extends StoreError {
  static override readonly code: string = 'STORE_LOCKED'
  override name = 'StoreLockedError'
}

/** The store is not open (never opened, or already closed). */
export class StoreClosedError extends StoreError {
  static override readonly code: string = 'STORE_CLOSED'
  override name = 'StoreClosedError'
}

/**
 * A write failed (a full disk, an I/O error), or was refused because an earlier one had: the
 * database takes no more writes until it is opened again (store.ts explains why).
 */
export class StoreWriteFailedError extends StoreError {
  static override readonly code: string = 'STORE_WRITE_FAILED'
  override name = 'StoreWriteFailedError'
}

/** A stored value does not decode with its bucket's codec. */
export class StoreCorruptionError extends StoreError {
  static override readonly code: string = 'STORE_CORRUPT'
  override name = 'StoreCorruptionError'
}

/**
 * The database's format record names a version this release cannot read (newer, or older with no
 * migration), or another kind of database. `details`: found, supported, writtenBy, release, path.
 */
export class StoreVersionError extends StoreError {
  static override readonly code: string = 'STORE_VERSION'
  override name = 'StoreVersionError'
}
