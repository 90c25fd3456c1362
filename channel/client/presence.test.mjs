// Tests of presence.js on Node with no browser and no server: a fake
// WebSocket is injected through the Socket's transport option, and time is
// driven by node:test's mock timers. Run: node --test channel/client/
import {test} from "node:test"
import assert from "node:assert/strict"
import {
  Socket, Presence, PresenceError, PERMANENT_REASONS, CONNECTION_STATES, HEARTBEAT_TIMEOUT_CODE,
  PRESENCE_MODES, TOO_LARGE_REASON, MAX_PAGE_LIMIT, DEFAULT_PAGE_LIMIT,
} from "./presence.js"

// fakeTransport returns a WebSocket stand-in class and the list of every
// connection made with it. A connection opens, receives and drops only when
// the test says so.
function fakeTransport() {
  const conns = []
  class FakeWebSocket {
    constructor(url) {
      this.url = url
      this.readyState = 0 // CONNECTING
      this.sent = []
      this.closeCalls = []
      conns.push(this)
    }
    send(data) {
      assert.equal(this.readyState, 1, "send on a socket that is not open")
      this.sent.push(JSON.parse(data))
    }
    // close, as a browser does it: the close event comes later.
    close(code, reason) {
      this.closeCalls.push({code, reason})
      if (this.readyState === 3) return
      this.readyState = 2
      setTimeout(() => this.drop(code, reason), 0)
    }
    // Test side.
    open() { this.readyState = 1; this.onopen() }
    // deliver, as a browser does: nothing once the socket is not open.
    deliver(frame) { if (this.readyState === 1) this.onmessage({data: JSON.stringify(frame)}) }
    drop(code = 1006, reason = "") {
      if (this.readyState === 3) return
      this.readyState = 3
      this.onclose({code, reason})
    }
    // frames sent with this event, in order.
    sentEvent(event) { return this.sent.filter(f => f[3] === event) }
    last() { return this.sent[this.sent.length - 1] }
  }
  return {FakeWebSocket, conns}
}

// setup makes a connected socket with one channel, joined with an "ok"
// reply, and a Presence on it that records its callbacks.
function setup(t, opts = {}) {
  t.mock.timers.enable({apis: ["setTimeout", "setInterval"]})
  const {FakeWebSocket, conns} = fakeTransport()
  const socket = new Socket("ws://example.test/socket", {transport: FakeWebSocket, params: {name: "alice"}, ...opts})
  socket.connect()
  conns[0].open()
  const room = socket.channel("room:lobby", {color: "blue"})
  const presence = new Presence(room)
  const events = []
  presence.onJoin((key, current, joined) => events.push(["join", key, current && refs(current), refs(joined)]))
  presence.onLeave((key, current, left) => events.push(["leave", key, refs(current), refs(left)]))
  presence.onSync(() => events.push(["sync"]))
  const joinPush = room.join()
  const [joinRef, ref, topic, event, payload] = conns[0].last()
  assert.deepEqual([topic, event, payload], ["room:lobby", "phx_join", {color: "blue"}])
  assert.equal(ref, joinRef, "a join's ref is its join_ref")
  return {socket, room, presence, events, joinPush, conns, joinRef}
}

const refs = pres => pres.metas.map(m => m.phx_ref)
const reply = (conn, joinRef, ref, topic, status, response = {}) =>
  conn.deliver([joinRef, ref, topic, "phx_reply", {status, response}])
const push = (conn, joinRef, topic, event, payload) => conn.deliver([joinRef, null, topic, event, payload])
const byKey = presence => Object.fromEntries(presence.list((key, {metas}) => [key, metas]))

test("the endpoint URL carries the params and the serializer version", t => {
  const {conns} = setup(t)
  const url = new URL(conns[0].url)
  assert.equal(url.origin + url.pathname, "ws://example.test/socket/websocket")
  assert.equal(url.searchParams.get("name"), "alice")
  assert.equal(url.searchParams.get("vsn"), "2.0.0")
})

test("presence_state syncs every key and its metas, then presence_diff applies joins and leaves", t => {
  const {room, presence, events, joinPush, conns, joinRef} = setup(t)
  let joined = null
  joinPush.receive("ok", resp => { joined = resp })
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok", {welcome: true})
  assert.deepEqual(joined, {welcome: true})
  assert.equal(room.state, "joined")

  push(conns[0], joinRef, "room:lobby", "presence_state", {
    alice: {metas: [{phx_ref: "a1", device: "phone"}, {phx_ref: "a2", device: "laptop"}]},
    bob: {metas: [{phx_ref: "b1"}]},
  })
  assert.deepEqual(byKey(presence), {
    alice: [{phx_ref: "a1", device: "phone"}, {phx_ref: "a2", device: "laptop"}],
    bob: [{phx_ref: "b1"}],
  })
  assert.deepEqual(events, [["join", "alice", undefined, ["a1", "a2"]], ["join", "bob", undefined, ["b1"]], ["sync"]])

  events.length = 0
  push(conns[0], null, "room:lobby", "presence_diff", {
    joins: {carol: {metas: [{phx_ref: "c1"}]}},
    leaves: {bob: {metas: [{phx_ref: "b1"}]}},
  })
  assert.deepEqual(Object.keys(byKey(presence)), ["alice", "carol"])
  assert.deepEqual(events, [["join", "carol", undefined, ["c1"]], ["leave", "bob", [], ["b1"]], ["sync"]])
})

test("several metas per key: a key stays while one meta is left and goes with the last", t => {
  const {presence, events, conns, joinRef} = setup(t)
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  push(conns[0], joinRef, "room:lobby", "presence_state", {alice: {metas: [{phx_ref: "a1"}]}})
  events.length = 0

  // A second connection of the same user joins: the key gains a meta.
  push(conns[0], null, "room:lobby", "presence_diff", {joins: {alice: {metas: [{phx_ref: "a2"}]}}, leaves: {}})
  assert.deepEqual(byKey(presence).alice.map(m => m.phx_ref), ["a1", "a2"])
  assert.deepEqual(events, [["join", "alice", ["a1"], ["a2"]], ["sync"]])

  // One of them leaves: the key stays with the other.
  events.length = 0
  push(conns[0], null, "room:lobby", "presence_diff", {joins: {}, leaves: {alice: {metas: [{phx_ref: "a1"}]}}})
  assert.deepEqual(byKey(presence).alice.map(m => m.phx_ref), ["a2"])
  assert.deepEqual(events, [["leave", "alice", ["a2"], ["a1"]], ["sync"]])

  // The last one leaves: the key goes.
  events.length = 0
  push(conns[0], null, "room:lobby", "presence_diff", {joins: {}, leaves: {alice: {metas: [{phx_ref: "a2"}]}}})
  assert.deepEqual(byKey(presence), {})
  assert.deepEqual(events, [["leave", "alice", [], ["a2"]], ["sync"]])

  // A leave of a key nobody holds changes nothing and calls no onLeave.
  events.length = 0
  push(conns[0], null, "room:lobby", "presence_diff", {joins: {}, leaves: {ghost: {metas: [{phx_ref: "g1"}]}}})
  assert.deepEqual(byKey(presence), {})
  assert.deepEqual(events, [["sync"]])
})

