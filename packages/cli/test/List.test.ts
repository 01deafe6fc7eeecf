// `trex list`: the runs of a folder, each as it stands — a real finished run of the CLI, and journals
// written here of a run stopped mid-way, a run this process is running (it holds the lock), a damaged
// run and a minimising task — with the folders that are no runs passed over.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import { ExperimentNode, Journal, JournalEvent, type Task } from "@trex/core"
import { TreeBuilder } from "@trex/core/testing"
import { Effect } from "effect"
import * as RunDir from "../src/RunDir.ts"
import * as Runs from "../src/Runs.ts"
import { root as repo, trexHere } from "./support/cli.ts"
import { hostileRun, overriddenRun } from "./support/settingsRun.ts"

const root = path.resolve(import.meta.dirname, "../../..")
const bin = path.join(root, "packages/cli/src/bin.ts")
const toyTask = path.join(import.meta.dirname, "fixtures", "toy.task.yaml")
const trex = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ["--conditions=@trex/source", bin, ...args], { cwd: root, encoding: "utf8", env: { ...process.env, ...env }, timeout: 120_000 })

/** A run directory under `folder` whose journal holds `events`, written as a controller writes them. */
const journal = (folder: string, name: string, events: ReadonlyArray<JournalEvent.JournalEvent>) =>
  Effect.gen(function*() {
    const dir = path.join(folder, name)
    yield* Effect.gen(function*() {
      const j = yield* Journal.Journal
      yield* j.append(events)
    }).pipe(Effect.provide(Journal.Journal.layerSqlite(RunDir.journalFile(dir))))
    return dir
  })

/** A task's events as a run of `runId` journals them: its start first. */
const runOf = (runId: string, task: Task.Task, build: (b: TreeBuilder.TreeBuilder) => void) => {
  const b = new TreeBuilder.TreeBuilder(task)
  build(b)
  const [, ...rest] = b.events
  return [JournalEvent.make("RunStarted", { runId, task, seed: 0, options: {}, at: Date.UTC(2026, 11, 5, 9, 30) }), ...rest]
}

