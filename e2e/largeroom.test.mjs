// presence.js on Node against the demo server, in a large room: count
// mode, pages in join order, the paging guarantee under churn, the
// server's errors as PresenceError, and the fallback from
// presence_too_large to count mode.
import {test, before, after} from "node:test"
import assert from "node:assert/strict"
import WebSocket from "ws"
import {Socket, Presence, PresenceError} from "@presencekit/presence"
import {startServer, waitFor} from "./server.mjs"
import {joinMembers, closeMembers, memberNames} from "./members.mjs"

// The server refuses full-mode joins into rooms of more than maxState keys.
const maxState = 40
let server
const sockets = []

before(async () => { server = await startServer(["-max-presence-state", String(maxState)]) })
after(async () => {
  for (const s of sockets) s.disconnect()
  await server.stop()
})

// watch joins topic as name with presence.js and resolves to its
// Presence once joined (after any fallback), with every join frame's
// params and every presence frame it received.
async function watch(name, topic, presenceOpts = {}) {
  const joins = [], received = []
  class Transport extends WebSocket {
    send(data) {
      const frame = JSON.parse(data)
      if (frame[3] === "phx_join") joins.push(frame[4])
      super.send(data)
    }
  }
  const socket = new Socket(server.socketURL, {transport: Transport, params: {name}, reconnectAfterMs: () => 100})
  sockets.push(socket)
  socket.connect()
  const channel = socket.channel(topic)
  channel.on("presence_state", () => received.push("presence_state"))
  channel.on("presence_diff", () => received.push("presence_diff"))
  channel.on("presence_count", () => received.push("presence_count"))
  const presence = new Presence(channel, presenceOpts)
  const refusals = []
  channel.onRefused((reason, permanent, response) => refusals.push({reason, permanent, response}))
  await new Promise((resolve, reject) => {
    channel.join().receive("ok", resolve).receive("timeout", () => reject(new Error(`${name}: join timeout`)))
  })
  return {socket, channel, presence, joins, received, refusals}
}

// walk pages through the whole room and returns every key in page order.
async function walk(presence, limit) {
  const keys = []
  for await (const page of presence.pages(limit)) keys.push(...page.keys)
  return keys
}

test("count mode: presence.count follows the room, and presence_state and presence_diff never come", async () => {
  const members = await joinMembers(server.socketURL, "chat:counted", memberNames("m", 100))
  const w = await watch("watcher", "chat:counted", {mode: "count"})
  assert.equal(w.presence.mode, "count")
  assert.deepEqual(w.joins, [{presence: "count"}])
  await waitFor("the count of 101", () => w.presence.count === 101 && w.presence.entries === 101)
  await closeMembers(members.slice(0, 30))
  await waitFor("the count of 71", () => w.presence.count === 71, 10000)
  assert.deepEqual(w.presence.list(), [])
  assert.deepEqual([...new Set(w.received)], ["presence_count"])
  await closeMembers(members)
})

test("pages list every key once, in join order, a key's metas together", async () => {
  // Joined one at a time, so that join order is known; "42" and "7" are
  // keys that a JavaScript object would list first.
  const names = [...memberNames("p", 30), "42", "7", ...memberNames("p", 28, 31)]
  const members = await joinMembers(server.socketURL, "chat:paged", names, {concurrency: 1})
  // A second connection of the same name: one key, two metas.
  const [twin] = await joinMembers(server.socketURL, "chat:paged", [names[10]])
  const w = await watch("reader", "chat:paged", {mode: "count"})
  const pages = []
  for await (const page of w.presence.pages(7)) pages.push(page)
  const keys = pages.flatMap(p => p.keys)
  assert.deepEqual(keys, [...names, "reader"], "every key once, in join order")
  assert.equal(pages.length, Math.ceil(61 / 7))
  assert.ok(pages.slice(0, -1).every(p => p.keys.length === 7 && typeof p.next === "string"))
  assert.ok(pages.every(p => p.keys.length === Object.keys(p.presences).length))
  assert.equal(pages.at(-1).next, null)
  assert.ok(pages.every(p => p.count === 61))
  const metas = pages.flatMap(p => Object.entries(p.presences)).find(([key]) => key === names[10])[1].metas
  assert.equal(metas.length, 2, "both connections of a key, in one page")
  assert.ok(metas.every(m => m.phx_ref && m.name === names[10]), "metas as in presence_state")
  await closeMembers([...members, twin])
})

