/**
 * The documentation stays true: the generated API reference matches the code, every `ts` block
 * in the docs and example READMEs type-checks, every `sh` block marked `<!-- run -->` runs, and the
 * examples compile and run.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Strategy, Task, TaskFile } from "@trex/core"
import { Settings, Wiring } from "@trex/cli"
import { Effect, Schema } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import { generate } from "../scripts/gen-api-docs.ts"

const root = path.resolve(import.meta.dirname, "..")
const env = { ...process.env, PATH: `${path.join(root, "node_modules/.bin")}${path.delimiter}${process.env.PATH ?? ""}` }

const walk = (dir: string, keep: (file: string) => boolean): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const full = path.join(dir, d.name)
    if (d.isDirectory()) return d.name === "node_modules" || d.name.startsWith(".") ? [] : walk(full, keep)
    return keep(full) ? [full] : []
  })

/** The Markdown files whose snippets are checked: the docs (the generated API pages too: their examples come from JSDoc), README.md, example READMEs. */
const markdownFiles = (): Array<string> =>
  [
    ...walk(path.join(root, "docs"), (f) => f.endsWith(".md")),
    ...(fs.existsSync(path.join(root, "README.md")) ? [path.join(root, "README.md")] : []),
    ...walk(path.join(root, "examples"), (f) => path.basename(f) === "README.md")
  ].sort()

interface Block {
  readonly file: string
  /** 1-based line of the first code line. */
  readonly line: number
  readonly lang: string
  readonly code: string
  /** The HTML comment right before the fence, if any. */
  readonly marker: string | undefined
}

/** Fenced code blocks, with the `<!-- ... -->` comment on the line before (blank lines allowed). */
export const codeBlocks = (file: string, text: string): Array<Block> => {
  const lines = text.split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)(\w*)/.exec(lines[i]!)
    if (open === null) continue
    const [, indent, fence, lang] = open
    let j = i + 1
    while (j < lines.length && !lines[j]!.startsWith(`${indent}${fence}`)) j++
    let k = i - 1
    while (k >= 0 && lines[k]!.trim() === "") k--
    const marker = k >= 0 && /^\s*<!--.*-->\s*$/.test(lines[k]!) ? lines[k]!.trim() : undefined
    const code = lines.slice(i + 1, j).map((l) => l.slice(indent!.length)).join("\n")
    blocks.push({ file, line: i + 2, lang: lang!, code, marker })
    i = j
  }
  return blocks
}

const allBlocks = () => markdownFiles().flatMap((f) => codeBlocks(f, fs.readFileSync(f, "utf8")))

const snippetDir = path.join(root, "node_modules/.cache/doc-snippets")
const tscBin = path.join(root, "node_modules/.bin/tsc")

const typecheck = (files: ReadonlyArray<string>) => {
  const config = path.join(snippetDir, "tsconfig.json")
  fs.writeFileSync(config, JSON.stringify({
    extends: path.relative(snippetDir, path.join(root, "tsconfig.base.json")),
    compilerOptions: { noEmit: true, types: ["node"], typeRoots: [path.join(root, "node_modules/@types")] },
    files: files.map((f) => path.relative(snippetDir, f))
  }, null, 2))
  return spawnSync(tscBin, ["-p", config, "--pretty", "false"], { cwd: root, encoding: "utf8", env })
}

/** The hf-trl recipe's own validation (Python) of each case's strategy and job: how many it accepted (it fails the test on any it refuses). */
const hfTrlAccepts = (cases: Record<string, { strategy: unknown; job: unknown }>): number => {
  const script = [
    "import json, sys",
    "from trex_hf_trl import recipe",
    "for name, c in json.load(sys.stdin).items():",
    "    s = recipe.parse_strategy(c['strategy']); recipe.parse_eval_transforms(s); recipe.parse_job(c['job'])",
    "    print('ok', name)"
  ].join("\n")
  const result = spawnSync("python3", ["-c", script], { cwd: path.join(root, "recipes/hf-trl"), input: JSON.stringify(cases), encoding: "utf8" })
  assert.strictEqual(result.status, 0, result.stderr)
  return result.stdout.trim().split("\n").length
}

