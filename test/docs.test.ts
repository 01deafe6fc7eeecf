/**
 * The documentation stays true: the generated API reference matches the code, every `ts` block
 * in the docs and example READMEs type-checks, every `sh` block marked `<!-- run -->` runs, and the
 * examples compile and run.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ExperimentNode, Fingerprint, Researcher, SearchSpace, Strategy, Task, TaskFile } from "@trex/core"
import { Budget } from "@trex/core"
import { ResearcherConformance, SearchPolicyConformance, TreeBuilder } from "@trex/core/testing"
import { Settings, Wiring } from "@trex/cli"
import { Effect, Exit, Schema, Stream } from "effect"
import { inProcess, Unavailable } from "../examples/custom-agents/executor.ts"
import { epsilonGreedy } from "../examples/custom-policy/policy.ts"
import { coordinateDescent } from "../examples/custom-agents/researcher.ts"
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

/** Where the runnable blocks' trex commands keep their runs (TREX_OUT). */
const runOut = fs.mkdtempSync(path.join(os.tmpdir(), "trex-doc-run-"))
afterAll(() => fs.rmSync(runOut, { recursive: true, force: true }))
const ranOnce = new Map<string, SpawnSyncReturns<string>>()
/**
 * `command` run by sh in the repository's root, once for every test that runs it (a command in a guide and its
 * example's README, which a test of the example runs too: it does the same each time).
 */
const runOnce = (command: string) => {
  const done = ranOnce.get(command)
  if (done !== undefined) return done
  const result = spawnSync("sh", ["-c", command], { cwd: root, encoding: "utf8", env: { ...env, TREX_OUT: runOut }, timeout: 60_000 })
  ranOnce.set(command, result)
  return result
}

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
    const entryPoints = [
      "examples/custom-policy/main.ts",
      "examples/custom-policy/policy.ts",
      "examples/custom-policy/run.ts",
      "examples/custom-agents/main.ts",
      "examples/custom-agents/run.ts",
      "examples/custom-agents/researcher.ts",
      "examples/custom-agents/executor.ts",
      "examples/embed/server.ts",
      "examples/embed/client.ts",
      "examples/embed/follow.ts",
      "examples/embed/webhook.ts"
    ]
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
    for (const b of runnable) {
      const command = b.code.trim()
      assert.match(command, /^(npm run trex --|node) /, `${b.file}:${b.line}: a runnable block starts with "npm run trex --" or "node"`)
      const result = runOnce(command)
      assert.strictEqual(result.status, 0, `${path.relative(root, b.file)}:${b.line}: ${command}\n${result.stdout}\n${result.stderr}`)
    }
  })
})

