/** chaos: a devnet of real processes under a seeded schedule of faults, with load and invariant checks. */
export {
  startLoad,
  LOAD_KINDS,
  type LoadKind,
  type LoadInit,
  type LoadTarget,
  type LoadHandle,
  type LoadStats,
  type LoadEvent,
  type CommittedTx,
  type ReceivedReceipt,
} from './load.ts'
export {
  drawSchedule,
  describeFault,
  parseSchedule,
  parseFaultKinds,
  scheduleEndMs,
  FAULT_KINDS,
  type Fault,
  type FaultKind,
} from './schedule.ts'
export { runChaos, type RunOptions, type RunResult } from './runner.ts'
export { shrinkSchedule, rebase, type ShrinkOptions, type ShrinkResult } from './shrink.ts'
export { probeCapabilities, unavailableReason, type Capabilities } from './faults.ts'
export { INVARIANTS, type InvariantName, type Violation } from './invariants.ts'
export { ChaosOptionError, ChaosClusterError, ChaosFaultError } from './errors.ts'
