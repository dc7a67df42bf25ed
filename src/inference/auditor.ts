/**
 * The auditor role of a gateway: it holds the inputs of the jobs it served (only the gateway and
 * the worker ever see them) and, once a job settles, does what the chain's draw says
 * (chain/draws.ts, policy/audits.ts):
 *
 *   settled at b --(block b+2 decides)--> audited? -- no -> forget
 *                                            | yes
 *                                            v
 *        ask the drawn auditor whose slot is open -> inference.audit -> passed -> forget
 *                                                                      | mismatch
 *                                                                      v
 *                          ask the drawn quorum (same seed) -> inference.resolve (slash)
 *
 * A canary (a job whose answer this node computed itself) that came back wrong is challenged
 * first (`inference.challenge`), which makes the chain audit it whatever the streak. Nothing here
 * picks anyone: every choice is the chain's, so a gateway that favoured or framed a worker would
 * only see its transactions refused.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import { equals, toHex } from '../core/bytes.ts'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import type { ChainEvent } from '../chain/host.ts'
import type { AuditEvent, InferenceComponents } from './components.ts'
import { KEEP_FOR_AUDIT } from './constants.ts'
import { jobId, jobIdHex, receiptValue, type Receipt } from './job.ts'
import type { Purpose, WorkRequest } from './worker.ts'
import { AUDIT_DELAY_BLOCKS, auditorMayAnswer, auditWindowEnd, type Candidate } from './policy/audits.ts'
import { auditOpensAt, auditorsOf, isAudited, quorumOf, type RosterCache } from './chain/draws.ts'
import { auditOf, disputeOf, modelByCid, settlementOf, type JobSettlement } from './chain/state.ts'
import { majorityHash } from './chain/audit.ts'
import { encodeTensorMap, hashTensorMap, type TensorMap } from './tensor.ts'

export interface AuditItem {
  receipt: Receipt
  inputs: TensorMap
  outputs: TensorMap
  /** The answer this node computed itself, when the job was a canary. */
  canaryHash?: Uint8Array
}

/** Runs a re-run on a worker (this node's own, or a peer's) and returns its verified answer. */
export type Rerun = (worker: string, request: WorkRequest) => Promise<{ receipt: Receipt; outputs: TensorMap }>

export interface AuditorInit {
  rerun: Rerun
  onAudit?(event: AuditEvent): void
}

type Step = 'settling' | 'deciding' | 'challenged' | 'auditing' | 'audit-sent' | 'quorum' | 'resolve-sent'

interface Held extends AuditItem {
  id: string
  step: Step
  settlement?: JobSettlement
  /** The height at which the current step's transaction was sent. */
  sentAt?: number
  busy: boolean
  /** Drawn auditors that did not answer, and the height at which they were last asked. */
  unanswered?: Map<string, number>
  /**
   * The first commit height at which this job can move again: before it, every look would read
   * the same state and find nothing to do (sweeps skip it). 0: look at every commit.
   */
  wakeAt: number
}

/**
 * A drawn auditor that did not answer is asked again only after this many blocks, for any held
 * job: a node that declared the model but is offline (or runs no worker) would otherwise cost a
 * request per held job per block. The silence is the auditor's, not one job's: on a young network
 * every job is audited, and asking a silent auditor once per held job cost the inference bench's
 * gateway 100-350 failed requests a second (each a stream and a protocol negotiation on both
 * sides; docs/performance.md, "Audits that asked the silent").
 */
export const AUDITOR_RETRY_BLOCKS = 4
/**
 * Held jobs looked at between two turns of the event loop after a commit: a gateway holding
 * thousands (KEEP_FOR_AUDIT) reads a few state keys for each, which in one go would hold up the
 * requests it is serving for tens of milliseconds.
 */
const SWEEP_CHUNK = 32

export class Auditor {
  readonly #c: InferenceComponents
  readonly #init: AuditorInit
  readonly #log: Logger
  readonly #held = new Map<string, Held>()
  /** Drawn auditors whose last request failed, and the commit height then (see AUDITOR_RETRY_BLOCKS). */
  readonly #silent = new Map<string, number>()
  /** Drawn auditors whose last request was answered: held jobs ask them at once, many at a time. */
  readonly #answering = new Set<string>()
  /**
   * The request in flight to an auditor not known to answer: other held jobs drawn the same
   * auditor wait for its outcome instead of each sending one of their own.
   */
  readonly #probes = new Map<string, Promise<void>>()
  /** `looks`: held jobs read from state to be moved on (what the sweeps cost). */
  readonly stats = { audits: 0, auditsFailed: 0, quorums: 0, challenges: 0, looks: 0 }
  #unsubscribe: (() => void) | undefined

