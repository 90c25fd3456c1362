// The chat demo as a product, in headless Chromium: the member count with
// yourself marked, away and online in different colours, a debounced typing
// indicator carried in the meta, the connection banner when the server
// stops, messages sent offline kept as failed with a retry, a reconnect
// when it comes back, and refusals shown with their reason. It saves a
// screenshot to e2e/out/demo.png (or $E2E_OUT/demo.png).
import {test, before, after} from "node:test"
import assert from "node:assert/strict"
import {mkdirSync} from "node:fs"
import net from "node:net"
import path from "node:path"
import {fileURLToPath} from "node:url"
import {launch, openChat} from "./chromium.mjs"
import {startServer} from "./server.mjs"

const outDir = process.env.E2E_OUT || path.join(path.dirname(fileURLToPath(import.meta.url)), "out")
const servers = []
let browser

before(async () => { browser = await launch() })
after(async () => {
  await browser?.close()
  for (const s of servers) await s.stop()
})

async function server(args = []) {
  const s = await startServer(args)
  servers.push(s)
  return s
}

// row returns what a page shows of one member.
const row = (page, user) => page.$eval(`#online li[data-user="${user}"]`, li => ({
  status: li.dataset.status,
  typing: li.dataset.typing === "true",
  me: li.classList.contains("me"),
  text: li.textContent,
  initials: li.querySelector(".avatar").textContent,
  dot: getComputedStyle(li.querySelector(".avatar"), "::after").backgroundColor,
}))
const waitRows = (page, n) => page.waitForFunction(n => document.querySelectorAll("#online li").length === n, n)
const typingFrames = page => page.sent.filter(f => f.includes('"set_typing"')).map(f => JSON.parse(f)[4].typing)

test("count, you, away, typing, a lost server and its return, and a failed message retried", async () => {
  let srv = await server()
  const ann = await openChat(browser, srv.url, "ann", "demo", {viewport: {width: 860, height: 470}})
  const ben = await openChat(browser, srv.url, "Ben Okafor", "demo")
  await waitRows(ann, 2)
  await waitRows(ben, 2)
  assert.equal(await ann.textContent("#count"), "2 here")
  const annSelf = await row(ann, "ann")
  assert.ok(annSelf.me && annSelf.text.includes("(you)"), "yourself is marked")
  assert.ok(!(await row(ann, "Ben Okafor")).me)
  assert.equal((await row(ann, "Ben Okafor")).initials, "BO")
  assert.doesNotMatch(annSelf.text, /\bon local\b/, "no node is named when not clustered")

  // Away: another colour, and the count says so.
  await ben.click("#away")
  await ann.waitForSelector('#online li[data-user="Ben Okafor"][data-status="away"]')
  assert.equal(await ann.textContent("#count"), "2 here, 1 away")
  const benRow = await row(ann, "Ben Okafor"), annRow = await row(ann, "ann")
  assert.ok(benRow.text.includes("away") && annRow.text.includes("online"))
  assert.notEqual(benRow.dot, annRow.dot, "away and online dots differ in colour")

  // Typing: carried in the meta, one set_typing true for many keys, and
  // false once the keys stop.
  await ann.type("#body", "hello", {delay: 20})
  await ben.waitForSelector('#online li[data-user="ann"][data-typing="true"]')
  assert.equal(await ben.textContent("#typing"), "ann is typing…")
  assert.deepEqual(typingFrames(ann), [true], "typing is debounced: one frame for five keys")
  await ann.click("#send button")
  await ben.waitForFunction(() => document.getElementById("log").textContent.includes("ann: hello"))
  await ben.waitForFunction(() => document.getElementById("typing").textContent === "")
  assert.deepEqual(typingFrames(ann), [true, false], "sending ends typing")
  assert.equal(await ann.$$eval("#log .pending, #log .failed", e => e.length), 0, "the sent message is confirmed")

  // The picture for the README: ben away, ben typing as ann sees him.
  await ben.fill("#body", "hi ann, back in five")
  await ben.click("#send button")
  await ann.waitForFunction(() => document.getElementById("log").textContent.includes("back in five"))
  await ben.type("#body", "on my way", {delay: 10})
  await ann.waitForSelector('#online li[data-user="Ben Okafor"][data-typing="true"]')
  mkdirSync(outDir, {recursive: true})
  await ann.screenshot({path: path.join(outDir, "demo.png")})

  // The server stops: the banner, the roster greyed out, and a message
  // sent now is kept as failed with a retry.
  const addr = new URL(srv.url).host
  await srv.stop()
  for (const page of [ann, ben]) {
    await page.waitForSelector("#banner.on")
    await page.waitForSelector("#chat.stale")
  }
  assert.match(await ann.textContent("#banner"), /Reconnecting|Offline/)
  await ann.fill("#body", "sent while offline")
  await ann.click("#send button")
  const failed = await ann.waitForSelector("#log .failed")
  assert.match(await failed.textContent(), /sent while offline.*not sent \((reconnecting|offline)\)/)
  assert.ok(await failed.$("button"), "a failed message has a retry")

  // It comes back on the same address: both pages reconnect and rejoin,
  // ben still away; the retry delivers the message.
  srv = await server(["-addr", addr])
  for (const page of [ann, ben]) {
    await page.waitForFunction(() => document.body.dataset.connection === "online", null, {timeout: 30000})
    await waitRows(page, 2)
    await page.waitForSelector("#chat:not(.stale)")
  }
  assert.equal(await ann.isVisible("#banner"), false)
  await ann.waitForSelector('#online li[data-user="Ben Okafor"][data-status="away"]')
  await ann.click("#log .failed button")
  await ben.waitForFunction(() => document.getElementById("log").textContent.includes("ann: sent while offline"))
  await ann.waitForFunction(() => document.querySelectorAll("#log .failed, #log .pending").length === 0)
  await ann.close()
  await ben.close()
})

