import type { Command } from 'commander'
import { DonghaeClient } from '../../api/client.ts'
import { ApiError } from '../../api/errors.ts'
import { DEFAULT_NODE_URL, NODE_URL_ENV } from '../../api/constants.ts'
import { isIPv4 } from 'node:net'
import { createLogger } from '../../core/logger.ts'
import { PortMappingManager, NAT_MODES, type NatMode } from '../../net/nat/manager.ts'
import { isPublicAddress } from '../../net/nat/netinfo.ts'
import { createContext, type CliIo } from '../context.ts'
import { CliError } from '../errors.ts'

interface ProbeOptions {
  nat?: string
  port?: string
  hold: string
  gateway?: string
  json?: boolean
}

function parseProbe(options: ProbeOptions, defaults: { nat: NatMode; port: number }) {
  const mode = (options.nat ?? defaults.nat) as NatMode
  if (!NAT_MODES.includes(mode)) throw new CliError(`--nat must be one of ${NAT_MODES.join(', ')}`)
  const port = options.port === undefined ? defaults.port : Number(options.port)
  if (!/^[0-9]+$/.test(String(port)) || port < 1 || port > 65_535) throw new CliError('--port must be a port 1-65535')
  const hold = Number(options.hold)
  if (!/^[0-9]+(\.[0-9]+)?$/.test(options.hold) || hold > 86_400) throw new CliError('--hold must be 0-86400 seconds')
  if (options.gateway !== undefined && !isIPv4(options.gateway)) throw new CliError('--gateway must be an IPv4 address')
  return { mode, port, hold, gateway: options.gateway }
}

/** Resolves after `seconds` or at SIGINT/SIGTERM, whichever comes first. */
function holdFor(seconds: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      process.off('SIGINT', done)
      process.off('SIGTERM', done)
      resolve()
    }
    const timer = setTimeout(done, seconds * 1000)
    process.on('SIGINT', done)
    process.on('SIGTERM', done)
  })
}

const NOT_TRIED: Record<NatMode, string> = {
  auto: '',
  pmp: '; UPnP: not tried (--nat pmp)',
  upnp: '; NAT-PMP: not tried (--nat upnp)',
  off: '',
}

export function registerNat(program: Command, io: CliIo): void {
  const nat = program.command('nat').description('port mapping through the home router (NAT-PMP, then UPnP IGD)')
  nat
    .command('probe')
    .description('map one port on the router, print the external address, hold it, then remove it')
    .option('--nat <mode>', `auto (NAT-PMP, then UPnP), pmp, upnp or off (default: config nat)`)
    .option('--port <port>', 'internal port to map, also the external port asked for (default: config p2pPort)')
    .option('--hold <seconds>', 'keep the mapping this long (Ctrl-C ends it early), then remove it', '0')
    .option('--gateway <ip>', "the router's address (default: the default route's gateway)")
    .option('--json', 'print the result as one JSON line')
    .addHelpText(
      'after',
      `
Exit status 0 when a port was mapped, 1 when none could be (a node then falls back to a circuit relay).

Examples:
  $ donghae nat probe
  $ donghae nat probe --nat upnp --port 4011 --hold 60 --json
  $ donghae nat probe --nat pmp --gateway 192.168.1.1`,
    )
    .action(async (options: ProbeOptions, command: Command) => {
      const ctx = createContext(command, io)
      const { config } = ctx.config()
      const o = parseProbe(options, { nat: config.nat, port: config.p2pPort })
      // The outcome is printed below as one line; router answers are logged only when asked for.
      const explicitLevel = command.optsWithGlobals<{ logLevel?: string }>().logLevel ?? io.env.DONGHAE_LOG_LEVEL
      const manager = new PortMappingManager({
        mode: o.mode,
        internalPort: o.port,
        gateway: o.gateway,
        logger: explicitLevel === undefined ? createLogger({ level: 'error' }) : ctx.logger,
      })
      await manager.start()
      const status = manager.status()
      const m = status.mapping
      if (m === undefined) {
        await manager.stop()
        const reason = `${status.reason ?? 'unknown'}${NOT_TRIED[o.mode]}`
        if (options.json === true) {
          io.stdout.write(`${JSON.stringify({ method: 'none', reason, fallback: 'circuit-relay' })}\n`)
        }
        throw new CliError(
          `no port mapping available: ${reason} \u2014 peers will reach this node through a circuit relay`,
        )
      }
      const result = {
        method: m.method,
        externalAddress: `${m.externalAddress}:${m.externalPort}`,
        leaseSeconds: m.leaseSeconds,
        internalAddress: `${m.internalAddress}:${m.internalPort}`,
        protocol: m.protocol,
        gateway: status.gateway,
        ...(m.upnpService === undefined ? {} : { upnpService: m.upnpService }),
      }
      if (options.json === true) io.stdout.write(`${JSON.stringify(result)}\n`)
      else {
        ctx.out(`mapped     ${result.externalAddress} \u2192 ${result.internalAddress} (${m.protocol})`)
        ctx.out(
          `method     ${m.method === 'pmp' ? 'NAT-PMP' : `UPnP (${m.upnpService ?? ''})`} via ${status.gateway ?? '?'}`,
        )
        ctx.out(`lease      ${m.leaseSeconds === 0 ? 'permanent' : `${m.leaseSeconds} s`}`)
      }
      if (!isPublicAddress(m.externalAddress)) {
        io.stderr.write(
          `warning: the router's external address ${m.externalAddress} is not public (another NAT upstream); peers outside cannot dial it\n`,
        )
      }
      if (o.hold > 0) await holdFor(o.hold)
      await manager.stop()
      if (options.json !== true) ctx.out(`removed    ${result.externalAddress}`)
    })

  nat
    .command('status')
    .description('the live port-mapping state of a running node (its API: --node, env DONGHAE_NODE)')
    .option('--json', 'print as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  $ donghae nat status\n  $ donghae nat status --node http://127.0.0.1:26658 --json',
    )
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = createContext(command, io)
      const url = command.optsWithGlobals<{ node?: string }>().node ?? io.env[NODE_URL_ENV] ?? DEFAULT_NODE_URL
      const client = new DonghaeClient(url)
      let nat
      try {
        nat = (await client.net()).nat
      } catch (err) {
        if (err instanceof ApiError) throw new CliError(`cannot read the NAT state from ${url}: ${err.message}`)
        throw err
      }
      if (options.json === true) ctx.json(nat)
      else if ('externalAddress' in nat)
        ctx.out(`${nat.method === 'pmp' ? 'NAT-PMP' : 'UPnP'}: ${nat.externalAddress}, lease ${nat.leaseSeconds} s`)
      else ctx.out(`${nat.method}: ${nat.reason}`)
      if (options.json !== true && nat.relay !== undefined)
        ctx.out(`relay: reachable through ${nat.relay.peer} at ${nat.relay.address}`)
    })
}