  constructor(components: InferenceComponents, init: AuditorInit) {
    this.#c = components
    this.#init = init
    this.#log = components.logger.forComponent('donghae:inference:auditor')
  }

  start(): void {
    this.#unsubscribe = this.#c.chain.onCommit((height, events) => this.#onCommit(height, events))
  }

  stop(): void {
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
  }

  /** Jobs held for a possible audit. */
  get held(): number {
    return this.#held.size
  }

  /** Keeps a served job's inputs and outputs until its audit question is settled. */
  hold(item: AuditItem): void {
    if (this.#held.size >= KEEP_FOR_AUDIT) return
    const id = jobIdHex(item.receipt.job)
    this.#held.set(id, { ...item, id, step: 'settling', busy: false, wakeAt: 0 })
  }

  /** The settler's word on a held job: settled at `height`, or never (forget it). */
  settled(id: string, height: number | undefined): void {
    const held = this.#held.get(id)
    if (held === undefined) return
    if (height === undefined) this.#held.delete(id)
    else {
      held.step = 'deciding'
      // the draw's seed is the id of block height + AUDIT_DELAY_BLOCKS, known once it commits; a
      // canary is looked at from the next commit (a wrong answer is challenged at once)
      held.wakeAt = held.canaryHash === undefined ? height + AUDIT_DELAY_BLOCKS : 0
    }
  }

  #onCommit(height: number, _events: readonly ChainEvent[]): void {
    void this.#sweep(height)
  }

  /** Advances every held job after the commit of `height`, a chunk per turn of the event loop. */
  async #sweep(height: number): Promise<void> {
    // one state for every job of this commit: each model's workers are read once, not once per job
    const rosters: RosterCache = new Map()
    let looked = 0
    for (const held of [...this.#held.values()]) {
      if (held.busy || held.step === 'settling' || held.wakeAt > height) continue
      if (++looked % SWEEP_CHUNK === 0) {
        await yieldToEventLoop()
        // stopped, or a newer commit: its own sweep takes the jobs not advanced yet
        if (this.#unsubscribe === undefined || this.#c.chain.height() !== height) return
      }
      held.busy = true
      void this.#advance(held, height, rosters)
        .catch((err: unknown) => {
          this.#log.info({ job: held.id, step: held.step, err: describeError(err) }, 'audit step failed; will retry')
        })
        .finally(() => (held.busy = false))
    }
  }

  /** Moves one held job along the diagram in the file header, as far as the chain allows now. */
  async #advance(held: Held, height: number, rosters: RosterCache): Promise<void> {
    const c = this.#c
    this.stats.looks++
    const state = c.chain.state()
    const params = c.chain.params
    const settlement = settlementOf(state, held.id)
    if (settlement === undefined) return
    held.settlement = settlement
    const dispute = disputeOf(state, held.id)
    const audit = auditOf(state, held.id)
    if ((dispute !== undefined && dispute.resolved !== null) || (audit !== undefined && audit.passed)) {
      if (audit?.passed === true) this.#init.onAudit?.({ result: 'pass', worker: settlement.worker, jobId: held.id })
      this.#held.delete(held.id)
      return
    }
    if (dispute !== undefined) {
      if (height > dispute.height + params.disputeWindowBlocks) return void this.#held.delete(held.id)
      if (held.step === 'resolve-sent' && held.sentAt !== undefined && height <= held.sentAt + 3) return
      held.step = 'quorum'
      await this.#quorum(
        held,
        settlement,
        { did: dispute.audit.worker, ep: dispute.auditEp, runtime: dispute.auditRuntime },
        dispute.audit,
      )
      return
    }
    const canaryFailed = held.canaryHash !== undefined && !equals(held.canaryHash, settlement.outputHash)
    if (canaryFailed && settlement.challenged === null) {
      if (held.step === 'challenged' && held.sentAt !== undefined && height <= held.sentAt + 3) return
      if (height > settlement.height + params.disputeWindowBlocks) return void this.#held.delete(held.id)
      held.step = 'challenged'
      held.sentAt = height
      this.stats.challenges++
      await c.submitTx('inference.challenge', { jobId: jobId(held.receipt.job) })
      return
    }
    const recent = (h: number): Uint8Array | undefined => c.chain.blockId(h)
    const audited = isAudited(state, settlement, params, recent)
    if (audited === undefined) return // the deciding block is not in state yet
    if (!audited) return void this.#held.delete(held.id)
    const opensAt = auditOpensAt(settlement)
    const next = height + 1
    if (next >= auditWindowEnd(opensAt, params)) return void this.#held.delete(held.id)
    if (held.step === 'audit-sent' && held.sentAt !== undefined && height <= held.sentAt + 2) return
    const drawn = auditorsOf(state, settlement, next, params, recent, rosters)
    const open = drawn.filter((_, i) => auditorMayAnswer(i, next, opensAt, params))
    held.step = 'auditing'
    for (const auditor of open.reverse()) {
      // the latest slot first: earlier auditors had their chance and did not answer
      const askedAt = held.unanswered?.get(auditor.did)
      if (askedAt !== undefined && height < askedAt + AUDITOR_RETRY_BLOCKS) continue
      const done = await this.#audit(held, settlement, auditor, height)
      if (done) return
      ;(held.unanswered ??= new Map()).set(auditor.did, this.#silentSince(auditor.did, height) ?? height)
    }
    // nobody to ask now: nothing changes before the next slot opens or an auditor may be asked again
    held.wakeAt = nextAuditLook(held.unanswered, height, opensAt, params)
  }

