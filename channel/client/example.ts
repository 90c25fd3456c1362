// A typed use of presence.js, checked by tsc --noEmit (e2e/types.test.mjs):
// a chat room whose metas have a known shape. It is never run.
import {
  Socket, Presence, PresenceError, PERMANENT_REASONS, TOO_LARGE_REASON, MAX_PAGE_LIMIT,
  type ConnectionState, type PresenceEntry, type PresenceMode, type PresencePage,
} from "./presence.js"

interface ChatMeta {
  name: string
  status: "online" | "away"
  typing?: boolean
  node: string
}

const socket = new Socket("/socket", {params: {name: "alice"}, offlineAfterMs: 5000})
socket.connect()

// Every state is handled: a new one would fail to compile here.
function banner(state: ConnectionState): string {
  switch (state) {
    case "connecting": return "connecting…"
    case "online": return ""
    case "reconnecting": return "connection lost, reconnecting…"
    case "offline": return "offline"
  }
}
socket.onStateChange((state, previous) => console.log(previous, "->", state, banner(state)))
// @ts-expect-error: not a connection state
socket.state === "closed"

const room = socket.channel("chat:lobby", {color: "blue"})
room.onRefused((reason: string, permanent: boolean) => {
  if (permanent) console.log("refused for good:", reason, PERMANENT_REASONS.includes(reason as never))
})
room.join<{welcome: string}>()
  .receive("ok", ({welcome}) => console.log(welcome.toUpperCase()))
  .receive("error", ({reason}) => console.log(reason.length))
  .receive("timeout", () => {})

const presence = new Presence<ChatMeta>(room)
presence.onJoin((key, before, joined, after) => {
  if (!before) console.log(key, "arrived on", joined.metas[0].node, after.metas.length)
})
presence.onLeave((key, after, left, before) => {
  if (after.metas.length === 0) console.log(key, "left", left.metas[0].phx_ref, before.metas.length)
})
presence.onSync(() => {
  const rows = presence.list((key, {metas}) => ({key, away: metas.every(m => m.status === "away"), typing: metas.some(m => m.typing)}))
  console.log(rows.filter(r => !r.away).length)
})
const me: PresenceEntry<ChatMeta> | undefined = presence.get("alice")
// @ts-expect-error: metas carry the declared shape
me?.metas[0].status === "busy"

// A big room: counts always, the roster a page at a time.
const stage = socket.channel("stage:keynote")
const audience = new Presence<ChatMeta>(stage, {mode: "count"})
// @ts-expect-error: not a presence mode
new Presence(stage, {mode: "some"})
audience.onCount((count, entries) => console.log(`${count} people, ${entries} tabs`))
const mode: PresenceMode = audience.mode
stage.onRefused((reason, permanent, response) => {
  if (reason === TOO_LARGE_REASON) console.log("over", response.max, permanent)
})
stage.join()
async function firstNames(limit = MAX_PAGE_LIMIT): Promise<string[]> {
  try {
    const page: PresencePage<ChatMeta> = await audience.page(limit, null)
    return page.keys.map(key => page.presences[key].metas[0].name).concat(page.next ?? [])
  } catch (err) {
    if (err instanceof PresenceError) console.log(err.reason, err.response)
    return []
  }
}
async function everyone(): Promise<string> {
  let seen = 0, total = 0
  for await (const {presences, count} of audience.pages(100)) {
    seen += Object.keys(presences).length
    total = count
  }
  return `${seen} of ${total}`
}
firstNames().then(names => everyone().then(n => console.log(mode, names, n)))

if (room.canPush()) {
  room.push<{id: number}>("new_msg", {body: "hi"}, 5000)
    .receive("ok", reply => console.log(reply.id + 1))
    .receive("error", ({reason}) => console.log("not sent:", reason))
    .receive("timeout", () => console.log("not sent: no reply"))
}
if (room.state === "refused") room.rejoin()
room.off("new_msg", room.on<{user: string, body: string}>("new_msg", ({user, body}) => console.log(user, body)))
room.leave()
socket.disconnect(1000, "bye")
