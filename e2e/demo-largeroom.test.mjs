// The chat demo in headless Chromium, in a room of 2,000 members in count
// mode: the page's full-mode join is refused presence_too_large, it
// rejoins in count mode, shows the count, and lists the members a page at
// a time as the list scrolls, every member once. It saves a screenshot to
// e2e/out/demo-largeroom.png (or $E2E_OUT).
import {test, before, after} from "node:test"
import assert from "node:assert/strict"
import {mkdirSync} from "node:fs"
import path from "node:path"
import {fileURLToPath} from "node:url"
import {launch, openChat} from "./chromium.mjs"
import {startServer, presenceWindowMs} from "./server.mjs"
import {joinMembers, closeMembers, memberNames} from "./members.mjs"

const outDir = process.env.E2E_OUT || path.join(path.dirname(fileURLToPath(import.meta.url)), "out")
const crowd = 2000
const cap = 1000 // the server refuses full-mode joins above this many keys
let server, browser, members = []

before(async () => {
  // A long heartbeat timeout: the members send no heartbeats.
  server = await startServer(["-max-presence-state", String(cap), "-heartbeat-timeout", "10m"])
  browser = await launch()
})
after(async () => {
  await browser?.close()
  await closeMembers(members)
  await server?.stop()
})

const events = (frames, event) => frames.map(f => JSON.parse(f)).filter(f => f[3] === event)
const shown = page => page.$$eval("#online li", lis => lis.map(li => li.dataset.user))

test(`a room of ${crowd} members: the count, and the list a page at a time`, async t => {
  // The first ordered members join one at a time, so that their join
  // order is known; the others together.
  const names = memberNames("member", crowd), ordered = 60
  members = await joinMembers(server.socketURL, "chat:stadium", names.slice(0, ordered), {concurrency: 1})
  members.push(...await joinMembers(server.socketURL, "chat:stadium", names.slice(ordered), {concurrency: 100, timeoutMs: 60000}))

  const zed = await openChat(browser, server.url, "zed", "stadium", {viewport: {width: 860, height: 700}})
  await zed.waitForFunction(n => document.getElementById("count").textContent === `${n} here`, crowd + 1, {timeout: 30000})
  assert.equal(await zed.getAttribute("#members", "data-mode"), "count")
  assert.equal(await zed.isVisible("#big-room"), true)
  assert.equal(await zed.isVisible("#refusal"), false, "the fallback is no refusal for the reader")

  // Its first join in full mode, refused; the second in count mode.
  const joins = zed.sent.map(f => JSON.parse(f)).filter(f => f[3] === "phx_join").map(f => f[4])
  assert.deepEqual(joins, [{}, {presence: "count"}])
  const [refusal] = events(zed.received, "phx_reply").filter(f => f[4].status === "error")
  assert.deepEqual(refusal[4].response, {reason: "presence_too_large", count: crowd, max: cap})
  assert.equal(events(zed.received, "presence_state").length, 0, "no roster was sent")
  assert.equal(events(zed.received, "presence_diff").length, 0)

  // The first page or so; more as the list scrolls to its end.
  await zed.waitForFunction(() => document.querySelectorAll("#online li").length >= 50)
  const first = await shown(zed)
  assert.ok(first.length < crowd / 10, `a first page, not the room: ${first.length} shown`)
  assert.deepEqual(first.slice(0, 50), names.slice(0, 50), "in join order")
  mkdirSync(outDir, {recursive: true})
  await zed.screenshot({path: path.join(outDir, "demo-largeroom.png")})
  while (await zed.getAttribute("#online", "data-read") !== "all") {
    const before = (await shown(zed)).length
    await zed.$eval("#online", box => { box.scrollTop = box.scrollHeight })
    await zed.waitForFunction(n => document.querySelectorAll("#online li").length > n ||
      document.getElementById("online").dataset.read === "all", before, {timeout: 10000})
  }
  assert.equal(await zed.textContent("#list-status"), `${crowd + 1} shown, the whole list`)
  const all = await shown(zed)
  assert.equal(all.length, crowd + 1)
  assert.equal(new Set(all).size, crowd + 1, "every member once")
  assert.deepEqual(all.slice(0, ordered), names.slice(0, ordered), "in join order")
  assert.deepEqual([...all].sort(), [...names, "zed"].sort(), "every member")
  assert.equal(all.at(-1), "zed", "the reader joined last")
  assert.equal(await zed.$eval('#online li[data-user="zed"]', li => li.classList.contains("me")), true)
  const bytes = zed.received.reduce((n, f) => n + Buffer.byteLength(f), 0)
  t.diagnostic(`the page received ${zed.received.length} frames, ${bytes} bytes, for the count and ${crowd + 1} members in pages`)
  const lists = events(zed.sent, "presence_list")
  assert.equal(lists.length, Math.ceil((crowd + 1) / 50))
  assert.ok(lists.every(f => f[4].limit === 50))

  // Members leave: the count follows; the page was told nothing per member.
  const countsBefore = events(zed.received, "presence_count").length, leavesFrom = Date.now()
  await closeMembers(members.slice(0, 500))
  await zed.waitForFunction(n => document.getElementById("count").textContent === `${n} here`, crowd + 1 - 500, {timeout: 30000})
  assert.ok(await zed.$$eval("#log .sys", l => l.length) === 0, "count-mode members' joins and leaves are not announced")
  assert.match(await zed.textContent("#list-status"), /the room has changed since, refresh/)
  // At most one presence_count a presence window, however many leaves.
  const counts = events(zed.received, "presence_count").length - countsBefore
  const windows = Math.ceil((Date.now() - leavesFrom) / presenceWindowMs)
  assert.ok(counts <= windows + 1, `${counts} presence_count frames for 500 leaves in ${windows} windows`)
  t.diagnostic(`500 leaves reached the page as ${counts} presence_count frames in ${windows} presence windows`)

  // Refresh reads the list again: those who left are gone.
  await zed.click("#refresh-list")
  await zed.waitForFunction(() => document.getElementById("online").dataset.read === "part")
  const gone = new Set(names.slice(0, 500))
  const fresh = await shown(zed)
  assert.ok(fresh.length >= 50 && !fresh.some(name => gone.has(name)), "no member who left")
  await zed.close()
})

test("?presence=count joins in count mode in a small room too", async () => {
  const ann = await openChat(browser, server.url, "ann", "small")
  const ben = await openChat(browser, server.url + "/?presence=count", "ben", "small")
  await ben.waitForFunction(() => document.getElementById("count").textContent === "2 here")
  await ben.waitForFunction(() => document.getElementById("online").dataset.read === "all")
  assert.equal(await ben.textContent("#list-status"), "2 shown, the whole list")
  assert.deepEqual(await shown(ben), ["ann", "ben"])
  assert.deepEqual(ben.sent.map(f => JSON.parse(f)).filter(f => f[3] === "phx_join").map(f => f[4]), [{presence: "count"}])
  await ann.waitForFunction(() => document.getElementById("count").textContent === "2 here")
  await ann.close()
  await ben.close()
})
