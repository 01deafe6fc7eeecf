/**
 * The packages as users get them: each workspace package packed by `npm pack` (what `npm publish`
 * uploads), the five tarballs installed with `effect` into a fresh project, then used the way a user
 * does, with plain Node (no `@trex/source` condition), the `trex` bin and `tsc` on the installed
 * declarations. Runs on the built packages: `npm run build` first (CI does, see .ci/run).
 *
 * The install is offline where it can be (`--prefer-offline`: the third-party packages come from the
 * npm cache `npm install` filled), without install scripts (ssh2's optional native addon would be
 * compiled by node-gyp; nothing here needs it). Everything is written in one temp folder, removed after.
 */
import { spawnSync, type SpawnSyncOptions } from "node:child_process"
import * as fs from "node:fs"
import { builtinModules } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "vitest"

const root = path.resolve(import.meta.dirname, "..")
const names = ["core", "mcts", "agents", "executors", "cli"] as const

interface Manifest {
  readonly name: string
  readonly version: string
  readonly exports?: Record<string, string | Record<string, string>>
  readonly bin?: Record<string, string>
  readonly types?: string
  readonly typings?: string
  readonly dependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
}

const readJson = <A>(file: string): A => JSON.parse(fs.readFileSync(file, "utf8")) as A
const manifests = Object.fromEntries(names.map((n) => [n, readJson<Manifest>(path.join(root, "packages", n, "package.json"))]))
const workspace = readJson<{ devDependencies: Record<string, string> }>(path.join(root, "package.json"))

// npm exports these to scripts; a nested `npm install` must not read them as its own settings (the
// workspace's local prefix above all).
const env: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) =>
    !/^npm_(lifecycle_|package_|command$|config_(local_prefix|workspaces?|include_workspace_root|call)$)/.test(k) && k !== "INIT_CWD"
  )
)
// The workspace's Node 24 first: the same `node` for npm, the bin's `#!/usr/bin/env node` and the consumer.
env.PATH = `${path.join(root, "node_modules/.bin")}${path.delimiter}${process.env.PATH ?? ""}`

