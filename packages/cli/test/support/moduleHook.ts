/**
 * A module-load hook for a child process, to count what a command loads: `node --import <this file> ...` with
 * `TREX_MODULE_COUNT=<file>` writes to that file, on exit, the modules the process loaded, counted by package
 * (`{"@anthropic-ai/sdk": 248, "effect": 289, "(own) cli": 40, "(own) core": 30, "node:": 13, ...}`: `(own) <name>` is
 * a module of the workspace's package packages/<name>, `(own)` any other module outside a `node_modules` folder;
 * `node:` the built-ins). With `TREX_MODULE_FILES=<file>` too, it writes there the files it loaded, one a line: a
 * workspace module's path from the packages folder (`cli/src/LiveView.ts`), a package's from its `node_modules`
 * folder (`effect/dist/index.js`). It has side effects only: import it into
 * no test (the hook would count the test's own process).
 */
import * as fs from "node:fs"
import { registerHooks } from "node:module"

const loaded = new Set<string>()

registerHooks({
  load: (url, context, nextLoad) => {
    loaded.add(url)
    return nextLoad(url, context)
  }
})

const out = process.env["TREX_MODULE_COUNT"]
if (out !== undefined) {
  process.on("exit", () => {
    const counts: Record<string, number> = {}
    for (const url of loaded) {
      const own = /\/packages\/([^/]+)\/src\//.exec(url)?.[1]
      const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1] ?? (url.startsWith("node:") ? "node:" : own !== undefined ? `(own) ${own}` : "(own)")
      counts[pkg] = (counts[pkg] ?? 0) + 1
    }
    fs.writeFileSync(out, JSON.stringify(counts))
    const files = process.env["TREX_MODULE_FILES"]
    if (files !== undefined) {
      const paths = [...loaded].flatMap((url) => (/.*\/node_modules\/(.*)$/.exec(url) ?? /\/packages\/([^/]+\/src\/.*)$/.exec(url))?.[1] ?? [])
      fs.writeFileSync(files, paths.join("\n"))
    }
  })
}
