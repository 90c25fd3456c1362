// presence.js: a small, dependency-free client for Phoenix Channels
// (serializer v2) with presence, served by the Go channel package.
//
//   import {Socket, Presence} from "/presence.js"
//   const socket = new Socket("/socket", {params: {token}})
//   socket.connect()
//   const room = socket.channel("chat:lobby", {name: "alice"})
//   const presence = new Presence(room)
//   presence.onSync(() => render(presence.list()))
//   presence.onCount((count, entries) => ...) // distinct keys, entries
//   const {presences, keys, next} = await presence.page(100) // keys in join order
//   room.on("new_msg", msg => ...)
//   room.join().receive("ok", resp => ...).receive("error", ({reason}) => ...)
//   room.push("new_msg", {body: "hi"}).receive("ok", reply => ...)
//   socket.onStateChange(state => ...) // connecting, online, reconnecting, offline
//
// presence.d.ts declares the API; README.md documents it.

const DEFAULT_TIMEOUT = 10000

// PERMANENT_REASONS are the join refusals that trying again cannot cure
// without a change on the client or the server: a channel refused with one
// of them stays "refused" until rejoin() is called. Any other reason (and a
// timeout) is retried with the socket's backoff.
export const PERMANENT_REASONS = Object.freeze(["full", "socket_limit", "unauthorized", "invalid_meta", "too_many_topics", "invalid_presence_mode"])

// PRESENCE_MODES are the values of a join's "presence" param: "full" gets
// presence_state and presence_diff (Phoenix's protocol), "count" gets only
// presence_count, {count, entries}, for rooms too big to send whole.
export const PRESENCE_MODES = Object.freeze(["full", "count"])

// TOO_LARGE_REASON refuses a full-mode join into a room whose roster is
// over the server's cap; a Presence answers it by rejoining in count mode.
export const TOO_LARGE_REASON = "presence_too_large"

// A presence_list page holds 1 to MAX_PAGE_LIMIT keys, DEFAULT_PAGE_LIMIT
// when not given.
export const MAX_PAGE_LIMIT = 1000
export const DEFAULT_PAGE_LIMIT = 100

// CONNECTION_STATES are the values of Socket.state, in the order a first
// connection goes through them.
export const CONNECTION_STATES = Object.freeze(["connecting", "online", "reconnecting", "offline"])

// HEARTBEAT_TIMEOUT_CODE closes a connection whose heartbeat went
// unanswered. It is not 1000 or 1001, so a server with a reconnect grace
// treats the loss as abrupt and holds the socket's presence for it.
export const HEARTBEAT_TIMEOUT_CODE = 4000

// newSessionToken returns 32 random hex characters, or null where the
// platform has no cryptographic random source (then no session is sent,
// since a guessable token would let others take a held presence over).
function newSessionToken() {
  const c = globalThis.crypto
  if (!c || typeof c.getRandomValues !== "function") return null
  const bytes = c.getRandomValues(new Uint8Array(16))
  return Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("")
}

// Push is one message waiting for its reply.
export class Push {
  constructor(channel, event, payload, timeout) {
    this.channel = channel
    this.event = event
    this.payload = payload
    this.timeout = timeout
    this.ref = null
    this.hooks = []
    this.reply = null
    this.raw = null // the reply frame's text, for readers of key order
    this.timer = null
  }

  // receive registers a callback for a reply status: "ok", "error" or
  // "timeout". It returns the Push, for chaining.
  receive(status, callback) {
    if (this.reply && this.reply.status === status) callback(this.reply.response)
    this.hooks.push({status, callback})
    return this
  }

  send() {
    const socket = this.channel.socket
    this.reply = null
    this.ref = socket.makeRef()
    socket.pending.set(this.ref, this)
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.settle({status: "timeout", response: {}}), this.timeout)
    socket.send([this.channel.joinRef, this.ref, this.channel.topic, this.event, this.payload])
  }

  settle(reply, raw = null) {
    clearTimeout(this.timer)
    this.channel.socket.pending.delete(this.ref)
    this.reply = reply
    this.raw = raw
    for (const h of this.hooks) if (h.status === reply.status) h.callback(reply.response)
  }
}

// Channel is one topic of a Socket.
export class Channel {
  constructor(topic, params, socket) {
    this.topic = topic
    this.params = {...(params || {})} // a copy: a Presence may set its mode here
    this.socket = socket
    this.state = "closed" // closed, joining, joined, leaving, errored (retried), refused (not)
    this.joinRef = null
    this.bindings = []
    this.bindingRef = 0
    this.joinPush = null
    this.rejoinTimer = null
    this.rejoinTries = 0
    this.reason = null // the last refusal's reason, until a join succeeds
    this.refusedCallbacks = []
  }