test("an update (join with phx_ref_prev plus the leave of that ref) replaces the meta and keeps the key's place", t => {
  const {presence, events, conns, joinRef} = setup(t)
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  push(conns[0], joinRef, "room:lobby", "presence_state", {
    alice: {metas: [{phx_ref: "a1", status: "online"}]},
    bob: {metas: [{phx_ref: "b1", status: "online"}]},
    carol: {metas: [{phx_ref: "c1", status: "online"}]},
  })
  events.length = 0
  push(conns[0], null, "room:lobby", "presence_diff", {
    joins: {bob: {metas: [{phx_ref: "b2", phx_ref_prev: "b1", status: "away"}]}},
    leaves: {bob: {metas: [{phx_ref: "b1", status: "online"}]}},
  })
  assert.deepEqual(Object.keys(byKey(presence)), ["alice", "bob", "carol"], "bob keeps his place")
  assert.deepEqual(byKey(presence).bob, [{phx_ref: "b2", phx_ref_prev: "b1", status: "away"}])
  assert.deepEqual(events, [["join", "bob", ["b1"], ["b2"]], ["leave", "bob", ["b2"], ["b1"]], ["sync"]])
})

test("syncState and syncDiff return a new state and change neither input", () => {
  const current = {alice: {metas: [{phx_ref: "a1"}]}}
  const next = {alice: {metas: [{phx_ref: "a2"}]}, bob: {metas: [{phx_ref: "b1"}]}}
  const diff = {joins: {alice: {metas: [{phx_ref: "a3"}]}}, leaves: {alice: {metas: [{phx_ref: "a1"}]}}}
  const inputs = JSON.stringify([current, next, diff])
  assert.deepEqual(Presence.syncState(current, next), next)
  assert.deepEqual(Presence.syncDiff(current, diff), {alice: {metas: [{phx_ref: "a3"}]}})
  assert.equal(JSON.stringify([current, next, diff]), inputs)
  assert.deepEqual(Presence.list(next, key => key), ["alice", "bob"])
})

test("diffs that arrive before presence_state are held and applied after it", t => {
  const {presence, events, conns, joinRef} = setup(t)
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  push(conns[0], null, "room:lobby", "presence_diff", {joins: {bob: {metas: [{phx_ref: "b1"}]}}, leaves: {}})
  assert.deepEqual(byKey(presence), {}, "a diff before the state is not applied yet")
  assert.deepEqual(events, [])
  push(conns[0], joinRef, "room:lobby", "presence_state", {alice: {metas: [{phx_ref: "a1"}]}})
  assert.deepEqual(Object.keys(byKey(presence)), ["alice", "bob"])
  assert.deepEqual(events.at(-1), ["sync"])
})

test("a push gets its reply, or a timeout when none comes", t => {
  const {room, conns, joinRef} = setup(t)
  assert.throws(() => room.push("new_msg", {}), /before joining/)
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")

  const got = []
  room.push("new_msg", {body: "hi"}).receive("ok", r => got.push(["ok", r])).receive("timeout", () => got.push(["timeout"]))
  const [, ref, , event, payload] = conns[0].last()
  assert.deepEqual([event, payload], ["new_msg", {body: "hi"}])
  reply(conns[0], joinRef, ref, "room:lobby", "ok", {id: 7})
  assert.deepEqual(got, [["ok", {id: 7}]])

  got.length = 0
  room.push("new_msg", {body: "lost"}, 500).receive("ok", () => got.push(["ok"])).receive("timeout", () => got.push(["timeout"]))
  t.mock.timers.tick(499)
  assert.deepEqual(got, [])
  t.mock.timers.tick(1)
  assert.deepEqual(got, [["timeout"]])
})

test("events reach on() bindings until off(), and frames of an earlier join are ignored", t => {
  const {room, conns, joinRef} = setup(t)
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  const got = []
  const ref = room.on("new_msg", p => got.push(p.body))
  push(conns[0], null, "room:lobby", "new_msg", {body: "broadcast"})
  push(conns[0], joinRef, "room:lobby", "new_msg", {body: "this join"})
  push(conns[0], "stale", "room:lobby", "new_msg", {body: "an earlier join"})
  push(conns[0], null, "room:other", "new_msg", {body: "another topic"})
  room.off("new_msg", ref)
  push(conns[0], null, "room:lobby", "new_msg", {body: "after off"})
  assert.deepEqual(got, ["broadcast", "this join"])
})