describe("trex list", { timeout: 120_000 }, () => {
  it.live("lists each run of a folder with its task, state, trials and best; passes over folders that are no runs; names the fix for a run directory or a missing folder", () =>
    Effect.gen(function*() {
      const folder = fs.mkdtempSync(path.join(os.tmpdir(), "trex-list-"))
      // a real run of the CLI, finished
      const real = trex(["run", toyTask, "--out", folder, "--max-trials", "3", "--concurrency", "1"], { TREX_TOY_MS: "30" })
      assert.strictEqual(real.status, 0, real.stderr)
      const realDir = real.stdout.match(/run directory: (.*)/)![1]!
      const realInfo = yield* RunDir.load(realDir)
      // stopped with one trial in flight; a minimising task; a damaged journal
      const task = TreeBuilder.task({ budget: { maxTrials: 4 } })
      yield* journal(folder, "20261205-093000-stopped", runOf("20261205-093000-stopped", task, (b) => {
        b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.25)
        b.fail(ExperimentNode.ROOT, { "training.learningRate": 0.02 })
        b.start(b.propose(ExperimentNode.ROOT, { "training.learningRate": 0.03 }))
      }))
      const loss = { ...task, name: "loss-task", metric: { ...task.metric, name: "loss", direction: "minimize" as const } }
      yield* journal(folder, "20261205-093100-min", [
        ...runOf("20261205-093100-min", loss, (b) => {
          b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.9)
          b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.02 }, 0.4)
          b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.03 }, 0.7)
          b.cancel(ExperimentNode.ROOT, { "training.learningRate": 0.003 })
        }),
        JournalEvent.make("RunFinished", { reason: "target reached", at: Date.UTC(2026, 11, 5, 10, 0) })
      ])
      const damaged = yield* journal(folder, "20261205-093200-damaged", runOf("20261205-093200-damaged", task, (b) => {
        b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.5)
        b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.02 }, 0.6)
      }))
      const db = new DatabaseSync(RunDir.journalFile(damaged))
      db.exec("UPDATE events SET crc = crc + 1 WHERE seq = (SELECT MAX(seq) FROM events)")
      db.close()
      // no runs: a folder of other things, and a detached launch's log
      fs.mkdirSync(path.join(folder, "notes"))
      fs.writeFileSync(path.join(folder, ".trex-detached-1-2.log"), "")

      // one more run, which this process runs while the list is taken (it holds the run's lock)
      const listed = yield* Effect.gen(function*() {
        const j = yield* Journal.Journal
        yield* j.append(runOf("20261205-093300-live", task, (b) => void b.start(b.propose(ExperimentNode.ROOT, {}))))
        return { text: trex(["list", folder]), json: trex(["list", folder, "--json"]) }
      }).pipe(Effect.provide(Journal.Journal.layerSqlite(RunDir.journalFile(path.join(folder, "20261205-093300-live")))))
      assert.strictEqual(listed.text.status, 0, listed.text.stderr)
      const runs = JSON.parse(listed.json.stdout) as Array<Runs.RunSummary>
      assert.deepStrictEqual(runs.map((r) => r.runId), [
        "20261205-093000-stopped",
        "20261205-093100-min",
        "20261205-093200-damaged",
        "20261205-093300-live",
        path.basename(realDir)
      ].sort())
      const byId = new Map(runs.map((r) => [r.runId, r]))
      // the real run: as `trex status` counts it
      const r = byId.get(path.basename(realDir))!
      assert.strictEqual(r.state, "finished")
      assert.strictEqual(r.reason, "budget: maxTrials")
      const nodes = [...realInfo.tree.view.nodes()]
      assert.strictEqual(r.trials.succeeded, nodes.filter((n) => n.state._tag === "Succeeded").length)
      assert.strictEqual(r.trials.failed, nodes.filter((n) => n.state._tag === "Failed").length)
      assert.deepStrictEqual(r.best, { id: realInfo.tree.view.best()!.id, score: ExperimentNode.score(realInfo.tree.view.best()!)! })
      assert.deepStrictEqual(byId.get("20261205-093000-stopped")!.state, "stopped")
      assert.deepStrictEqual(byId.get("20261205-093000-stopped")!.trials, { succeeded: 1, failed: 1, other: 0, inFlight: 1 })
      assert.deepStrictEqual(byId.get("20261205-093000-stopped")!.best?.score, 0.25)
      // the lowest loss is the best of a minimising task; a cancelled trial is an "other" end
      assert.deepStrictEqual(byId.get("20261205-093100-min")!.best?.score, 0.4)
      assert.deepStrictEqual(byId.get("20261205-093100-min")!.trials, { succeeded: 3, failed: 0, other: 1, inFlight: 0 })
      // the damaged run: what precedes the damage, and the damage
      const d = byId.get("20261205-093200-damaged")!
      assert.strictEqual(d.state, "damaged")
      assert.match(d.damage!, /fails its checksum/)
      assert.strictEqual(d.trials.succeeded, 1)
      const live = byId.get("20261205-093300-live")!
      assert.strictEqual(live.state, "running")
      assert.strictEqual(live.writer?.pid, process.pid)
      assert.strictEqual(live.trials.inFlight, 1)

      const lines = listed.text.stdout.split("\n")
      assert.strictEqual(lines[0], `5 runs in ${folder}, 1 running:`)
      assert.match(lines[1]!, /^RUN +TASK +MODEL +STATE +OK\/FAILED\/OTHER\/IN FLIGHT +BEST +SETTINGS +STARTED \(UTC\) +LAST \(UTC\)$/)
      const row = (id: string) => lines.find((l) => l.startsWith(id)) ?? ""
      assert.match(row("20261205-093000-stopped"), /stopped \(trex resume continues it\) +1\/1\/0\/1 +score 0\.25 \(n1\) +- +2026-12-05 09:30 /)
      assert.match(row("20261205-093100-min"), /loss-task +- +finished: target reached +3\/0\/1\/0 +loss 0\.4 \(n2\) +- +2026-12-05 09:30 +2026-12-05 10:00$/)
      assert.match(row("20261205-093200-damaged"), /damaged \(trex status says where\)/)
      assert.match(row("20261205-093300-live"), new RegExp(`running \\(process ${process.pid} on ${os.hostname()}\\) +0/0/0/1 +- `))
      assert.include(listed.text.stdout, `\`trex status ${path.join(folder, "<run>")}\` shows one (--follow: as it goes on)`)

      // what is not a folder of runs, and a folder of runs given where a run is wanted: each names the fix
      const ofRun = trex(["list", realDir])
      assert.strictEqual(ofRun.status, 2)
      assert.include(ofRun.stderr, `${realDir} is a run directory, not a folder of runs: \`trex status ${realDir}\` shows it; \`trex list ${folder}\` lists the runs beside it`)
      const missing = trex(["list", path.join(folder, "nope")])
      assert.strictEqual(missing.status, 2)
      assert.match(missing.stderr, /nope does not exist: name the folder that holds your runs \(trex run's --out, trex-runs by default\)/)
      const status = trex(["status", folder])
      assert.strictEqual(status.status, 2)
      assert.include(status.stderr, `${folder} is not a trex run directory (no journal.sqlite); it is a folder of 5 runs: \`trex list ${folder}\` lists them`)
      const empty = trex(["list", path.join(folder, "notes")])
      assert.strictEqual(empty.status, 0)
      assert.strictEqual(empty.stdout.trim(), `no runs in ${path.join(folder, "notes")} (\`trex run <task-file> --out ${path.join(folder, "notes")}\` starts one)`)

      // a run copied (or moved) under another name: listed by the folder `trex status` takes, with the run it holds
      const copy = path.join(folder, "before-lr-change")
      fs.cpSync(realDir, copy, { recursive: true })
      const withCopy = trex(["list", folder]).stdout.split("\n")
      assert.strictEqual(withCopy[0], `6 runs in ${folder}:`)
      const copied = withCopy.find((l) => l.startsWith("before-lr-change")) ?? ""
      assert.match(copied, new RegExp(`^before-lr-change \\(run ${path.basename(realDir)}\\) +toy +- +finished: budget: maxTrials `))
      assert.strictEqual(trex(["status", path.join(folder, "before-lr-change")]).status, 0)
    }))

  it("a run directory given as trex run's --out, or a task file given where a run is wanted, is refused naming the command that takes it; nothing is made", () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), "trex-list-"))
    const first = trex(["run", toyTask, "--out", folder, "--max-trials", "1"], { TREX_TOY_MS: "30" })
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    const inside = fs.readdirSync(runDir).sort()
    const nested = trex(["run", toyTask, "--out", runDir, "--max-trials", "1"], { TREX_TOY_MS: "30" })
    assert.strictEqual(nested.status, 2, nested.stdout + nested.stderr)
    assert.strictEqual(
      nested.stderr,
      `trex: the directory for runs (--out) ${runDir} is a run directory, not a folder of runs: a new run there would sit inside that run, ` +
        `where \`trex list\` does not see it and no result of the runs beside it is reused. Give the folder that holds it (--out ${folder}) ` +
        `to start a new run beside it, or continue it with \`trex resume ${runDir}\`\n`
    )
    assert.deepStrictEqual(fs.readdirSync(runDir).sort(), inside)
    for (const command of ["resume", "status", "report", "stop"]) {
      const r = trex([command, toyTask])
      assert.strictEqual(r.status, 2, command)
      assert.strictEqual(
        r.stderr,
        `trex: ${toyTask} is not a trex run directory (it is a file); if it is a task file, \`trex run ${toyTask}\` starts a run of it; ` +
          `a run directory is a folder such as trex-runs/<run-id> (\`trex list\` lists them)\n`,
        command
      )
    }
  })
})

