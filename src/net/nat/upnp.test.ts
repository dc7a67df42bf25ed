// UPnP IGD: SSDP answers, device descriptions (IGDv1 and v2), SOAP answers and faults, the
// XML reader's refusals, and size limits against a real local HTTP server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import fc from 'fast-check'
import {
  parseDescription,
  parseSoapResponse,
  parseSsdpResponse,
  encodeSoapRequest,
  fetchLimited,
  UpnpGateway,
  SOAP_MAX_BYTES,
} from './upnp.ts'
import { parseXml, decodeEntities } from './xml.ts'
import { NatProtocolError, UpnpHttpError, UpnpSoapError } from './errors.ts'

const SSDP =
  'HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n' +
  'USN: uuid:358221f4::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\n' +
  'SERVER: Debian UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://10.77.0.1:5555/rootDesc.xml\r\n\r\n'

const service = (type: string, control: string): string =>
  `<service><serviceType>${type}</serviceType><serviceId>x</serviceId><SCPDURL>/x.xml</SCPDURL><controlURL>${control}</controlURL><eventSubURL>/e</eventSubURL></service>`

function description(version: 1 | 2, extra = '', urlBase = ''): string {
  return (
    '<?xml version="1.0"?>\n<root xmlns="urn:schemas-upnp-org:device-1-0">' +
    `<specVersion><major>1</major><minor>${version - 1}</minor></specVersion>${urlBase}` +
    `<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:${version}</deviceType>` +
    `<serviceList>${service('urn:schemas-upnp-org:service:Layer3Forwarding:1', '/ctl/L3F')}</serviceList>` +
    `<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:${version}</deviceType><deviceList><device>` +
    `<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:${version}</deviceType><serviceList>` +
    `${extra}${service(`urn:schemas-upnp-org:service:WANIPConnection:${version}`, '/ctl/IPConn')}` +
    '</serviceList></device></deviceList></device></deviceList></device></root>'
  )
}

const soap = (inner: string): string =>
  '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" ' +
  `s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>${inner}</s:Body></s:Envelope>`

const fault = (code: number, text: string): string =>
  soap(
    '<s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail>' +
      `<UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>${code}</errorCode>` +
      `<errorDescription>${text}</errorDescription></UPnPError></detail></s:Fault>`,
  )

test('SSDP: a search answer gives LOCATION and ST; broken, oversized or non-http answers are refused', () => {
  assert.deepEqual(parseSsdpResponse(SSDP), {
    location: 'http://10.77.0.1:5555/rootDesc.xml',
    st: 'urn:schemas-upnp-org:device:InternetGatewayDevice:1',
    usn: 'uuid:358221f4::urn:schemas-upnp-org:device:InternetGatewayDevice:1',
    server: 'Debian UPnP/1.1 MiniUPnPd/2.3.1',
  })
  const bad = [
    SSDP.replace('200 OK', '404 Not Found'),
    'NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n',
    SSDP.replace(/LOCATION:[^\r]*\r\n/, ''),
    SSDP.replace(/ST:[^\r]*\r\n/, ''),
    SSDP.replace('http://10.77.0.1', 'file:///etc/passwd#'),
    SSDP.replace('http://10.77.0.1:5555/rootDesc.xml', 'not a url'),
    SSDP.replace('EXT:', 'garbage line without colon'),
    SSDP.replace('EXT:', `X: ${'a'.repeat(3000)}`),
    '',
  ]
  for (const text of bad)
    assert.throws(() => parseSsdpResponse(text), NatProtocolError, JSON.stringify(text.slice(0, 60)))
})

test('description: IGDv2 and IGDv1 WAN services are found, best first, control URLs resolved', () => {
  const loc = 'http://10.77.0.1:5555/rootDesc.xml'
  assert.deepEqual(parseDescription(description(2), loc), [
    {
      location: loc,
      serviceType: 'urn:schemas-upnp-org:service:WANIPConnection:2',
      controlUrl: 'http://10.77.0.1:5555/ctl/IPConn',
      version: 2,
    },
  ])
  const v1 = parseDescription(description(1, service('urn:schemas-upnp-org:service:WANPPPConnection:1', 'ppp')), loc)
  assert.deepEqual(
    v1.map((s) => [s.serviceType, s.controlUrl, s.version]),
    [
      ['urn:schemas-upnp-org:service:WANIPConnection:1', 'http://10.77.0.1:5555/ctl/IPConn', 1],
      ['urn:schemas-upnp-org:service:WANPPPConnection:1', 'http://10.77.0.1:5555/ppp', 1],
    ],
  )
  const based = parseDescription(description(1, '', '<URLBase>http://10.77.0.1:5555/base/</URLBase>'), loc)
  assert.equal(based[0]?.controlUrl, 'http://10.77.0.1:5555/ctl/IPConn')
})

