// The trex CLI's runs: a search and what it prints, reuse of earlier results, two runs in one --out, the budget's limits.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import { JournalEvent } from "@trex/core"
import { Effect } from "effect"
import * as RunDir from "../src/RunDir.ts"
import * as Settings from "../src/Settings.ts"
import { bin, fixtures, readJournal, root, tmp, trex, trexHere, writeTask } from "./support/cli.ts"

describe("trex CLI: runs", { timeout: 180_000 }, () => {
  it("runs a search, prints where it is and the best strategy; status, report and --json agree", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    // one trial at a time: the tree (and so whether a failing strategy is run) does not hang on which of two trials finishes first
    const r = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--seed", "0", "--concurrency", "1"], { TREX_TOY_LOG: log, TREX_TOY_MS: "150" })
    assert.strictEqual(r.status, 0, r.stderr)
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    assert.match(r.stdout, /Best: n\d+ score=/)
    assert.match(r.stdout, /finished \(budget: maxTrials\)/)
    assert.match(r.stdout, /^analysis Heuristic search over 3 parameters/m)
    assert.isTrue(fs.existsSync(path.join(runDir, "report.md")))
    const status = JSON.parse((await trexHere(["status", runDir, "--json"])).stdout)
    assert.strictEqual(status.state, "finished")
    assert.strictEqual(status.counts.Succeeded + status.counts.Failed, 8)
    const executed = fs.readFileSync(log, "utf8").trim().split("\n")
    assert.strictEqual(executed.length, 8)
    // a failing strategy became a failed node, not a crash
    assert.isAbove(status.counts.Failed, 0, "seed 0 runs a failing strategy")
    for (const n of status.nodes) if (n.state === "Failed") assert.match(n.failure, /^Crash: .*code 3/)
    // the researcher's analysis, as journaled, in --json, the text and the Markdown report
    assert.deepStrictEqual(status.analysis, {
      summary: "Heuristic search over 3 parameters (108 combinations), maximising score.",
      metricNotes: "",
      dataNotes: "",
      risks: []
    })
    assert.include((await trexHere(["status", runDir])).stdout, "\nAnalysis: Heuristic search over 3 parameters")
    assert.include(fs.readFileSync(path.join(runDir, "report.md"), "utf8"), "## Analysis\n\nHeuristic search over 3 parameters")
    const html = trex(["report", runDir, "--html"])
    assert.strictEqual(html.status, 0, html.stderr)
    assert.isTrue(fs.readFileSync(path.join(runDir, "report.html"), "utf8").includes("<html"))
  })

  it("a report that cannot be written is named, with no stack trace", () => {
    const out = tmp()
    const r = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "2"])
    assert.strictEqual(r.status, 0, r.stderr)
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    fs.rmSync(path.join(runDir, "report.md"))
    fs.mkdirSync(path.join(runDir, "report.md"))
    const report = trex(["report", runDir])
    assert.strictEqual(report.status, 2)
    assert.match(report.stderr, /cannot write .*report\.md: EISDIR \(is the run directory writable\?\)/)
    assert.notMatch(report.stderr, /\n\s+at /, "no stack trace")
  })

  it("a task file's backend.kind is the backend a run uses, unless --backend says otherwise", async () => {
    const out = tmp()
    const r = trex(["run", path.join(root, "examples/recorded-table/task.yaml"), "--max-trials", "3", "--out", out])
    assert.strictEqual(r.status, 0, r.stderr)
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    const started = (await readJournal(runDir)).map((e) => e.event).find((e) => e._tag === "RunStarted")!
    assert.strictEqual((started.options as Settings.Settings).backend, "simulator")
    assert.strictEqual(JSON.parse((await trexHere(["status", runDir, "--json"])).stdout).counts.Succeeded, 3)
    // the flag wins: the recorded table's task has no trainer for local processes to run
    const local = trex(["run", path.join(root, "examples/recorded-table/task.yaml"), "--max-trials", "1", "--out", out, "--backend", "local"])
    assert.strictEqual(local.status, 2)
    assert.match(local.stderr, /--backend: the task replays a recorded table \(backend\.kind: simulator\) and declares no searchSpace of its own to run on local: leave out --backend/)
  })

  it("reuses results of earlier runs in --out only for the same trainer code, and not at all with --no-reuse", async () => {
    const taskDir = tmp()
    for (const f of ["toy.task.yaml", "toy-job.mjs"]) fs.copyFileSync(path.join(fixtures, f), path.join(taskDir, f))
    const out = tmp()
    const env = { TREX_TOY_MS: "30" }
    const run = async (...flags: ReadonlyArray<string>) => {
      const r = trex(["run", path.join(taskDir, "toy.task.yaml"), "--out", out, "--max-trials", "3", "--seed", "5", ...flags], env)
      assert.strictEqual(r.status, 0, r.stderr)
      const runDir = r.stdout.match(/run directory: (.*)/)![1]!
      return JSON.parse((await trexHere(["status", runDir, "--json"])).stdout) as { reused: number; counts: { Succeeded: number } }
    }
    assert.strictEqual((await run()).reused, 0)
    assert.strictEqual((await run()).reused, 3, "the same task and code: the first run's three results are reused")
    // the task file beside the trainer is not trainer code: a changed budget keeps the results
    const taskFile = path.join(taskDir, "toy.task.yaml")
    fs.writeFileSync(taskFile, fs.readFileSync(taskFile, "utf8").replace("budget: { maxTrials: 8 }", "budget: { maxTrials: 9 }"))
    assert.isAbove((await run()).reused, 0, "the task file changed, the trainer did not")
    // the trainer changed: nothing carries over
    fs.appendFileSync(path.join(taskDir, "toy-job.mjs"), "\n// changed\n")
    assert.strictEqual((await run()).reused, 0, "the trainer changed")
    assert.strictEqual((await run("--no-reuse")).reused, 0, "--no-reuse")
  })

  it.live("two runs at once in one --out: a strategy one is running, the other waits for and reuses; no strategy runs twice", () =>
    Effect.gen(function*() {
      const taskDir = tmp()
      for (const f of ["toy.task.yaml", "toy-job.mjs"]) fs.copyFileSync(path.join(fixtures, f), path.join(taskDir, f))
      const out = tmp()
      // the trials hold until this file exists (however slow the machine: the second run must start while the first's runs)
      const hold = path.join(tmp(), "go")
      const start = () => {
        const output = { stdout: "", stderr: "" }
        const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "run", path.join(taskDir, "toy.task.yaml"), "--out", out, "--max-trials", "2", "--concurrency", "1", "--seed", "5"], {
          cwd: root,
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, TREX_TOY_HOLD: hold }
        })
        child.stdout.on("data", (d) => (output.stdout += d))
        child.stderr.on("data", (d) => (output.stderr += d))
        const exited = Effect.promise(() => new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => child.once("exit", (status) => resolve({ status, ...output }))))
        return { output, exited }
      }
      const first = start()
      // the second starts once the first has admitted its first trial (the task's default strategy, every run's first)
      const admitted = Effect.sync(() => {
        const dirs = fs.existsSync(out) ? fs.readdirSync(out) : []
        if (dirs.length === 0 || !fs.existsSync(RunDir.journalFile(path.join(out, dirs[0]!)))) return false
        const db = new DatabaseSync(RunDir.journalFile(path.join(out, dirs[0]!)), { readOnly: true })
        try {
          return (db.prepare("SELECT count(*) AS n FROM events WHERE tag = 'NodeAdmitted'").get() as { n: number }).n > 0
        } catch {
          return false
        } finally {
          db.close()
        }
      })
      for (let i = 0; i < 300 && !(yield* admitted); i++) yield* Effect.sleep("100 millis")
      const started = start()
      // the first's trial is held: the second must wait for it rather than run it
      for (let i = 0; i < 600 && !/is running the same strategy; waiting for its result/.test(started.output.stderr); i++) yield* Effect.sleep("100 millis")
      fs.writeFileSync(hold, "")
      const firstRun = yield* first.exited
      const second = yield* started.exited
      assert.strictEqual(firstRun.status, 0, firstRun.stderr)
      assert.strictEqual(second.status, 0, second.stderr)
      assert.match(second.stderr, /is running the same strategy; waiting for its result/)
      const treeOf = (r: { stdout: string }) =>
        Effect.map(RunDir.load(r.stdout.match(/run directory: (.*)/)![1]!), (info) => ({ id: info.started.runId, nodes: [...info.tree.view.nodes()] }))
      const a = yield* treeOf(firstRun)
      const b = yield* treeOf(second)
      const ran = [...a.nodes, ...b.nodes].filter((n) => n.state._tag === "Succeeded" && n.state.result.reusedFrom === undefined).map((n) => n.fingerprint)
      assert.strictEqual(new Set(ran).size, ran.length, "no strategy ran in both runs")
      const bFirst = b.nodes[0]!
      assert.strictEqual(bFirst.state._tag === "Succeeded" ? bFirst.state.result.reusedFrom : bFirst.state._tag, `${a.id}/n1`)
    }), 120_000)

  it("a damaged journal of another run in --out is passed over (its results are not reused), not a crash of this run", () => {
    const out = tmp()
    fs.mkdirSync(path.join(out, "broken"))
    const db = new DatabaseSync(path.join(out, "broken", "journal.sqlite"))
    db.exec(`PRAGMA user_version = ${JournalEvent.FORMAT_VERSION}`)
    db.close()
    const r = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "1"], { TREX_TOY_MS: "30" })
    assert.strictEqual(r.status, 0, r.stderr)
    assert.notMatch(r.stderr, /unexpected error/)
  })

  it("resume --max-trials gives a finished run a new trial budget, which later resumes keep", async () => {
    const log = path.join(tmp(), "executions.log")
    const env = { TREX_TOY_MS: "30", TREX_TOY_LOG: log }
    const first = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "3"], env)
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    const more = trex(["resume", runDir, "--max-trials", "5"], env)
    assert.strictEqual(more.status, 0, more.stderr)
    const budget = async () => (JSON.parse((await trexHere(["status", runDir, "--json"])).stdout) as { budget: { limits: { maxTrials: number }; trials: number } }).budget
    const given = await budget()
    assert.deepStrictEqual([given.trials, given.limits.maxTrials], [5, 5])
    assert.strictEqual(trex(["resume", runDir], env).status, 0)
    const kept = await budget()
    assert.deepStrictEqual([kept.trials, kept.limits.maxTrials], [5, 5], "a plain resume keeps the new budget")
    const executed = fs.readFileSync(log, "utf8").trim().split("\n")
    assert.strictEqual(new Set(executed).size, 5, executed.join(","))
    const bad = trex(["resume", runDir, "--max-trials", "0"], env)
    assert.strictEqual(bad.status, 2)
    assert.match(bad.stderr, /--max-trials must be at least 1, got 0/)
    const fewer = trex(["resume", runDir, "--max-trials", "4"], env)
    assert.strictEqual(fewer.status, 2)
    assert.match(fewer.stderr, /the run has run 5 trials already: give --max-trials 6 or more to run more/)
  })

  it("resume gives a run that ended on its GPU-hours more of them (--gpu-hours); more trials alone are refused, naming the limit and the flag", () => {
    const out = tmp()
    const first = trex(["run", path.join(root, "examples/recorded-table/task.yaml"), "--out", out, "--gpu-hours", "30", "--concurrency", "1"])
    assert.strictEqual(first.status, 0, first.stderr)
    assert.match(first.stdout, /State: finished \(budget: gpuHours\)/)
    assert.match(first.stdout, /Budget: trials \d+\/20 · GPU-h [\d.]+\/30 /)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    // resumed as it is, it starts nothing, exits as the run ended, and says what would give it room
    const plain = trex(["resume", runDir])
    assert.strictEqual(plain.status, 0, plain.stderr)
    assert.match(plain.stderr, /the run's budget has no room for another trial, so this resume starts none; to run on, resume with more:\n {2}gpuHours: [\d.]+ of 30 GPU-hours used, and a trial is expected to take [\d.]+ more \(give --gpu-hours [\d.]+ or more\)/)
    assert.notMatch(plain.stdout, /^start {2}/m)
    const more = trex(["resume", runDir, "--max-trials", "30"])
    assert.strictEqual(more.status, 2, more.stdout)
    assert.match(more.stderr, /resumed with this budget, the run would start no trial:\n {2}gpuHours: [\d.]+ of 30 GPU-hours used, and a trial is expected to take [\d.]+ more \(give --gpu-hours ([\d.]+) or more\)/)
    assert.notMatch(more.stderr, /\n\s+at /)
    const room = /give --gpu-hours ([\d.]+) or more/.exec(more.stderr)![1]!
    const resumed = trex(["resume", runDir, "--gpu-hours", room])
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    assert.match(resumed.stdout, /^start {2}n\d+/m)
    assert.match(resumed.stdout, new RegExp(`Budget: trials \\d+/20 · GPU-h [\\d.]+/${room.replace(".", "\\.")} `))
    for (const flag of ["--gpu-hours", "--wall-clock-hours", "--dollars", "--tokens"]) {
      const zero = trex(["resume", runDir, flag, "0"])
      assert.strictEqual(zero.status, 2)
      assert.match(zero.stderr, new RegExp(`^trex: ${flag} must be more than 0, got 0$`, "m"))
    }
  })

  it("a limit of the budget that cannot stop the run is warned about on stderr when it starts", () => {
    const r = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "1", "--gpu-hours", "1", "--tokens", "5000"], { TREX_TOY_MS: "30" })
    assert.strictEqual(r.status, 0, r.stderr)
    assert.match(r.stderr, /budget\.gpuHours \(1\) will never stop this run: its trials ask for no GPU \(recipe\.resources\.gpus is 0\)/)
    assert.match(r.stderr, /budget\.tokens \(5000\) will never stop this run: only model calls spend tokens/)
    assert.notInclude(r.stdout, "will never stop", "warnings go to stderr")
  })

  it("backend.pricing prices each trial's compute, so --dollars stops a run whose agents call no model", async () => {
    const taskDir = tmp()
    fs.copyFileSync(path.join(fixtures, "toy-job.mjs"), path.join(taskDir, "toy-job.mjs"))
    // a dollar per second a trial runs
    const file = writeTask(taskDir, "priced.task.yaml", fs.readFileSync(path.join(fixtures, "toy.task.yaml"), "utf8") + "backend: { pricing: { dollarsPerHour: 3600 } }\n")
    // trials of 1.5 s and a start-up: on a busy machine (a trial of 0.75 s or more) a limit of $1.5 stopped the run after
    // one; $6 is two to three trials at $1.6-$3 each, whatever the machine's load
    const r = trex(["run", file, "--out", tmp(), "--dollars", "6", "--concurrency", "1"], { TREX_TOY_MS: "1500" })
    assert.strictEqual(r.status, 0, r.stderr)
    assert.notMatch(r.stderr, /will never stop/)
    assert.match(r.stdout, /State: finished \(budget: dollars\)/)
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    const events = (await readJournal(runDir)).map((e) => e.event)
    const results = events.flatMap((e) => (e._tag === "NodeFinished" && e.result !== undefined && e.result.cost.wallSeconds > 0 ? [e.result.cost] : []))
    assert.isAbove(results.length, 1)
    assert.isBelow(results.length, 8, "stopped by its dollars before its 8 trials")
    for (const cost of results) assert.closeTo(cost.dollars, cost.wallSeconds, 1e-9, "a trial's dollars are its wall seconds at $3600 an hour")
    const charged = events.reduce((sum, e) => sum + (e._tag === "BudgetCharged" ? e.cost.dollars : 0), 0)
    // it stops once a trial, at the mean cost so far, would pass the limit
    assert.isAbove(charged + charged / results.length, 6)
    assert.closeTo(charged, results.reduce((sum, c) => sum + c.dollars, 0), 1e-9, "the run is charged what its trials cost")
    const status = await trexHere(["status", runDir])
    assert.match(status.stdout, new RegExp(`\\$${charged.toFixed(2).replace(".", "\\.")}/6`))
    // misspelt or impossible prices are refused before the run starts, naming the field
    const bad = writeTask(taskDir, "bad.task.yaml", fs.readFileSync(file, "utf8").replace("dollarsPerHour: 3600", "dolarsPerHour: 3600"))
    const refused = trex(["run", bad, "--out", tmp()])
    assert.strictEqual(refused.status, 2)
    assert.match(refused.stderr, /backend\.pricing\.dolarsPerHour: Expected no excess property; did you mean "dollarsPerHour"\?/)
    const negative = writeTask(taskDir, "negative.task.yaml", fs.readFileSync(file, "utf8").replace("dollarsPerHour: 3600", "dollarsPerGpuHour: -2"))
    assert.match(trex(["run", negative, "--out", tmp()]).stderr, /backend\.pricing\.dollarsPerGpuHour: Expected a value greater than or equal to 0/)
  })

  it("--strict-budget holds each trial at its time limit: one that could run past the wall clock does not start; without a time limit, or on the simulator, it is refused", () => {
    const taskDir = tmp()
    fs.copyFileSync(path.join(fixtures, "toy-job.mjs"), path.join(taskDir, "toy-job.mjs"))
    const file = writeTask(taskDir, "toy.task.yaml", fs.readFileSync(path.join(fixtures, "toy.task.yaml"), "utf8"))
    // 28.8 s of wall clock, trials of at most 30 s (the toy task's time limit): expected to take far less, they run;
    // held at their limit, none may start
    const loose = trex(["run", file, "--out", tmp(), "--wall-clock-hours", "0.008", "--max-trials", "2"], { TREX_TOY_MS: "30" })
    assert.strictEqual(loose.status, 0, loose.stderr)
    const strict = trex(["run", file, "--out", tmp(), "--wall-clock-hours", "0.008", "--max-trials", "2", "--strict-budget"], { TREX_TOY_MS: "30" })
    assert.strictEqual(strict.status, 1, strict.stdout)
    assert.match(strict.stdout + strict.stderr, /no trial ran \(budget: wallClockHours\)/)
    assert.match(strict.stdout, /^Budget: trials 0\/2 · .* · strict \(each trial held at its time limit\)$/m)
    const unlimited = writeTask(taskDir, "unlimited.task.yaml", fs.readFileSync(file, "utf8").replace(", timeLimitSeconds: 30", ""))
    const refused = trex(["run", unlimited, "--out", tmp(), "--strict-budget"])
    assert.strictEqual(refused.status, 2)
    assert.match(refused.stderr, /budget\.strict: holds each trial at the most it can cost, which its time limit bounds: set recipe\.resources\.timeLimitSeconds/)
    const simulated = trex(["run", path.join(root, "examples/recorded-table/task.yaml"), "--out", tmp(), "--strict-budget"])
    assert.strictEqual(simulated.status, 2)
    assert.match(simulated.stderr, /budget\.strict: the simulator replays each trial's recorded cost and stops none at a time limit/)
  })
})