  // join sends phx_join; the channel rejoins by itself after a reconnect,
  // and after a refusal unless its reason is permanent.
  join(timeout = DEFAULT_TIMEOUT) {
    if (this.joinPush) throw new Error(`tried to join ${this.topic} more than once`)
    this.joinPush = new Push(this, "phx_join", this.params, timeout)
    this.joinPush
      .receive("ok", () => { this.state = "joined"; this.rejoinTries = 0; this.reason = null })
      .receive("error", response => this.refused(response))
      .receive("timeout", () => { if (this.state === "joining") this.state = "errored"; this.scheduleRejoin() })
    this.sendJoin()
    return this.joinPush
  }

  // onRefused calls callback(reason, permanent, response) for each join
  // the server refuses. permanent is true when reason is one of the
  // socket's permanentReasons: the channel then stops rejoining. response
  // is the error reply's whole payload ({} when it had none).
  onRefused(callback) { this.refusedCallbacks.push(callback) }

  refused(response) {
    const reason = response && typeof response.reason === "string" ? response.reason : "unknown"
    const permanent = this.socket.permanentReasons.includes(reason)
    this.reason = reason
    if (this.state !== "leaving" && this.state !== "closed") this.state = permanent ? "refused" : "errored"
    if (permanent) clearTimeout(this.rejoinTimer); else this.scheduleRejoin()
    const payload = response && typeof response === "object" ? response : {}
    for (const cb of this.refusedCallbacks) cb(reason, permanent, payload)
  }

  // rejoin tries a refused or errored channel again now (on open, when the
  // socket is not connected), and starts its backoff from the beginning.
  rejoin() {
    if (!this.joinPush) throw new Error(`rejoin of ${this.topic} before join`)
    if (this.state !== "refused" && this.state !== "errored") return
    clearTimeout(this.rejoinTimer)
    this.state = "errored"
    this.rejoinTries = 0
    this.sendJoin()
  }

  sendJoin() {
    if (!this.socket.isConnected()) return // sent on open
    this.state = "joining"
    this.joinRef = this.socket.makeRef()
    // The join push's ref is its join_ref.
    const push = this.joinPush
    push.reply = null
    push.ref = this.joinRef
    this.socket.pending.set(push.ref, push)
    clearTimeout(push.timer)
    push.timer = setTimeout(() => push.settle({status: "timeout", response: {}}), push.timeout)
    this.socket.send([this.joinRef, this.joinRef, this.topic, "phx_join", this.params])
  }

  scheduleRejoin() {
    clearTimeout(this.rejoinTimer)
    if (this.state === "closed" || this.state === "leaving") return
    this.rejoinTries++
    const wait = this.socket.reconnectAfterMs(this.rejoinTries)
    this.rejoinTimer = setTimeout(() => {
      if (this.socket.isConnected() && this.state === "errored") this.sendJoin()
    }, wait)
  }

  // canPush says whether push would send now: the channel is joined on an
  // open connection. push throws when it would not.
  canPush() { return this.state === "joined" && this.socket.isConnected() }

  // leave sends phx_leave; the channel stays closed.
  leave(timeout = DEFAULT_TIMEOUT) {
    clearTimeout(this.rejoinTimer)
    this.state = "leaving"
    const push = new Push(this, "phx_leave", {}, timeout)
    const close = () => { this.state = "closed"; this.socket.remove(this); this.trigger("phx_close", {}) }
    push.receive("ok", close).receive("timeout", close)
    if (this.socket.isConnected()) push.send(); else close()
    return push
  }

  // push sends an event and returns a Push for its reply.
  push(event, payload = {}, timeout = DEFAULT_TIMEOUT) {
    if (!this.canPush()) throw new Error(`push to ${this.topic} before joining it`)
    const p = new Push(this, event, payload, timeout)
    p.send()
    return p
  }

  // on calls callback(payload) for each event of that name; it returns a
  // ref for off.
  on(event, callback) {
    const ref = ++this.bindingRef
    this.bindings.push({event, ref, callback})
    return ref
  }

  off(event, ref) {
    this.bindings = this.bindings.filter(b => !(b.event === event && (ref === undefined || b.ref === ref)))
  }

