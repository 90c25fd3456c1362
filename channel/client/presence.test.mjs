// Tests of presence.js on Node with no browser and no server: a fake
// WebSocket is injected through the Socket's transport option, and time is
// driven by node:test's mock timers. Run: node --test channel/client/
import {test} from "node:test"
import assert from "node:assert/strict"
import {Socket, Presence} from "./presence.js"

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

test("a join answered with an error is retried after the backoff, and a phx_error rejoins", t => {
  const {room, conns, joinRef} = setup(t, {reconnectAfterMs: () => 200})
  const errors = []
  room.joinPush.receive("error", r => errors.push(r.reason))
  reply(conns[0], joinRef, joinRef, "room:lobby", "error", {reason: "full"})
  assert.deepEqual(errors, ["full"])
  assert.equal(room.state, "errored")
  t.mock.timers.tick(199)
  assert.equal(conns[0].sentEvent("phx_join").length, 1)
  t.mock.timers.tick(1)
  const joins = conns[0].sentEvent("phx_join")
  assert.equal(joins.length, 2)
  const joinRef2 = joins[1][0]
  reply(conns[0], joinRef2, joinRef2, "room:lobby", "ok")
  assert.equal(room.state, "joined")

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
  // Unanswered: the next interval closes the connection.
  t.mock.timers.tick(1000)
  assert.deepEqual(conns[0].closeCalls, [{code: 1000, reason: "heartbeat timeout"}])
  t.mock.timers.tick(0) // the close event
  assert.equal(socket.isConnected(), false)
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