test("a dropped connection reconnects with backoff, rejoins, and the new presence_state replaces the old", t => {
  const tries = []
  const {socket, room, presence, events, conns, joinRef} = setup(t, {
    reconnectAfterMs: n => { tries.push(n); return [100, 300][n - 1] ?? 1000 },
  })
  const closes = [], opens = []
  socket.onClose(ev => closes.push(ev.code))
  socket.onOpen(() => opens.push(true))
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  push(conns[0], joinRef, "room:lobby", "presence_state", {
    alice: {metas: [{phx_ref: "a1"}]},
    bob: {metas: [{phx_ref: "b1"}]},
  })
  const pending = []
  room.push("new_msg", {body: "in flight"}).receive("timeout", () => pending.push("timeout"))

  conns[0].drop(1006)
  assert.deepEqual(closes, [1006])
  assert.equal(socket.isConnected(), false)
  assert.equal(room.state, "errored")
  assert.deepEqual(pending, ["timeout"], "a push in flight fails at once when the connection drops")

  // First try after reconnectAfterMs(1) = 100 ms; it fails before opening.
  t.mock.timers.tick(99)
  assert.equal(conns.length, 1)
  t.mock.timers.tick(1)
  assert.equal(conns.length, 2)
  assert.equal(conns[1].url, conns[0].url)
  conns[1].drop(1006)
  // Second try after reconnectAfterMs(2) = 300 ms.
  t.mock.timers.tick(299)
  assert.equal(conns.length, 2)
  t.mock.timers.tick(1)
  assert.equal(conns.length, 3)
  assert.deepEqual(tries, [1, 2])

  // It opens: the channel rejoins with a fresh join_ref, at once.
  events.length = 0
  conns[2].open()
  assert.equal(opens.length, 1)
  const joins = conns[2].sentEvent("phx_join")
  assert.equal(joins.length, 1)
  const [joinRef2, ref2, topic2, , params2] = joins[0]
  assert.notEqual(joinRef2, joinRef)
  assert.equal(ref2, joinRef2)
  assert.deepEqual([topic2, params2], ["room:lobby", {color: "blue"}])
  assert.equal(room.state, "joining")

  // A diff of the earlier join is dropped; one of the new join before its
  // presence_state is held.
  push(conns[2], joinRef, "room:lobby", "presence_diff", {joins: {mallory: {metas: [{phx_ref: "m1"}]}}, leaves: {}})
  reply(conns[2], joinRef2, joinRef2, "room:lobby", "ok")
  assert.equal(room.state, "joined")
  push(conns[2], null, "room:lobby", "presence_diff", {joins: {dave: {metas: [{phx_ref: "d1"}]}}, leaves: {}})
  assert.deepEqual(Object.keys(byKey(presence)), ["alice", "bob"], "nothing applied before the new presence_state")

  // While away, bob left and carol came; alice's entry is the same one.
  push(conns[2], joinRef2, "room:lobby", "presence_state", {
    alice: {metas: [{phx_ref: "a1"}]},
    carol: {metas: [{phx_ref: "c1"}]},
  })
  assert.deepEqual(Object.keys(byKey(presence)).sort(), ["alice", "carol", "dave"])
  assert.deepEqual(events.filter(e => e[0] !== "sync"), [
    ["join", "carol", undefined, ["c1"]],
    ["leave", "bob", [], ["b1"]],
    ["join", "dave", undefined, ["d1"]],
  ], "alice, present before and after, neither left nor joined")

  // The reconnect count starts again from 1 after a successful open.
  tries.length = 0
  conns[2].drop(1006)
  t.mock.timers.tick(100)
  assert.equal(conns.length, 4)
  assert.equal(tries[0], 1)
})

test("a join refused for a retryable reason is retried after the backoff, and a phx_error rejoins", t => {
  const {room, conns, joinRef} = setup(t, {reconnectAfterMs: () => 200})
  const errors = []
  room.joinPush.receive("error", r => errors.push(r.reason))
  reply(conns[0], joinRef, joinRef, "room:lobby", "error", {reason: "join failed"})
  assert.deepEqual(errors, ["join failed"])
  assert.equal(room.reason, "join failed")
  assert.equal(room.state, "errored")
  t.mock.timers.tick(199)
  assert.equal(conns[0].sentEvent("phx_join").length, 1)
  t.mock.timers.tick(1)
  const joins = conns[0].sentEvent("phx_join")
  assert.equal(joins.length, 2)
  const joinRef2 = joins[1][0]
  reply(conns[0], joinRef2, joinRef2, "room:lobby", "ok")
  assert.equal(room.state, "joined")
  assert.equal(room.reason, null, "a successful join clears the reason")

  // The server crashed the channel: it rejoins after the backoff.
  push(conns[0], joinRef2, "room:lobby", "phx_error", {})
  assert.equal(room.state, "errored")
  t.mock.timers.tick(200)
  assert.equal(conns[0].sentEvent("phx_join").length, 3)
})

test("a join that times out is retried", t => {
  const {room, conns} = setup(t, {reconnectAfterMs: () => 50})
  t.mock.timers.tick(10000) // the default join timeout
  assert.equal(room.state, "errored")
  t.mock.timers.tick(50)
  assert.equal(conns[0].sentEvent("phx_join").length, 2)
})

test("a channel joined before connect sends its join on open", t => {
  t.mock.timers.enable({apis: ["setTimeout", "setInterval"]})
  const {FakeWebSocket, conns} = fakeTransport()
  const socket = new Socket("ws://example.test/socket", {transport: FakeWebSocket})
  const room = socket.channel("room:early")
  room.join()
  assert.throws(() => room.join(), /more than once/)
  socket.connect()
  socket.connect() // a second connect while connecting is a no-op
  assert.equal(conns.length, 1)
  assert.equal(conns[0].sent.length, 0)
  conns[0].open()
  assert.deepEqual(conns[0].sent.map(f => [f[2], f[3]]), [["room:early", "phx_join"]])
})

test("an unanswered heartbeat closes the connection, and it reconnects", t => {
  const {socket, conns, joinRef} = setup(t, {heartbeatIntervalMs: 1000, reconnectAfterMs: () => 100})
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  t.mock.timers.tick(1000)
  const hb = conns[0].sentEvent("heartbeat")
  assert.equal(hb.length, 1)
  assert.deepEqual([hb[0][0], hb[0][2], hb[0][4]], [null, "phoenix", {}])
  // Answered: the next interval sends another one.
  reply(conns[0], null, hb[0][1], "phoenix", "ok")
  t.mock.timers.tick(1000)
  assert.equal(conns[0].sentEvent("heartbeat").length, 2)
  // Unanswered: the next interval closes the connection with a code that
  // is not a clean close (the server holds the presence for its grace),
  // and counts it closed at once: a dead link's close event may never come.
  const closes = []
  socket.onClose(ev => closes.push(ev))
  t.mock.timers.tick(1000)
  assert.deepEqual(conns[0].closeCalls, [{code: HEARTBEAT_TIMEOUT_CODE, reason: "heartbeat timeout"}])
  assert.equal(HEARTBEAT_TIMEOUT_CODE, 4000)
  assert.deepEqual(closes, [{code: 4000, reason: "heartbeat timeout", wasClean: false}])
  assert.equal(socket.isConnected(), false)
  assert.equal(socket.state, "reconnecting")
  t.mock.timers.tick(0) // the late close event changes nothing
  assert.equal(closes.length, 1)
  t.mock.timers.tick(100)
  assert.equal(conns.length, 2)
})

test("disconnect stops reconnecting; leave sends phx_leave and closes the channel", t => {
  const {socket, room, conns, joinRef} = setup(t, {reconnectAfterMs: () => 100})
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  const closed = []
  room.on("phx_close", () => closed.push(true))
  room.leave()
  const [leaveJoinRef, leaveRef, , event] = conns[0].last()
  assert.deepEqual([leaveJoinRef, event], [joinRef, "phx_leave"])
  assert.equal(room.state, "leaving")
  reply(conns[0], joinRef, leaveRef, "room:lobby", "ok")
  assert.equal(room.state, "closed")
  assert.deepEqual(closed, [true])
  assert.deepEqual(socket.channels, [])

  socket.disconnect()
  assert.deepEqual(conns[0].closeCalls, [{code: 1000, reason: ""}])
  t.mock.timers.tick(10000)
  assert.equal(conns.length, 1, "no reconnect after disconnect")
})

