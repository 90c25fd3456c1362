// presence.js: a small, dependency-free client for Phoenix Channels
// (serializer v2) with presence, served by the Go channel package.
//
//   import {Socket, Presence} from "/presence.js"
//   const socket = new Socket("/socket", {params: {token}})
//   socket.connect()
//   const room = socket.channel("chat:lobby", {name: "alice"})
//   const presence = new Presence(room)
//   presence.onSync(() => render(presence.list()))
//   room.on("new_msg", msg => ...)
//   room.join().receive("ok", resp => ...).receive("error", ({reason}) => ...)
//   room.push("new_msg", {body: "hi"}).receive("ok", reply => ...)

const DEFAULT_TIMEOUT = 10000

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

  settle(reply) {
    clearTimeout(this.timer)
    this.channel.socket.pending.delete(this.ref)
    this.reply = reply
    for (const h of this.hooks) if (h.status === reply.status) h.callback(reply.response)
  }
}

// Channel is one topic of a Socket.
export class Channel {
  constructor(topic, params, socket) {
    this.topic = topic
    this.params = params || {}
    this.socket = socket
    this.state = "closed" // closed, joining, joined, leaving
    this.joinRef = null
    this.bindings = []
    this.bindingRef = 0
    this.joinPush = null
    this.rejoinTimer = null
    this.rejoinTries = 0
  }

