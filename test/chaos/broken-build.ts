/**
 * A deliberately broken Donghae, made only for the chaos runner to catch: the checkout's source
 * copied to a temp dir and patched there (production code has no switch for it). The patch makes
 * every validator sign two different prevotes in one round: after its prevote for a block it
 * also signs and sends a nil prevote for the same (height, round), and its private validator no
 * longer refuses the second signature. Honest peers see the two votes (`double sign detected`)
 * and report them as `staking.evidence`, which the runner counts under `double-sign`.
 *
 * A patch whose anchor text is gone (the engine was edited) throws, so the test fails loudly
 * rather than running an unbroken build.
 */
import { cp, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

interface Patch {
  file: string
  find: string
  replace: string
}

export const DOUBLE_PREVOTE: readonly Patch[] = [
  {
    file: 'src/chain/bft/privval.ts',
    find: `        if (equals(hash, last.signBytesHash)) return last.signature
        throw new DoubleSignError(
          \`refusing to sign a different value at height \${height} round \${round} step \${step} (double sign)\`,
          { details: at },
        )`,
    replace: `        if (equals(hash, last.signBytesHash)) return last.signature
        void at // BROKEN BUILD: a second, different signature at one (height, round, step) is allowed`,
  },
  {
    file: 'src/chain/bft/engine.ts',
    find: `    hs.own.push(msg)
    this.#send(msg)
  }
`,
    replace: `    hs.own.push(msg)
    this.#send(msg)
    // BROKEN BUILD: a second, conflicting prevote (nil) in the same round
    if (type === 'prevote' && blockId !== null) {
      const twin = await privval.signVote({ ...vote, blockId: null })
      this.#send({ kind: 'vote', vote: twin })
    }
  }
`,
  },
]

/**
 * The other classic: validators that ignore their lock (rules 2 and 3 prevote any valid proposal).
 * Safety then rests on timing alone, so a run needs partitions and pauses to split a round and
 * may take many minutes to fork; the test uses DOUBLE_PREVOTE, this is for longer manual runs
 * (docs/chaos.md).
 */
export const IGNORE_LOCK: readonly Patch[] = [
  {
    file: 'src/chain/bft/engine.ts',
    find: `        const acceptable = hs.lockedRound === -1 || hs.lockedKey === record.candidate.key`,
    replace: `        const acceptable = true // BROKEN BUILD: the lock is ignored (rule 2)`,
  },
  {
    file: 'src/chain/bft/engine.ts',
    find: `        const acceptable = hs.lockedRound <= validRound || hs.lockedKey === record.candidate.key`,
    replace: `        const acceptable = true // BROKEN BUILD: the lock is ignored (rule 3)`,
  },
]

/** Copies the checkout (src, bin, package.json; models, web and node_modules linked) and applies `patches`. */
export async function brokenBuild(patches: readonly Patch[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-broken-'))
  await cp(join(ROOT, 'src'), join(dir, 'src'), { recursive: true })
  await cp(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true })
  await cp(join(ROOT, 'package.json'), join(dir, 'package.json'))
  for (const linked of ['node_modules', 'models', 'web']) await symlink(join(ROOT, linked), join(dir, linked))
  for (const patch of patches) {
    const path = join(dir, patch.file)
    const text = await readFile(path, 'utf8')
    if (!text.includes(patch.find))
      throw new Error(`broken build: the anchor in ${patch.file} is gone; update the patch`)
    await writeFile(path, text.replace(patch.find, patch.replace))
  }
  return dir
}
