/**
 * node-datachannel (libdatachannel's WebRTC), loaded at its first use: its native library is about
 * 3 MB resident in a node that loaded it, and a node needs it only when a browser connects over
 * WebRTC (peer.ts) or libp2p's WebRTC transport loads (lazy-webrtc.ts). node-datachannel has a
 * CommonJS build, so it loads synchronously; its ES build, which @libp2p/webrtc imports, shares the
 * one native module (both `require` it).
 */
import { createRequire } from 'node:module'
import type NodeDataChannel from 'node-datachannel'

const require = createRequire(import.meta.url)
let loaded: typeof NodeDataChannel | undefined

/** The node-datachannel module, loaded now if it was not. */
export function nodeDataChannel(): typeof NodeDataChannel {
  loaded ??= require('node-datachannel') as typeof NodeDataChannel
  return loaded
}

/** Whether node-datachannel's native library is in this process (loaded by anyone). */
export function dataChannelsLoaded(): boolean {
  return Object.keys(require.cache).some((path) => /node_datachannel\.node$/.test(path))
}

/**
 * node-datachannel's process-wide `cleanup()` (closes every PeerConnection and stops its threads),
 * when its native library was loaded at all; otherwise there is nothing to close, and nothing is
 * loaded for it.
 */
export function cleanupDataChannels(): void {
  if (dataChannelsLoaded()) nodeDataChannel().cleanup()
}
