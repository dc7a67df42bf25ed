/**
 * More decoders a peer or a LAN neighbour feeds: the worker's inference request and token chunks
 * (`/donghae/infer`), STUN answers, NAT-PMP answers, UPnP SSDP answers and SOAP/XML bodies (any
 * host on the LAN can send those), the keystore file, the Host header. Oracle: `expectTyped`.
 */
import { encode } from '../../../src/core/codec.ts'
import { sha256 } from '../../../src/core/hash.ts'
import { cidOfBytes, RAW_CODE } from '../../../src/core/cid.ts'
import { Ed25519KeyPair } from '../../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../../src/identity/did-key.ts'
import { encryptKeystore, parseKeystore } from '../../../src/identity/keystore.ts'
import { jobValue, signDispatch, signJob } from '../../../src/inference/job.ts'
import { createTensor, encodeTensorMap } from '../../../src/inference/tensor.ts'
import { decodeTokensChunk, decodeWorkRequest } from '../../../src/inference/worker.ts'
import {
  answerDatagram,
  decodeBindingSuccess,
  encodeBindingRequest,
  encodeBindingSuccess,
} from '../../../src/net/stun.ts'
import { decodeExternalAddressResponse, decodeMapResponse } from '../../../src/net/nat/natpmp.ts'
import { parseSoapResponse, parseSsdpResponse } from '../../../src/net/nat/upnp.ts'
import { parseHostHeader } from '../../../src/api/host-check.ts'
import { expectTyped, type FuzzTarget } from '../harness.ts'

const client = Ed25519KeyPair.fromSeed(new Uint8Array(32).fill(21))
const gateway = Ed25519KeyPair.fromSeed(new Uint8Array(32).fill(22))
const GATEWAY = didFromEd25519PublicKey(gateway.publicKey)
const text = (s: string): Uint8Array => new TextEncoder().encode(s)
const TXID = new Uint8Array(12).fill(5)

function cat(head: number[], body: Uint8Array): Uint8Array {
  const out = new Uint8Array(head.length + body.length)
  out.set(head)
  out.set(body, head.length)
  return out
}

function workRequest(): Uint8Array {
  const inputs = { x: createTensor('float32', [1, 2], new Float32Array([1, 2])) }
  const job = signJob(client, {
    chainId: 'donghae-fuzz',
    gateway: GATEWAY,
    model: cidOfBytes(text('m'), RAW_CODE).toString(),
    inputsHash: sha256(encodeTensorMap(inputs)),
    maxFee: 10n,
    deadline: 1_800_000_060_000,
    salt: new Uint8Array(16),
  })
  return encode({
    job: jobValue(job),
    inputs: encodeTensorMap(inputs),
    dispatch: signDispatch(gateway, job, GATEWAY),
    purpose: 'job',
  })
}

const NATPMP_MAP = [0, 130, 0, 0, 0, 0, 0, 9, 0x1f, 0x90, 0x1f, 0x90, 0, 0, 0x0e, 0x10]
const SSDP =
  'HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n' +
  'USN: uuid:1::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n'
const SOAP =
  '<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>' +
  '<u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">' +
  '<NewExternalIPAddress>203.0.113.7</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>'

export const netWireTargets: FuzzTarget[] = [
  {
    name: 'work-request',
    description:
      "the worker's inference requests and token chunks (/donghae/infer): decodeWorkRequest, decodeTokensChunk",
    seeds: () => [cat([0], workRequest()), cat([1], encode({ tokens: [1, 2, 3] }))],
    run: (input) =>
      expectTyped(() =>
        (input[0] ?? 0) % 2 === 0 ? decodeWorkRequest(input.subarray(1)) : decodeTokensChunk(input.subarray(1)),
      ),
    cbor: false,
  },
  {
    name: 'nat-wire',
    description:
      'what the LAN answers: STUN (answerDatagram, decodeBindingSuccess), NAT-PMP, UPnP SSDP and SOAP/XML, and the keystore file and Host header (first byte picks)',
    seeds: async () => [
      cat([0], encodeBindingSuccess(TXID, { family: 'IPv4', address: '203.0.113.7', port: 4001 })),
      cat([1], encodeBindingRequest(TXID)),
      cat([2], new Uint8Array(NATPMP_MAP)),
      cat([3], new Uint8Array([0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 7])),
      cat([4], text(SSDP)),
      cat([5], text(SOAP)),
      cat([6], text(JSON.stringify(await encryptKeystore(client, 'fuzz')))),
      cat([7], text('[::1]:26657')),
    ],
    run(input) {
      const body = input.subarray(1)
      const str = (): string => Buffer.from(body).toString('latin1')
      return expectTyped(() => {
        switch ((input[0] ?? 0) % 8) {
          case 0:
            return decodeBindingSuccess(body, TXID)
          case 1:
            return answerDatagram(body, { family: 'IPv4', address: '192.0.2.1', port: 5000 })
          case 2:
            return decodeMapResponse(body, {
              protocol: 'tcp',
              internalPort: 8080,
              externalPort: 8080,
              lifetimeSeconds: 3600,
            })
          case 3:
            return decodeExternalAddressResponse(body)
          case 4:
            return parseSsdpResponse(body)
          case 5:
            return parseSoapResponse('GetExternalIPAddress', 200, str())
          case 6:
            return parseKeystore(str())
          default:
            return parseHostHeader(str())
        }
      })
    },
    dictionary: [
      '<',
      '>',
      '</',
      '<!--',
      '<![CDATA[',
      '&amp;',
      '&#x',
      'xmlns:',
      '\r\n',
      ': ',
      'HTTP/1.1 200',
      '"kdf"',
      '"logN":',
      '[',
      ']:',
    ],
  },
]