describe("examples", () => {
  /** An example's main.ts, on 2 seeds of 8 trials: it prints a regret in [0, 1] for each of `contenders`, in order. */
  const benchesToCompletion = (example: string, contenders: ReadonlyArray<string>) => {
    const result = spawnSync(process.execPath, ["--conditions=@trex/source", `examples/${example}/main.ts`], {
      cwd: root,
      encoding: "utf8",
      env: { ...env, SEEDS: "2", TRIALS: "8" }
    })
    assert.strictEqual(result.status, 0, result.stderr)
    assert.match(result.stdout, /8 trials, 2 seeds/)
    const regrets = [...result.stdout.matchAll(/^\| recorded-nmt-ja-en \| (\S+) \| (\d\.\d{3}) ± \d\.\d{3} \|/gm)].map((m) => [m[1], Number(m[2])] as const)
    assert.deepStrictEqual(regrets.map(([name]) => name), contenders)
    for (const [, r] of regrets) assert.isTrue(r >= 0 && r <= 1, `regret ${r} in [0, 1]`)
  }

  it("custom-policy compares its policy with UCT to completion", { timeout: 60_000 }, () => {
    benchesToCompletion("custom-policy", ["epsilon-greedy(0.2)", "uct"])
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
    // (the command the guide runs: the test of its runnable blocks may have run it already)
    const result = runOnce("node --conditions=@trex/source examples/custom-policy/run.ts")
    assert.strictEqual(result.status, 0, result.stderr)
    const printed = result.stdout.trim()
    assert.match(printed, /^finished \(budget: maxTrials\): 20 trials, best n\d+ \(dev_bleu \d+(\.\d+)?\)$/)
    assert.include(text, `prints \`${printed}\``, "the guide quotes the output")
  })

  it("custom-agents compares its researcher with the heuristic one to completion", { timeout: 60_000 }, () => {
    benchesToCompletion("custom-agents", ["coordinate-descent", "heuristic"])
  })

  it("the custom-agents guide shows researcher.ts, executor.ts and run.ts whole, and quotes what run.ts prints", { timeout: 60_000 }, () => {
    const guide = path.join(root, "docs/guide-custom-agents.md")
    const text = fs.readFileSync(guide, "utf8")
    const blocks = codeBlocks(guide, text).filter((b) => b.lang === "ts")
    for (const [file, marker] of [["researcher.ts", "export const coordinateDescent"], ["executor.ts", "export const inProcess"], ["run.ts", "Explorer.run(task"]]) {
      const block = blocks.find((b) => b.code.includes(marker!))
      assert.isDefined(block, `the guide shows ${file}`)
      assert.strictEqual(`${block!.code}\n`, fs.readFileSync(path.join(root, "examples/custom-agents", file!), "utf8"), `the guide's ${file} is the example's`)
    }
    // (the command the guide runs: the test of its runnable blocks may have run it already)
    const result = runOnce("node --conditions=@trex/source examples/custom-agents/run.ts")
    assert.strictEqual(result.status, 0, result.stderr)
    const printed = result.stdout.trim()
    assert.match(printed, /^finished \(budget: maxTrials\): 16 trials, [1-9]\d* stopped early\nbest n\d+ \(accuracy 0\.\d{4}\): /)
    // the known function's optimum: learning rate 3e-4, 3 epochs, LoRA of rank 32
    assert.match(printed, /accuracy 0\.9120\): training\.learningRate=0\.0003, training\.epochs=3, training\.method=lora, training\.lora\.rank=32$/)
    assert.include(text, `\`\`\`\n${printed}\n\`\`\``, "the guide quotes the output")
    assert.include(fs.readFileSync(path.join(root, "examples/custom-agents/README.md"), "utf8"), `\`\`\`\n${printed}\n\`\`\``, "the README quotes the output")
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

  it("embed: follow.ts follows a detached run from its run directory until its controller exits", { timeout: 120_000 }, () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "trex-follow-"))
    const toy = path.join(root, "packages/cli/test/fixtures/toy.task.yaml")
    const launched = spawnSync(process.execPath, ["--conditions=@trex/source", "packages/cli/src/bin.ts", "run", toy, "--out", out, "--max-trials", "4", "--detach"], {
      cwd: root,
      encoding: "utf8",
      // trials long enough that the follow, a process of its own, begins while the run goes on, also on a busy machine
      env: { ...env, TREX_TOY_MS: "5000" }
    })
    assert.strictEqual(launched.status, 0, launched.stderr)
    const runDir = launched.stdout.match(/^run directory: (.*)$/m)![1]!
    const followed = spawnSync(process.execPath, ["--conditions=@trex/source", "examples/embed/follow.ts", runDir], { cwd: root, encoding: "utf8", env, timeout: 90_000 })
    assert.strictEqual(followed.status, 0, followed.stderr)
    const printed = followed.stdout.trim().split("\n")
    assert.match(printed[0]!, new RegExp(`^${path.basename(runDir)}: \\d trials so far, running \\(process \\d+\\)$`))
    // every trial that finished after the follow began, then the end; the last line's best is the run's
    const done = printed.filter((l) => /^n\d+ succeeded \d\.\d{4}; best n\d+ \d\.\d{4}$/.test(l))
    assert.isAtLeast(done.length, 2, followed.stdout)
    assert.strictEqual(printed.at(-1), "its controller exited: the run is finished (budget: maxTrials)")
    const notARun = spawnSync(process.execPath, ["--conditions=@trex/source", "examples/embed/follow.ts", out], { cwd: root, encoding: "utf8", env })
    assert.strictEqual(notARun.status, 2)
    assert.match(notARun.stderr, /is not a trex run directory/)
    fs.rmSync(out, { recursive: true, force: true })
  })

  it("embed: webhook.ts prints what a run posts with --notify --notify-best: each new best, then the end", { timeout: 120_000 }, async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "trex-webhook-"))
    const receiver = spawn(process.execPath, ["--conditions=@trex/source", "examples/embed/webhook.ts"], { cwd: root, env: { ...env, PORT: "0" } })
    servers.push(receiver)
    let printed = ""
    const url = await new Promise<string>((resolve, reject) => {
      receiver.stdout!.on("data", (chunk: Buffer) => {
        printed += chunk.toString()
        const m = /^webhook: (http:\/\/127\.0\.0\.1:\d+\/trex)$/m.exec(printed)
        if (m !== null) resolve(m[1]!)
      })
      receiver.on("exit", (code) => reject(new Error(`webhook.ts exited with ${code}`)))
    })
    const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [
        "--conditions=@trex/source", "packages/cli/src/bin.ts", "run", "examples/recorded-table/task.yaml", "--out", out, "--max-trials", "12", "--notify-best"
      ], { cwd: root, env: { ...env, TREX_NOTIFY_URL: url } })
      let stdout = ""
      let stderr = ""
      child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()))
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
      child.on("exit", (status) => resolve({ status, stdout, stderr }))
    })
    assert.strictEqual(run.status, 0, run.stderr)
    const runDir = run.stdout.match(/^run directory: (.*)$/m)![1]!
    const lines = printed.trim().split("\n").slice(1)
    const bests = lines.filter((l) => /^\+ trex · recorded-nmt-ja-en: new best dev_bleu [\d.]+ \(n\d+\) after \d+ trials? · /.test(l))
    assert.isAtLeast(bests.length, 1, printed)
    assert.strictEqual(bests.length + 1, lines.length, printed)
    assert.match(lines.at(-1)!, new RegExp(`^= trex · recorded-nmt-ja-en finished: budget: maxTrials · best dev_bleu [\\d.]+ \\(n\\d+\\) · 12 succeeded, 0 failed · settings simulator/heuristic/uct · ${runDir}$`))
    receiver.kill("SIGINT")
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
    assert.strictEqual(Object.keys(cases).length, 5)
    assert.strictEqual(hfTrlAccepts(cases), 5)
  })
})