test('description: a control URL on another host is dropped; DOCTYPE, oversized, wrong root are refused', () => {
  const loc = 'http://10.77.0.1:5555/rootDesc.xml'
  assert.deepEqual(parseDescription(description(2).replace('/ctl/IPConn', 'http://169.254.169.254/latest'), loc), [])
  const refused = [
    `<?xml version="1.0"?><!DOCTYPE root [<!ENTITY a "aaaa">]><root>&a;</root>`,
    description(2).replace('</root>', `<x>${'y'.repeat(70_000)}</x></root>`),
    '<html><body>router login</body></html>',
    description(2).replace('</device></deviceList></device></root>', '</device></root>'),
    description(2).slice(0, 500),
  ]
  for (const xml of refused) assert.throws(() => parseDescription(xml, loc), NatProtocolError)
})

test('SOAP: output arguments, faults as UpnpSoapError with the UPnP code, malformed answers refused', () => {
  assert.deepEqual(
    parseSoapResponse(
      'GetExternalIPAddress',
      200,
      soap(
        '<u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewExternalIPAddress>11.0.0.1</NewExternalIPAddress></u:GetExternalIPAddressResponse>',
      ),
    ),
    { NewExternalIPAddress: '11.0.0.1' },
  )
  assert.deepEqual(parseSoapResponse('AddPortMapping', 200, soap('<u:AddPortMappingResponse xmlns:u="x"/>')), {})
  for (const [code, name] of [
    [718, 'ConflictInMappingEntry'],
    [725, 'OnlyPermanentLeasesSupported'],
    [714, 'NoSuchEntryInArray'],
    [606, 'Action not authorized'],
  ] as const) {
    assert.throws(
      () => parseSoapResponse('AddPortMapping', 500, fault(code, name)),
      (err: unknown) => err instanceof UpnpSoapError && err.upnpCode === code && err.message.includes(name),
    )
  }
  assert.throws(() => parseSoapResponse('AddPortMapping', 500, 'Internal Server Error'), UpnpHttpError)
  assert.throws(() => parseSoapResponse('AddPortMapping', 200, soap('<u:OtherResponse/>')), NatProtocolError)
  assert.throws(() => parseSoapResponse('AddPortMapping', 200, '<s:Envelope><s:Body>'), NatProtocolError)
  assert.throws(
    () => parseSoapResponse('AddPortMapping', 200, soap(`<u:AddPortMappingResponse>${'<a>'.repeat(40)}`)),
    NatProtocolError,
  )
})

test('SOAP requests escape their arguments', () => {
  const body = encodeSoapRequest('urn:x', 'AddPortMapping', [['NewPortMappingDescription', '<a&b>"\'']])
  assert.match(body, /<NewPortMappingDescription>&#60;a&#38;b&#62;&#34;&#39;<\/NewPortMappingDescription>/)
  const parsed = parseXml(body)
  assert.equal(parsed.children[0]?.children[0]?.children[0]?.text, '<a&b>"\'')
})

test('XML reader: entities, CDATA, comments; refuses unknown entities, bad references, mismatches, deep nesting', () => {
  assert.equal(decodeEntities('a&lt;b&#x41;&#66;&amp;'), 'a<bAB&')
  const el = parseXml('<?xml version="1.0"?><!-- c --><a x="1"><b><![CDATA[<raw>]]></b><c/>t&gt;</a><!-- end -->')
  assert.equal(el.children[0]?.text, '<raw>')
  assert.equal(el.text, 't>')
  assert.equal(el.attributes.x, '1')
  for (const xml of [
    '<a>&nbsp;</a>',
    '<a>&#0;</a>',
    '<a>&#xD800;</a>',
    '<a></b>',
    '<a>',
    '<a/><b/>',
    'text',
    '<a x=1/>',
    '<a x="1" x="2"/>',
    `${'<a>'.repeat(40)}${'</a>'.repeat(40)}`,
  ]) {
    assert.throws(() => parseXml(xml), NatProtocolError, xml.slice(0, 40))
  }
  assert.throws(() => parseXml(`<a>${'<b/>'.repeat(5000)}</a>`), NatProtocolError)
})

test('XML reader throws only NatProtocolError on any input (fuzz)', () => {
  const pieces = fc.constantFrom(
    '<a>',
    '</a>',
    '<b x="1">',
    '</b>',
    '<c/>',
    '&amp;',
    '&bogus;',
    '<!--',
    '-->',
    '<![CDATA[',
    ']]>',
    '<?x?>',
    'text',
    '<',
    '>',
    '"',
    '&#',
    ';',
  )
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.array(pieces, { maxLength: 40 }).map((a) => a.join('')),
      ),
      (xml) => {
        try {
          parseXml(xml)
        } catch (err) {
          if (!(err instanceof NatProtocolError)) throw err
        }
      },
    ),
    { numRuns: 3000 },
  )
})