test("connect right after disconnect opens a new connection", t => {
  const {socket, room, conns, joinRef} = setup(t, {reconnectAfterMs: () => 100})
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  // A browser fires the close event later; connect must not wait for it.
  socket.disconnect()
  socket.connect()
  assert.equal(conns.length, 2, "connect after disconnect made no new connection")
  t.mock.timers.tick(0) // the first connection's close event arrives late
  conns[1].open()
  assert.equal(socket.isConnected(), true)
  assert.equal(room.state, "joining")
  assert.equal(conns[1].sentEvent("phx_join").length, 1, "the channel rejoins on the new connection")
  t.mock.timers.tick(10000)
  assert.equal(conns.length, 2)
})

test("a frame that is not JSON is ignored", t => {
  const {room, conns, joinRef} = setup(t)
  conns[0].onmessage({data: "not json"})
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  assert.equal(room.state, "joined")
})

test("a receive hook added after the reply runs at once", t => {
  const {joinPush, conns, joinRef} = setup(t)
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok", {n: 1})
  const got = []
  joinPush.receive("ok", r => got.push(r)).receive("error", () => got.push("error"))
  assert.deepEqual(got, [{n: 1}])
})

test("leave while disconnected closes the channel without sending", t => {
  const {socket, room, conns, joinRef} = setup(t, {reconnectAfterMs: () => 100})
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  conns[0].drop(1006)
  const closed = []
  room.on("phx_close", () => closed.push(true))
  room.leave()
  assert.equal(room.state, "closed")
  assert.deepEqual(closed, [true])
  t.mock.timers.tick(100)
  conns[1].open()
  assert.equal(conns[1].sentEvent("phx_join").length, 0, "a left channel does not rejoin")
  assert.equal(socket.isConnected(), true)
})

test("a session token is sent on connect, kept across reconnects, and new for each Socket", t => {
  const {socket, conns} = setup(t, {reconnectAfterMs: () => 100})
  const token = new URL(conns[0].url).searchParams.get("session")
  assert.match(token, /^[0-9a-f]{32}$/, "at least 16 random characters")
  assert.equal(socket.session, token)
  conns[0].drop(1006)
  t.mock.timers.tick(100)
  assert.equal(new URL(conns[1].url).searchParams.get("session"), token, "the same token after a reconnect")

  const {FakeWebSocket, conns: other} = fakeTransport()
  new Socket("ws://example.test/socket", {transport: FakeWebSocket}).connect()
  assert.notEqual(new URL(other[0].url).searchParams.get("session"), token, "another Socket has another token")
})

test("the session token can be given, or turned off", t => {
  t.mock.timers.enable({apis: ["setTimeout", "setInterval"]})
  const {FakeWebSocket, conns} = fakeTransport()
  new Socket("ws://example.test/socket", {transport: FakeWebSocket, params: {session: "given-by-the-app-0001"}}).connect()
  new Socket("ws://example.test/socket", {transport: FakeWebSocket, session: "given-as-an-option-01"}).connect()
  const params = {name: "x", session: "left-out-when-off-000"}
  new Socket("ws://example.test/socket", {transport: FakeWebSocket, params, session: false}).connect()
  const sessions = conns.map(c => new URL(c.url).searchParams.get("session"))
  assert.deepEqual(sessions, ["given-by-the-app-0001", "given-as-an-option-01", null])
  assert.deepEqual(params, {name: "x", session: "left-out-when-off-000"}, "the caller's params are not changed")
})

test("with no cryptographic random source no session is sent", t => {
  t.mock.timers.enable({apis: ["setTimeout", "setInterval"]})
  const saved = Object.getOwnPropertyDescriptor(globalThis, "crypto")
  Object.defineProperty(globalThis, "crypto", {value: undefined, configurable: true})
  try {
    const {FakeWebSocket, conns} = fakeTransport()
    const socket = new Socket("ws://example.test/socket", {transport: FakeWebSocket})
    socket.connect()
    assert.equal(socket.session, null)
    assert.equal(new URL(conns[0].url).searchParams.has("session"), false)
  } finally {
    Object.defineProperty(globalThis, "crypto", saved)
  }
})

test("the connection state goes connecting, online, reconnecting, offline, and back online", t => {
  t.mock.timers.enable({apis: ["setTimeout", "setInterval"]})
  const {FakeWebSocket, conns} = fakeTransport()
  const socket = new Socket("ws://example.test/socket", {transport: FakeWebSocket, reconnectAfterMs: () => 1000, offlineAfterMs: 2500})
  const changes = []
  socket.onStateChange((state, previous) => changes.push([previous, state]))
  assert.equal(socket.state, "offline", "before connect")
  assert.equal(new Socket("/s", {transport: FakeWebSocket}).offlineAfterMs, 10000, "the default")
  socket.connect()
  conns[0].open()
  assert.equal(socket.state, "online")

  // The server goes away: reconnecting at once, offline after
  // offlineAfterMs of failed tries, and it keeps trying.
  conns[0].drop(1006)
  assert.equal(socket.state, "reconnecting")
  t.mock.timers.tick(1000)
  conns[1].drop(1006)
  t.mock.timers.tick(1000)
  conns[2].drop(1006)
  assert.equal(socket.state, "reconnecting")
  t.mock.timers.tick(500)
  assert.equal(socket.state, "offline")
  t.mock.timers.tick(500)
  assert.equal(conns.length, 4, "an offline socket keeps trying")
  conns[3].open()
  assert.equal(socket.state, "online")

  // A quick reconnect never reaches offline.
  conns[3].drop(1006)
  t.mock.timers.tick(1000)
  conns[4].open()
  t.mock.timers.tick(5000)
  assert.equal(socket.state, "online")

  socket.disconnect()
  assert.equal(socket.state, "offline")
  assert.deepEqual(changes, [
    ["offline", "connecting"], ["connecting", "online"],
    ["online", "reconnecting"], ["reconnecting", "offline"], ["offline", "online"],
    ["online", "reconnecting"], ["reconnecting", "online"],
    ["online", "offline"],
  ])
  assert.deepEqual(CONNECTION_STATES, ["connecting", "online", "reconnecting", "offline"])
})

test("a first connection that fails goes from connecting to reconnecting", t => {
  t.mock.timers.enable({apis: ["setTimeout", "setInterval"]})
  const {FakeWebSocket, conns} = fakeTransport()
  const socket = new Socket("ws://example.test/socket", {transport: FakeWebSocket, reconnectAfterMs: () => 100, offlineAfterMs: 150})
  socket.connect()
  assert.equal(socket.state, "connecting")
  conns[0].drop(1006)
  assert.equal(socket.state, "reconnecting")
  t.mock.timers.tick(150)
  assert.equal(socket.state, "offline")
  socket.disconnect()
  t.mock.timers.tick(10000)
  assert.equal(conns.length, 2, "no try after disconnect")
})

