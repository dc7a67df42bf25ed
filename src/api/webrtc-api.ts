/**
 * What the WebRTC signalling routes (routes/webrtc.ts; seed 004's /receive-offer, in WHIP's shape,
 * RFC 9725) need from a node: take a signed offer, answer it signed, and serve the data channel
 * that comes of it. The node implements it over net/webrtc (signal.ts, peer.ts, channel.ts).
 *
 * Routes (JSON bodies; errors `{ error: { code, message } }` with the SignalError's status):
 *
 *     POST   /v1/webrtc/offer         (alias POST /receive-offer)   body: SignedOffer
 *            -> 201 SignedAnswer, header Location: /v1/webrtc/sessions/<id>
 *     PATCH  /v1/webrtc/sessions/:id  body: { candidates: [{ candidate, mid }] }  (trickle ICE)
 *            -> 204; 404 unknown session
 *     DELETE /v1/webrtc/sessions/:id  -> 204 (the peer connection is closed); 404 unknown session
 *     GET    /v1/webrtc/sessions      -> 200 { sessions: WebRtcSessionView[] }   (operator token)
 *
 * The offer is verified (signature over the whole SDP, freshness, target, replay) before any
 * WebRTC object exists. The data channel (label 'donghae') speaks net/webrtc/channel.ts's JSON
 * frames; requests are `{ op: 'info' }` -> `{ did, models }` and
 * `{ op: 'chat', model?, messages | prompt, max_tokens?, temperature? }` -> progress frames
 * `{ token }`, then `{ text, finishReason, completionTokens }`.
 */
import type { SignedAnswer } from '../net/webrtc/signal.ts'

export interface WebRtcSessionView {
  id: string
  /** The offerer's DID, as its signature proved. */
  peer: string
  state: 'connecting' | 'connected' | 'closed'
  /** When the offer was answered, milliseconds since the epoch. */
  openedAt: number
  /** Requests received on its data channel. */
  requests: number
}

/** A trickled ICE candidate (PATCH body): `candidate:...` as RTCIceCandidate.candidate gives it, and its sdpMid. */
export interface WebRtcCandidate {
  candidate: string
  mid: string
}

/** A model the data channel's `chat` can run (`info`'s `models`). */
export interface WebRtcModelView {
  name: string
  /** 'lm': a language model (chat template, sampling); 'text': the demo character model (greedy). */
  kind: 'lm' | 'text'
  /** Context window in tokens (language models). */
  contextLength?: number
  /** Workers advertising it now. */
  workers: number
}

/** The answer to `{ op: 'info' }`. */
export interface WebRtcInfo {
  did: string
  /** Language models first; `chat` without `model` runs the first one. */
  models: WebRtcModelView[]
}

/** `{ op: 'chat', ... }`: exactly one of `messages` and `prompt`. */
export interface WebRtcChatRequest {
  op: 'chat'
  /** A model's name or CID; default: the first language model (`kind: 'lm'`). */
  model?: string
  messages?: Array<{ role: string; content: string }>
  prompt?: string
  max_tokens?: number
  temperature?: number
}

/** A progress frame's body while `chat` runs: one piece of generated text. */
export interface WebRtcChatToken {
  token: string
}

/** The final answer to `chat`. */
export interface WebRtcChatAnswer {
  text: string
  finishReason: 'stop' | 'length'
  completionTokens: number
  promptTokens: number
  /** The model that ran (its registry name). */
  model: string
}

export interface WebRtcApi {
  /** This node's DID (offers must be made out to it). */
  readonly did: string
  /** Verifies `offer`, answers it; `client` is the HTTP client's address (rate limits). */
  receiveOffer(offer: unknown, client: string): Promise<{ id: string; answer: SignedAnswer }>
  /** Adds trickled candidates to a live session; throws NotFoundError (404) for an unknown one. */
  addCandidates(id: string, candidates: WebRtcCandidate[]): void
  /** Closes a session; throws NotFoundError (404) for an unknown one. */
  close(id: string): void
  sessions(): WebRtcSessionView[]
}
