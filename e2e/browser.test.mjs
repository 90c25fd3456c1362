// The chat demo in headless Chromium: two pages see each other, and
// closing one removes it from the other.
import {test, before, after} from "node:test"
import assert from "node:assert/strict"
import {launch, openChat as open} from "./chromium.mjs"
import {startServer} from "./server.mjs"

let server, browser

before(async () => {
  server = await startServer()
  browser = await launch()
})
after(async () => {
  await browser?.close()
  await server?.stop()
})

const openChat = name => open(browser, server.url, name)

const online = page => page.$$eval("#online li", lis => lis.map(li => li.dataset.user).sort())

test("two pages show both names, and closing one removes it", async () => {
  const ann = await openChat("ann")
  const ben = await openChat("ben")
  await ann.waitForFunction(() => document.querySelectorAll("#online li").length === 2)
  await ben.waitForFunction(() => document.querySelectorAll("#online li").length === 2)
  assert.deepEqual(await online(ann), ["ann", "ben"])
  assert.deepEqual(await online(ben), ["ann", "ben"])

  await ann.fill("#body", "hello ben")
  await ann.click("#send button")
  await ben.waitForFunction(() => document.getElementById("log").textContent.includes("ann: hello ben"))

  await ben.close()
  await ann.waitForFunction(() => document.querySelectorAll("#online li").length === 1)
  assert.deepEqual(await online(ann), ["ann"])
  await ann.waitForFunction(() => document.getElementById("log").textContent.includes("ben left"))
})
