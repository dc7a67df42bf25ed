/** Shared by the SIGKILL writer and its test: how many entries batch `i` holds. */
export function batchSize(i: bigint): number {
  return 20 + Number(i % 37n)
}