async function withServer(
  handler: Parameters<typeof createServer>[1],
  fn: (base: string) => Promise<void>,
): Promise<void> {
  const server: Server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  try {
    await fn(`http://127.0.0.1:${port}`)
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
}

test('HTTP answers over the size limit are refused, declared or streamed; garbage SOAP does not crash', async () => {
  await withServer(
    (req, res) => {
      if (req.url === '/declared') {
        res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) })
        res.write('x')
        return
      }
      if (req.url === '/streamed') {
        res.writeHead(200)
        const chunk = Buffer.alloc(8192, 0x61)
        for (let i = 0; i < 8; i++) res.write(chunk)
        res.end()
        return
      }
      res.writeHead(200, { 'content-type': 'text/xml' })
      res.end(
        '<s:Envelope><s:Body><u:GetExternalIPAddressResponse><NewExternalIPAddress>999.1.1.1</NewExternalIPAddress>',
      )
    },
    async (base) => {
      for (const path of ['/declared', '/streamed']) {
        await assert.rejects(
          fetchLimited(`${base}${path}`, { maxBytes: SOAP_MAX_BYTES, timeoutMs: 2000 }),
          NatProtocolError,
        )
      }
      const gw = new UpnpGateway({
        location: `${base}/desc.xml`,
        serviceType: 'urn:schemas-upnp-org:service:WANIPConnection:2',
        controlUrl: `${base}/ctl`,
        version: 2,
      })
      await assert.rejects(gw.externalAddress(), NatProtocolError)
      await assert.rejects(
        gw.call('GetExternalIPAddress', []).then(() => gw.externalAddress()),
        NatProtocolError,
      )
    },
  )
})

test('GetSpecificPortMappingEntry: 714 means "no such mapping", and an invalid answer is refused', async () => {
  let answer = fault(714, 'NoSuchEntryInArray')
  await withServer(
    (_req, res) => {
      res.writeHead(answer.includes('Fault') ? 500 : 200)
      res.end(answer)
    },
    async (base) => {
      const gw = new UpnpGateway({
        location: `${base}/d`,
        serviceType: 'urn:schemas-upnp-org:service:WANIPConnection:1',
        controlUrl: `${base}/c`,
        version: 1,
      })
      assert.equal(await gw.getSpecificPortMappingEntry(4011, 'tcp'), undefined)
      answer = soap(
        '<u:GetSpecificPortMappingEntryResponse><NewInternalPort>4011</NewInternalPort><NewInternalClient>10.77.0.2</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>donghae</NewPortMappingDescription><NewLeaseDuration>3590</NewLeaseDuration></u:GetSpecificPortMappingEntryResponse>',
      )
      assert.deepEqual(await gw.getSpecificPortMappingEntry(4011, 'tcp'), {
        internalPort: 4011,
        internalClient: '10.77.0.2',
        enabled: true,
        description: 'donghae',
        leaseSeconds: 3590,
      })
      answer = answer.replace('<NewInternalPort>4011', '<NewInternalPort>99999')
      await assert.rejects(gw.getSpecificPortMappingEntry(4011, 'tcp'), NatProtocolError)
    },
  )
})
