/** core: the bottom layer. Bytes, canonical encoding, CIDs, hashing, signing domains, errors, logging, time, config. */
export { utf8, fromUtf8, concat, equals, constantTimeEquals, toHex, fromHex, asUint8Array } from './bytes.ts'
export { encode, decode, DAG_CBOR_CODE, DEFAULT_MAX_DECODE_BYTES, type DecodeOptions } from './codec.ts'
export { CID, cidOf, cidOfBytes, parseCid, verifyCid, RAW_CODE } from './cid.ts'
export { sha256, sha256Chain, SHA256_LENGTH } from './hash.ts'
export { signingTag, signingDigest, assertSigningKind } from './signing.ts'
export {
  DonghaeError,
  InvalidInputError,
  DecodeError,
  EncodeError,
  SignatureError,
  ConfigError,
  AbortError,
  isDonghaeError,
  describeError,
  type ErrorAction,
} from './errors.ts'
export { createLogger, silentLogger, LOG_LEVELS, type Logger, type LogLevel } from './logger.ts'
export { systemClock, ManualClock, type Clock } from './clock.ts'
export {
  loadConfig,
  defaultConfig,
  CONFIG_KEYS,
  CONFIG_FILE_NAME,
  type DonghaeConfig,
  type ConfigKey,
  type ConfigSource,
  type LoadedConfig,
} from './config.ts'