test("server gone: pushes in flight fail, new pushes are refused, and the channel rejoins when it is back", t => {
  const {socket, room, presence, conns, joinRef} = setup(t, {reconnectAfterMs: () => 500, offlineAfterMs: 1000})
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  push(conns[0], joinRef, "room:lobby", "presence_state", {alice: {metas: [{phx_ref: "a1"}]}})
  assert.equal(room.canPush(), true)
  const failed = []
  room.push("new_msg", {body: "in flight"}).receive("timeout", () => failed.push("in flight"))

  conns[0].drop(1001) // the server shut down
  assert.deepEqual(failed, ["in flight"])
  assert.equal(room.state, "errored")
  assert.equal(room.canPush(), false)
  assert.throws(() => room.push("new_msg", {body: "offline"}), /before joining/)
  assert.deepEqual(Object.keys(byKey(presence)), ["alice"], "the last roster is kept until the next presence_state")

  for (let i = 1; i <= 2; i++) { t.mock.timers.tick(500); conns[i].drop(1006) }
  assert.equal(socket.state, "offline")
  t.mock.timers.tick(500)
  conns[3].open()
  assert.equal(socket.state, "online")
  const [joinRef2] = conns[3].sentEvent("phx_join")[0]
  reply(conns[3], joinRef2, joinRef2, "room:lobby", "ok")
  assert.equal(room.canPush(), true)
})

for (const reason of PERMANENT_REASONS) {
  test(`a join refused with ${reason} is not retried, not even after a reconnect, until rejoin()`, t => {
    const {room, conns, joinRef} = setup(t, {reconnectAfterMs: () => 100})
    const refusals = []
    room.onRefused((r, permanent) => refusals.push([r, permanent]))
    reply(conns[0], joinRef, joinRef, "room:lobby", "error", {reason})
    assert.deepEqual(refusals, [[reason, true]])
    assert.equal(room.state, "refused")
    assert.equal(room.reason, reason)
    t.mock.timers.tick(60000)
    assert.equal(conns[0].sentEvent("phx_join").length, 1, "no rejoin after a permanent refusal")

    conns[0].drop(1006)
    t.mock.timers.tick(100)
    conns[1].open()
    assert.equal(conns[1].sentEvent("phx_join").length, 0, "no rejoin on reconnect either")
    assert.equal(room.state, "refused")

    room.rejoin()
    const joins = conns[1].sentEvent("phx_join")
    assert.equal(joins.length, 1, "rejoin() tries again")
    reply(conns[1], joins[0][0], joins[0][0], "room:lobby", "ok")
    assert.equal(room.state, "joined")
    assert.equal(room.reason, null)
  })
}

test("PERMANENT_REASONS is the documented list, and a socket can name its own", t => {
  assert.deepEqual(PERMANENT_REASONS, ["full", "socket_limit", "unauthorized", "invalid_meta", "too_many_topics", "invalid_presence_mode"])
  assert.ok(Object.isFrozen(PERMANENT_REASONS))
  const {room, conns, joinRef} = setup(t, {reconnectAfterMs: () => 100, permanentReasons: ["banned"]})
  const refusals = []
  room.onRefused((r, permanent) => refusals.push([r, permanent]))
  reply(conns[0], joinRef, joinRef, "room:lobby", "error", {reason: "full"})
  assert.equal(room.state, "errored", "full is retryable for this socket")
  t.mock.timers.tick(100)
  const [, [joinRef2]] = conns[0].sentEvent("phx_join")
  reply(conns[0], joinRef2, joinRef2, "room:lobby", "error", {reason: "banned"})
  assert.equal(room.state, "refused")
  assert.deepEqual(refusals, [["full", false], ["banned", true]])
})

test("a refusal with no reason is retried, as unknown", t => {
  const {room, conns, joinRef} = setup(t, {reconnectAfterMs: () => 100})
  const refusals = []
  room.onRefused((r, permanent) => refusals.push([r, permanent]))
  reply(conns[0], joinRef, joinRef, "room:lobby", "error", null)
  assert.deepEqual(refusals, [["unknown", false]])
  t.mock.timers.tick(100)
  assert.equal(conns[0].sentEvent("phx_join").length, 2)
})

test("rejoin of a joined channel does nothing, and before join it throws", t => {
  const {socket, room, conns, joinRef} = setup(t)
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  room.rejoin()
  assert.equal(conns[0].sentEvent("phx_join").length, 1)
  assert.throws(() => socket.channel("room:other").rejoin(), /before join/)
})

test("onJoin and onLeave get each key's metas before and after the change", t => {
  const {presence, conns, joinRef} = setup(t)
  const got = []
  const m = pres => pres && refs(pres)
  presence.onJoin((key, before, joined, after) => got.push(["join", key, m(before), m(joined), m(after)]))
  presence.onLeave((key, after, left, before) => got.push(["leave", key, m(before), m(left), m(after)]))
  reply(conns[0], joinRef, joinRef, "room:lobby", "ok")
  push(conns[0], joinRef, "room:lobby", "presence_state", {alice: {metas: [{phx_ref: "a1"}]}})
  push(conns[0], null, "room:lobby", "presence_diff", {
    joins: {alice: {metas: [{phx_ref: "a2"}]}, bob: {metas: [{phx_ref: "b1"}]}},
    leaves: {alice: {metas: [{phx_ref: "a1"}]}},
  })
  push(conns[0], null, "room:lobby", "presence_diff", {joins: {}, leaves: {bob: {metas: [{phx_ref: "b1"}]}}})
  assert.deepEqual(got, [
    ["join", "alice", undefined, ["a1"], ["a1"]],
    ["join", "alice", ["a1"], ["a2"], ["a1", "a2"]],
    ["join", "bob", undefined, ["b1"], ["b1"]],
    ["leave", "alice", ["a1", "a2"], ["a1"], ["a2"]],
    ["leave", "bob", ["b1"], ["b1"], []],
  ])
  assert.deepEqual(presence.get("alice"), {metas: [{phx_ref: "a2"}]})
  assert.equal(presence.get("bob"), undefined)
  assert.equal(presence.get("toString"), undefined, "only present keys")
})

// Large rooms: count mode, pages, and the fallback from presence_too_large.

