// The official phoenix client from npm, unmodified, against our server.
import {test, before, after} from "node:test"
import assert from "node:assert/strict"
import {spawn} from "node:child_process"
import {Socket, Presence} from "phoenix"
import WebSocket from "ws"
import {startServer, waitFor, presenceWindowMs} from "./server.mjs"

let server
const sockets = []

before(async () => { server = await startServer() })
after(async () => {
  for (const s of sockets) s.disconnect()
  await server.stop()
})

// connect joins chat:lobby as name and keeps a Presence.
async function connect(name) {
  const socket = new Socket(server.socketURL, {transport: WebSocket, params: {name}})
  sockets.push(socket)
  socket.connect()
  const channel = socket.channel("chat:lobby")
  const presence = new Presence(channel)
  const client = {socket, channel, presence, syncs: 0, joins: [], leaves: []}
  presence.onSync(() => { client.syncs++ })
  presence.onJoin((key, current, joined) => client.joins.push({key, at: Date.now(), metas: joined.metas}))
  presence.onLeave((key, current, left) => client.leaves.push({key, at: Date.now(), metas: left.metas}))
  await new Promise((resolve, reject) => {
    channel.join().receive("ok", resolve).receive("error", reject).receive("timeout", () => reject(new Error("join timeout")))
  })
  return client
}

const keys = c => c.presence.list((key) => key).sort()

test("two clients each list both in onSync", async () => {
  const alice = await connect("alice")
  const bob = await connect("bob")
  await waitFor("alice to list both", () => keys(alice).join() === "alice,bob")
  await waitFor("bob to list both", () => keys(bob).join() === "alice,bob")
  assert.ok(alice.syncs > 0 && bob.syncs > 0)
  const [meta] = alice.presence.list((key, {metas}) => key === "bob" ? metas : null).filter(Boolean)
  assert.equal(meta.length, 1)
  assert.equal(meta[0].name, "bob")
  assert.ok(meta[0].phx_ref, "metas carry phx_ref")

  // One leaves; the other's onLeave fires.
  bob.channel.leave()
  await waitFor("alice's onLeave for bob", () => alice.leaves.some(l => l.key === "bob"))
  assert.deepEqual(keys(alice), ["alice"])
  alice.channel.leave()
})

test("a killed client leaves within the coalescing window plus margin", async () => {
  const watcher = await connect("watcher")
  const child = spawn(process.execPath, ["client.mjs", server.socketURL, "carol"],
    {cwd: new URL(".", import.meta.url).pathname, stdio: ["ignore", "pipe", "inherit"]})
  await new Promise((resolve, reject) => {
    child.stdout.on("data", d => { if (String(d).includes("joined")) resolve() })
    child.on("exit", code => reject(new Error(`client exited ${code}`)))
  })
  await waitFor("watcher to see carol", () => keys(watcher).includes("carol"))
  const killedAt = Date.now()
  child.kill("SIGKILL") // no close frame: the kernel drops the TCP connection
  const margin = 1000
  await waitFor("carol's leave", () => watcher.leaves.some(l => l.key === "carol"), presenceWindowMs + margin)
  const leave = watcher.leaves.find(l => l.key === "carol")
  console.log(`# carol's leave reached the watcher ${leave.at - killedAt} ms after the kill`)
  assert.ok(leave.at - killedAt <= presenceWindowMs + margin)
  assert.ok(!keys(watcher).includes("carol"))
  watcher.channel.leave()
})

test("one user on two sockets is one key with two metas", async () => {
  const watcher = await connect("watcher2")
  await connect("dave")
  await connect("dave")
  await waitFor("two metas for dave", () =>
    watcher.presence.list((key, {metas}) => key === "dave" ? metas.length : 0).includes(2))
  assert.equal(keys(watcher).filter(k => k === "dave").length, 1)
})

// runClient starts client.mjs as name, with a session token if given, and
// resolves with the child once it has joined.
async function runClient(name, session) {
  const child = spawn(process.execPath, ["client.mjs", server.socketURL, name, ...(session ? [session] : [])],
    {cwd: new URL(".", import.meta.url).pathname, stdio: ["ignore", "pipe", "inherit"]})
  await new Promise((resolve, reject) => {
    child.stdout.on("data", d => { if (String(d).includes("joined")) resolve() })
    child.on("exit", code => reject(new Error(`client exited ${code}`)))
  })
  return child
}

const channelStats = async () => (await (await fetch(server.url + "/debug/vars")).json()).channel

test("a killed client with a session that comes back within the grace is never seen to leave", async () => {
  const watcher = await connect("watcher3")
  const session = "e2e-" + crypto.randomUUID()
  let child = await runClient("erin", session)
  await waitFor("watcher to see erin", () => keys(watcher).includes("erin"))
  const erin = l => l.filter(e => e.key === "erin").length
  const [joins, leaves] = [erin(watcher.joins), erin(watcher.leaves)]
  const {Sockets: open, Resumes: resumes} = await channelStats()

  child.kill("SIGKILL") // no close frame: the kernel drops the TCP connection
  for (const deadline = Date.now() + 5000; (await channelStats()).Sockets >= open;) {
    if (Date.now() > deadline) throw new Error("the server did not see erin's connection go")
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  child = await runClient("erin", session)
  await connect("frank") // a later change: the watcher is sent it after anything about erin
  await waitFor("watcher to see frank", () => keys(watcher).includes("frank"))
  child.kill("SIGKILL")
  assert.equal(erin(watcher.joins), joins, "the watcher was sent a join of erin")
  assert.equal(erin(watcher.leaves), leaves, "the watcher was sent a leave of erin")
  assert.ok(keys(watcher).includes("erin"))
  assert.equal((await channelStats()).Resumes, resumes + 1)
  watcher.channel.leave()
})
