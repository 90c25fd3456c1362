// Many light members of one room for the large-room tests: each is a raw
// Phoenix v2 connection (ws, no client library) that joins one topic and
// then only counts what it receives.
import WebSocket from "ws"

// joinMembers connects one member per name to socketURL, joins topic with
// params (count mode by default), and resolves once every join is
// answered ok, in the order of names when concurrency is 1. It rejects
// with the first refusal or failure.
export async function joinMembers(socketURL, topic, names, {params = {presence: "count"}, concurrency = 50, timeoutMs = 30000} = {}) {
  const members = new Array(names.length)
  let next = 0
  const worker = async () => {
    while (next < names.length) {
      const i = next++
      members[i] = await joinOne(socketURL, topic, names[i], params, timeoutMs)
    }
  }
  try {
    await Promise.all(Array.from({length: Math.min(concurrency, names.length)}, worker))
  } catch (err) {
    for (const m of members) m?.close()
    throw err
  }
  return members
}

function joinOne(socketURL, topic, name, params, timeoutMs) {
  const url = `${socketURL}/websocket?${new URLSearchParams({name, vsn: "2.0.0"})}`
  const ws = new WebSocket(url)
  const member = {
    name, ws, bytes: 0, events: {},
    // close leaves the room at once: a clean close is never held for a
    // reconnect grace.
    close: () => { if (ws.readyState <= WebSocket.OPEN) ws.close(1000) },
  }
  return new Promise((resolve, reject) => {
    const fail = err => { clearTimeout(timer); ws.terminate(); reject(new Error(`member ${name}: ${err.message || err}`)) }
    const timer = setTimeout(() => fail(new Error("no join reply in time")), timeoutMs)
    ws.on("error", fail)
    ws.on("open", () => ws.send(JSON.stringify(["1", "1", topic, "phx_join", params])))
    ws.on("message", data => {
      member.bytes += data.length
      const [, ref, , event, payload] = JSON.parse(data)
      member.events[event] = (member.events[event] || 0) + 1
      if (event !== "phx_reply" || ref !== "1") return
      clearTimeout(timer)
      if (payload.status === "ok") resolve(member)
      else fail(new Error(`join refused: ${JSON.stringify(payload.response)}`))
    })
  })
}

// closeMembers closes every member and waits until each connection is
// closed.
export async function closeMembers(members) {
  await Promise.all(members.map(m => new Promise(resolve => {
    if (m.ws.readyState === WebSocket.CLOSED) return resolve()
    m.ws.once("close", resolve)
    m.close()
  })))
}

// memberNames returns n names: prefix and a zero-padded number, so that
// their order by name is their order by number.
export const memberNames = (prefix, n, from = 1) =>
  Array.from({length: n}, (_, i) => `${prefix}${String(from + i).padStart(5, "0")}`)