describe("trex list, the settings of each run", { timeout: 120_000 }, () => {
  it("names each run's backend, researcher and policy and counts those a resume set; --json gives them all as trex status --json does", async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), "trex-list-"))
    // a run of the defaults whose model timeout a resume set, and one of another researcher and policy
    const { runDir } = await overriddenRun([], folder)
    const other = await trexHere(["run", path.join(repo, "examples/recorded-table/task.yaml"), "--max-trials", "2", "--out", folder, "--policy", "greedy", "--researcher", "random"])
    assert.strictEqual(other.status, 0, other.stderr)
    const otherDir = /run directory: (\S+)/.exec(other.stdout)![1]!
    // the CLI in this process (its modules are loaded already): what the command prints, without a process's start
    const text = await trexHere(["list", folder])
    assert.strictEqual(text.status, 0, text.stderr)
    const lines = text.stdout.split("\n")
    const column = lines[1]!.indexOf("SETTINGS")
    const cell = (dir: string) => {
      const row = lines.find((l) => l.startsWith(path.basename(dir))) ?? ""
      return row.slice(column).split(/ {2,}/)[0]
    }
    assert.strictEqual(cell(runDir), "simulator/heuristic/uct (1 set on resume)")
    assert.strictEqual(cell(otherDir), "simulator/random/greedy")
    // in full, as trex status --json gives them
    const json = await trexHere(["list", folder, "--json"])
    assert.strictEqual(json.status, 0, json.stderr)
    const runs = JSON.parse(json.stdout) as Array<Runs.RunSummary>
    for (const dir of [runDir, otherDir]) {
      const status = JSON.parse((await trexHere(["status", dir, "--json"])).stdout)
      const listed = runs.find((r) => r.dir === dir)!
      assert.deepStrictEqual({ settings: listed.settings, settingOverrides: listed.settingOverrides }, { settings: status.settings, settingOverrides: status.settingOverrides })
    }
    assert.strictEqual(runs.find((r) => r.dir === runDir)!.settings!["modelTimeoutSeconds"], 60)
    assert.strictEqual(runs.find((r) => r.dir === runDir)!.settingOverrides!.length, 1)
    assert.strictEqual(runs.find((r) => r.dir === otherDir)!.settings!["policy"], "greedy")
  })

  it("shows an edited journal's settings on the run's one line, each cut with … (a character outside the BMP kept whole)", async () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), "trex-list-"))
    const { runDir } = await hostileRun("<script>|x</script>", folder)
    const text = await trexHere(["list", folder])
    assert.strictEqual(text.status, 0, text.stderr)
    const lines = text.stdout.split("\n")
    assert.isFalse(lines.some((l) => l.startsWith("# not a line of its own")), "the researcher's line break kept in its cell")
    const row = lines.find((l) => l.startsWith(path.basename(runDir)))!
    // the researcher's name and the policy's JSON (an object, no name), each cut at 20 characters and marked so;
    // the policy's cut falls in the middle of a surrogate pair, so it is cut before the pair
    const cell = row.slice(lines[1]!.indexOf("SETTINGS")).split(/ {2,}/)[0]
    assert.strictEqual(cell, `simulator/<script>|x</script>…/{"a":"xxxxxxxxxxxx…`)
  })
})

