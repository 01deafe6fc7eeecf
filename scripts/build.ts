// `npm run build`: ESM JavaScript for every package with tsup, then declarations with `tsc -b`
// (tsup's own dts step does not work with TypeScript 7). dist/ is cleared first.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { build } from "tsup"

const root = path.resolve(import.meta.dirname, "..")
const packages: Record<string, ReadonlyArray<string>> = {
  core: ["src/index.ts", "src/testing/index.ts"],
  mcts: ["src/index.ts"],
  agents: ["src/index.ts"],
  executors: ["src/index.ts"],
  cli: ["src/index.ts", "src/bin.ts"]
}

for (const [name, entries] of Object.entries(packages)) {
  const dir = path.join(root, "packages", name)
  fs.rmSync(path.join(dir, "dist"), { recursive: true, force: true })
  fs.rmSync(path.join(dir, "tsconfig.build.tsbuildinfo"), { force: true })
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as {
    dependencies?: Record<string, string>
    peerDependencies?: Record<string, string>
  }
  await build({
    entry: entries.map((e) => path.join(dir, e)),
    outDir: path.join(dir, "dist"),
    format: ["esm"],
    target: "node22",
    platform: "node",
    splitting: true,
    sourcemap: true,
    dts: false,
    // keep `node:` specifiers: node:sqlite exists only with its prefix
    removeNodeProtocol: false,
    clean: false,
    silent: true,
    // every dependency stays an import: users get one copy of effect and of each other package
    external: [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {}), /^effect\//, /^@trex\//, /^node:/],
    esbuildOptions: (options) => {
      options.outbase = path.join(dir, "src")
    }
  })
  console.log(`built @trex/${name}`)
}

execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-b", path.join(root, "tsconfig.build.json")], {
  stdio: "inherit"
})
console.log("declarations done")