  trigger(event, payload, joinRef) {
    if (joinRef && joinRef !== this.joinRef) return // from an earlier join
    for (const b of this.bindings) if (b.event === event) b.callback(payload)
  }
}

// Socket is one WebSocket connection that reconnects with backoff. Its
// state is "connecting" until the first open, "online" while open,
// "reconnecting" from a loss until the next open, and "offline" once
// offlineAfterMs passed without one (it keeps trying) or after disconnect().
export class Socket {
  constructor(endPoint, opts = {}) {
    this.endPoint = endPoint
    this.params = {...(opts.params || {})}
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs || 30000
    this.reconnectAfterMs = opts.reconnectAfterMs ||
      (tries => [100, 250, 500, 1000, 2000, 5000][tries - 1] || 10000)
    this.offlineAfterMs = opts.offlineAfterMs ?? 10000
    this.permanentReasons = Object.freeze([...(opts.permanentReasons || PERMANENT_REASONS)])
    this.transport = opts.transport || globalThis.WebSocket
    // The session token lets a server with a reconnect grace give this
    // socket's presence back to it after an abrupt loss. One per Socket,
    // kept across its reconnects; params.session or opts.session name one,
    // and session: false sends none.
    this.session = opts.session === false ? null : (opts.session || this.params.session || newSessionToken())
    if (this.session) this.params.session = this.session; else delete this.params.session
    this.conn = null
    this.ref = 0
    this.channels = []
    this.pending = new Map()
    this.heartbeatTimer = null
    this.pendingHeartbeat = null
    this.reconnectTimer = null
    this.offlineTimer = null
    this.tries = 0
    this.closedByUser = false
    this.state = "offline"
    this.callbacks = {open: [], close: [], error: [], state: []}
  }

  onOpen(cb) { this.callbacks.open.push(cb) }
  onClose(cb) { this.callbacks.close.push(cb) }
  onError(cb) { this.callbacks.error.push(cb) }
  // onStateChange calls cb(state, previous) on each change of state.
  onStateChange(cb) { this.callbacks.state.push(cb) }

  setState(state) {
    const previous = this.state
    if (state === previous) return
    this.state = state
    for (const cb of this.callbacks.state) cb(state, previous)
  }

  makeRef() { return String(++this.ref) }

  isConnected() { return !!this.conn && this.conn.readyState === 1 }

  endPointURL() {
    let base = this.endPoint
    if (!/^wss?:/.test(base)) {
      const loc = globalThis.location
      base = `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}${base}`
    }
    const query = new URLSearchParams({...this.params, vsn: "2.0.0"})
    return `${base}/websocket?${query}`
  }

  // connect opens the connection; it reconnects by itself until
  // disconnect().
  connect() {
    if (this.conn) return
    this.closedByUser = false
    clearTimeout(this.reconnectTimer)
    if (this.state === "offline" && !this.offlineTimer) this.setState("connecting")
    this.open()
  }

  open() {
    const conn = new this.transport(this.endPointURL())
    this.conn = conn
    conn.onopen = () => {
      if (conn !== this.conn) return
      this.tries = 0
      clearTimeout(this.offlineTimer)
      this.offlineTimer = null
      this.startHeartbeat()
      this.setState("online")
      for (const ch of this.channels) if (ch.joinPush && ch.state !== "leaving" && ch.state !== "refused") ch.sendJoin()
      for (const cb of this.callbacks.open) cb()
    }
    conn.onmessage = ev => { if (conn === this.conn) this.receive(ev.data) }
    conn.onerror = err => { for (const cb of this.callbacks.error) cb(err) }
    conn.onclose = ev => this.closed(conn, ev)
  }

  // disconnect closes the connection and stops reconnecting. The socket is
  // closed when it returns, so connect may follow at once.
  disconnect(code = 1000, reason = "") {
    this.closedByUser = true
    clearTimeout(this.reconnectTimer)
    clearTimeout(this.offlineTimer)
    this.offlineTimer = null
    const conn = this.conn
    if (conn) {
      conn.close(code, reason)
      this.closed(conn, {code, reason, wasClean: true}) // the close event comes later, and is ignored
    }
    this.setState("offline")
  }