describe("trex list, the model of each run", () => {
  it.live("names the base model each run's task fine-tunes, on the run's one line, cut with … (an edited journal's too, and its task and metric names); --json gives it whole", () =>
    Effect.gen(function*() {
      const folder = fs.mkdtempSync(path.join(os.tmpdir(), "trex-list-"))
      const task = TreeBuilder.task({ budget: { maxTrials: 4 } })
      const named = (runId: string, name: string | undefined, edited: Partial<Task.Task> = {}) =>
        journal(folder, runId, runOf(runId, name === undefined ? task : { ...task, ...edited, baseModel: { name, parameters: "7B" } }, (b) => {
          b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.5)
        }))
      // two runs of one task told apart by their model, one naming none, and one whose journal was edited: a name with
      // an escape sequence, markup, a table's `|`, a line break that would start a line of its own and 5,000
      // characters, with a character outside the BMP where the cut falls
      const hostile = `\u001b[31m<b>q</b>|\n# x ${"m".repeat(20)}\u{1F600}${"x".repeat(5000)}`
      yield* named("20261205-093000-qwen", "Qwen/Qwen2.5-7B-Instruct")
      yield* named("20261205-093100-llama", "meta-llama/Llama-3.1-8B")
      yield* named("20261205-093200-none", undefined)
      // its task and metric names edited too: an escape sequence and a line break that would start a row of its own
      const hostileTask = `evil\u001b[31mRED\nSECOND LINE ${"t".repeat(100)}`
      yield* named("20261205-093300-edited", hostile, { name: hostileTask, metric: { ...task.metric, name: `acc\u001b[0m\nTHIRD LINE ${"a".repeat(100)}` } })
      const text = yield* Effect.promise(() => trexHere(["list", folder]))
      assert.strictEqual(text.status, 0, text.stderr)
      const lines = text.stdout.split("\n")
      assert.isFalse(lines.some((l) => l.startsWith("# x")), "the model's line break kept")
      assert.isFalse(lines.some((l) => l.startsWith("SECOND LINE") || l.startsWith("THIRD LINE")), "the task's or metric's line break kept")
      assert.notInclude(text.stdout, "\u001b", "the escape sequence kept")
      assert.match(lines[1]!, /^RUN +TASK +MODEL +STATE /)
      const column = lines[1]!.indexOf("MODEL")
      const cell = (runId: string) => (lines.find((l) => l.startsWith(runId)) ?? "").slice(column).split(/ {2,}/)[0]
      assert.strictEqual(cell("20261205-093000-qwen"), "Qwen/Qwen2.5-7B-Instruct")
      assert.strictEqual(cell("20261205-093100-llama"), "meta-llama/Llama-3.1-8B")
      assert.strictEqual(cell("20261205-093200-none"), "-")
      // cut at 40 characters, before the surrogate pair rather than through it
      assert.strictEqual(cell("20261205-093300-edited"), `[31m<b>q</b>| # x ${"m".repeat(20)}…`)
      // the task cut at 60, the metric's name at 40, as any untrusted text
      const edited = lines.find((l) => l.startsWith("20261205-093300-edited"))!
      assert.strictEqual(edited.slice(lines[1]!.indexOf("TASK")).split(/ {2,}/)[0], `evil[31mRED SECOND LINE ${"t".repeat(35)}…`)
      assert.strictEqual(edited.slice(lines[1]!.indexOf("BEST")).split(/ {2,}/)[0], `acc[0m THIRD LINE ${"a".repeat(21)}… 0.5 (n1)`)
      const json = yield* Effect.promise(() => trexHere(["list", folder, "--json"]))
      assert.strictEqual(json.status, 0, json.stderr)
      const runs = JSON.parse(json.stdout) as Array<Runs.RunSummary>
      assert.deepStrictEqual(runs.map((r) => r.model), ["Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-8B", undefined, hostile])
    }))
})

