/**
 * Typed errors of port mapping. Each has a fixed `name` and `code`; callers branch on the class
 * or `code`, never on the message. Router answers that break the protocol are `reject`: the
 * answer is dropped, the client keeps waiting or tries the next method.
 */
import { DonghaeError, type ErrorAction } from '../../core/errors.ts'

/** Base class of every port-mapping failure. */
export class NatError extends DonghaeError {
  static override readonly code: string = 'NAT_ERROR'
  override name = 'NatError'
}

/** No default route / gateway could be found, or the given one is not usable. */
export class GatewayNotFoundError extends NatError {
  static override readonly code: string = 'NAT_NO_GATEWAY'
  override name = 'GatewayNotFoundError'
}

/** A router's answer that is malformed, oversized, or does not match the request. */
export class NatProtocolError extends NatError {
  static override readonly code: string = 'NAT_BAD_RESPONSE'
  override name = 'NatProtocolError'
  readonly action: ErrorAction = 'reject'
}

/** The router did not answer within the retry schedule. */
export class NatTimeoutError extends NatError {
  static override readonly code: string = 'NAT_TIMEOUT'
  override name = 'NatTimeoutError'
}

/** NAT-PMP result codes of RFC 6886 §3.5. */
export const NATPMP_RESULT_NAMES: Readonly<Record<number, string>> = {
  1: 'unsupported version',
  2: 'not authorized / refused',
  3: 'network failure',
  4: 'out of resources',
  5: 'unsupported opcode',
}

/** The NAT-PMP server answered with a non-zero result code (`details.resultCode`). */
export class NatPmpResultError extends NatError {
  static override readonly code: string = 'NATPMP_RESULT'
  override name = 'NatPmpResultError'
  readonly resultCode: number
  constructor(resultCode: number, message?: string) {
    super(message ?? `NAT-PMP router answered result ${resultCode} (${NATPMP_RESULT_NAMES[resultCode] ?? 'unknown'})`, {
      details: { resultCode },
    })
    this.resultCode = resultCode
  }
}

/** Nothing listens for NAT-PMP on the gateway (ICMP port unreachable). */
export class NatPmpUnavailableError extends NatError {
  static override readonly code: string = 'NATPMP_UNAVAILABLE'
  override name = 'NatPmpUnavailableError'
}

/** No UPnP Internet Gateway Device with a WAN connection service answered. */
export class UpnpNotFoundError extends NatError {
  static override readonly code: string = 'UPNP_NOT_FOUND'
  override name = 'UpnpNotFoundError'
}

/** UPnP error codes of the WANIPConnection specifications (v1 §2.4, v2 §2.5). */
export const UPNP_ERROR_NAMES: Readonly<Record<number, string>> = {
  401: 'InvalidAction',
  402: 'InvalidArgs',
  501: 'ActionFailed',
  606: 'ActionNotAuthorized',
  714: 'NoSuchEntryInArray',
  715: 'WildCardNotPermittedInSrcIP',
  716: 'WildCardNotPermittedInExtPort',
  718: 'ConflictInMappingEntry',
  724: 'SamePortValuesRequired',
  725: 'OnlyPermanentLeasesSupported',
  726: 'RemoteHostOnlySupportsWildcard',
  727: 'ExternalPortOnlySupportsWildcard',
  728: 'NoPortMapsAvailable',
  729: 'ConflictWithOtherMechanisms',
  732: 'WildCardNotPermittedInIntPort',
}

/** The IGD answered a SOAP fault (`upnpCode` is the UPnPError errorCode). */
export class UpnpSoapError extends NatError {
  static override readonly code: string = 'UPNP_FAULT'
  override name = 'UpnpSoapError'
  readonly upnpCode: number
  constructor(action: string, upnpCode: number, description: string) {
    const known = UPNP_ERROR_NAMES[upnpCode]
    super(`UPnP ${action} failed: ${upnpCode} ${description || known || 'unknown error'}`, {
      details: { action, upnpCode, description },
    })
    this.upnpCode = upnpCode
  }
}

/** The IGD answered HTTP with a status that is neither 200 nor a SOAP fault. */
export class UpnpHttpError extends NatError {
  static override readonly code: string = 'UPNP_HTTP'
  override name = 'UpnpHttpError'
}

/** Every method that was allowed was tried and none gave a mapping. */
export class NoPortMappingError extends NatError {
  static override readonly code: string = 'NAT_NO_MAPPING'
  override name = 'NoPortMappingError'
}