const run = (cmd: string, args: ReadonlyArray<string>, options: SpawnSyncOptions & { readonly ok?: boolean } = {}) => {
  const r = spawnSync(cmd, args, { encoding: "utf8", env, maxBuffer: 64 << 20, ...options })
  const output = `${String(r.stdout ?? "")}\n${String(r.stderr ?? "")}`.trim()
  if (options.ok !== false && r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} (in ${String(options.cwd ?? root)}) exited ${r.status ?? r.error}:\n${output.slice(-4000)}`)
  }
  return { status: r.status, stdout: String(r.stdout ?? ""), output }
}

/** The files an `exports` entry points at, by condition. */
const targets = (entry: string | Record<string, string>): Record<string, string> =>
  typeof entry === "string" ? { default: entry } : entry

/** `@scope/name/sub` -> `@scope/name`, `name/sub` -> `name`; undefined for relative paths and Node's own modules. */
const packageOf = (specifier: string): string | undefined => {
  if (specifier.startsWith(".") || specifier.startsWith("/") || specifier.startsWith("node:")) return undefined
  const parts = specifier.split("/")
  const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!
  return builtinModules.includes(name) ? undefined : name
}

/**
 * The modules a built .js or .d.ts file imports: import and export statements, `import("...")` and
 * type references. The declarations' comments go first (their JSDoc examples import other packages);
 * the JavaScript has none but pure annotations.
 */
const importsOf = (file: string): Array<string> => {
  const text = fs.readFileSync(file, "utf8")
  const references = [...text.matchAll(/^\/\/\/\s*<reference\s+types="([^"]+)"/gm)].map((m) => m[1]!)
  const code = /\.d\.m?ts$/.test(file) ? text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "") : text
  const specifiers = [
    ...code.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s*"([^"]+)"/gm),
    ...code.matchAll(/\bimport\s*\(\s*"([^"]+)"\s*\)/g),
    ...code.matchAll(/^\s*import\s*"([^"]+)"/gm)
  ].map((m) => m[1]!)
  return [...references, ...specifiers]
}

const walkFiles = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => d.isDirectory() ? walkFiles(path.join(dir, d.name)) : [path.join(dir, d.name)])

/** Whether an installed package ships declarations: a `types` field or condition, or a .d.ts beside its entry module. */
const hasOwnTypes = (home: string, pkg: Manifest & { readonly main?: string }): boolean => {
  if (pkg.types !== undefined || pkg.typings !== undefined || JSON.stringify(pkg.exports ?? {}).includes("\"types\"")) return true
  let entry: unknown = pkg.exports !== undefined && typeof pkg.exports === "object" && "." in pkg.exports ? pkg.exports["."] : pkg.exports
  while (entry !== null && typeof entry === "object") entry = Object.values(entry)[0]
  const main = typeof entry === "string" ? entry : pkg.main ?? "index.js"
  const stem = path.join(home, main).replace(/\.[cm]?js$/, "")
  return [".d.ts", ".d.mts", ".d.cts", "/index.d.ts"].some((ext) => fs.existsSync(stem + ext))
}

let tmp = ""
let packed: Record<string, { readonly tarball: string; readonly files: ReadonlyArray<{ readonly path: string }> }> = {}

beforeAll(() => {
  for (const n of names) {
    for (const [key, entry] of Object.entries(manifests[n]!.exports ?? {})) {
      for (const target of Object.values(targets(entry))) {
        if (target.includes("*") || !target.startsWith("./dist/")) continue
        assert.isTrue(
          fs.existsSync(path.join(root, "packages", n, target)),
          `packages/${n}/${target} (export "${key}") is missing: run \`npm run build\` before this test`
        )
      }
    }
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "trex-packaging-"))
  // npm's debug logs stay in the temp folder (the cache, ~/.npm/_cacache, gets the tarballs' index entries)
  env.npm_config_logs_dir = path.join(tmp, "npm-logs")
  const dest = path.join(tmp, "tarballs")
  fs.mkdirSync(dest)
  const { stdout } = run("npm", ["pack", "--json", "--pack-destination", dest, ...names.flatMap((n) => ["-w", `packages/${n}`])], { cwd: root })
  const results = JSON.parse(stdout) as Array<{ name: string; filename: string; files: Array<{ path: string }> }>
  packed = Object.fromEntries(results.map((r) => [r.name, { tarball: path.join(dest, r.filename), files: r.files }]))
}, 60_000)

afterAll(() => {
  if (tmp !== "") fs.rmSync(tmp, { recursive: true, force: true })
})