describe("trex list of a run of a newer trex", { timeout: 120_000 }, () => {
  it.live("lists a journal of a newer format as such, saying to upgrade trex as trex status does (it was listed damaged)", () =>
    Effect.gen(function*() {
      const folder = fs.mkdtempSync(path.join(os.tmpdir(), "trex-list-"))
      const task = TreeBuilder.task({ budget: { maxTrials: 4 } })
      const dir = yield* journal(folder, "20261205-093000-next", runOf("20261205-093000-next", task, (b) => void b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.25)))
      yield* journal(folder, "20261205-093100-this", runOf("20261205-093100-this", task, (b) => void b.succeed(ExperimentNode.ROOT, { "training.learningRate": 0.01 }, 0.5)))
      const db = new DatabaseSync(RunDir.journalFile(dir))
      db.exec(`PRAGMA user_version = ${JournalEvent.FORMAT_VERSION + 1}`)
      db.close()
      const status = trex(["status", dir])
      assert.include(status.stderr, "upgrade trex")
      const text = trex(["list", folder])
      assert.strictEqual(text.status, 0, text.stderr)
      const lines = text.stdout.split("\n")
      assert.strictEqual(lines[0], `2 runs in ${folder}:`)
      assert.match(lines.find((l) => l.startsWith("20261205-093000-next")) ?? "", /^20261205-093000-next +\? +- +written by a newer trex \(upgrade trex to read it\) +0\/0\/0\/0 /)
      assert.match(lines.find((l) => l.startsWith("20261205-093100-this")) ?? "", / stopped \(trex resume continues it\) /)
      const runs = JSON.parse(trex(["list", folder, "--json"]).stdout) as Array<Runs.RunSummary>
      assert.deepStrictEqual(runs.map((r) => r.state), ["newer", "stopped"])
      // what trex status says of it, word for word
      assert.strictEqual(`trex: ${runs[0]!.unreadable}\n`, status.stderr)
      assert.isUndefined(runs[0]!.damage)
    }))
})

