// Two and three presence-chat processes clustered over NATS, with the
// official phoenix client on each: users see each other across nodes, chat
// crosses nodes, and a node killed with SIGKILL takes its users away
// within DownAfter + Heartbeat + the presence window.
import {test, after} from "node:test"
import assert from "node:assert/strict"
import net from "node:net"
import {Socket, Presence} from "phoenix"
import WebSocket from "ws"
import {startServer, waitFor, presenceWindowMs} from "./server.mjs"

const heartbeatMs = 200, downAfterMs = 1000
const nodeFlags = ["-node-heartbeat", `${heartbeatMs}ms`, "-node-down-after", `${downAfterMs}ms`]
const servers = [], sockets = []

after(async () => {
  for (const s of sockets) s.disconnect()
  for (const s of servers) await s.stop()
})

async function freePort() {
  const srv = net.createServer()
  await new Promise(r => srv.listen(0, "127.0.0.1", r))
  const {port} = srv.address()
  await new Promise(r => srv.close(r))
  return port
}

async function node(args) {
  const s = await startServer([...nodeFlags, ...args])
  servers.push(s)
  return s
}

// connect joins room (chat:lobby unless given) on a server as name and
// keeps a Presence.
async function connect(server, name, room = "chat:lobby") {
  const socket = new Socket(server.socketURL, {transport: WebSocket, params: {name}, reconnectAfterMs: () => 60000})
  sockets.push(socket)
  socket.connect()
  const channel = socket.channel(room)
  const presence = new Presence(channel)
  const client = {socket, channel, presence, msgs: [], leaves: []}
  presence.onLeave((key, current) => { if (current.metas.length === 0) client.leaves.push({key, at: Date.now()}) })
  channel.on("new_msg", m => client.msgs.push(m))
  await new Promise((resolve, reject) => {
    channel.join().receive("ok", resolve).receive("error", reject).receive("timeout", () => reject(new Error("join timeout")))
  })
  return client
}

const keys = c => c.presence.list(key => key).sort()
const nodesOf = (c, key) => c.presence.list((k, {metas}) => k === key ? metas.map(m => m.node) : []).flat()

test("two nodes, one NATS: presence and chat cross, a killed node's users leave, a restart brings them back", async () => {
  const natsPort = await freePort()
  const a = await node(["-node", "a", "-nats-listen", `127.0.0.1:${natsPort}`])
  const natsURL = `nats://127.0.0.1:${natsPort}`
  let b = await node(["-node", "b", "-nats", natsURL])
  const alice = await connect(a, "alice")
  let bob = await connect(b, "bob")
  await waitFor("alice to list bob", () => keys(alice).join() === "alice,bob", 5000)
  await waitFor("bob to list alice", () => keys(bob).join() === "alice,bob", 5000)
  assert.deepEqual(nodesOf(alice, "bob"), ["b"])
  assert.deepEqual(nodesOf(bob, "alice"), ["a"])
  // The same phx_ref on both nodes.
  const ref = (c, key) => c.presence.list((k, {metas}) => k === key ? metas[0].phx_ref : null).filter(Boolean)[0]
  assert.equal(ref(alice, "alice"), ref(bob, "alice"))

  alice.channel.push("new_msg", {body: "hi bob"})
  await waitFor("bob to get alice's message", () => bob.msgs.some(m => m.body === "hi bob"), 5000)
  bob.channel.push("new_msg", {body: "hi alice"})
  await waitFor("alice to get bob's message", () => alice.msgs.some(m => m.body === "hi alice"), 5000)

  // A status change is a Track update that crosses nodes.
  bob.channel.push("set_status", {status: "away"})
  await waitFor("alice to see bob away", () =>
    alice.presence.list((k, {metas}) => k === "bob" ? metas[0].status : null).includes("away"), 5000)

  const killedAt = Date.now()
  await b.kill()
  const limit = downAfterMs + heartbeatMs + presenceWindowMs + 500
  await waitFor("alice to see bob leave", () => alice.leaves.some(l => l.key === "bob"), limit + 2000)
  const took = alice.leaves.find(l => l.key === "bob").at - killedAt
  console.log(`# bob's leave reached alice ${took} ms after the kill (limit ${limit} ms)`)
  assert.ok(took <= limit, `took ${took} ms`)

  b = await node(["-node", "b", "-nats", natsURL])
  bob = await connect(b, "bob")
  await waitFor("alice to list bob again", () => keys(alice).join() === "alice,bob", 5000)
})

test("three nodes each embedding NATS: killing any one leaves the others working", async () => {
  const nats = [await freePort(), await freePort(), await freePort()]
  const routes = [await freePort(), await freePort(), await freePort()]
  const started = []
  for (let i = 0; i < 3; i++) {
    const others = routes.filter((_, j) => j !== i).map(p => `nats://127.0.0.1:${p}`).join(",")
    started.push(await node(["-node", `n${i}`, "-nats-listen", `127.0.0.1:${nats[i]}`,
      "-nats-cluster", `127.0.0.1:${routes[i]}`, "-nats-routes", others]))
  }
  const users = []
  for (let i = 0; i < 3; i++) users.push(await connect(started[i], `u${i}`))
  for (const u of users) await waitFor("everyone to list everyone", () => keys(u).join() === "u0,u1,u2", 10000)

  // Sockets on n0 and n1 also join chat:other; n2's are in chat:lobby
  // alone, so n2 mirrors the lobby's remote entries and none of the other
  // room's.
  const others = [await connect(started[0], "o0", "chat:other"), await connect(started[1], "o1", "chat:other"),
    await connect(started[1], "o2", "chat:other")]
  await waitFor("n0's socket in chat:other to list the other room", () => keys(others[0]).join() === "o0,o1,o2", 10000)
  const vars = async s => await (await fetch(s.url + "/debug/vars")).json()
  await waitFor("n0 to mirror both rooms", async () => (await vars(started[0])).cluster.stats.TopicsMirrored === 2, 5000)
  // n1 publishes in order: once n2 sees u1's status, which n1 changed
  // after its sockets joined chat:other, a node mirroring everything would
  // hold chat:other's entries too.
  users[1].channel.push("set_status", {status: "away"})
  await waitFor("u2 to see u1 away", () =>
    users[2].presence.list((k, {metas}) => k === "u1" ? metas[0].status : null).includes("away"), 5000)
  const c = await vars(started[2])
  assert.equal(c.cluster.stats.TopicsMirrored, 1, "n2 mirrors chat:lobby alone")
  assert.equal(c.cluster.stats.RemoteEntries, 2, "n2 holds u0 and u1, the lobby's remote entries, and none of chat:other")
  assert.equal(c.presence.Remote, 2, "n2's engine holds the lobby's two remote entries alone")
  assert.equal(c.presence.Local, 1)
  for (const o of others) o.channel.leave()

  // Kill the first node, the one the others' routes were given first.
  await started[0].kill()
  for (const u of users.slice(1)) {
    await waitFor("u0 to leave", () => keys(u).join() === "u1,u2", downAfterMs + heartbeatMs + presenceWindowMs + 3000)
  }
  users[1].channel.push("new_msg", {body: "still here"})
  await waitFor("u2 to get u1's message", () => users[2].msgs.some(m => m.body === "still here"), 5000)
  const late = await connect(started[2], "late")
  await waitFor("u1 to see a user who joined after the kill", () => keys(users[1]).includes("late"), 5000)
  late.channel.leave()
})