  /**
   * The height at which `did` last failed to answer, while that keeps it from being asked at
   * `height`; undefined when it may be asked.
   */
  #silentSince(did: string, height: number): number | undefined {
    const since = this.#silent.get(did)
    if (since === undefined) return undefined
    if (height < since + AUDITOR_RETRY_BLOCKS) return since
    this.#silent.delete(did)
    return undefined
  }

  /**
   * Asks one drawn auditor and submits its receipt; false if it could not answer, now or within
   * AUDITOR_RETRY_BLOCKS of failing another job's request.
   */
  async #audit(held: Held, settlement: JobSettlement, auditor: Candidate, height: number): Promise<boolean> {
    const did = auditor.did
    // from here to the probe's entry nothing awaits, so one job's request is the probe for all
    for (let probe = this.#probes.get(did); probe !== undefined; probe = this.#probes.get(did)) await probe
    if (this.#silentSince(did, height) !== undefined) return false
    const attempt = this.#rerun(did, held, 'audit').then(
      (answer) => {
        this.#answering.add(did)
        this.#silent.delete(did)
        return answer
      },
      (err: unknown) => {
        this.#answering.delete(did)
        this.#silent.set(did, Math.max(height, this.#silent.get(did) ?? 0))
        throw err
      },
    )
    if (!this.#answering.has(did) && !this.#probes.has(did)) {
      const probe = attempt.then(
        () => {},
        () => {},
      )
      this.#probes.set(did, probe)
      void probe.finally(() => {
        if (this.#probes.get(did) === probe) this.#probes.delete(did)
      })
    }
    let answer: { receipt: Receipt; outputs: TensorMap }
    try {
      answer = await attempt
    } catch (err) {
      this.#log.info({ job: held.id, auditor: did, err: describeError(err) }, 'drawn auditor did not answer')
      return false
    }
    this.stats.audits++
    const sameGroup = auditor.ep === settlement.ep && auditor.runtime === settlement.runtime
    const agree = equals(answer.receipt.outputHash, settlement.outputHash)
    const outputs = sameGroup || agree ? [] : [encodeTensorMap(held.outputs), encodeTensorMap(answer.outputs)]
    if (!agree) {
      this.stats.auditsFailed++
      this.#init.onAudit?.({ result: 'dispute', worker: settlement.worker, jobId: held.id })
      this.#log.warn(
        { job: held.id, worker: settlement.worker, auditor: auditor.did },
        'audit mismatch: the quorum will judge',
      )
    }
    await this.#c.submitTx('inference.audit', {
      jobId: jobId(held.receipt.job),
      audit: receiptValue(answer.receipt),
      outputs,
    })
    held.step = 'audit-sent'
    held.sentAt = this.#c.chain.height()
    return true
  }

  /** Asks every drawn quorum member at once and submits the resolution when enough answered. */
  async #quorum(held: Held, settlement: JobSettlement, auditor: Candidate, auditReceipt: Receipt): Promise<void> {
    const c = this.#c
    const members = quorumOf(c.chain.state(), settlement, auditor, c.chain.height() + 1, c.chain.params, (h) =>
      c.chain.blockId(h),
    )
    if (members.length === 0) {
      this.#log.warn({ job: held.id }, 'no quorum can be drawn for this dispute')
      this.#held.delete(held.id)
      return
    }
    const answers = await Promise.allSettled(members.map((m) => this.#rerun(m.did, held, 'quorum')))
    const ok = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []))
    this.stats.quorums++
    if (ok.length < c.chain.params.quorumSize) {
      this.#log.info({ job: held.id, answered: ok.length }, 'not enough quorum members answered yet')
      return
    }
    const quorum = ok.map((a) => a.receipt)
    const majority = majorityHash(quorum)
    const reference = ok.find((a) => majority !== null && equals(a.receipt.outputHash, majority))
    const maps = new Map<string, Uint8Array>()
    const addMap = (map: TensorMap): void => {
      const bytes = encodeTensorMap(map)
      maps.set(toHex(hashTensorMap(map)), bytes)
    }
    const group = `${members[0]?.ep}\u0000${members[0]?.runtime}`
    const crossGroup =
      `${settlement.ep}\u0000${settlement.runtime}` !== group || `${auditor.ep}\u0000${auditor.runtime}` !== group
    if (crossGroup && reference !== undefined) {
      addMap(reference.outputs)
      addMap(held.outputs)
      const auditAnswer = ok.find((a) => equals(a.receipt.outputHash, auditReceipt.outputHash))
      if (auditAnswer !== undefined) addMap(auditAnswer.outputs)
    }
    await c.submitTx('inference.resolve', {
      jobId: jobId(held.receipt.job),
      quorum: quorum.map(receiptValue),
      outputs: [...maps.values()].slice(0, 3),
    })
    held.step = 'resolve-sent'
    held.sentAt = c.chain.height()
    this.#init.onAudit?.({ result: 'fail', worker: settlement.worker, jobId: held.id })
  }

  #rerun(worker: string, held: Held, purpose: Purpose): Promise<{ receipt: Receipt; outputs: TensorMap }> {
    // a language model's output is checked by teacher forcing: the re-run is given the claimed tokens
    const lm = modelByCid(this.#c.chain.state(), held.receipt.job.model)?.kind === 'lm'
    return this.#init.rerun(worker, {
      job: held.receipt.job,
      inputs: held.inputs,
      dispatch: null,
      purpose,
      ...(lm ? { claimed: held.outputs } : {}),
    })
  }
}

/**
 * The commit height at which a job being audited, with no drawn auditor to ask now, is worth
 * looking at again: the commit before the next auditor slot opens, or the one at which an auditor
 * that did not answer may be asked again, whichever is first. A settled job is audited over
 * `auditCandidates × auditSlotBlocks` blocks, and on a young network (every worker's streak under
 * the threshold) every job is: looking at each one at every commit took about 8 % of a gateway's
 * main thread in the inference bench (docs/performance.md, "The inference path").
 */
export function nextAuditLook(
  unanswered: ReadonlyMap<string, number> | undefined,
  height: number,
  opensAt: number,
  params: Parameters<typeof auditWindowEnd>[1],
): number {
  // at the commit of `height` the auditor asks whoever may answer at height + 1
  const end = auditWindowEnd(opensAt, params)
  let wake = end - 1
  for (let slot = opensAt; slot < end; slot += params.auditSlotBlocks)
    if (slot > height + 1) {
      wake = slot - 1
      break
    }
  for (const askedAt of unanswered?.values() ?? [])
    if (askedAt + AUDITOR_RETRY_BLOCKS > height) wake = Math.min(wake, askedAt + AUDITOR_RETRY_BLOCKS)
  return Math.max(wake, height + 1)
}