  closed(conn, ev) {
    if (conn !== this.conn) return
    this.conn = null
    clearInterval(this.heartbeatTimer)
    this.pendingHeartbeat = null
    for (const push of this.pending.values()) push.settle({status: "timeout", response: {}})
    for (const ch of this.channels) if (ch.state === "joined" || ch.state === "joining") ch.state = "errored"
    for (const cb of this.callbacks.close) cb(ev)
    if (this.closedByUser) return
    if (this.state === "online" || this.state === "connecting") {
      this.setState("reconnecting")
      clearTimeout(this.offlineTimer)
      this.offlineTimer = setTimeout(() => { this.offlineTimer = null; if (!this.closedByUser) this.setState("offline") }, this.offlineAfterMs)
    }
    this.tries++
    this.reconnectTimer = setTimeout(() => { if (!this.conn && !this.closedByUser) this.open() }, this.reconnectAfterMs(this.tries))
  }

  startHeartbeat() {
    clearInterval(this.heartbeatTimer)
    this.heartbeatTimer = setInterval(() => {
      if (this.pendingHeartbeat) {
        // The last heartbeat went unanswered: the connection is dead, and
        // its close event may be long in coming, so it counts as closed now.
        this.pendingHeartbeat = null
        const conn = this.conn
        if (conn) {
          const reason = "heartbeat timeout"
          conn.close(HEARTBEAT_TIMEOUT_CODE, reason)
          this.closed(conn, {code: HEARTBEAT_TIMEOUT_CODE, reason, wasClean: false})
        }
        return
      }
      this.pendingHeartbeat = this.makeRef()
      this.send([null, this.pendingHeartbeat, "phoenix", "heartbeat", {}])
    }, this.heartbeatIntervalMs)
  }

  channel(topic, params) {
    const ch = new Channel(topic, params, this)
    this.channels.push(ch)
    return ch
  }

  remove(channel) { this.channels = this.channels.filter(c => c !== channel) }

  send(frame) { if (this.isConnected()) this.conn.send(JSON.stringify(frame)) }

  receive(data) {
    let msg
    try { msg = JSON.parse(data) } catch { return }
    const [joinRef, ref, topic, event, payload] = msg
    if (topic === "phoenix" && ref === this.pendingHeartbeat) { this.pendingHeartbeat = null; return }
    if (event === "phx_reply" && this.pending.has(ref)) {
      this.pending.get(ref).settle(payload, data)
      return
    }
    for (const ch of this.channels) {
      if (ch.topic !== topic) continue
      if (event === "phx_error") { ch.state = "errored"; ch.scheduleRejoin() }
      ch.trigger(event, payload, joinRef)
    }
  }
}

// PresenceError is how page() and pages() fail: reason is the server's
// error reason ("invalid_limit", "invalid_cursor", ...) or the client's
// ("not_joined" when the channel cannot push now, "timeout" when no reply
// came, "invalid_reply" when the reply was not a page); response is the
// error reply's payload, or {}.
export class PresenceError extends Error {
  constructor(reason, response = {}) {
    super(`presence: ${reason}`)
    this.name = "PresenceError"
    this.reason = reason
    this.response = response
  }
}

// wireKeyOrder returns the keys of a page's presences in the order the
// server sent them. A JavaScript object lists integer-like keys ("42")
// first, so when there are any, the order is read from the reply's text.
function wireKeyOrder(presences, raw) {
  const keys = Object.keys(presences)
  if (!raw || !keys.some(k => /^(0|[1-9][0-9]*)$/.test(k))) return keys
  const sent = objectKeys(raw, '"presences":')
  return sent && sent.length === keys.length && sent.every(k => Object.hasOwn(presences, k)) ? sent : keys
}

// objectKeys returns the keys, in order, of the JSON object that follows
// the first occurrence of marker in text (valid JSON), or null. A marker
// ending in '":' never matches inside a string: a quote in a string is
// escaped.
function objectKeys(text, marker) {
  let i = text.indexOf(marker)
  if (i < 0) return null
  for (i += marker.length; text[i] === " " || text[i] === "\n" || text[i] === "\t" || text[i] === "\r"; i++);
  if (text[i] !== "{") return null
  const keys = []
  let depth = 0, expectKey = false
  for (; i < text.length; i++) {
    const c = text[i]
    if (c === '"') {
      let end = i + 1
      while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1
      if (end >= text.length) return null
      if (depth === 1 && expectKey) { keys.push(JSON.parse(text.slice(i, end + 1))); expectKey = false }
      i = end
    } else if (c === "{" || c === "[") {
      if (++depth === 1) expectKey = true
    } else if (c === "}" || c === "]") {
      if (--depth === 0) return keys
    } else if (c === "," && depth === 1) {
      expectKey = true
    }
  }
  return null
}

