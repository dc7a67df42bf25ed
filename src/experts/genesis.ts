/**
 * The demo family in a development genesis: moby-moe (models/moe/) as a MetaBlock and one
 * accepted block per router and expert, their miners spread over the network's keys (so usage
 * rewards reach every node), and the files every node imports into its content store at start.
 */
import { unixfsCid } from '../core/cid.ts'
import type { GenesisExperts } from '../chain/genesis.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { blockHash, metaHash, signParamBlock } from './block.ts'
import { readDemoMoe, type DemoMoe } from './demo.ts'
import { expertName, payloadShapes, routerName, type MetaBlockBody, type ParamBlockHeader } from './types.ts'

/** The demo family's name. */
export const DEMO_MOE_FAMILY = 'moby-moe'

/** Every file of the demo family, as the content store must hold it. */
export function demoMoeFiles(demo: DemoMoe): Uint8Array[] {
  return [
    demo.tokenizer.json,
    demo.tokenizer.config,
    demo.trunk,
    demo.validation,
    demo.train,
    ...demo.routers,
    ...demo.experts.flat(),
  ]
}

/** The MetaBlock of the demo family (version 1). */
export async function demoMetaBody(demo: DemoMoe): Promise<MetaBlockBody> {
  const cid = async (bytes: Uint8Array): Promise<string> => (await unixfsCid(bytes)).toString()
  return {
    family: DEMO_MOE_FAMILY,
    version: 1,
    arch: demo.meta.arch,
    tokenizer: { json: await cid(demo.tokenizer.json), config: await cid(demo.tokenizer.config) },
    trunk: await cid(demo.trunk),
    validation: {
      cid: await cid(demo.validation),
      windows: demo.meta.validation.windows,
      windowTokens: demo.meta.validation.windowTokens,
    },
    carry: [],
    note: 'demo: moby-moe, trained by models/train-moe.py',
  }
}

/**
 * The genesis section: the MetaBlock owned by the first key, routers mined by the first key,
 * expert j of layer l mined by key (l·E + j) mod n.
 */
export async function demoExpertsGenesis(keys: readonly Ed25519KeyPair[], demo?: DemoMoe): Promise<GenesisExperts> {
  const moe = demo ?? (await readDemoMoe())
  const owner = didFromEd25519PublicKey((keys[0] as Ed25519KeyPair).publicKey)
  const body = await demoMetaBody(moe)
  const meta = metaHash(body)
  const { arch } = moe.meta
  const blocks: ParamBlockHeader[] = []
  const routers: string[] = []
  let index = 0
  for (let l = 0; l < arch.nLayers; l++) {
    const header = signParamBlock(keys[0] as Ed25519KeyPair, {
      index: index++,
      chainId: DEMO_MOE_FAMILY,
      version: 1,
      dependsOn: [meta],
      blockType: 'router',
      expertName: routerName(l),
      layerId: l,
      payloadHash: (await unixfsCid(moe.routers[l] as Uint8Array)).toString(),
      payloadBytes: (moe.routers[l] as Uint8Array).byteLength,
      shapes: payloadShapes(arch, 'router'),
    })
    routers.push(blockHash(header))
    blocks.push(header)
  }
  for (let l = 0; l < arch.nLayers; l++)
    for (let j = 0; j < arch.expertsPerLayer; j++) {
      const bytes = (moe.experts[l] as Uint8Array[])[j] as Uint8Array
      const miner = keys[(l * arch.expertsPerLayer + j) % keys.length] as Ed25519KeyPair
      blocks.push(
        signParamBlock(miner, {
          index: index++,
          chainId: DEMO_MOE_FAMILY,
          version: 1,
          dependsOn: [meta, routers[l] as string],
          blockType: 'expert',
          expertName: expertName(l, j),
          layerId: l,
          payloadHash: (await unixfsCid(bytes)).toString(),
          payloadBytes: bytes.byteLength,
          shapes: payloadShapes(arch, 'expert'),
        }),
      )
    }
  return {
    metas: [{ owner, body }],
    blocks: blocks.map((header) => ({ header: header as unknown as GenesisExperts['blocks'][number]['header'] })),
  }
}
