/** store: one LevelDB database with typed, prefixed buckets, atomic batches and snapshots. */
export {
  Store,
  Bucket,
  WriteBatch,
  StoreSnapshot,
  type StoreOptions,
  type IterateOptions,
  type ReadOptions,
  type WriteOptions,
} from './store.ts'
export { bytesCodec, utf8Codec, uint64Codec, dagCborCodec, type Codec } from './codecs.ts'
export {
  StoreError,
  StoreLockedError,
  StoreClosedError,
  StoreCorruptionError,
  StoreVersionError,
  StoreWriteFailedError,
} from './errors.ts'
export { checkFormat, UNVERSIONED, type StoreFormat, type FormatRecord } from './format.ts'