async function freePort() {
  const srv = net.createServer()
  await new Promise(r => srv.listen(0, "127.0.0.1", r))
  const {port} = srv.address()
  await new Promise(r => srv.close(r))
  return port
}

test("clustered, each member shows the node it is on", async () => {
  const natsPort = await freePort()
  const a = await server(["-node", "a", "-nats-listen", `127.0.0.1:${natsPort}`])
  const b = await server(["-node", "b", "-nats", `nats://127.0.0.1:${natsPort}`])
  const ann = await openChat(browser, a.url, "ann", "nodes")
  const ben = await openChat(browser, b.url, "ben", "nodes")
  await waitRows(ann, 2)
  assert.match((await row(ann, "ann")).text, /· on a$/)
  assert.match((await row(ann, "ben")).text, /· on b$/)
  await ann.close()
  await ben.close()
})

test("a refused join and a refused message show their reason", async () => {
  // Room for one entry: the second joiner is refused with "full", a
  // permanent reason: no retry until "try again".
  const srv = await server(["-capacity", "1"])
  const ann = await openChat(browser, srv.url, "ann", "small")
  await waitRows(ann, 1)
  const ben = await openChat(browser, srv.url, "ben", "small")
  await ben.waitForSelector("#refusal.on")
  assert.equal(await ben.getAttribute("#refusal", "data-reason"), "full")
  assert.match(await ben.textContent("#refusal"), /full: the server is full\). Not retrying\./)
  assert.equal(await ben.evaluate(() => window.presenceChat.channel.state), "refused")
  assert.ok(await ben.isVisible("#rejoin"))

  // ann leaves; ben tries again and is in.
  await ann.close()
  await ben.click("#rejoin")
  await ben.waitForSelector('#online li[data-user="ben"]')
  assert.equal(await ben.isVisible("#refusal"), false)
  const joins = ben.sent.filter(f => JSON.parse(f)[3] === "phx_join").length
  assert.equal(joins, 2, "one refused join, no retry (the first would come after 100 ms), and the one of try again")

  // A message the server refuses is marked failed with the server's reason.
  await ben.fill("#body", "x".repeat(2001))
  await ben.click("#send button")
  const failed = await ben.waitForSelector("#log .failed")
  const why = await failed.$eval(".why", e => e.textContent)
  assert.match(why, /^not sent \(.+\)$/)
  assert.doesNotMatch(why, /no reply|connection lost|reconnecting|offline/, "the server's reason, not a timeout")
  await ben.close()
})

test("a name over 32 characters is refused by the page, counted in characters", async () => {
  const srv = await server()
  const page = await browser.newPage()
  page.on("pageerror", err => { throw err })
  await page.goto(srv.url)
  await page.fill("#room", "names")
  // 31 characters, 33 UTF-16 units: within the limit for the page.
  await page.fill("#name", "🙂".repeat(2) + "é".repeat(29) + "!!")
  await page.click("#login button")
  assert.match(await page.textContent("#login-error"), /1 to 32 characters \(this one has 33\)/)
  assert.equal(await page.isVisible("#chat"), false, "no connection is tried")
  await page.close()
})

// The server counts the name in characters too: 32 "é" (64 bytes) and 32
// "🙂" (128 bytes) are accepted.
test("names of 32 characters of several bytes are accepted by the server", async () => {
  const srv = await server()
  for (const name of ["é".repeat(32), "🙂".repeat(32)]) {
    const p = await openChat(browser, srv.url, name, "names")
    await p.waitForSelector(`#online li[data-user="${name}"].me`, {timeout: 5000})
    await p.close()
  }
})