// Presence keeps a channel's presence. In full mode (the default) it keeps
// the roster from presence_state and presence_diff: state is {key: {metas:
// [{...meta, phx_ref}]}}. In count mode (opts.mode "count", or the
// channel's params.presence "count") the join asks the server for counts
// only, and count and entries follow presence_count. Either mode reads the
// roster a page at a time with page() and pages(). A full-mode join
// refused with presence_too_large rejoins at once in count mode, unless
// opts.fallback is false.
export class Presence {
  constructor(channel, opts = {}) {
    const mode = opts.mode ?? (channel.params.presence === "count" ? "count" : "full")
    if (!PRESENCE_MODES.includes(mode)) throw new Error(`presence mode must be one of ${PRESENCE_MODES.join(", ")}, not ${JSON.stringify(mode)}`)
    this.channel = channel
    this.mode = mode
    this.fallback = opts.fallback !== false
    // The join asks for the mode the Presence follows: an explicit full
    // mode drops a presence: count param.
    if (mode === "count") channel.params.presence = "count"
    else if (channel.params.presence === "count") delete channel.params.presence
    this.state = {}
    this.pendingDiffs = []
    this.joinRef = null
    this.counted = null // the last presence_count, {count, entries}, until a presence_state
    this.lastCount = {count: 0, entries: 0} // what onCount was last told
    this.caller = {onJoin: () => {}, onLeave: () => {}, onSync: () => {}, onCount: () => {}}
    channel.on("presence_state", state => {
      this.joinRef = channel.joinRef
      this.counted = null
      this.state = Presence.syncState(this.state, state, this.caller.onJoin, this.caller.onLeave)
      for (const diff of this.pendingDiffs) this.state = Presence.syncDiff(this.state, diff, this.caller.onJoin, this.caller.onLeave)
      this.pendingDiffs = []
      this.afterSync()
    })
    channel.on("presence_diff", diff => {
      if (this.joinRef !== channel.joinRef) { this.pendingDiffs.push(diff); return }
      this.state = Presence.syncDiff(this.state, diff, this.caller.onJoin, this.caller.onLeave)
      this.afterSync()
    })
    channel.on("presence_count", payload => {
      const {count, entries} = payload || {}
      if (!Number.isSafeInteger(count) || !Number.isSafeInteger(entries) || count < 0 || entries < count) return
      this.counted = {count, entries}
      this.afterSync()
    })
    channel.onRefused((reason, permanent) => {
      if (reason !== TOO_LARGE_REASON || this.mode !== "full" || !this.fallback || permanent) return
      this.mode = "count"
      channel.params.presence = "count"
      // The roster of an earlier join can no longer be kept up to date.
      this.state = {}
      this.pendingDiffs = []
      this.joinRef = null
      channel.rejoin()
    })
  }

  // count is the number of distinct keys, entries the number of entries
  // (a key has one per connection): from the last presence_count in count
  // mode, from the roster in full mode.
  get count() { return this.counted ? this.counted.count : Object.keys(this.state).length }
  get entries() {
    if (this.counted) return this.counted.entries
    let n = 0
    for (const key in this.state) n += this.state[key].metas.length
    return n
  }

  // afterSync tells onCount of a change of the numbers, then onSync.
  afterSync() {
    const count = this.count, entries = this.entries
    if (count !== this.lastCount.count || entries !== this.lastCount.entries) {
      this.lastCount = {count, entries}
      this.caller.onCount(count, entries)
    }
    this.caller.onSync()
  }