test("paging under churn: every key present throughout appears exactly once", async () => {
  const stable = memberNames("s", 120)
  const members = await joinMembers(server.socketURL, "chat:churn", stable)
  const w = await watch("pager", "chat:churn", {mode: "count"})
  // Churn: members come and go while the pager walks the room.
  let churning = true, round = 0
  const churn = (async () => {
    while (churning) {
      const batch = await joinMembers(server.socketURL, "chat:churn", memberNames(`c${round++}-`, 5))
      await closeMembers(batch)
    }
  })()
  try {
    for (let walkNo = 0; walkNo < 3; walkNo++) {
      const keys = await walk(w.presence, 9)
      const seen = new Map()
      for (const k of keys) seen.set(k, (seen.get(k) || 0) + 1)
      for (const name of [...stable, "pager"]) assert.equal(seen.get(name), 1, `walk ${walkNo}: ${name} seen ${seen.get(name) || 0} times`)
      for (const [k, n] of seen) assert.equal(n, 1, `walk ${walkNo}: ${k} seen ${n} times`)
    }
    assert.ok(round > 0, "the churn ran")
  } finally {
    churning = false
    await churn
    await closeMembers(members)
  }
})

test("the server's refusals of a page arrive as PresenceError with its reason", async () => {
  const w = await watch("asker", "chat:errors", {mode: "count"})
  const err = await w.presence.page(10, "not-a-cursor").then(() => null, e => e)
  assert.ok(err instanceof PresenceError)
  assert.equal(err.reason, "invalid_cursor")
  // A cursor of another room is refused as well.
  const members = await joinMembers(server.socketURL, "chat:elsewhere", memberNames("e", 3))
  const other = await watch("asker2", "chat:elsewhere", {mode: "count"})
  const {next} = await other.presence.page(1)
  assert.equal(typeof next, "string")
  const foreign = await w.presence.page(10, next).then(() => null, e => e)
  assert.equal(foreign?.reason, "invalid_cursor")
  // The client's own check of the limit sends nothing; the server's is the same rule.
  const reply = await new Promise(resolve => w.channel.push("presence_list", {limit: 1001}).receive("error", resolve).receive("ok", resolve))
  assert.deepEqual(reply, {reason: "invalid_limit"})
  assert.equal((await w.presence.page(1001).catch(e => e)).reason, "invalid_limit")
  await closeMembers(members)
})

test("a full-mode join into a room over the cap is refused presence_too_large and rejoins in count mode", async () => {
  const members = await joinMembers(server.socketURL, "chat:crowd", memberNames("k", maxState + 5))
  const w = await watch("latecomer", "chat:crowd")
  assert.deepEqual(w.refusals.map(r => [r.reason, r.permanent]), [["presence_too_large", false]])
  assert.deepEqual(w.refusals[0].response, {reason: "presence_too_large", count: maxState + 5, max: maxState})
  assert.deepEqual(w.joins, [{}, {presence: "count"}])
  assert.equal(w.presence.mode, "count")
  await waitFor("the count with the latecomer", () => w.presence.count === maxState + 6)
  assert.equal(w.received.includes("presence_state"), false)
  assert.equal((await walk(w.presence, 100)).length, maxState + 6)

  // Below the cap, a full-mode join gets the roster.
  const small = await joinMembers(server.socketURL, "chat:few", memberNames("f", 3))
  const f = await watch("fewer", "chat:few")
  await waitFor("the roster of 4", () => f.presence.count === 4 && f.presence.list().length === 4)
  assert.deepEqual(f.refusals, [])
  await closeMembers([...members, ...small])
})
