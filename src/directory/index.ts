/** directory: a DID directory searchable by category (issue 13) - signed registrations, SQLite FTS5 index, gossip. */
export * from './record.ts'
export * from './limits.ts'
export * from './store.ts'
export * from './gossip.ts'
export * from './service.ts'
