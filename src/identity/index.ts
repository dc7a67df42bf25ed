/** identity: Ed25519 keys, did:key, PeerId conversion, the encrypted keystore and sealed boxes. */
export {
  Ed25519KeyPair,
  X25519KeyPair,
  verifySignature,
  x25519PublicKeyOf,
  isValidEd25519PublicKey,
  SEED_LENGTH,
  PUBLIC_KEY_LENGTH,
  SIGNATURE_LENGTH,
} from './keys.ts'
export {
  didFromEd25519PublicKey,
  didFromX25519PublicKey,
  parseDidKey,
  resolveDidKey,
  ed25519PublicKeyFromDid,
  keyAgreementPublicKeyFromDid,
  DID_DOCUMENT_FORMATS,
  DEFAULT_DID_DOCUMENT_FORMAT,
  type DidDocument,
  type DidDocumentFormat,
  type ParsedDidKey,
  type VerificationMethod,
} from './did-key.ts'
export { peerIdFromDid, didFromPeerId, type PeerId } from './peer-id.ts'
export {
  encryptKeystore,
  decryptKeystore,
  parseKeystore,
  readKeystoreFile,
  writeKeystoreFile,
  loadKeystore,
  isKeystorePrivate,
  DEFAULT_SCRYPT,
  KEYSTORE_VERSION,
  KEYSTORE_FILE_MODE,
  type KeystoreFile,
  type ScryptParams,
} from './keystore.ts'
export { seal, openSealedBox, DEFAULT_MAX_SEALED_BOX_BYTES, type OpenedBox, type SealOptions } from './sealed-box.ts'
export {
  DidKeyError,
  WrongPasswordError,
  KeystoreFormatError,
  KeystoreTamperedError,
  KeystoreExistsError,
  SealedBoxError,
  type DidKeyErrorReason,
} from './errors.ts'