describe("docs", () => {
  it("the generated API reference is up to date (node scripts/gen-api-docs.ts)", () => {
    const stale: Array<string> = []
    for (const [file, content] of generate(root)) {
      const target = path.join(root, file)
      if (!fs.existsSync(target) || fs.readFileSync(target, "utf8") !== content) stale.push(file)
    }
    assert.deepStrictEqual(stale, [], "regenerate with: node scripts/gen-api-docs.ts")
  })

  it("the API reference documents each package's modules and their examples", () => {
    const files = generate(root)
    const mcts = files.get("packages/mcts/API.md")!
    assert.match(mcts, /### Explorer/)
    assert.match(mcts, /##### `Uct\.make`/)
    assert.match(files.get("packages/core/API.md")!, /## `@trex\/core\/testing`/)
    assert.match(files.get("packages/cli/API.md")!, /const search = await Trex\.start/)
  })

  it("every ts block in the docs, README.md and the example READMEs type-checks, with the examples' entry points", { timeout: 90_000 }, () => {
    fs.rmSync(snippetDir, { recursive: true, force: true })
    fs.mkdirSync(snippetDir, { recursive: true })
    fs.writeFileSync(path.join(snippetDir, "package.json"), JSON.stringify({ type: "module", private: true }))
    const origin = new Map<string, Block>()
    const blocks = allBlocks().filter((b) => (b.lang === "ts" || b.lang === "typescript") && !b.marker?.startsWith("<!-- not-checked"))
    assert.isAbove(blocks.length, 10)
    const snippetFiles = blocks.map((b, i) => {
      const name = `${String(i).padStart(3, "0")}-${path.relative(root, b.file).replace(/[^\w]+/g, "_")}-L${b.line}.ts`
      const file = path.join(snippetDir, name)
      // `export {}` makes every snippet a module, so top-level names never clash between snippets.
      fs.writeFileSync(file, `${b.code}\nexport {}\n`)
      origin.set(name, b)
      return file
    })
    const entryPoints = ["examples/custom-policy/main.ts", "examples/custom-policy/policy.ts", "examples/custom-policy/run.ts", "examples/embed/server.ts", "examples/embed/client.ts"]
      .map((f) => path.join(root, f))
    const result = typecheck([...snippetFiles, ...entryPoints])
    const report = (result.stdout + result.stderr).split("\n").filter((l) => l.trim() !== "").map((l) => {
      const m = /doc-snippets\/([^(]+)\((\d+),(\d+)\)(.*)/.exec(l)
      const b = m === null ? undefined : origin.get(m[1]!)
      return b === undefined ? l : `${path.relative(root, b.file)}:${b.line + Number(m![2]) - 1}${m![4]}`
    })
    assert.strictEqual(result.status, 0, `type errors in documentation snippets:\n${report.join("\n")}`)
  })

  it("every sh block marked <!-- run --> exits 0", { timeout: 90_000 }, () => {
    const runnable = allBlocks().filter((b) => b.lang === "sh" && b.marker === "<!-- run -->")
    assert.isAbove(runnable.length, 0)
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "trex-doc-run-"))
    try {
      for (const b of runnable) {
        const command = b.code.trim()
        assert.match(command, /^(npm run trex --|node) /, `${b.file}:${b.line}: a runnable block starts with "npm run trex --" or "node"`)
        const result = spawnSync("sh", ["-c", command], { cwd: root, encoding: "utf8", env: { ...env, TREX_OUT: out }, timeout: 60_000 })
        assert.strictEqual(result.status, 0, `${path.relative(root, b.file)}:${b.line}: ${command}\n${result.stdout}\n${result.stderr}`)
      }
    } finally {
      fs.rmSync(out, { recursive: true, force: true })
    }
  })
})

describe("examples", () => {
  it("custom-policy compares its policy with UCT to completion", { timeout: 60_000 }, () => {
    const result = spawnSync(process.execPath, ["--conditions=@trex/source", "examples/custom-policy/main.ts"], {
      cwd: root,
      encoding: "utf8",
      env: { ...env, SEEDS: "2", TRIALS: "8" }
    })
    assert.strictEqual(result.status, 0, result.stderr)
    assert.match(result.stdout, /8 trials, 2 seeds/)
    const regrets = [...result.stdout.matchAll(/^\| recorded-nmt-ja-en \| (\S+) \| (\d\.\d{3}) ± \d\.\d{3} \|/gm)].map((m) => [m[1], Number(m[2])] as const)
    assert.deepStrictEqual(regrets.map(([name]) => name), ["epsilon-greedy(0.2)", "uct"])
    for (const [, r] of regrets) assert.isTrue(r >= 0 && r <= 1, `regret ${r} in [0, 1]`)
  })

  it("the custom-policy guide's epsilon-greedy policy is the example's, line for line", () => {
    const guide = path.join(root, "docs/guide-custom-policy.md")
    const block = codeBlocks(guide, fs.readFileSync(guide, "utf8")).find((b) => b.lang === "ts" && b.code.includes("export const epsilonGreedy"))
    assert.isDefined(block, "the guide shows epsilonGreedy")
    const example = fs.readFileSync(path.join(root, "examples/custom-policy/policy.ts"), "utf8")
    const policy = (code: string) => code.slice(code.indexOf("export const epsilonGreedy")).split("\n}\)")[0]
    assert.strictEqual(policy(block!.code), policy(example))
  })

  it("the custom-policy guide's run is examples/custom-policy/run.ts, whole, and prints what the guide says", { timeout: 60_000 }, () => {
    const guide = path.join(root, "docs/guide-custom-policy.md")
    const text = fs.readFileSync(guide, "utf8")
    const block = codeBlocks(guide, text).find((b) => b.lang === "ts" && b.code.includes("Explorer.run(task"))
    assert.isDefined(block, "the guide shows the run")
    assert.strictEqual(`${block!.code}\n`, fs.readFileSync(path.join(root, "examples/custom-policy/run.ts"), "utf8"))
    const result = spawnSync(process.execPath, ["--conditions=@trex/source", "examples/custom-policy/run.ts"], { cwd: root, encoding: "utf8", env })
    assert.strictEqual(result.status, 0, result.stderr)
    const printed = result.stdout.trim()
    assert.match(printed, /^finished \(budget: maxTrials\): 20 trials, best n\d+ \(dev_bleu \d+(\.\d+)?\)$/)
    assert.include(text, `prints \`${printed}\``, "the guide quotes the output")
  })

  const servers: Array<ReturnType<typeof spawn>> = []
  afterAll(() => servers.forEach((s) => s.kill("SIGKILL")))

  it("embed: the server runs a recorded-table search, the client pauses, resumes and follows it", { timeout: 60_000 }, async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "trex-embed-"))
    const server = spawn(process.execPath, ["--conditions=@trex/source", "examples/embed/server.ts", "recorded"], {
      cwd: root,
      env: { ...env, PORT: "0", TREX_OUT: out }
    })
    servers.push(server)
    const url = await new Promise<string>((resolve, reject) => {
      let buffered = ""
      server.stdout!.on("data", (chunk: Buffer) => {
        buffered += chunk.toString()
        const m = /(http:\/\/127\.0\.0\.1:\d+)/.exec(buffered)
        if (m !== null) resolve(m[1]!)
      })
      server.on("exit", (code) => reject(new Error(`server exited with ${code}`)))
    })
    const client = spawnSync(process.execPath, ["--conditions=@trex/source", "examples/embed/client.ts", url], { cwd: root, encoding: "utf8", env })
    assert.strictEqual(client.status, 0, client.stderr)
    assert.match(client.stdout, /done: budget: maxTrials/)
    const status = (await (await fetch(`${url}/status`)).json()) as { trials: number; best?: { score: number }; runDir: string }
    assert.strictEqual(status.trials, 30)
    assert.isDefined(status.best)
    assert.isTrue(fs.existsSync(path.join(status.runDir, "journal.sqlite")))
    assert.strictEqual((await fetch(`${url}/nowhere`)).status, 404)
    server.kill("SIGINT")
    fs.rmSync(out, { recursive: true, force: true })
  })

  it("the ten FT-Bench task files decode and run the hf-trl image on one GPU", async () => {
    const dir = path.join(root, "examples/ft-bench")
    const files = fs.readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort()
    assert.strictEqual(files.length, 10)
    for (const f of files) {
      const { task } = await Effect.runPromise(TaskFile.load(path.join(dir, f)))
      assert.strictEqual(task.recipe?.image, "trex-hf-trl:latest", f)
      assert.deepStrictEqual(task.recipe?.command, ["python", "-m", "trex_hf_trl.train"], f)
      assert.strictEqual(task.recipe?.resources.gpus, 1, f)
      assert.isDefined(task.searchSpace, f)
      assert.isDefined(task.defaultStrategy, f)
      // the metrics the reference recipe computes (anything else makes it exit 2)
      assert.include(["exact_match", "accuracy", "macro_f1", "rouge1", "token_f1"], task.metric.name, f)
      if (task.metric.target !== undefined) assert.isTrue(task.metric.target > 0 && task.metric.target <= 1, f)
    }
  })

  it("the FT-Bench default strategies and jobs pass the hf-trl recipe's own validation", async () => {
    const dir = path.join(root, "examples/ft-bench")
    const cases: Record<string, { strategy: unknown; job: unknown }> = {}
    for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort()) {
      const { task } = await Effect.runPromise(TaskFile.load(path.join(dir, f)))
      cases[f] = { strategy: Strategy.encode(task.defaultStrategy!), job: { run: "docs", node: "n1", task: Schema.encodeSync(Task.Task)(task) } }
    }
    assert.strictEqual(hfTrlAccepts(cases), 10)
  })

  it("the backend example task files run as their headers say (the default researcher and executor), and their default strategies pass the hf-trl recipe's validation", async () => {
    const dir = path.join(root, "examples/backends")
    const cases: Record<string, { strategy: unknown; job: unknown }> = {}
    for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".task.yaml")).sort()) {
      const loaded = await Effect.runPromise(TaskFile.load(path.join(dir, f)))
      // the backend's own settings are checked by its tests: here, what `trex run <file> --backend <kind>` needs of the task
      await Effect.runPromise(Wiring.check({ ...Settings.defaults, taskFile: loaded.file, taskDir: loaded.dir }, loaded.task))
      cases[f] = { strategy: Strategy.encode(loaded.task.defaultStrategy!), job: { run: "docs", node: "n1", task: Schema.encodeSync(Task.Task)(loaded.task) } }
    }
    assert.strictEqual(Object.keys(cases).length, 4)
    assert.strictEqual(hfTrlAccepts(cases), 4)
  })
})
