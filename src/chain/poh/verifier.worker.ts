/**
 * A PoH verifier pool worker: checks one slice of an encoded entry buffer (see wire.ts) per
 * message and answers with its PohCheck. The buffer is a SharedArrayBuffer, so nothing is copied.
 */
import { parentPort } from 'node:worker_threads'
import { PohHasher } from './hasher.ts'
import { checkEncodedSlice } from './wire.ts'

export interface VerifyTask {
  taskId: number
  buffer: SharedArrayBuffer
  from: number
  to: number
}

const hasher = new PohHasher()

parentPort?.on('message', (task: VerifyTask) => {
  const check = checkEncodedSlice(hasher, task.buffer, task.from, task.to)
  parentPort?.postMessage({ taskId: task.taskId, check })
})
