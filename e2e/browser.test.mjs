// The chat demo in headless Chromium: two pages see each other, and
// closing one removes it from the other.
import {test, before, after} from "node:test"
import assert from "node:assert/strict"
import {existsSync} from "node:fs"
import {chromium} from "playwright-core"
import {startServer} from "./server.mjs"

let server, browser

const executablePath = process.env.CHROMIUM ||
  ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(p => existsSync(p))

before(async () => {
  assert.ok(executablePath, "Chromium not found: install Debian's chromium package or set CHROMIUM")
  server = await startServer()
  browser = await chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  })
})
after(async () => {
  await browser?.close()
  await server?.stop()
})

async function openChat(name) {
  const page = await browser.newPage()
  page.on("pageerror", err => { throw err })
  await page.goto(server.url)
  await page.fill("#name", name)
  await page.fill("#room", "e2e")
  await page.click("#login button")
  await page.waitForSelector("#chat.on")
  return page
}

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