describe("custom-policy: the example policy keeps its contract", () => {
  for (const c of SearchPolicyConformance.cases(() => epsilonGreedy(0.2))) {
    it(`policy conformance: ${c.name}`, () => Effect.runPromise(c.run))
  }
})

describe("custom-agents: the example researcher and executor keep their contracts", () => {
  const researcher = coordinateDescent()
  for (const c of ResearcherConformance.cases(() => coordinateDescent())) {
    it(`researcher conformance: ${c.name}`, () => Effect.runPromise(c.run))
  }

  /** Ask for up to `n` children of `parentId`, with the tree's fingerprints as tried (as the explorer does). */
  const proposeUnder = (task: Task.Task, b: TreeBuilder.TreeBuilder, parentId: string, n: number) =>
    Effect.runPromise(Effect.gen(function*() {
      const analysis = yield* researcher.analyze(task)
      const tried = (fp: string) => b.view.byFingerprint(fp) !== undefined
      return yield* researcher.propose({ task, analysis, tree: b.view, parentId, usage: new Budget.Ledger(task.budget).usage(), tried }, n)
    }))
  /** The search-space parameters in which two strategies differ. */
  const changed = (task: Task.Task, a: Strategy.Strategy, b: Strategy.Strategy) =>
    task.searchSpace!.parameters.filter((p) => SearchSpace.get(a, p.path) !== SearchSpace.get(b, p.path)).map((p) => p.path)
  const valuesOf = (task: Task.Task, s: Strategy.Strategy) =>
    Object.fromEntries(task.searchSpace!.parameters.map((p) => [p.path, SearchSpace.get(s, p.path) as SearchSpace.Value]))

  it("the researcher proposes each one-step neighbour of a node once, never a tried fingerprint, then nothing", async () => {
    const task = TreeBuilder.task()
    const b = new TreeBuilder.TreeBuilder(task)
    const n1 = b.succeed("root", {}, 0.5)
    const parent = b.view.get(n1)!.strategy
    const proposed: Array<string> = []
    for (;;) {
      const [p, ...more] = await proposeUnder(task, b, n1, 1)
      assert.lengthOf(more, 0, "at most n proposals")
      if (p === undefined) break
      assert.isUndefined(b.view.byFingerprint(Fingerprint.of(p.strategy)), "a tried fingerprint was proposed")
      assert.lengthOf(changed(task, p.strategy, parent), 1, `one parameter changed: ${p.strategy.rationale}`)
      assert.match(p.strategy.rationale, /^From n1: /)
      proposed.push(changed(task, p.strategy, parent)[0]!)
      // a worse child: the parent stays the one to improve
      b.succeed(n1, valuesOf(task, p.strategy), 0.1)
    }
    // the default strategy sits at the first value of each parameter: one step up the epochs (a node at
    // depth 1 starts at the second parameter), the two other values of the categorical format, one step
    // up the learning rate
    assert.deepStrictEqual(proposed, ["training.epochs", "data.format", "data.format", "training.learningRate"])
    assert.deepStrictEqual(await proposeUnder(task, b, n1, 4), [], "exhausted: nothing left to propose")
  })

  it("the researcher moves a conditional parameter only while it matters, and stays in a pool of valid points", async () => {
    const space: SearchSpace.SearchSpace = {
      parameters: [
        { path: "training.method", kind: "categorical", values: ["full", "lora"] },
        { path: "training.lora.rank", kind: "ordinal", values: [4, 8, 16], when: { path: "training.method", values: ["lora"] } },
        { path: "training.epochs", kind: "ordinal", values: [1, 2, 3] }
      ],
      // epochs 3 is recorded for full fine-tuning only
      points: [["full", 8, 1], ["full", 8, 2], ["full", 8, 3], ["lora", 4, 1], ["lora", 8, 1], ["lora", 16, 1], ["lora", 8, 2]]
    }
    const task = TreeBuilder.task({
      searchSpace: space,
      defaultStrategy: Strategy.decodeSync({
        data: { sources: [{ name: "d" }] },
        training: { method: "full", learningRate: 1e-4, epochs: 1, batchSize: 8, lora: { rank: 8 } }
      })
    })
    const b = new TreeBuilder.TreeBuilder(task)
    const full = b.succeed("root", {}, 0.5)
    const underFull = await proposeUnder(task, b, full, 10)
    // from the second parameter on (the rank, which does not matter for full fine-tuning), one parameter each
    assert.deepStrictEqual(underFull.map((p) => changed(task, p.strategy, b.view.get(full)!.strategy)), [["training.epochs"], ["training.method"]])
    const lora = b.succeed(full, { "training.method": "lora", "training.epochs": 2 }, 0.6)
    const keyOf = (st: Strategy.Strategy) => JSON.stringify(space.parameters.map((q) => SearchSpace.get(st, q.path)))
    // rank 4 or 16 and 3 epochs are not recorded with LoRA at 2 epochs: left are full fine-tuning and 1 epoch
    assert.deepStrictEqual((await proposeUnder(task, b, lora, 10)).map((p) => keyOf(p.strategy)).sort(), [`["full",8,2]`, `["lora",8,1]`])
  })

  const request = (task: Task.Task) => {
    const strategy = task.defaultStrategy!
    return { task, runId: "r", runDir: "/nonexistent", node: { id: "n1", parent: ExperimentNode.ROOT, strategy, fingerprint: Fingerprint.of(strategy), proposedAt: 0 } }
  }

  it("the executor reports progress and a scored result; a throw is the trial's failed result; Unavailable a retryable error", async () => {
    const task = TreeBuilder.task()
    const ok = await Effect.runPromise(Stream.runCollect(inProcess(async (_s, { report }) => {
      report(1, { score: 0.3 })
      report(2, { score: 0.4, loss: Number.NaN })
      return { score: 0.4, loss: 1.2 }
    }).run(request(task))))
    assert.deepStrictEqual(ok.map((e) => e._tag), ["Progress", "Progress", "Finished"])
    const finished = ok.at(-1)!
    assert.isTrue(finished._tag === "Finished" && finished.result.score === 0.4 && finished.result.failure === undefined)
    assert.deepStrictEqual(finished._tag === "Finished" ? finished.result.curves.map((p) => [p.step, p.name, p.value]) : [], [[1, "score", 0.3], [2, "score", 0.4]])

    const crashed = await Effect.runPromise(Stream.runCollect(inProcess(async () => {
      throw new Error("CUDA error: device-side assert")
    }).run(request(task))))
    const last = crashed.at(-1)!
    assert.isTrue(last._tag === "Finished" && last.result.failure?.kind === "Crash" && last.result.failure.retryable === false)
    assert.include(last._tag === "Finished" ? last.result.failure?.message : "", "device-side assert")

    const unscored = await Effect.runPromise(Stream.runCollect(inProcess(async () => ({ loss: 1 })).run(request(task))))
    const end = unscored.at(-1)!
    assert.strictEqual(end._tag === "Finished" ? end.result.failure?.kind : end._tag, "InvalidOutput")

    const down = await Effect.runPromiseExit(Stream.runCollect(inProcess(async () => {
      throw new Unavailable("the evaluation service answered 503")
    }).run(request(task))))
    assert.isTrue(Exit.isFailure(down))
    const error = Exit.isFailure(down) ? down.cause.reasons.find((r) => r._tag === "Fail") : undefined
    assert.isTrue(error?._tag === "Fail" && error.error._tag === "ExecutorError" && error.error.retryable === true, String(error))
  })

  it("stopping the executor's stream aborts the evaluation", async () => {
    let signal: AbortSignal | undefined
    let carriedOn = false
    const executor = inProcess(async (_s, evaluation) => {
      signal = evaluation.signal
      evaluation.report(1, { score: 0.1 })
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, 5_000)
        evaluation.signal.addEventListener("abort", () => {
          clearTimeout(timer)
          reject(evaluation.signal.reason)
        })
      })
      carriedOn = true
      return { score: 1 }
    })
    // the first event, then the stream is stopped (as a prune or a cancelled run stops it)
    const first = await Effect.runPromise(Stream.runCollect(Stream.take(executor.run(request(TreeBuilder.task())), 1)))
    assert.deepStrictEqual(first.map((e) => e._tag), ["Progress"])
    assert.isTrue(signal?.aborted, "the evaluation's signal fired")
    await new Promise((resolve) => setTimeout(resolve, 10))
    assert.isFalse(carriedOn, "the evaluation stopped")
  })
})