describe("npm pack", () => {
  it("each tarball holds its README (its links all inside it), API.md and LICENSE, a .js and a .d.ts for every export, no tests and no build info", () => {
    for (const n of names) {
      const m = manifests[n]!
      const p = packed[m.name]
      assert.isDefined(p, `${m.name} was packed`)
      const files = new Set(p!.files.map((f) => f.path))
      const has = (target: string) => files.has(path.posix.normalize(target))
      assert.isTrue(has("README.md"), `${m.name}: README.md`)
      // the README's links lead somewhere in the tarball (its API reference ships as API.md): none into the repository
      const readme = fs.readFileSync(path.join(root, "packages", n, "README.md"), "utf8")
      const links = [...readme.matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)].map((l) => l[1]!).filter((l) => !/^[a-z]+:/.test(l))
      assert.include(links, "API.md", `${m.name}: its README links its API reference`)
      for (const link of links) assert.isTrue(has(link), `${m.name}: its README links ${link}, which is not in the tarball`)
      // "license": "MIT" says which terms; the terms themselves must ship with the code
      assert.isTrue(has("LICENSE"), `${m.name}: LICENSE`)
      const stray = [...files].filter((f) => /(^|\/)(test|tests|__tests__)\/|\.test\.[cm]?[jt]s$|\.tsbuildinfo$|(^|\/)tsconfig[^/]*\.json$/.test(f))
      assert.deepStrictEqual(stray, [], `${m.name} ships test or build files`)
      for (const [key, entry] of Object.entries(m.exports ?? {})) {
        const t = targets(entry)
        if (key.includes("*")) {
          // a folder export (./reporters/*): something in it ships
          const prefix = path.posix.normalize(t.default!.replace(/\*.*$/, ""))
          assert.isTrue([...files].some((f) => f.startsWith(prefix)), `${m.name} "${key}": nothing under ${prefix}`)
          continue
        }
        assert.match(t.types ?? "", /\.d\.ts$/, `${m.name} "${key}" has a types condition`)
        assert.match(t.default ?? "", /\.js$/, `${m.name} "${key}" has a default condition`)
        for (const [condition, target] of Object.entries(t)) {
          assert.isTrue(has(target), `${m.name} "${key}" ${condition}: ${target} is not in the tarball`)
        }
      }
      for (const [bin, target] of Object.entries(m.bin ?? {})) {
        assert.isTrue(has(target), `${m.name} bin ${bin}: ${target} is not in the tarball`)
        const first = fs.readFileSync(path.join(root, "packages", n, target), "utf8").split("\n")[0]
        assert.strictEqual(first, "#!/usr/bin/env node", `${m.name} bin ${bin}: ${target} starts with a node shebang`)
      }
      // source maps and declaration maps point at files that ship (or carry their sources)
      for (const f of files) {
        if (!f.endsWith(".map")) continue
        const map = readJson<{ sources: Array<string>; sourcesContent?: Array<string | null> }>(path.join(root, "packages", n, f))
        map.sources.forEach((s, i) => {
          if (typeof map.sourcesContent?.[i] === "string") return
          assert.isTrue(has(path.posix.join(path.posix.dirname(f), s)), `${m.name}: ${f} points at ${s}, which is not in the tarball`)
        })
      }
    }
  })

  it("the packages depend on each other's current versions and declare one effect peer range, which the workspace's effect satisfies", () => {
    const versions = Object.fromEntries(names.map((n) => [manifests[n]!.name, manifests[n]!.version]))
    for (const n of names) {
      const m = manifests[n]!
      for (const [dep, range] of Object.entries({ ...m.dependencies, ...m.peerDependencies })) {
        if (dep.startsWith("@trex/")) assert.strictEqual(range, versions[dep], `${m.name} depends on ${dep}@${range}, the workspace has ${versions[dep]}`)
      }
      assert.strictEqual(m.dependencies?.effect, undefined, `${m.name}: effect is a peer dependency, not a dependency (users get one runtime)`)
      assert.strictEqual(m.peerDependencies?.effect, manifests.core!.peerDependencies?.effect, `${m.name}: the effect peer range`)
    }
    // the peer range is ~major.minor.patch: the workspace's pinned effect must be in it
    const [, major, minor, patch] = /^~(\d+)\.(\d+)\.(\d+)$/.exec(manifests.core!.peerDependencies!.effect!) ?? []
    const [pMajor, pMinor, pPatch] = workspace.devDependencies.effect!.split(".")
    assert.isTrue(major === pMajor && minor === pMinor && Number(pPatch) >= Number(patch), `effect ${workspace.devDependencies.effect} in ${manifests.core!.peerDependencies!.effect}`)
  })
})