  // join sends phx_join; the channel rejoins by itself after a reconnect.
  join(timeout = DEFAULT_TIMEOUT) {
    if (this.joinPush) throw new Error(`tried to join ${this.topic} more than once`)
    this.joinPush = new Push(this, "phx_join", this.params, timeout)
    this.joinPush
      .receive("ok", () => { this.state = "joined"; this.rejoinTries = 0 })
      .receive("error", () => { this.state = "errored"; this.scheduleRejoin() })
      .receive("timeout", () => { this.state = "errored"; this.scheduleRejoin() })
    this.sendJoin()
    return this.joinPush
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
    if (this.state !== "joined") throw new Error(`push to ${this.topic} before joining it`)
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

// Socket is one WebSocket connection that reconnects with backoff.
export class Socket {
  constructor(endPoint, opts = {}) {
    this.endPoint = endPoint
    this.params = opts.params || {}
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs || 30000
    this.reconnectAfterMs = opts.reconnectAfterMs ||
      (tries => [100, 250, 500, 1000, 2000, 5000][tries - 1] || 10000)
    this.transport = opts.transport || globalThis.WebSocket
    this.conn = null
    this.ref = 0
    this.channels = []
    this.pending = new Map()
    this.heartbeatTimer = null
    this.pendingHeartbeat = null
    this.reconnectTimer = null
    this.tries = 0
    this.closedByUser = false
    this.callbacks = {open: [], close: [], error: []}
  }

  onOpen(cb) { this.callbacks.open.push(cb) }
  onClose(cb) { this.callbacks.close.push(cb) }
  onError(cb) { this.callbacks.error.push(cb) }

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

  connect() {
    if (this.conn) return
    this.closedByUser = false
    const conn = new this.transport(this.endPointURL())
    this.conn = conn
    conn.onopen = () => {
      this.tries = 0
      this.startHeartbeat()
      for (const ch of this.channels) if (ch.joinPush && ch.state !== "leaving") ch.sendJoin()
      for (const cb of this.callbacks.open) cb()
    }
    conn.onmessage = ev => this.receive(ev.data)
    conn.onerror = err => { for (const cb of this.callbacks.error) cb(err) }
    conn.onclose = ev => this.closed(conn, ev)
  }

  // disconnect closes the connection and stops reconnecting. The socket is
  // closed when it returns, so connect may follow at once.
  disconnect(code = 1000, reason = "") {
    this.closedByUser = true
    clearTimeout(this.reconnectTimer)
    const conn = this.conn
    if (!conn) return
    conn.close(code, reason)
    this.closed(conn, {code, reason, wasClean: true}) // the close event comes later, and is ignored
  }

  closed(conn, ev) {
    if (conn !== this.conn) return
    this.conn = null
    clearInterval(this.heartbeatTimer)
    this.pendingHeartbeat = null
    for (const push of this.pending.values()) push.settle({status: "timeout", response: {}})
    for (const ch of this.channels) if (ch.state === "joined" || ch.state === "joining") ch.state = "errored"
    for (const cb of this.callbacks.close) cb(ev)
    if (!this.closedByUser) {
      this.tries++
      this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectAfterMs(this.tries))
    }
  }

  startHeartbeat() {
    clearInterval(this.heartbeatTimer)
    this.heartbeatTimer = setInterval(() => {
      if (this.pendingHeartbeat) {
        // The last heartbeat went unanswered: the connection is dead.
        this.pendingHeartbeat = null
        if (this.conn) this.conn.close(1000, "heartbeat timeout")
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
      this.pending.get(ref).settle(payload)
      return
    }
    for (const ch of this.channels) {
      if (ch.topic !== topic) continue
      if (event === "phx_error") { ch.state = "errored"; ch.scheduleRejoin() }
      ch.trigger(event, payload, joinRef)
    }
  }
}

// Presence keeps a channel's presence from presence_state and presence_diff
// events: state is {key: {metas: [{...meta, phx_ref}]}}.
export class Presence {
  constructor(channel) {
    this.channel = channel
    this.state = {}
    this.pendingDiffs = []
    this.synced = false
    this.joinRef = null
    this.caller = {onJoin: () => {}, onLeave: () => {}, onSync: () => {}}
    channel.on("presence_state", state => {
      this.joinRef = channel.joinRef
      this.state = Presence.syncState(this.state, state, this.caller.onJoin, this.caller.onLeave)
      for (const diff of this.pendingDiffs) this.state = Presence.syncDiff(this.state, diff, this.caller.onJoin, this.caller.onLeave)
      this.pendingDiffs = []
      this.caller.onSync()
    })
    channel.on("presence_diff", diff => {
      if (this.joinRef !== channel.joinRef) { this.pendingDiffs.push(diff); return }
      this.state = Presence.syncDiff(this.state, diff, this.caller.onJoin, this.caller.onLeave)
      this.caller.onSync()
    })
  }

  // onJoin(cb(key, current, joined)), onLeave(cb(key, current, left)), onSync(cb()).
  onJoin(cb) { this.caller.onJoin = cb }
  onLeave(cb) { this.caller.onLeave = cb }
  onSync(cb) { this.caller.onSync = cb }

  // list returns one item per key: by(key, {metas}) or the {metas} itself.
  list(by) { return Presence.list(this.state, by) }

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

  static syncDiff(current, diff, onJoin = () => {}, onLeave = () => {}) {
    const state = Presence.clone(current)
    const {joins, leaves} = Presence.clone(diff)
    for (const [key, pres] of Object.entries(joins)) {
      const cur = state[key]
      state[key] = Presence.clone(pres) // onJoin gets the joined metas only
      if (cur) {
        const joinedRefs = new Set(pres.metas.map(m => m.phx_ref))
        state[key].metas.unshift(...cur.metas.filter(m => !joinedRefs.has(m.phx_ref)))
      }
      onJoin(key, cur, pres)
    }
    for (const [key, pres] of Object.entries(leaves)) {
      const cur = state[key]
      if (!cur) continue
      const gone = new Set(pres.metas.map(m => m.phx_ref))
      cur.metas = cur.metas.filter(m => !gone.has(m.phx_ref))
      onLeave(key, cur, pres)
      if (cur.metas.length === 0) delete state[key]
    }
    return state
  }

  static list(state, by = (key, pres) => pres) {
    return Object.keys(state).map(key => by(key, state[key]))
  }
}
