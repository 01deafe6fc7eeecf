/**
 * The workspace installs as the README says with any npm: npm 12 runs no dependency's install script that the root
 * package.json's `allowScripts` does not name (npm 11 runs them and warns), and without the `node` package's
 * (its preinstall fetches the Node 24 binary) `npm run` has no Node 24: the quickstart ran on the machine's Node 20 and
 * failed at once (`Unknown file extension ".ts"`).
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "vitest"

const root = path.resolve(import.meta.dirname, "..")
const readJson = (file: string) => JSON.parse(fs.readFileSync(path.join(root, file), "utf8")) as Record<string, unknown>

describe("the workspace's install", () => {
  it("allows the install script of every dependency in the lock file that has one, the Node 24 of npm scripts first", () => {
    const allowed = (readJson("package.json")["allowScripts"] ?? {}) as Record<string, boolean>
    const packages = readJson("package-lock.json")["packages"] as Record<string, { readonly hasInstallScript?: boolean; readonly name?: string }>
    const withScripts = Object.entries(packages)
      .filter(([at, p]) => at !== "" && p.hasInstallScript === true)
      .map(([at, p]) => p.name ?? at.slice(at.lastIndexOf("node_modules/") + "node_modules/".length))
    assert.include(withScripts, "node")
    assert.deepStrictEqual(withScripts.filter((name) => allowed[name] !== true), [], "name them in package.json's allowScripts")
  })
})
