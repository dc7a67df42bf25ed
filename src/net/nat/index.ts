/** Port mapping through the home router: NAT-PMP first, UPnP IGD as failover (see manager.ts). */
export {
  PortMappingManager,
  NAT_MODES,
  type NatMode,
  type MappingMethod,
  type NatChange,
  type MappedChange,
  type UnmappedChange,
  type MappingState,
  type MappingStatus,
  type PortMappingOptions,
} from './manager.ts'
export { natPortMapping, externalMultiaddr, NatPortMappingService, type NatServiceInit } from './libp2p.ts'
export { NatPmpClient, EpochTracker, type TransportProtocol } from './natpmp.ts'
export { UpnpGateway, findGateway, mapUpnpPort } from './upnp.ts'
export {
  defaultRoute,
  defaultRoute6,
  chooseLanAddress,
  addressScope,
  isPrivateAddress,
  isPublicAddress,
  publicIpv6Addresses,
  type AddressScope,
  type DefaultRoute,
} from './netinfo.ts'
export * from './errors.ts'