describe("trex list of a folder holding nothing this user may read", () => {
  it("says so, with each folder it may not read and the fix, rather than that there are no runs", () => {
    const why = "cannot tell whether /runs/theirs holds a run: this user may not read /runs/theirs (EACCES: owned by uid 0, this is uid 65534): run trex as the user who owns it, or give this one access (as its owner: chmod -R a+rX /runs/theirs)"
    const theirs: Runs.RunSummary = {
      runId: "theirs",
      dir: "/runs/theirs",
      task: "?",
      metric: { name: "?", direction: "maximize" },
      startedAt: 0,
      lastAt: 0,
      state: "unreadable",
      unreadable: why,
      trials: { succeeded: 0, failed: 0, other: 0, inFlight: 0 }
    }
    assert.strictEqual(Runs.toText("/runs", [theirs]), `no runs in /runs that this user may read, and 1 folder this user may not read:\ntheirs: ${why}`)
  })
})

describe("trex list of a run that ended on a job's words", () => {
  it("shows why it finished as text, cut to fit its column (a trainer's escape sequences and a long log line quoted in the reason)", () => {
    const reason = `every trial failed the same way (n1, n2, n3): Crash: exited with code 3 (\x1b[2J\x1b]0;pwned\x07${"x".repeat(300)})`
    const summary: Runs.RunSummary = {
      runId: "20261205-093000-r",
      dir: "/runs/20261205-093000-r",
      task: "toy",
      metric: { name: "score", direction: "maximize" },
      startedAt: Date.UTC(2026, 11, 5, 9, 30),
      lastAt: Date.UTC(2026, 11, 5, 9, 31),
      state: "finished",
      reason,
      trials: { succeeded: 0, failed: 3, other: 0, inFlight: 0 }
    }
    const running: Runs.RunSummary = { ...summary, runId: "20261205-093100-s", dir: "/runs/20261205-093100-s", state: "running", writer: { pid: 7, host: "gpu1\x1b[8m" } }
    const text = Runs.toText("/runs", [summary, running])
    assert.notMatch(text, /[\x00-\x08\x0b-\x1f\x7f]/)
    const row = text.split("\n").find((l) => l.startsWith("20261205-093000-r"))!
    assert.include(row, "finished: every trial failed the same way (n1, n2, n3): Crash: exited with code 3 ([2J]0;…")
    assert.isBelow(row.length, 240, row)
    // (a host name that is not one plain word is quoted, its controls escaped)
    assert.include(text, 'running (process 7 on "gpu1\\u001b[8m")')
  })
})

describe("run ids", () => {
  it("a task's name cut to 40 characters at a dash makes an id with no dash at its end, and every id trex makes is one trex list takes for a run's", () => {
    const at = new Date(Date.UTC(2026, 11, 6, 6, 15, 0))
    const names = ["x".repeat(39) + "-y", "x".repeat(40) + "-y", "-- a task, v2! --", "A task, v2!", "日本語", "a".repeat(39) + "!!b"]
    const ids = names.map((n) => RunDir.newRunId(n, at))
    assert.deepStrictEqual(ids.slice(0, 4), [
      `20261206-061500-${"x".repeat(39)}`,
      `20261206-061500-${"x".repeat(40)}`,
      "20261206-061500-a-task-v2",
      "20261206-061500-a-task-v2"
    ])
    assert.strictEqual(ids[4], "20261206-061500-run")
    for (const id of [...ids, ...ids.map((id) => `${id}-2`), `20261206-061500-${"x".repeat(39)}-`]) assert.isTrue(RunDir.isRunId(id), id)
  })
})
