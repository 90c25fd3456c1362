// Builds and starts cmd/presence-chat on a free loopback port.
import {spawn, execFileSync} from "node:child_process"
import {mkdirSync, renameSync} from "node:fs"
import {fileURLToPath} from "node:url"
import path from "node:path"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
// npm test builds the demo once and names it in PRESENCE_CHAT_BIN; a test
// file run by itself builds it.
const prebuilt = process.env.PRESENCE_CHAT_BIN
const bin = prebuilt ? path.resolve(root, "e2e", prebuilt) : path.join(root, "e2e", ".bin", "presence-chat")

export const presenceWindowMs = 50

let built = Boolean(prebuilt)

// startServer returns {url, socketURL, stop, kill}; the server stops by
// itself when the test process exits. args are extra flags (cluster mode).
export async function startServer(args = []) {
  if (!built) {
    // Test files run in parallel processes, each building: each writes its
    // own file and renames it over bin, which never leaves a half-written
    // binary where another process may start it.
    mkdirSync(path.dirname(bin), {recursive: true})
    const tmp = `${bin}.${process.pid}`
    execFileSync("go", ["build", "-o", tmp, "./cmd/presence-chat"], {cwd: root, stdio: "inherit"})
    renameSync(tmp, bin)
    built = true
  }
  const proc = spawn(bin, ["-addr", "127.0.0.1:0", "-presence-window", `${presenceWindowMs}ms`, ...args],
    {stdio: ["ignore", "pipe", "inherit"]})
  process.on("exit", () => proc.kill("SIGKILL"))
  const url = await new Promise((resolve, reject) => {
    let out = ""
    const timer = setTimeout(() => reject(new Error("server did not start: " + out)), 30000)
    proc.stdout.on("data", chunk => {
      out += chunk
      const m = out.match(/listening on (http:\/\/\S+)/)
      if (m) { clearTimeout(timer); resolve(m[1]) }
    })
    proc.on("exit", code => reject(new Error(`server exited with ${code}: ${out}`)))
  })
  return {
    url,
    socketURL: url.replace(/^http/, "ws") + "/socket",
    stop: () => new Promise(resolve => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve()
      proc.once("exit", resolve); proc.kill("SIGTERM")
    }),
    kill: () => new Promise(resolve => { proc.once("exit", resolve); proc.kill("SIGKILL") }),
  }
}

// waitFor polls cond every 10 ms until it holds or the timeout passes.
export async function waitFor(what, cond, timeoutMs = 5000) {
  const start = Date.now()
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 10))
  }
  return Date.now() - start
}
