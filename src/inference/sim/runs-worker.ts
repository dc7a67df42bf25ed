/**
 * Worker thread of runs.ts: one AuditSim (one ONNX Runtime session) answering `{ seed,
 * behaviour, maxJobs }` with the run's result, one at a time.
 */
import { parentPort } from 'node:worker_threads'
import { describeError } from '../../core/errors.ts'
import { AuditSim } from './audit-sim.ts'
import { runWorkers, type SimBehaviourName } from './runs.ts'

const port = parentPort
if (port === null) throw new Error('runs-worker.ts runs as a worker thread')
const sim = await AuditSim.open()
port.on('message', (job: { seed: number; behaviour: SimBehaviourName; maxJobs: number }) => {
  sim
    .run({ seed: job.seed, maxJobs: job.maxJobs, workers: runWorkers(job.behaviour), jobsPerBlock: 4 })
    .then((result) => port.postMessage({ result }))
    .catch((err: unknown) => port.postMessage({ error: describeError(err) }))
})
