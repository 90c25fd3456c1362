// Type declarations for presence.js: a dependency-free client for Phoenix
// Channels (serializer v2) with presence. README.md documents the API.

/** The join refusals that are not retried: a channel refused with one of
 * them stays "refused" until rejoin(). Any other reason is retried with the
 * socket's backoff. */
export declare const PERMANENT_REASONS: readonly ["full", "socket_limit", "unauthorized", "invalid_meta", "too_many_topics", "invalid_presence_mode"]

/** The values of a join's "presence" param: "full" gets presence_state and
 * presence_diff, "count" gets presence_count ({count, entries}) only. */
export declare const PRESENCE_MODES: readonly ["full", "count"]

/** The refusal of a full-mode join into a room over the server's cap; a
 * Presence answers it by rejoining in count mode. */
export declare const TOO_LARGE_REASON: "presence_too_large"

/** The most keys a page holds (1000), and the default (100). */
export declare const MAX_PAGE_LIMIT: 1000
export declare const DEFAULT_PAGE_LIMIT: 100

/** The values of Socket.state. */
export declare const CONNECTION_STATES: readonly ["connecting", "online", "reconnecting", "offline"]

/** The close code a Socket sends when a heartbeat goes unanswered (4000):
 * not a clean close, so a server's reconnect grace applies. */
export declare const HEARTBEAT_TIMEOUT_CODE: 4000

/** How a Presence follows its room. */
export type PresenceMode = (typeof PRESENCE_MODES)[number]

/** A permanent join refusal. */
export type PermanentReason = (typeof PERMANENT_REASONS)[number]

/** "connecting" until the first open; "online" while open; "reconnecting"
 * from a loss until the next open; "offline" once offlineAfterMs passed
 * without one (it keeps trying) or after disconnect(), and before connect(). */
export type ConnectionState = (typeof CONNECTION_STATES)[number]

/** A channel's state. "errored" is retried by itself; "refused" (a
 * permanent reason) is not. */
export type ChannelState = "closed" | "joining" | "joined" | "leaving" | "errored" | "refused"

/** An error reply's payload, as the server sends it. */
export interface ErrorResponse {
  reason: string
}

/** The subset of the WebSocket API a Socket uses. */
export interface WebSocketLike {
  readonly readyState: number
  onopen: ((ev?: unknown) => void) | null
  onmessage: ((ev: {data: any}) => void) | null
  onerror: ((ev: any) => void) | null
  onclose: ((ev: any) => void) | null
  send(data: string): void
  close(code?: number, reason?: string): void
}

/** A WebSocket constructor: globalThis.WebSocket, or ws's in Node. */
export type Transport = new (url: string) => WebSocketLike

export interface SocketOptions {
  /** Connect parameters, sent in the URL's query. */
  params?: Record<string, string>
  /** Default 30000. Two intervals without a heartbeat reply close the
   * connection with HEARTBEAT_TIMEOUT_CODE. */
  heartbeatIntervalMs?: number
  /** The wait before reconnect try n (from 1), and before a retryable
   * rejoin. Default 100, 250, 500, 1000, 2000, 5000, then 10000 ms. */
  reconnectAfterMs?: (tries: number) => number
  /** How long "reconnecting" lasts before "offline". Default 10000. */
  offlineAfterMs?: number
  /** Join refusals not retried. Default PERMANENT_REASONS. */
  permanentReasons?: readonly string[]
  /** The reconnect-grace session token: by default 32 random hex
   * characters made once per Socket (params.session, if given, is used
   * instead); false sends none. */
  session?: string | false
  /** Default globalThis.WebSocket. */
  transport?: Transport
}

/** What a close event carries. */
export interface CloseInfo {
  code: number
  reason: string
  wasClean?: boolean
}

/** A frame sent and waiting for its reply. */
export declare class Push<Reply = any> {
  readonly event: string
  readonly payload: unknown
  /** Registers a callback for a reply status; a hook added after the reply
   * runs at once. Chainable. */
  receive(status: "ok", callback: (response: Reply) => void): this
  receive(status: "error", callback: (response: ErrorResponse) => void): this
  receive(status: "timeout", callback: (response: {}) => void): this
}

/** One topic of a Socket. */
export declare class Channel {
  readonly topic: string
  readonly params: Record<string, unknown>
  readonly socket: Socket
  readonly state: ChannelState
  /** The last refusal's reason, until a join succeeds; null when none. */
  readonly reason: string | null
  /** Sends phx_join once. The channel rejoins by itself after a reconnect
   * and after a retryable refusal. Throws when called twice. */
  join<Reply = any>(timeout?: number): Push<Reply>
  /** Tries a refused or errored channel again now (on open, when not
   * connected); does nothing in any other state. Throws before join(). */
  rejoin(): void
  /** Calls callback(reason, permanent, response) for each refused join;
   * response is the error reply's payload ({} when it had none). */
  onRefused(callback: (reason: string, permanent: boolean, response: ErrorResponse & Record<string, unknown>) => void): void
  /** Whether push would send now: joined, on an open connection. */
  canPush(): boolean
  /** Sends an event. Throws unless canPush(). A push in flight when the
   * connection drops gets "timeout" at once. */
  push<Reply = any>(event: string, payload?: unknown, timeout?: number): Push<Reply>
  /** Sends phx_leave; the channel stays closed. */
  leave(timeout?: number): Push<{}>
  /** Calls callback(payload) for each event of that name; returns a ref
   * for off. */
  on<Payload = any>(event: string, callback: (payload: Payload) => void): number
  off(event: string, ref?: number): void
}