// countSetup is setup with a Presence in count mode (or opts.presence),
// recording onCount and onSync.
function countSetup(t, presenceOpts = {mode: "count"}, socketOpts = {}) {
  t.mock.timers.enable({apis: ["setTimeout", "setInterval"]})
  const {FakeWebSocket, conns} = fakeTransport()
  const socket = new Socket("ws://example.test/socket", {transport: FakeWebSocket, ...socketOpts})
  socket.connect()
  conns[0].open()
  const params = {color: "blue"}
  const room = socket.channel("room:big", params)
  const presence = new Presence(room, presenceOpts)
  const events = []
  presence.onCount((count, entries) => events.push(["count", count, entries]))
  presence.onSync(() => events.push(["sync"]))
  room.join()
  const joinRef = conns[0].last()[0]
  return {socket, room, presence, events, conns, joinRef, params}
}

// pageRequests returns the presence_list frames sent: [ref, payload].
const pageRequests = conn => conn.sentEvent("presence_list").map(f => [f[1], f[4]])

test("count mode joins with presence: count and follows presence_count", t => {
  const {presence, events, conns, joinRef, params} = countSetup(t)
  const [, , topic, event, payload] = conns[0].last()
  assert.deepEqual([topic, event, payload], ["room:big", "phx_join", {color: "blue", presence: "count"}])
  assert.deepEqual(params, {color: "blue"}, "the caller's params are not changed")
  assert.equal(presence.mode, "count")
  assert.deepEqual([presence.count, presence.entries], [0, 0])
  reply(conns[0], joinRef, joinRef, "room:big", "ok")

  push(conns[0], joinRef, "room:big", "presence_count", {count: 1000, entries: 1200})
  assert.deepEqual([presence.count, presence.entries], [1000, 1200])
  assert.deepEqual(presence.list(), [], "count mode keeps no roster")
  push(conns[0], null, "room:big", "presence_count", {count: 1000, entries: 1201})
  push(conns[0], null, "room:big", "presence_count", {count: 1000, entries: 1201})
  assert.deepEqual(events, [["count", 1000, 1200], ["sync"], ["count", 1000, 1201], ["sync"], ["sync"]],
    "onCount only when a number changed, onSync on every frame")

  // A frame of an earlier join, and malformed ones, change nothing.
  events.length = 0
  push(conns[0], "stale", "room:big", "presence_count", {count: 3, entries: 3})
  for (const bad of [null, {}, {count: "7", entries: 7}, {count: -1, entries: 0}, {count: 5, entries: 4}, {count: 1.5, entries: 2}]) {
    push(conns[0], null, "room:big", "presence_count", bad)
  }
  assert.deepEqual([presence.count, presence.entries], [1000, 1201])
  assert.deepEqual(events, [])
})

test("the mode comes from the channel's params too, and a bad mode is an error", t => {
  t.mock.timers.enable({apis: ["setTimeout", "setInterval"]})
  const {FakeWebSocket} = fakeTransport()
  const socket = new Socket("ws://example.test/socket", {transport: FakeWebSocket})
  assert.equal(new Presence(socket.channel("a", {presence: "count"})).mode, "count")
  assert.equal(new Presence(socket.channel("b")).mode, "full")
  const full = socket.channel("c")
  new Presence(full, {mode: "full"})
  assert.deepEqual(full.params, {}, "full mode sends no presence param: any server understands the join")
  assert.throws(() => new Presence(socket.channel("d"), {mode: "counts"}), /presence mode must be one of full, count, not "counts"/)
  assert.deepEqual(PRESENCE_MODES, ["full", "count"])
})

test("in full mode count and entries follow the roster, and onCount runs when they change", t => {
  const {presence, events, conns, joinRef} = countSetup(t, {})
  reply(conns[0], joinRef, joinRef, "room:big", "ok")
  push(conns[0], joinRef, "room:big", "presence_state", {
    alice: {metas: [{phx_ref: "a1"}, {phx_ref: "a2"}]},
    bob: {metas: [{phx_ref: "b1"}]},
  })
  assert.deepEqual([presence.count, presence.entries], [2, 3])
  push(conns[0], null, "room:big", "presence_diff", {joins: {}, leaves: {alice: {metas: [{phx_ref: "a1"}]}}})
  assert.deepEqual([presence.count, presence.entries], [2, 2])
  push(conns[0], null, "room:big", "presence_diff", {joins: {bob: {metas: [{phx_ref: "b2", phx_ref_prev: "b1"}]}}, leaves: {bob: {metas: [{phx_ref: "b1"}]}}})
  assert.deepEqual(events, [["count", 2, 3], ["sync"], ["count", 2, 2], ["sync"], ["sync"]], "an update changes no number")
})

test("a count-mode Presence on a server without count mode keeps the roster it is sent", t => {
  const {presence, conns, joinRef} = countSetup(t)
  reply(conns[0], joinRef, joinRef, "room:big", "ok")
  push(conns[0], joinRef, "room:big", "presence_state", {alice: {metas: [{phx_ref: "a1"}]}})
  assert.deepEqual([presence.count, presence.entries], [1, 1])
  assert.deepEqual(Object.keys(byKey(presence)), ["alice"])
})

test("page sends presence_list with limit and after, and resolves to the reply", async t => {
  const {presence, conns, joinRef} = countSetup(t)
  reply(conns[0], joinRef, joinRef, "room:big", "ok")

  const first = presence.page(2)
  const [[ref1, payload1]] = pageRequests(conns[0])
  assert.deepEqual(payload1, {limit: 2}, "no after for the first page")
  const presences = {bob: {metas: [{phx_ref: "b1"}]}, alice: {metas: [{phx_ref: "a1"}, {phx_ref: "a2"}]}}
  reply(conns[0], joinRef, ref1, "room:big", "ok", {presences, next: "c-2", count: 3})
  assert.deepEqual(await first, {presences, keys: ["bob", "alice"], next: "c-2", count: 3})

  const last = presence.page(2, "c-2")
  const [, [ref2, payload2]] = pageRequests(conns[0])
  assert.deepEqual(payload2, {limit: 2, after: "c-2"})
  reply(conns[0], joinRef, ref2, "room:big", "ok", {presences: {carol: {metas: [{phx_ref: "c1"}]}}, next: null, count: 3})
  assert.equal((await last).next, null)

  presence.page()
  assert.deepEqual(pageRequests(conns[0])[2][1], {limit: DEFAULT_PAGE_LIMIT})
  assert.equal(DEFAULT_PAGE_LIMIT, 100)
})