describe("installed into a fresh project", () => {
  let app = ""
  const installed = (name: string) => path.join(app, "node_modules", name)

  beforeAll(() => {
    app = path.join(tmp, "app")
    fs.mkdirSync(path.join(app, "task"), { recursive: true })
    fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "trex-consumer", version: "1.0.0", private: true, type: "module" }, null, 2))
    for (const f of ["task.yaml", "nmt-ja-en.csv"]) fs.copyFileSync(path.join(root, "examples/recorded-table", f), path.join(app, "task", f))
    fs.copyFileSync(path.join(root, "test/packaging/consumer.ts"), path.join(app, "main.ts"))
    fs.writeFileSync(path.join(app, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        target: "ES2023",
        lib: ["ES2023"],
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        // the installed declarations are checked too: one that does not resolve fails
        skipLibCheck: false,
        noEmit: true,
        types: ["node"]
      },
      files: ["main.ts"]
    }, null, 2))
    run("npm", [
      "install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--save-exact",
      ...names.map((n) => packed[manifests[n]!.name]!.tarball),
      // the user's own: effect (the packages' peer), and Node's types for their TypeScript
      `effect@${workspace.devDependencies.effect}`,
      `@types/node@${workspace.devDependencies["@types/node"]}`
    ], { cwd: app })
  }, 120_000)

  it("one copy of effect and of each package; what the packages (and their own dependencies) declare is installed in range", () => {
    const copies = new Map<string, Array<string>>()
    const scan = (dir: string) => {
      const nm = path.join(dir, "node_modules")
      if (!fs.existsSync(nm)) return
      for (const d of fs.readdirSync(nm)) {
        const entries = d.startsWith("@") ? fs.readdirSync(path.join(nm, d)).map((s) => `${d}/${s}`) : [d]
        for (const name of entries) {
          const at = path.join(nm, name)
          if (!fs.existsSync(path.join(at, "package.json"))) continue
          copies.set(name, [...copies.get(name) ?? [], path.relative(app, at)])
          scan(at)
        }
      }
    }
    scan(app)
    for (const name of ["effect", ...names.map((n) => manifests[n]!.name)]) {
      assert.deepStrictEqual(copies.get(name), [`node_modules/${name}`], `one copy of ${name}`)
    }
    const { stdout } = run("npm", ["ls", "--all", "--long", "--json"], { cwd: app, ok: false })
    interface Node {
      readonly name?: string
      readonly version?: string
      readonly invalid?: string
      readonly missing?: boolean
      readonly dependencies?: Record<string, Node>
    }
    const problems: Array<string> = []
    const visit = (node: Node, chain: ReadonlyArray<string>) => {
      for (const [name, child] of Object.entries(node.dependencies ?? {})) {
        // edges out of our packages and out of their direct dependencies (deeper ones are those packages' choice)
        const ours = chain.slice(-2).some((c) => c.startsWith("@trex/"))
        if (ours && (child.invalid !== undefined || child.missing === true)) {
          problems.push(`${[...chain, name].join(" > ")}: ${child.version ?? "missing"} ${child.invalid ?? ""}`)
        }
        if (chain.length < 8) visit(child, [...chain, name])
      }
    }
    visit(JSON.parse(stdout) as Node, [])
    assert.deepStrictEqual(problems, [], "dependencies out of range")
  })

  it("every module the built files import is a declared dependency, with its types for the declarations", () => {
    const undeclared: Array<string> = []
    for (const n of names) {
      const m = readJson<Manifest>(path.join(installed(manifests[n]!.name), "package.json"))
      const declared = new Set([m.name, ...Object.keys(m.dependencies ?? {}), ...Object.keys(m.peerDependencies ?? {})])
      const dir = installed(m.name)
      for (const file of walkFiles(dir).filter((f) => /\.(js|mjs|d\.ts|d\.mts)$/.test(f) && !path.relative(dir, f).includes("node_modules"))) {
        const declaration = /\.d\.m?ts$/.test(file)
        for (const dep of new Set(importsOf(file).map(packageOf).filter((d) => d !== undefined))) {
          const where = `${m.name}/${path.relative(dir, file)} imports ${dep}`
          if (!declared.has(dep)) {
            undeclared.push(`${where}, not in its dependencies`)
            continue
          }
          if (!declaration || dep === m.name) continue
          // a declaration file needs the package's types: its own, or @types/<name> declared alongside it
          const home = [path.join(dir, "node_modules", dep), installed(dep)].find((d) => fs.existsSync(path.join(d, "package.json")))!
          const pkg = readJson<Manifest>(path.join(home, "package.json"))
          const ownTypes = hasOwnTypes(home, pkg)
          const typesPackage = `@types/${dep.replace(/^@/, "").replace("/", "__")}`
          if (!ownTypes && !declared.has(typesPackage)) undeclared.push(`${where}, which has no types of its own, and ${typesPackage} is not in its dependencies`)
        }
      }
    }
    assert.deepStrictEqual(undeclared, [])
  })

  it("plain Node imports every entry point and runs a search through Trex.start and through Explorer.run", { timeout: 60_000 }, () => {
    const { stdout } = run("node", ["main.ts"], { cwd: app })
    const seen = JSON.parse(stdout.trim().split("\n").at(-1)!) as {
      exports: Record<string, Array<string>>
      trex: { reason: string; trials: number; finished: number; best?: string; runDir: string }
      explorer: { reason: string; trials: number; best?: string }
    }
    assert.includeMembers(seen.exports.Core!, ["Journal", "Task", "TaskFile"])
    assert.includeMembers(seen.exports.Testing!, ["BackendConformance", "SearchPolicyConformance"])
    assert.includeMembers(seen.exports.Mcts!, ["Explorer", "Uct"])
    assert.includeMembers(seen.exports.Agents!, ["HeuristicResearcher", "TemplateExecutor"])
    assert.includeMembers(seen.exports.Executors!, ["LocalBackend", "Simulator"])
    assert.includeMembers(seen.exports.Cli!, ["Trex"])
    assert.includeMembers(seen.exports.Reporter!, ["metric", "writeResult"])
    assert.deepInclude(seen.trex, { reason: "budget: maxTrials", trials: 4, finished: 4 })
    assert.isDefined(seen.trex.best)
    assert.isTrue(fs.existsSync(path.join(seen.trex.runDir, "report.md")), "the run wrote its report")
    assert.strictEqual(seen.explorer.reason, "budget: maxTrials")
    assert.strictEqual(seen.explorer.trials, 20)
  })

  it("tsc type-checks the program against the installed declarations (nodenext, strict, no source condition)", { timeout: 60_000 }, () => {
    const r = run(path.join(root, "node_modules/.bin/tsc"), ["-p", "tsconfig.json", "--pretty", "false"], { cwd: app, ok: false })
    // Errors in other packages' declarations are theirs (effect 4.1.0's name DOM types a Node-only `lib` lacks);
    // errors in the program or in ours are not.
    const errors = r.output.split("\n").filter((l) => /\berror TS\d+/.test(l))
    const ours = errors.filter((l) => !/^node_modules\/(?!@trex\/)/.test(l))
    assert.deepStrictEqual(ours, [], `type errors against the installed packages:\n${r.output}`)
    assert.isTrue(r.status === 0 || errors.length > 0, `tsc failed:\n${r.output}`)
  })

  it("the installed trex bin: --help, --version, and a run and its status on a recorded table", { timeout: 60_000 }, () => {
    const trex = path.join(app, "node_modules/.bin/trex")
    fs.accessSync(trex, fs.constants.X_OK)
    assert.match(run(trex, ["--help"], { cwd: app }).stdout, /SUBCOMMANDS[\s\S]*\brun\b[\s\S]*\bresume\b/)
    assert.strictEqual(run(trex, ["--version"], { cwd: app }).stdout.trim(), `trex v${manifests.cli!.version}`)
    const out = path.join(app, "cli-runs")
    const started = run(trex, ["run", "task/task.yaml", "--max-trials", "3", "--out", out], { cwd: app }).stdout
    assert.match(started, /finished: budget: maxTrials/)
    const [runDir] = fs.readdirSync(out)
    const status = JSON.parse(run(trex, ["status", path.join(out, runDir!), "--json"], { cwd: app }).stdout) as {
      state: string
      counts: { Succeeded: number }
      best?: { id: string }
    }
    assert.strictEqual(status.state, "finished")
    assert.strictEqual(status.counts.Succeeded, 3)
    assert.isDefined(status.best)
  })
})