/** One WebSocket connection that reconnects with backoff. */
export declare class Socket {
  constructor(endPoint: string, opts?: SocketOptions)
  readonly state: ConnectionState
  /** The reconnect-grace token this Socket sends, or null. */
  readonly session: string | null
  readonly permanentReasons: readonly string[]
  connect(): void
  /** Closes and stops reconnecting; connect may follow at once. */
  disconnect(code?: number, reason?: string): void
  isConnected(): boolean
  channel(topic: string, params?: Record<string, unknown>): Channel
  onOpen(callback: () => void): void
  onClose(callback: (ev: CloseInfo) => void): void
  onError(callback: (err: unknown) => void): void
  onStateChange(callback: (state: ConnectionState, previous: ConnectionState) => void): void
  endPointURL(): string
}

/** A presence meta: what the server tracked, and its phx_ref. */
export type Meta<M extends object = Record<string, unknown>> = M & {
  phx_ref: string
  phx_ref_prev?: string
}

/** One key's entries. */
export interface PresenceEntry<M extends object = Record<string, unknown>> {
  metas: Meta<M>[]
}

/** A topic's presence: key to entries. */
export type PresenceState<M extends object = Record<string, unknown>> = Record<string, PresenceEntry<M>>

export interface PresenceDiff<M extends object = Record<string, unknown>> {
  joins: PresenceState<M>
  leaves: PresenceState<M>
}

/** before is undefined for a new key; after holds every meta after it. */
export type JoinCallback<M extends object> =
  (key: string, before: PresenceEntry<M> | undefined, joined: PresenceEntry<M>, after: PresenceEntry<M>) => void

/** after has no metas when the key's last meta left. */
export type LeaveCallback<M extends object> =
  (key: string, after: PresenceEntry<M>, left: PresenceEntry<M>, before: PresenceEntry<M>) => void

export interface PresenceOptions {
  /** "full" (the default, unless the channel's params hold presence:
   * "count"): the whole roster. "count": counts only. The join asks for
   * the mode given: "full" drops a presence: "count" param. */
  mode?: PresenceMode
  /** Default true: a full-mode join refused with presence_too_large
   * rejoins at once in count mode. */
  fallback?: boolean
}

/** One page of a room's roster, in the room's key order (join order). */
export interface PresencePage<M extends object = Record<string, unknown>> {
  /** presence_state's format; a key's metas are never split across pages.
   * An object: JavaScript lists integer-like keys first, whatever order
   * the server sent. */
  presences: PresenceState<M>
  /** The page's keys in the server's order (join order). */
  keys: string[]
  /** The cursor of the next page; null after the last page. */
  next: string | null
  /** The room's distinct keys when the page was read. */
  count: number
}

/** Why page() or pages() failed: the server's reason ("invalid_limit",
 * "invalid_cursor", ...) or the client's ("not_joined", "timeout",
 * "invalid_reply"). */
export declare class PresenceError extends Error {
  readonly reason: string
  /** The error reply's payload, or {}. */
  readonly response: Record<string, unknown>
}

/** A channel's presence. In full mode, the roster, kept from
 * presence_state and presence_diff; in count mode, only counts, from
 * presence_count. Pages read the roster in either mode. M is the shape of
 * the server's metas. */
export declare class Presence<M extends object = Record<string, unknown>> {
  /** Throws on a mode that is not one of PRESENCE_MODES. */
  constructor(channel: Channel, opts?: PresenceOptions)
  /** "count" after a presence_too_large fallback. */
  readonly mode: PresenceMode
  readonly state: PresenceState<M>
  /** Distinct keys: from the last presence_count, or from the roster. */
  readonly count: number
  /** Entries (a key has one per connection), the same way. */
  readonly entries: number
  onJoin(callback: JoinCallback<M>): void
  onLeave(callback: LeaveCallback<M>): void
  /** Called after each presence_state, presence_diff and presence_count
   * is applied. */
  onSync(callback: () => void): void
  /** Called when count or entries changes, in either mode. */
  onCount(callback: (count: number, entries: number) => void): void
  /** Up to limit keys (1 to MAX_PAGE_LIMIT, default 100) after the cursor
   * (null: the first page). Rejects with a PresenceError. */
  page(limit?: number, after?: string | null, timeout?: number): Promise<PresencePage<M>>
  /** Every page, from the first to the last: each key present throughout
   * appears exactly once. */
  pages(limit?: number, timeout?: number): AsyncGenerator<PresencePage<M>, void, undefined>
  list(): PresenceEntry<M>[]
  list<T>(by: (key: string, entry: PresenceEntry<M>) => T): T[]
  /** A key's entries, or undefined when the key is not present. */
  get(key: string): PresenceEntry<M> | undefined
  static syncState<M extends object>(current: PresenceState<M>, next: PresenceState<M>,
    onJoin?: JoinCallback<M>, onLeave?: LeaveCallback<M>): PresenceState<M>
  static syncDiff<M extends object>(current: PresenceState<M>, diff: PresenceDiff<M>,
    onJoin?: JoinCallback<M>, onLeave?: LeaveCallback<M>): PresenceState<M>
  static list<M extends object>(state: PresenceState<M>): PresenceEntry<M>[]
  static list<M extends object, T>(state: PresenceState<M>, by: (key: string, entry: PresenceEntry<M>) => T): T[]
}