  // page asks the server for up to limit keys (1 to MAX_PAGE_LIMIT) after
  // the cursor after (null for the first page), in the room's key order
  // (join order). It resolves to {presences, keys, next, count}: presences
  // in presence_state's format, with every meta of each key; keys, the
  // page's keys in the server's order (presences, an object, lists
  // integer-like keys first); next, the cursor of the following page, or
  // null after the last; count, the room's distinct keys. It rejects with a PresenceError. Walking from null to a
  // null next, every key present throughout appears exactly once.
  page(limit = DEFAULT_PAGE_LIMIT, after = null, timeout = DEFAULT_TIMEOUT) {
    return new Promise((resolve, reject) => {
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) return reject(new PresenceError("invalid_limit"))
      if (after !== null && after !== undefined && typeof after !== "string") return reject(new PresenceError("invalid_cursor"))
      if (!this.channel.canPush()) return reject(new PresenceError("not_joined"))
      const payload = after == null ? {limit} : {limit, after}
      const push = this.channel.push("presence_list", payload, timeout)
      push.receive("ok", reply => {
          const {presences, next = null, count} = reply || {}
          const valid = presences && typeof presences === "object" && !Array.isArray(presences) &&
            (next === null || typeof next === "string") && Number.isSafeInteger(count)
          if (!valid) return reject(new PresenceError("invalid_reply", reply ?? {}))
          resolve({presences, keys: wireKeyOrder(presences, push.raw), next, count})
        })
        .receive("error", response => {
          const reason = response && typeof response.reason === "string" ? response.reason : "unknown"
          reject(new PresenceError(reason, response ?? {}))
        })
        .receive("timeout", () => reject(new PresenceError("timeout")))
    })
  }

  // pages walks the whole roster a page at a time, from the first page to
  // the last: for await (const {presences} of presence.pages(100)) ...
  async *pages(limit = DEFAULT_PAGE_LIMIT, timeout = DEFAULT_TIMEOUT) {
    let after = null
    do {
      const page = await this.page(limit, after, timeout)
      yield page
      after = page.next
    } while (after !== null)
  }

  // onJoin(cb(key, before, joined, after)), onLeave(cb(key, after, left,
  // before)), onSync(cb()): see syncDiff. The first three arguments are
  // those of the official client's callbacks. onSync also runs after each
  // presence_count. onCount(cb(count, entries)) runs when either number
  // changes, in both modes.
  onJoin(cb) { this.caller.onJoin = cb }
  onLeave(cb) { this.caller.onLeave = cb }
  onSync(cb) { this.caller.onSync = cb }
  onCount(cb) { this.caller.onCount = cb }

  // list returns one item per key: by(key, {metas}) or the {metas} itself.
  list(by) { return Presence.list(this.state, by) }

  // get returns a key's {metas}, or undefined when the key is not present.
  get(key) { return Object.hasOwn(this.state, key) ? Presence.clone(this.state[key]) : undefined }

  static clone(obj) { return JSON.parse(JSON.stringify(obj)) }

  static syncState(current, next, onJoin = () => {}, onLeave = () => {}) {
    const state = Presence.clone(current)
    const joins = {}, leaves = {}
    for (const key of Object.keys(state)) if (!next[key]) leaves[key] = state[key]
    for (const [key, pres] of Object.entries(next)) {
      const cur = state[key]
      if (!cur) { joins[key] = pres; continue }
      const nextRefs = new Set(pres.metas.map(m => m.phx_ref))
      const curRefs = new Set(cur.metas.map(m => m.phx_ref))
      const joined = pres.metas.filter(m => !curRefs.has(m.phx_ref))
      const left = cur.metas.filter(m => !nextRefs.has(m.phx_ref))
      if (joined.length) joins[key] = {metas: joined}
      if (left.length) leaves[key] = {metas: left}
    }
    return Presence.syncDiff(state, {joins, leaves}, onJoin, onLeave)
  }

  // syncDiff applies joins, then leaves. onJoin(key, before, joined, after)
  // and onLeave(key, after, left, before) get the key's {metas} before and
  // after the change (before undefined for a new key; after with no metas
  // when the key's last meta left) and the metas that joined or left.
  static syncDiff(current, diff, onJoin = () => {}, onLeave = () => {}) {
    const state = Presence.clone(current)
    const {joins = {}, leaves = {}} = Presence.clone(diff)
    for (const [key, pres] of Object.entries(joins)) {
      const cur = state[key]
      state[key] = Presence.clone(pres) // onJoin gets the joined metas only
      if (cur) {
        const joinedRefs = new Set(pres.metas.map(m => m.phx_ref))
        state[key].metas.unshift(...cur.metas.filter(m => !joinedRefs.has(m.phx_ref)))
      }
      onJoin(key, cur, pres, Presence.clone(state[key]))
    }
    for (const [key, pres] of Object.entries(leaves)) {
      const cur = state[key]
      if (!cur) continue
      const before = Presence.clone(cur)
      const gone = new Set(pres.metas.map(m => m.phx_ref))
      cur.metas = cur.metas.filter(m => !gone.has(m.phx_ref))
      onLeave(key, cur, pres, before)
      if (cur.metas.length === 0) delete state[key]
    }
    return state
  }

  static list(state, by = (key, pres) => pres) {
    return Object.keys(state).map(key => by(key, state[key]))
  }
}
