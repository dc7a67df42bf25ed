/**
 * The inference market on one node, assembled from its roles:
 *
 *   createInference(init)(components) -> Inference
 *     worker   (worker.ts)   runs models for pay and for chain-drawn audits; settles its own
 *                            receipts when their gateway does not (only when the node serves)
 *     models   (models.ts)   what the worker loads, calibrates and declares on chain
 *     gateway  (gateway.ts)  jobs from the API: deposit check, worker draw, dispatch, retries
 *     settler  (settler.ts)  receipts -> `inference.settle`, followed to the end
 *     auditor  (auditor.ts)  the chain's audit draws for the jobs this gateway served
 *
 * Each role takes `InferenceComponents` (components.ts): key, chain view, the node's single
 * own-transaction queue, transport, clock, randomness, logger, abort signal. The node wires real
 * ones; the audit simulation (sim/audit-sim.ts) wires a manual clock, a seeded generator and the
 * in-memory transport to the same classes.
 */
import { ADVERT_TOPIC, WorkerTable, advertValidator, type SlotAdvert } from './adverts.ts'
import type { AuditEvent, InferenceComponents, JobEvent, ModelRunner, WorkerBehaviour } from './components.ts'
import { Auditor } from './auditor.ts'
import { Gateway } from './gateway.ts'
import { WorkerModels, type BlobSource } from './models.ts'
import { Settler, type Journal } from './settler.ts'
import { Worker, type ReceiptKeeper } from './worker.ts'
import { isSchedulable, listModels, type ModelRecord } from './chain/state.ts'

export interface InferenceInit {
  /** Serve models (needs `runner` and a bond on chain). */
  worker?: {
    runner: ModelRunner
    slots?: number
    /** Memory for loaded models, bytes (models.ts). */
    memoryBudget?: number
    behaviour?: WorkerBehaviour
    allows?(model: ModelRecord): boolean
    keeper?: ReceiptKeeper
  }
  /** Where weights come from (the node's blob store, verified against CIDs). */
  blobs: BlobSource
  /** Journals of the gateway's reservations and the settler's queue (LevelDB in a node). */
  journals?: { reservations?: Journal; settlements?: Journal }
  /** Listen to workers' adverts and take jobs from the API (every node in a real network). @default true */
  gateway?: boolean
  canaryPpm?: number
  remoteOnly?: boolean
  selfDeposit?: boolean
  onJob?(event: JobEvent): void
  onAudit?(event: AuditEvent): void
}

export interface Inference {
  readonly gateway: Gateway
  readonly settler: Settler
  readonly auditor: Auditor
  readonly worker: Worker | undefined
  readonly table: WorkerTable
  start(): Promise<void>
  stop(): void
  /** Registered models with how many workers advertise each and whether this node serves it. */
  models(): Array<ModelRecord & { workers: number; servedHere: boolean }>
  /** Workers heard from recently. */
  liveWorkers(): SlotAdvert[]
}

export function createInference(init: InferenceInit): (components: InferenceComponents) => Inference {
  return (c) => {
    const log = c.logger.forComponent('donghae:inference')
    const table = new WorkerTable(() => c.clock.now())
    let models: WorkerModels | undefined
    let worker: Worker | undefined
    if (init.worker !== undefined) {
      models = new WorkerModels(c, {
        runner: init.worker.runner,
        blobs: init.blobs,
        servingPeers: (cid) => table.serving(cid),
        ...(init.worker.allows === undefined ? {} : { allows: init.worker.allows }),
        ...(init.worker.memoryBudget === undefined ? {} : { memoryBudget: init.worker.memoryBudget }),
        onChange: () => worker?.capacityChanged(),
      })
      worker = new Worker(c, {
        models,
        ...(init.worker.slots === undefined ? {} : { slots: init.worker.slots }),
        ...(init.worker.behaviour === undefined ? {} : { behaviour: init.worker.behaviour }),
        ...(init.worker.keeper === undefined ? {} : { keeper: init.worker.keeper }),
        ...(init.onJob === undefined ? {} : { onJob: init.onJob }),
        onCapacity: (advert) => table.update(advert),
      })
    }
    const gatewayRef: { current?: Gateway } = {}
    const auditor = new Auditor(c, {
      rerun: (w, request) => (gatewayRef.current as Gateway).run(w, request),
      ...(init.onAudit === undefined ? {} : { onAudit: init.onAudit }),
    })
    const settler = new Settler(c, {
      ...(init.journals?.settlements === undefined ? {} : { journal: init.journals.settlements }),
      onOutcome: (id, height) => {
        gatewayRef.current?.released(id)
        auditor.settled(id, height)
      },
    })
    const gateway = new Gateway(c, {
      table,
      settler,
      auditor,
      ...(worker === undefined ? {} : { worker }),
      ...(init.journals?.reservations === undefined ? {} : { journal: init.journals.reservations }),
      ...(init.canaryPpm === undefined ? {} : { canaryPpm: init.canaryPpm }),
      ...(init.remoteOnly === undefined ? {} : { remoteOnly: init.remoteOnly }),
      ...(init.selfDeposit === undefined ? {} : { selfDeposit: init.selfDeposit }),
      ...(init.onJob === undefined ? {} : { onJob: init.onJob }),
    })
    gatewayRef.current = gateway
    const unsubscribe: Array<() => void> = []
    return {
      gateway,
      settler,
      auditor,
      worker,
      table,
      async start() {
        if (init.gateway !== false)
          unsubscribe.push(
            c.adverts.subscribe(
              ADVERT_TOPIC,
              advertValidator({
                chainId: c.chain.chainId,
                table,
                isBonded: (did) => isSchedulable(c.chain.state(), did, c.chain.height() + 1, c.chain.params),
                now: () => c.clock.now(),
              }),
            ),
          )
        unsubscribe.push(c.chain.onCommit(() => gateway.sweep()))
        await gateway.start()
        await settler.start()
        auditor.start()
        await worker?.start()
        log.info({ worker: worker !== undefined }, 'inference started')
      },
      stop() {
        for (const off of unsubscribe.splice(0)) off()
        worker?.stop()
        auditor.stop()
        settler.stop()
      },
      models() {
        return listModels(c.chain.state()).map((m) => ({
          ...m,
          workers: table.serving(m.cid).length,
          servedHere: models?.serves(m.cid) ?? false,
        }))
      },
      liveWorkers: () => table.live(),
    }
  }
}

export type { InferenceComponents, ModelRunner, WorkerBehaviour, JobEvent, AuditEvent } from './components.ts'
export type { InferRequest, InferResult } from './gateway.ts'
