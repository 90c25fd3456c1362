// presence.js as a package: its TypeScript declarations compile against a
// typed example (tsc --noEmit, strict), they declare every export of the
// module, and the package resolves by name through its exports.
import {test} from "node:test"
import assert from "node:assert/strict"
import {execFileSync} from "node:child_process"
import {readFileSync} from "node:fs"
import {createRequire} from "node:module"
import path from "node:path"
import {fileURLToPath} from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const clientDir = path.join(here, "..", "channel", "client")

test("tsc --noEmit accepts the typed examples against presence.d.ts", () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  try {
    execFileSync(process.execPath, [tsc, "-p", path.join(here, "tsconfig.json")], {encoding: "utf8", stdio: "pipe"})
  } catch (err) {
    assert.fail("tsc found errors:\n" + err.stdout + err.stderr)
  }
})

test("presence.d.ts declares every export of presence.js, and nothing else", async () => {
  const runtime = Object.keys(await import(path.join(clientDir, "presence.js"))).sort()
  const dts = readFileSync(path.join(clientDir, "presence.d.ts"), "utf8")
  const declared = [...dts.matchAll(/^export declare (?:class|const|function) (\w+)/gm)].map(m => m[1]).sort()
  assert.deepEqual(declared, runtime)
})

test("the package resolves by name to presence.js, as a bundler would import it", async () => {
  const byName = await import("@presencekit/presence")
  const byPath = await import(path.join(clientDir, "presence.js"))
  assert.equal(byName.Socket, byPath.Socket, "the package's export is presence.js itself")
  const pkg = JSON.parse(readFileSync(path.join(clientDir, "package.json"), "utf8"))
  assert.equal(pkg.type, "module")
  assert.deepEqual(pkg.exports["."], {types: "./presence.d.ts", default: "./presence.js"})
  assert.deepEqual(pkg.files.sort(), ["presence.d.ts", "presence.js"])
})
