// Headless Chromium for the demo's tests, driven by playwright-core.
import assert from "node:assert/strict"
import {existsSync} from "node:fs"
import {chromium} from "playwright-core"

const executablePath = process.env.CHROMIUM ||
  ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(p => existsSync(p))

export async function launch() {
  assert.ok(executablePath, "Chromium not found: install Debian's chromium package or set CHROMIUM")
  return chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  })
}

// openChat opens the demo at url, joins room as name, and waits for the
// chat. page.sent and page.received list the frames the page sent and
// received over its WebSockets.
export async function openChat(browser, url, name, room = "e2e", opts = {}) {
  const page = await browser.newPage(opts)
  page.on("pageerror", err => { throw err })
  page.sent = []
  page.received = []
  page.on("websocket", ws => {
    ws.on("framesent", ({payload}) => page.sent.push(String(payload)))
    ws.on("framereceived", ({payload}) => page.received.push(String(payload)))
  })
  await page.goto(url)
  await page.fill("#name", name)
  await page.fill("#room", room)
  await page.click("#login button")
  await page.waitForSelector("#chat.on")
  return page
}