test("page rejects a bad limit or cursor without sending, and when the channel cannot push", async t => {
  const {presence, conns, joinRef} = countSetup(t)
  const reasonOf = p => p.then(() => "resolved", err => { assert.ok(err instanceof PresenceError); return err.reason })
  assert.equal(await reasonOf(presence.page(10)), "not_joined", "before the join's reply")
  reply(conns[0], joinRef, joinRef, "room:big", "ok")
  for (const limit of [0, -1, MAX_PAGE_LIMIT + 1, 1.5, "10", null, NaN]) {
    assert.equal(await reasonOf(presence.page(limit)), "invalid_limit", `limit ${limit}`)
  }
  for (const after of [7, {}, ["c"]]) {
    assert.equal(await reasonOf(presence.page(10, after)), "invalid_cursor", `after ${JSON.stringify(after)}`)
  }
  assert.equal(pageRequests(conns[0]).length, 0, "nothing was sent")
  presence.page(MAX_PAGE_LIMIT)
  presence.page(1)
  assert.deepEqual(pageRequests(conns[0]).map(([, p]) => p.limit), [1000, 1], "1 and MAX_PAGE_LIMIT are sent")
  assert.equal(MAX_PAGE_LIMIT, 1000)
})

test("page rejects with the server's reason, on a timeout, on a lost connection, and on a reply that is not a page", async t => {
  const {presence, conns, joinRef} = countSetup(t)
  reply(conns[0], joinRef, joinRef, "room:big", "ok")
  const reasonOf = p => p.then(() => "resolved", err => [err.reason, err.response])

  for (const reason of ["invalid_limit", "invalid_cursor"]) {
    const p = presence.page(10, "from-another-room")
    reply(conns[0], joinRef, pageRequests(conns[0]).at(-1)[0], "room:big", "error", {reason})
    assert.deepEqual(await reasonOf(p), [reason, {reason}])
  }
  for (const bad of [null, {next: null, count: 1}, {presences: [], next: null, count: 1}, {presences: {}, next: 5, count: 1}, {presences: {}, next: null}]) {
    const p = presence.page(10)
    reply(conns[0], joinRef, pageRequests(conns[0]).at(-1)[0], "room:big", "ok", bad)
    assert.equal((await reasonOf(p))[0], "invalid_reply", JSON.stringify(bad))
  }
  const slow = presence.page(10, null, 500)
  t.mock.timers.tick(500)
  assert.deepEqual(await reasonOf(slow), ["timeout", {}])
  const lost = presence.page(10)
  conns[0].drop(1006)
  assert.deepEqual(await reasonOf(lost), ["timeout", {}])
})

test("pages walks from the first page to the last", async t => {
  const {presence, conns, joinRef} = countSetup(t)
  reply(conns[0], joinRef, joinRef, "room:big", "ok")
  const server = [
    {presences: {a: {metas: [{phx_ref: "1"}]}}, next: "n1", count: 3},
    {presences: {b: {metas: [{phx_ref: "2"}]}}, next: "n2", count: 3},
    {presences: {c: {metas: [{phx_ref: "3"}]}}, next: null, count: 3},
  ]
  // Each request is answered as soon as it is sent.
  const conn = conns[0]
  const send = conn.send.bind(conn)
  conn.send = data => {
    send(data)
    const [, ref, , event, payload] = JSON.parse(data)
    if (event !== "presence_list") return
    const i = payload.after === undefined ? 0 : Number(payload.after.slice(1))
    queueMicrotask(() => reply(conn, joinRef, ref, "room:big", "ok", server[i]))
  }
  const keys = []
  for await (const page of presence.pages(1)) keys.push(...Object.keys(page.presences))
  assert.deepEqual(keys, ["a", "b", "c"])
  assert.deepEqual(pageRequests(conn).map(([, p]) => p), [{limit: 1}, {limit: 1, after: "n1"}, {limit: 1, after: "n2"}])
})

test("a full-mode join refused with presence_too_large rejoins at once in count mode", t => {
  const {room, presence, events, conns, joinRef} = countSetup(t, {}, {reconnectAfterMs: () => 1000})
  const refusals = []
  room.onRefused((reason, permanent, response) => refusals.push([reason, permanent, response]))
  assert.equal(presence.mode, "full")
  reply(conns[0], joinRef, joinRef, "room:big", "error", {reason: TOO_LARGE_REASON, count: 5000, max: 1000})
  assert.equal(TOO_LARGE_REASON, "presence_too_large")
  assert.deepEqual(refusals, [["presence_too_large", false, {reason: "presence_too_large", count: 5000, max: 1000}]])
  assert.equal(presence.mode, "count")
  const joins = conns[0].sentEvent("phx_join")
  assert.equal(joins.length, 2, "the rejoin is sent at once, not after the backoff")
  assert.deepEqual(joins[1][4], {color: "blue", presence: "count"})
  assert.equal(room.state, "joining")
  t.mock.timers.tick(1000)
  assert.equal(conns[0].sentEvent("phx_join").length, 2, "and only once")

  const joinRef2 = joins[1][0]
  reply(conns[0], joinRef2, joinRef2, "room:big", "ok")
  push(conns[0], joinRef2, "room:big", "presence_count", {count: 5001, entries: 5003})
  assert.deepEqual([presence.count, presence.entries], [5001, 5003])
  assert.deepEqual(events, [["count", 5001, 5003], ["sync"]])

  // It stays in count mode across a reconnect.
  conns[0].drop(1006)
  t.mock.timers.tick(1000)
  conns[1].open()
  assert.deepEqual(conns[1].sentEvent("phx_join")[0][4], {color: "blue", presence: "count"})
})

test("a rejoin refused with presence_too_large drops the roster it can no longer follow", t => {
  const {room, presence, events, conns, joinRef} = countSetup(t, {}, {reconnectAfterMs: () => 100})
  reply(conns[0], joinRef, joinRef, "room:big", "ok")
  push(conns[0], joinRef, "room:big", "presence_state", {alice: {metas: [{phx_ref: "a1"}]}})
  conns[0].drop(1006)
  t.mock.timers.tick(100)
  conns[1].open()
  const [joinRef2] = conns[1].sentEvent("phx_join")[0]
  reply(conns[1], joinRef2, joinRef2, "room:big", "error", {reason: "presence_too_large", count: 2000, max: 1000})
  assert.deepEqual(presence.list(), [])
  const [joinRef3, , , , params3] = conns[1].sentEvent("phx_join")[1]
  assert.equal(params3.presence, "count")
  reply(conns[1], joinRef3, joinRef3, "room:big", "ok")
  events.length = 0
  push(conns[1], joinRef3, "room:big", "presence_count", {count: 2001, entries: 2001})
  assert.deepEqual(events, [["count", 2001, 2001], ["sync"]])
  assert.equal(room.state, "joined")
})

test("with fallback false presence_too_large is an ordinary retryable refusal", t => {
  const {room, presence, conns, joinRef} = countSetup(t, {fallback: false}, {reconnectAfterMs: () => 300})
  reply(conns[0], joinRef, joinRef, "room:big", "error", {reason: "presence_too_large", count: 5000, max: 1000})
  assert.equal(presence.mode, "full")
  assert.equal(room.state, "errored")
  assert.equal(conns[0].sentEvent("phx_join").length, 1)
  t.mock.timers.tick(300)
  const joins = conns[0].sentEvent("phx_join")
  assert.equal(joins.length, 2, "retried after the backoff")
  assert.deepEqual(joins[1][4], {color: "blue"}, "still in full mode")
})

