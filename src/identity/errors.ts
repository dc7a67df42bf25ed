import { DonghaeError } from '../core/errors.ts'

/** The error names of the did:key specification (§ "Document Creation Algorithm"). */
export type DidKeyErrorReason =
  | 'invalidDid'
  | 'invalidPublicKeyLength'
  | 'invalidPublicKey'
  | 'invalidPublicKeyType'
  | 'unsupportedPublicKeyType'
  | 'invalidDidUrl'

/** A DID that cannot be decoded or resolved; `reason` is the spec's error name. */
export class DidKeyError extends DonghaeError {
  static override readonly code: string = 'INVALID_DID'
  override name = 'DidKeyError'
  readonly reason: DidKeyErrorReason
  constructor(reason: DidKeyErrorReason, message: string) {
    super(`${reason}: ${message}`, { details: { reason } })
    this.reason = reason
  }
}

/** The keystore's password does not unlock it. */
export class WrongPasswordError extends DonghaeError {
  static override readonly code: string = 'WRONG_PASSWORD'
  override name = 'WrongPasswordError'
}

/** The keystore file is not a Donghae keystore, is truncated, or has an unsupported version. */
export class KeystoreFormatError extends DonghaeError {
  static override readonly code: string = 'KEYSTORE_FORMAT'
  override name = 'KeystoreFormatError'
}

/** The keystore file parses and the password is right, but its contents were altered. */
export class KeystoreTamperedError extends DonghaeError {
  static override readonly code: string = 'KEYSTORE_TAMPERED'
  override name = 'KeystoreTamperedError'
}

/** A keystore already exists where a new one would be written. */
export class KeystoreExistsError extends DonghaeError {
  static override readonly code: string = 'KEYSTORE_EXISTS'
  override name = 'KeystoreExistsError'
}

/** A sealed box that cannot be opened: malformed, altered, or addressed to another key. */
export class SealedBoxError extends DonghaeError {
  static override readonly code: string = 'SEALED_BOX_INVALID'
  override name = 'SealedBoxError'
}