test("invalid_presence_mode is permanent: no rejoin", t => {
  t.mock.timers.enable({apis: ["setTimeout", "setInterval"]})
  const {FakeWebSocket, conns} = fakeTransport()
  const socket = new Socket("ws://example.test/socket", {transport: FakeWebSocket, reconnectAfterMs: () => 100})
  socket.connect()
  conns[0].open()
  const room = socket.channel("room:big", {presence: "lots"})
  room.join()
  const [joinRef] = conns[0].last()
  reply(conns[0], joinRef, joinRef, "room:big", "error", {reason: "invalid_presence_mode"})
  assert.equal(room.state, "refused")
  t.mock.timers.tick(60000)
  assert.equal(conns[0].sentEvent("phx_join").length, 1)
})

test("a page's keys come in the server's order, integer-like keys included", async t => {
  const {presence, conns, joinRef} = countSetup(t)
  reply(conns[0], joinRef, joinRef, "room:big", "ok")
  // A JavaScript object would list "10" and "2" before "bob".
  const answer = (ref, presencesText) => conns[0].onmessage({data:
    `[${JSON.stringify(joinRef)},${JSON.stringify(ref)},"room:big","phx_reply",{"status":"ok","response":{"presences":${presencesText},"next":null,"count":4}}]`})

  const p1 = presence.page(10)
  answer(pageRequests(conns[0]).at(-1)[0],
    '{"bob":{"metas":[{"phx_ref":"b","note":"say \\"presences\\": {\\"x\\":1}"}]},"10":{"metas":[{"phx_ref":"t","presences":{"z":1}}]},' +
    '"2":{"metas":[{"phx_ref":"w"}]},"\\u00e9\\"\\\\":{"metas":[{"phx_ref":"e"}]}}')
  const page = await p1
  assert.deepEqual(page.keys, ["bob", "10", "2", "é\"\\"])
  assert.deepEqual(Object.keys(page.presences), ["2", "10", "bob", "é\"\\"], "what the object alone would say")
  assert.equal(page.presences["10"].metas[0].phx_ref, "t")

  // Without integer-like keys, the object's order is the server's.
  const p2 = presence.page(10)
  answer(pageRequests(conns[0]).at(-1)[0], '{"zed":{"metas":[{"phx_ref":"z"}]},"amy":{"metas":[{"phx_ref":"a"}]}}')
  assert.deepEqual((await p2).keys, ["zed", "amy"])
})

test("pages stops with the PresenceError of a page that fails", async t => {
  const {presence, conns, joinRef} = countSetup(t)
  reply(conns[0], joinRef, joinRef, "room:big", "ok")
  const conn = conns[0]
  const send = conn.send.bind(conn)
  conn.send = data => {
    send(data)
    const [, ref, , event, payload] = JSON.parse(data)
    if (event !== "presence_list") return
    queueMicrotask(() => payload.after === undefined ?
      reply(conn, joinRef, ref, "room:big", "ok", {presences: {a: {metas: [{phx_ref: "1"}]}}, next: "n1", count: 2}) :
      reply(conn, joinRef, ref, "room:big", "error", {reason: "invalid_cursor"}))
  }
  const keys = []
  await assert.rejects(async () => { for await (const page of presence.pages(1)) keys.push(...page.keys) },
    err => err instanceof PresenceError && err.reason === "invalid_cursor")
  assert.deepEqual(keys, ["a"])
})

test("two Presences on one channel fall back with one count-mode rejoin, and frames of the refused join are ignored", t => {
  const {room, presence, events, conns, joinRef} = countSetup(t, {}, {reconnectAfterMs: () => 1000})
  const second = new Presence(room)
  reply(conns[0], joinRef, joinRef, "room:big", "error", {reason: TOO_LARGE_REASON, count: 3000, max: 2000})
  assert.deepEqual([presence.mode, second.mode], ["count", "count"])
  t.mock.timers.tick(5000)
  const joins = conns[0].sentEvent("phx_join")
  assert.equal(joins.length, 2, "one rejoin, however many Presences")
  const joinRef2 = joins[1][0]
  reply(conns[0], joinRef2, joinRef2, "room:big", "ok")
  // A count or a roster sent under the refused join's ref changes nothing.
  push(conns[0], joinRef, "room:big", "presence_count", {count: 9, entries: 9})
  push(conns[0], joinRef, "room:big", "presence_state", {ghost: {metas: [{phx_ref: "g"}]}})
  assert.deepEqual([presence.count, second.count, presence.list()], [0, 0, []])
  assert.deepEqual(events, [])
  push(conns[0], joinRef2, "room:big", "presence_count", {count: 3001, entries: 3002})
  assert.deepEqual([presence.count, presence.entries, second.count, second.entries], [3001, 3002, 3001, 3002])
})

test("a count-mode Presence rejoins in count mode after every reconnect, and page works again once rejoined", async t => {
  const {room, presence, conns, joinRef} = countSetup(t, {mode: "count"}, {reconnectAfterMs: () => 100})
  reply(conns[0], joinRef, joinRef, "room:big", "ok")
  for (let i = 1; i <= 2; i++) {
    conns[i - 1].drop(1006)
    await assert.rejects(presence.page(10), err => err instanceof PresenceError && err.reason === "not_joined")
    t.mock.timers.tick(100)
    conns[i].open()
    const [jr, , , , params] = conns[i].sentEvent("phx_join")[0]
    assert.deepEqual(params, {color: "blue", presence: "count"})
    reply(conns[i], jr, jr, "room:big", "ok")
    assert.equal(room.state, "joined")
    const p = presence.page(10)
    const [ref, payload] = pageRequests(conns[i]).at(-1)
    assert.deepEqual(payload, {limit: 10})
    reply(conns[i], jr, ref, "room:big", "ok", {presences: {}, next: null, count: 0})
    assert.equal((await p).count, 0)
  }
})

test("an explicit full mode wins over a channel's presence: count param, so mode says what the join asks", t => {
  t.mock.timers.enable({apis: ["setTimeout", "setInterval"]})
  const {FakeWebSocket, conns} = fakeTransport()
  const socket = new Socket("ws://example.test/socket", {transport: FakeWebSocket})
  socket.connect()
  conns[0].open()
  const room = socket.channel("room:big", {presence: "count", color: "blue"})
  const presence = new Presence(room, {mode: "full"})
  assert.equal(presence.mode, "full")
  room.join()
  assert.deepEqual(conns[0].last()[4], {color: "blue"}, "a full-mode join")
})
