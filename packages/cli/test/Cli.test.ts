import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import { assert, describe, it } from "@effect/vitest"
import { Cost, ExperimentNode, ExperimentTree, Journal, JournalEvent, Task } from "@trex/core"
import { Effect, Fiber, Schema } from "effect"
import * as BackendSettings from "../src/BackendSettings.ts"
import { codeFingerprint } from "../src/internal/codeFingerprint.ts"
import * as RunDir from "../src/RunDir.ts"
import * as NodeVersion from "../src/nodeVersion.ts"
import * as Settings from "../src/Settings.ts"
import * as Fake from "../../agents/test/support/FakeAnthropicServer.ts"
import { gone } from "../../executors/test/support/process.ts"
import { bin, root, trex } from "./support/cli.ts"

const fixtures = path.join(import.meta.dirname, "fixtures")

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "trex-cli-"))

const writeTask = (dir: string, name: string, text: string) => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}

describe("trex CLI: bad input exits 2 with a message naming the field", () => {
  it("a missing task file", () => {
    const r = trex(["run", "/nonexistent/task.yaml"])
    assert.strictEqual(r.status, 2)
    assert.match(r.stderr, /task file \/nonexistent\/task.yaml does not exist/)
    assert.notMatch(r.stderr, /\n\s+at /, "no stack trace")
  })

  it("a file too big to be a task file, or a device that never ends, is refused unread, not read whole into memory", () => {
    const dir = tmp()
    // a dataset named by mistake (sparse: it takes no room on disk)
    const big = path.join(dir, "train.jsonl")
    fs.writeFileSync(big, "")
    fs.truncateSync(big, 3 * 1024 ** 3)
    // bounded, so that reading them whole fails here rather than taking the machine's memory
    const bounded = (file: string) =>
      spawnSync("prlimit", [`--data=${2 * 1024 ** 3}`, process.execPath, "--conditions=@trex/source", bin, "run", file, "--out", dir], { cwd: root, encoding: "utf8", timeout: 120_000 })
    const file = bounded(big)
    assert.strictEqual(file.status, 2, file.stderr)
    assert.strictEqual(
      file.stderr,
      `trex: task file ${big} is 3072 MB: a task file is a few kB of YAML or JSON (16 MB at most); name the task file (e.g. task.yaml), not a dataset or a checkpoint\n`
    )
    const device = bounded("/dev/zero")
    assert.strictEqual(device.status, 2, device.stderr)
    assert.include(device.stderr, "task file /dev/zero is more than 16 MB (a device or pipe that did not end there)")
  })

  it("a task file that is not YAML", () => {
    const dir = tmp()
    const r = trex(["run", writeTask(dir, "t.yaml", "name: [unclosed\n")])
    assert.strictEqual(r.status, 2)
    assert.match(r.stderr, /is not valid YAML/)
  })

  it("a task file that is not JSON", () => {
    const dir = tmp()
    const r = trex(["run", writeTask(dir, "t.json", "{ name: }")])
    assert.strictEqual(r.status, 2)
    assert.match(r.stderr, /is not valid JSON/)
  })

  it("wrong types and missing fields are each named by path", () => {
    const dir = tmp()
    const file = writeTask(dir, "t.yaml", [
      "name: x",
      "metric: { name: acc, direction: upwards }",
      "budget: { maxTrials: -3, gpuHours: lots }",
      "recipe: { command: [] }"
    ].join("\n"))
    const r = trex(["run", file])
    assert.strictEqual(r.status, 2)
    assert.match(r.stderr, /objective: Missing key/)
    assert.match(r.stderr, /metric\.direction: Expected "maximize" \| "minimize"/)
    assert.match(r.stderr, /budget\.maxTrials: Expected a value greater than 0/)
    assert.match(r.stderr, /budget\.gpuHours: Expected number/)
    assert.match(r.stderr, /recipe\.command: Expected a value with a length of at least 1/)
    assert.notMatch(r.stderr, /\n\s+at /)
  })

  it("an unknown key is refused, not ignored", () => {
    const dir = tmp()
    const r = trex(["run", writeTask(dir, "t.yaml", "name: x\nobjective: y\nmetric: { name: a, direction: maximize }\nbugdet: {}\n")])
    assert.strictEqual(r.status, 2)
    assert.match(r.stderr, /bugdet/)
  })

  it("a task the heuristic researcher cannot search", () => {
    const dir = tmp()
    const r = trex(["run", writeTask(dir, "t.yaml", "name: x\nobjective: y\nmetric: { name: a, direction: maximize }\nrecipe: { command: [echo] }\n")])
    assert.strictEqual(r.status, 2)
    assert.match(r.stderr, /searchSpace/)
  })

  it("a backend.kind that is no backend is named, with the ones there are", () => {
    const dir = tmp()
    const r = trex(["run", writeTask(dir, "t.yaml", "name: x\nobjective: y\nmetric: { name: a, direction: maximize }\nrecipe: { command: [echo] }\nbackend: { kind: simulater }\n"), "--out", dir])
    assert.strictEqual(r.status, 2)
    assert.match(r.stderr, /backend\.kind in the task file is "simulater": use one of local, simulator, docker, slurm, gridengine, ssh, k8s/)
    assert.deepStrictEqual(fs.readdirSync(dir), ["t.yaml"], "no run directory")
  })

  it("a model-backed agent without its settings is refused before a run directory is made, pointing at its guide", () => {
    const dir = tmp()
    const claude = trex(["run", path.join(fixtures, "toy.task.yaml"), "--researcher", "claude", "--out", dir], { ANTHROPIC_API_KEY: undefined })
    assert.strictEqual(claude.status, 2)
    assert.match(claude.stderr, /--researcher claude: set ANTHROPIC_API_KEY in the environment \(see docs\/guide-claude\.md\)/)
    assert.notInclude(claude.stderr, "--executor", "the template executor asked for no model")
    const local = trex(["run", path.join(fixtures, "toy.task.yaml"), "--executor", "code-agent", "--model-api", "openai-compatible", "--out", dir], {
      OPENAI_BASE_URL: undefined,
      TREX_MODEL: undefined
    })
    assert.strictEqual(local.status, 2)
    assert.match(local.stderr, /--executor code-agent: set OPENAI_BASE_URL and TREX_MODEL in the environment \(see docs\/guide-local-model\.md\)/)
    assert.notInclude(local.stderr, "--researcher", "the heuristic researcher asked for no model")
    assert.deepStrictEqual(fs.readdirSync(dir), [], "no run directory")
  })

  it("an --out that cannot hold run directories is named, with no stack trace", () => {
    const dir = tmp()
    const file = path.join(dir, "a-file")
    fs.writeFileSync(file, "")
    const r = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", file])
    assert.strictEqual(r.status, 2)
    assert.match(r.stderr, /^trex: cannot make the run directory .* under .*a-file \(--out\): ENOTDIR: name a directory you can write$/m)
    assert.notMatch(r.stderr, /\n\s+at /, "no stack trace")
    const empty = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", ""])
    assert.strictEqual(empty.status, 2)
    assert.match(empty.stderr, /the directory for runs \(--out\) is empty/)
  })

  it("a misspelt backend section is named with the one it likely means, not ignored", () => {
    const dir = tmp()
    const task = writeTask(dir, "t.yaml", "name: x\nobjective: y\nmetric: { name: a, direction: maximize }\nrecipe: { command: [echo] }\nbackend: { dockr: { image: python:3.12 } }\n")
    const r = trex(["run", task, "--backend", "docker", "--out", dir])
    assert.strictEqual(r.status, 2)
    assert.match(r.stderr, /^trex: backend\.dockr: not a backend setting; did you mean backend\.docker\?$/m)
  })

  it("a backend's settings are checked before a run directory is made: a missing key by its path, a container backend without an image", () => {
    const dir = tmp()
    const slurm = trex(["run", path.join(fixtures, "toy.task.yaml"), "--backend", "slurm", "--out", dir])
    assert.strictEqual(slurm.status, 2)
    assert.match(slurm.stderr, /invalid backend\.slurm settings:\n {2}backend\.slurm\.workDir: Missing key/)
    const gridengine = trex(["run", path.join(fixtures, "toy.task.yaml"), "--backend", "gridengine", "--out", dir])
    assert.strictEqual(gridengine.status, 2)
    assert.match(gridengine.stderr, /invalid backend\.gridengine settings:\n {2}backend\.gridengine\.workDir: Missing key/)
    const docker = trex(["run", path.join(fixtures, "toy.task.yaml"), "--backend", "docker", "--out", dir])
    assert.strictEqual(docker.status, 2)
    assert.match(docker.stderr, /recipe\.image: the docker backend runs each trial in a container: name its image in recipe\.image or backend\.docker\.image/)
    assert.deepStrictEqual(fs.readdirSync(dir), [], "no run directory")
  })

  it("a mistyped key of a backend section gets the fix, with the section's path", async () => {
    const error = await Effect.runPromise(Effect.flip(BackendSettings.docker({ docker: { netwrok: "none", ssh: { privateKeyPth: "k", knownHostsPath: "h" } } }, "/tmp")))
    assert.strictEqual(error._tag, "InvalidInput")
    assert.match(error.message, /^ {2}backend\.docker\.netwrok: Expected no excess property; did you mean "network"\?$/m)
    assert.match(error.message, /^ {2}backend\.docker\.ssh\.privateKeyPth: Expected no excess property; did you mean "privateKeyPath"\?$/m)
  })

  it("backend.ssh.pollInterval is checked as a duration when the task is read, not when a trial first polls", async () => {
    const hosts = [{ host: "h", username: "u", privateKeyPath: "k", knownHostsPath: "kh" }]
    const error = await Effect.runPromise(Effect.flip(BackendSettings.ssh({ ssh: { remoteRoot: "/scratch", pollInterval: "500 ms", hosts } })))
    assert.strictEqual(error._tag, "InvalidInput")
    assert.match(error.message, /^ {2}backend\.ssh\.pollInterval: expected a duration such as "500 millis" .*, got "500 ms"$/m)
    const ok = await Effect.runPromise(BackendSettings.ssh({ ssh: { remoteRoot: "/scratch", pollInterval: "2 seconds", hosts } }))
    assert.strictEqual(ok.pollInterval, "2 seconds")
  })

  it("backend.ssh.hostRetryAfter and hostLostAfter (what the pool does with a host that is down) are durations passed to the backend", async () => {
    const hosts = [{ host: "h", username: "u", privateKeyPath: "k", knownHostsPath: "kh" }]
    const error = await Effect.runPromise(Effect.flip(BackendSettings.ssh({ ssh: { remoteRoot: "/scratch", hostLostAfter: "10 min", hosts } })))
    assert.match(error.message, /^ {2}backend\.ssh\.hostLostAfter: expected a duration such as "500 millis" .*, got "10 min"$/m)
    const ok = await Effect.runPromise(BackendSettings.ssh({ ssh: { remoteRoot: "/scratch", hostRetryAfter: "1 minute", hostLostAfter: "10 minutes", hosts } }))
    assert.deepStrictEqual([ok.hostRetryAfter, ok.hostLostAfter], ["1 minute", "10 minutes"])
  })

  it("bad flags", () => {
    assert.strictEqual(trex(["run", path.join(fixtures, "toy.task.yaml"), "--concurrency", "0"]).status, 2)
    assert.strictEqual(trex(["run", path.join(fixtures, "toy.task.yaml"), "--policy", "magic"]).status, 2)
    for (const flag of ["--max-trials", "--stagnation"]) {
      const zero = trex(["run", path.join(fixtures, "toy.task.yaml"), flag, "0"])
      assert.strictEqual(zero.status, 2)
      assert.match(zero.stderr, new RegExp(`^trex: ${flag} must be at least 1, got 0$`, "m"))
    }
    assert.strictEqual(trex(["status", "/nonexistent-run"]).status, 2)
    // a mistyped flag: the error and the fix on stderr, then the usage line, not the whole help page
    const typo = trex(["run", path.join(fixtures, "toy.task.yaml"), "--max-trial", "3"])
    assert.strictEqual(typo.status, 2)
    assert.strictEqual(typo.stdout, "")
    assert.match(typo.stderr, /Unrecognized flag: --max-trial[\s\S]*Did you mean this\?\s+--max-trials[\s\S]*usage: trex run \[flags\] <task-file>\n\(trex run --help lists every flag\)/)
  })
})

describe("trex CLI: the Node.js version, checked before anything is loaded", () => {
  it("an older Node.js than 22.19 gets a message naming both versions", () => {
    for (const old of ["20.20.2", "22.18.0", "18.0.0"]) {
      assert.strictEqual(NodeVersion.unsupported(old), `trex needs Node.js 22.19 or later; this is Node.js ${old}: install a newer one (https://nodejs.org)`)
    }
    for (const ok of ["22.19.0", "22.20.1", "23.0.0", "24.21.0"]) assert.isUndefined(NodeVersion.unsupported(ok), ok)
  })
})

describe("trex CLI: start-up loads no engine client", () => {
  it("importing @trex/cli resolves none of dockerode, ssh2 and the Kubernetes client; a Docker backend loads its own", () => {
    const script = `
      import { registerHooks } from "node:module"
      const seen = new Set()
      registerHooks({ resolve(specifier, context, next) { seen.add(specifier); return next(specifier, context) } })
      const engines = ["dockerode", "ssh2", "@kubernetes/client-node"]
      await import("@trex/cli")
      const atStart = engines.filter((e) => seen.has(e))
      const { Effect } = await import("effect")
      const { DockerBackend } = await import("@trex/executors")
      await Effect.runPromise(Effect.exit(Effect.scoped(DockerBackend.make({ root: process.argv[1], socketPath: "/nonexistent.sock", retryFor: "10 millis" }))))
      console.log(JSON.stringify({ atStart, afterDocker: engines.filter((e) => seen.has(e)) }))`
    const r = spawnSync(process.execPath, ["--conditions=@trex/source", "--input-type=module", "-e", script, tmp()], { cwd: root, encoding: "utf8", timeout: 60_000 })
    assert.strictEqual(r.status, 0, r.stderr)
    // dockerode's transport (docker-modem) brings ssh2 with it
    assert.deepStrictEqual(JSON.parse(r.stdout), { atStart: [], afterDocker: ["dockerode", "ssh2"] })
  })
})

describe("trex CLI: help", () => {
  it("--help shows each flag's default, the value the command uses", () => {
    const help = trex(["run", "--help"])
    assert.strictEqual(help.status, 0, help.stderr)
    assert.match(help.stdout, new RegExp(`--concurrency integer +experiments in flight at once \\(default ${Settings.defaults.concurrency}\\)`))
    assert.match(help.stdout, new RegExp(`--backend choice .*\\(default: the task file's backend\\.kind, else ${Settings.defaults.backend}\\)`))
    assert.match(help.stdout, /--out string +directory that holds run directories \(default trex-runs\)/)
    const bench = trex(["bench", "--help"])
    assert.match(bench.stdout, /--seeds integer +runs per method, the same seeds for every method \(default 20\)/)
    assert.match(bench.stdout, /--trials string +comma-separated trial counts at which regret is reported \(default 5,10,20,30\)/)
  })
})

const readJournal = (runDir: string) => Effect.runPromise(RunDir.readEntries(runDir))

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
    const status = JSON.parse(trex(["status", runDir, "--json"]).stdout)
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
    assert.include(trex(["status", runDir]).stdout, "\nAnalysis: Heuristic search over 3 parameters")
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
    assert.strictEqual(JSON.parse(trex(["status", runDir, "--json"]).stdout).counts.Succeeded, 3)
    // the flag wins: the recorded table's task has no trainer for local processes to run
    const local = trex(["run", path.join(root, "examples/recorded-table/task.yaml"), "--max-trials", "1", "--out", out, "--backend", "local"])
    assert.strictEqual(local.status, 2)
    assert.match(local.stderr, /--backend: the task replays a recorded table \(backend\.kind: simulator\) and declares no searchSpace of its own to run on local: leave out --backend/)
  })

  it("reuses results of earlier runs in --out only for the same trainer code, and not at all with --no-reuse", () => {
    const taskDir = tmp()
    for (const f of ["toy.task.yaml", "toy-job.mjs"]) fs.copyFileSync(path.join(fixtures, f), path.join(taskDir, f))
    const out = tmp()
    const env = { TREX_TOY_MS: "30" }
    const run = (...flags: ReadonlyArray<string>) => {
      const r = trex(["run", path.join(taskDir, "toy.task.yaml"), "--out", out, "--max-trials", "3", "--seed", "5", ...flags], env)
      assert.strictEqual(r.status, 0, r.stderr)
      const runDir = r.stdout.match(/run directory: (.*)/)![1]!
      return JSON.parse(trex(["status", runDir, "--json"]).stdout) as { reused: number; counts: { Succeeded: number } }
    }
    assert.strictEqual(run().reused, 0)
    assert.strictEqual(run().reused, 3, "the same task and code: the first run's three results are reused")
    // the task file beside the trainer is not trainer code: a changed budget keeps the results
    const taskFile = path.join(taskDir, "toy.task.yaml")
    fs.writeFileSync(taskFile, fs.readFileSync(taskFile, "utf8").replace("budget: { maxTrials: 8 }", "budget: { maxTrials: 9 }"))
    assert.isAbove(run().reused, 0, "the task file changed, the trainer did not")
    // the trainer changed: nothing carries over
    fs.appendFileSync(path.join(taskDir, "toy-job.mjs"), "\n// changed\n")
    assert.strictEqual(run().reused, 0, "the trainer changed")
    assert.strictEqual(run("--no-reuse").reused, 0, "--no-reuse")
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

  it("resume --max-trials gives a finished run a new trial budget, which later resumes keep", () => {
    const log = path.join(tmp(), "executions.log")
    const env = { TREX_TOY_MS: "30", TREX_TOY_LOG: log }
    const first = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "3"], env)
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    const more = trex(["resume", runDir, "--max-trials", "5"], env)
    assert.strictEqual(more.status, 0, more.stderr)
    const status = () => JSON.parse(trex(["status", runDir, "--json"]).stdout) as { budget: { limits: { maxTrials: number }; trials: number } }
    assert.deepStrictEqual([status().budget.trials, status().budget.limits.maxTrials], [5, 5])
    assert.strictEqual(trex(["resume", runDir], env).status, 0)
    assert.deepStrictEqual([status().budget.trials, status().budget.limits.maxTrials], [5, 5], "a plain resume keeps the new budget")
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
    const status = trex(["status", runDir])
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

  it("resume refuses a run whose trainer code changed or whose task folder is gone, saying what to do", () => {
    const taskDir = tmp()
    for (const f of ["toy.task.yaml", "toy-job.mjs"]) fs.copyFileSync(path.join(fixtures, f), path.join(taskDir, f))
    const first = trex(["run", path.join(taskDir, "toy.task.yaml"), "--out", tmp(), "--max-trials", "2"], { TREX_TOY_MS: "30" })
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    assert.strictEqual(trex(["resume", runDir], { TREX_TOY_MS: "30" }).status, 0, "unchanged: resumes")
    fs.writeFileSync(path.join(taskDir, "toy.task.yaml"), fs.readFileSync(path.join(taskDir, "toy.task.yaml"), "utf8").replace("maxTrials: 8", "maxTrials: 9"))
    assert.strictEqual(trex(["resume", runDir], { TREX_TOY_MS: "30" }).status, 0, "the task file is not trainer code")
    // nor is another task file put beside it (a variant to try), in YAML or JSON
    const variant = fs.readFileSync(path.join(taskDir, "toy.task.yaml"), "utf8").replace("name: toy", "name: toy-long").replace("maxTrials: 9", "maxTrials: 40")
    fs.writeFileSync(path.join(taskDir, "toy-long.task.yaml"), variant)
    fs.writeFileSync(path.join(taskDir, "toy-json.task.json"), JSON.stringify({ name: "toy-json", objective: "o", metric: { name: "score", direction: "maximize" } }))
    const besides = trex(["resume", runDir, "--max-trials", "3"], { TREX_TOY_MS: "30" })
    assert.strictEqual(besides.status, 0, `other task files are not trainer code: ${besides.stderr}`)
    // a configuration the trainer may read is: the run refuses to mix it in
    fs.writeFileSync(path.join(taskDir, "settings.yaml"), "learning_rate: 0.1\n")
    const configured = trex(["resume", runDir], { TREX_TOY_MS: "30" })
    assert.strictEqual(configured.status, 2, configured.stderr)
    assert.match(configured.stderr, /the trainer code under .* changed since this run started/)
    fs.rmSync(path.join(taskDir, "settings.yaml"))
    fs.appendFileSync(path.join(taskDir, "toy-job.mjs"), "\n// changed\n")
    const changed = trex(["resume", runDir], { TREX_TOY_MS: "30" })
    assert.strictEqual(changed.status, 2, changed.stderr)
    assert.match(changed.stderr, /the trainer code under .* changed since this run started \(a source file .* was edited, added or removed\): .*Restore the code to resume, or start a new run from the task file \(trex run .*toy\.task\.yaml\)/)
    fs.renameSync(taskDir, `${taskDir}-moved`)
    const gone = trex(["resume", runDir], { TREX_TOY_MS: "30" })
    assert.strictEqual(gone.status, 2, gone.stderr)
    assert.match(gone.stderr, /the task folder .* this run started from is gone \(moved or deleted\), and its trials run files from it: put it back, or start a new run/)
    assert.notMatch(gone.stderr, /\n\s+at /, "no stack trace")
  })

  it("a run whose journal is damaged says what still helps: a new run in the same folder reuses the results from before the damage", () => {
    const out = tmp()
    const run = (...flags: ReadonlyArray<string>) => trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--seed", "4", ...flags], { TREX_TOY_MS: "30" })
    const first = run("--max-trials", "3")
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    // damage the last entry (the run's end): everything before it is intact
    const db = new DatabaseSync(path.join(runDir, "journal.sqlite"))
    db.exec("UPDATE events SET payload = replace(payload, '\"at\"', '\"at \"') WHERE seq = (SELECT MAX(seq) FROM events)")
    const last = Number((db.prepare("SELECT MAX(seq) AS n FROM events").get() as { n: number }).n)
    db.close()
    const hint = `the results it journaled before entry ${last} are reused by a new run of the task in the same folder (trex run ${path.join(fixtures, "toy.task.yaml")} --out ${out})`
    // status shows what precedes the damage, and says where the damage is and what helps
    const status = trex(["status", runDir])
    assert.strictEqual(status.status, 0, status.stderr)
    assert.include(status.stdout, `entry ${last} fails its checksum`)
    assert.include(status.stdout, hint)
    assert.include(status.stdout, `Shown below: the ${last - 1} entries before the damage`)
    const [, ok, failed] = status.stdout.match(/Trials: (\d+) succeeded, (\d+) failed/)!
    assert.strictEqual(Number(ok) + Number(failed), 3, "the three trials journaled before the damage")
    assert.match(status.stdout, /State: stopped before it finished — it cannot be resumed from its damaged journal/, "its end was in the damaged entry")
    assert.notInclude(status.stdout, "trex resume", "no resume hint for a run resume refuses")
    const json = JSON.parse(trex(["status", runDir, "--json"]).stdout)
    assert.include(json.damage, `entry ${last} fails its checksum`)
    const report = trex(["report", runDir])
    assert.strictEqual(report.status, 0, report.stderr)
    assert.include(report.stderr, `The report shows the ${last - 1} entries before the damage`)
    assert.include(fs.readFileSync(path.join(runDir, "report.md"), "utf8"), `- Journal: `)
    // it cannot go on
    const resume = trex(["resume", runDir])
    assert.strictEqual(resume.status, 1)
    assert.include(resume.stderr, hint)
    const second = run("--max-trials", "1")
    assert.strictEqual(second.status, 0, second.stderr)
    const secondDir = second.stdout.match(/run directory: (.*)/)![1]!
    // (a damaged journal used to be passed over whole: nothing reused)
    assert.isAtLeast(JSON.parse(trex(["status", secondDir, "--json"]).stdout).reused, 1)
  })

  it("resume of a simulated run whose recorded table is gone names the table, not a change of code", () => {
    const taskDir = tmp()
    fs.copyFileSync(path.join(root, "bench/data/nmthpo_scratch_final.csv"), path.join(taskDir, "table.csv"))
    const text = fs.readFileSync(path.join(root, "bench/tasks/nmthpo-en-ja.yaml"), "utf8").replace(/table: .*/, "table: table.csv")
    fs.writeFileSync(path.join(taskDir, "task.yaml"), text)
    const first = trex(["run", path.join(taskDir, "task.yaml"), "--out", tmp(), "--max-trials", "2"])
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    fs.renameSync(path.join(taskDir, "table.csv"), path.join(taskDir, "table-old.csv"))
    const gone = trex(["resume", runDir, "--max-trials", "3"])
    assert.strictEqual(gone.status, 2, gone.stderr)
    assert.strictEqual(
      gone.stderr,
      `trex: the recorded table this run replays, ${path.join(taskDir, "table.csv")} (the task's backend.table), is gone (moved or deleted): ` +
        `put it back to resume, or start a new run from the task file (trex run ${path.join(taskDir, "task.yaml")})\n`
    )
    fs.renameSync(path.join(taskDir, "table-old.csv"), path.join(taskDir, "table.csv"))
    assert.strictEqual(trex(["resume", runDir, "--max-trials", "3"]).status, 0, "put back: resumes")
  })

  it("a journal damaged at its first entry, or truncated, is named once, with where the trials' files are", () => {
    const first = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "2"], { TREX_TOY_MS: "30" })
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    const copy = (name: string) => {
      const dir = path.join(tmp(), name)
      fs.cpSync(runDir, dir, { recursive: true })
      return dir
    }
    const atFirst = copy("first")
    const db = new DatabaseSync(path.join(atFirst, "journal.sqlite"))
    db.exec("UPDATE events SET payload = replace(payload, '\"at\"', '\"at \"') WHERE seq = 1")
    db.close()
    const truncated = copy("truncated")
    const file = path.join(truncated, "journal.sqlite")
    fs.truncateSync(file, 4096)
    for (const [dir, what] of [[atFirst, /entry 1 fails its checksum/], [truncated, /(malformed|not a readable trex journal|not a database)/]] as const) {
      for (const command of ["status", "report", "resume"]) {
        const r = trex([command, dir])
        assert.strictEqual(r.status, 1, `${command} ${dir}: ${r.stderr}`)
        assert.match(r.stderr, what)
        assert.include(r.stderr, `Nothing of the run can be read from it, so it cannot be shown or resumed; each trial's files (strategy.json, result.json, logs) are still in ${path.join(dir, "jobs")}`)
        assert.notMatch(r.stderr, /journal: journal|Error: |\n\s+at /, "said once, no stack trace")
      }
    }
    // a simulated run keeps no job folders: none are named
    const simulated = trex(["run", "bench/tasks/nmthpo-en-ja.yaml", "--out", tmp(), "--max-trials", "2"])
    assert.strictEqual(simulated.status, 0, simulated.stderr)
    const simulatedDir = simulated.stdout.match(/run directory: (.*)/)![1]!
    fs.truncateSync(path.join(simulatedDir, "journal.sqlite"), 4096)
    const noJobs = trex(["status", simulatedDir])
    assert.strictEqual(noJobs.status, 1, noJobs.stderr)
    assert.include(noJobs.stderr, "Nothing of the run can be read from it, so it cannot be shown or resumed, and it kept no job folders to read instead (a simulated run keeps none): start it again with `trex run`")
  })

  it("a search whose every trial fails exits 1 and says so", () => {
    const taskDir = tmp()
    fs.copyFileSync(path.join(fixtures, "toy-job.mjs"), path.join(taskDir, "toy-job.mjs"))
    const task = fs.readFileSync(path.join(fixtures, "toy.task.yaml"), "utf8")
      .replace("values: [plain, reversed, broken]", "values: [broken]")
      .replace("format: plain }", "format: broken }")
    assert.include(task, "format: broken }")
    const r = trex(["run", writeTask(taskDir, "toy.task.yaml", task), "--out", tmp(), "--max-trials", "2"], { TREX_TOY_MS: "30" })
    assert.strictEqual(r.status, 1, r.stderr)
    assert.match(r.stdout, /FAILED Crash/)
    // why a trial failed, in full: its strategy, its failure and its job's last log lines, from the job's folder
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    assert.include(r.stderr, `no trial succeeded (2 failed): their reasons are above and in ${path.join(runDir, "report.md")}; \`trex status ${runDir} --node <id>\` shows one in full`)
    const shown = trex(["status", runDir, "--node", "n2"])
    assert.strictEqual(shown.status, 0, shown.stderr)
    assert.match(shown.stdout, /^Trial n2 of run \S+: failed \(Crash\)$/m)
    assert.match(shown.stdout, /^Changed from (n1|the task's default strategy): .*training\./m)
    assert.match(shown.stdout, /^  data\.format = "broken"$/m)
    assert.match(shown.stdout, /^Timeline: proposed \S+ · job local n2 submitted \S+ · finished /m)
    assert.match(shown.stdout, /^Failure: Crash \(exit code 3\): /m)
    assert.match(shown.stdout, new RegExp(`^Log tail \\(${path.join(runDir, "jobs", "n2").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\):\n  \\| Traceback: the recipe cannot handle format=broken$`, "m"))
    const json = JSON.parse(trex(["status", runDir, "--node", "n2", "--json"]).stdout)
    assert.strictEqual(json.state, "Failed")
    assert.strictEqual(json.result.failure.kind, "Crash")
    assert.deepStrictEqual(json.logs, { source: path.join(runDir, "jobs", "n2"), tail: ["Traceback: the recipe cannot handle format=broken"] })
    assert.strictEqual(json.jobs.length, 1)
    const missing = trex(["status", runDir, "--node", "n7"])
    assert.strictEqual(missing.status, 2)
    assert.match(missing.stderr, /^trex: run \S+ has no trial "n7": its trials are n1 to n2 \(`trex status .*` shows its tree\)$/m)
  })

  it("a setup error that fails every trial alike stops the run after 3 with exit 1, naming it, the trials and how to go on; once mended, resume runs those strategies again first", async () => {
    const log = path.join(tmp(), "executions.log")
    const module = path.join(tmp(), "transformerz.py")
    const env = { TREX_TOY_MS: "30", TREX_TOY_LOG: log, TREX_TOY_NEEDS: module }
    const r = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "8", "--concurrency", "1"], env)
    assert.strictEqual(r.status, 1, r.stderr)
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    assert.strictEqual(fs.readFileSync(log, "utf8").trim().split("\n").length, 3, "3 trials, not the budget's 8")
    assert.include(
      r.stderr,
      "trex: 3 trials (n1, n2, n3) failed the same way, and none succeeded: Crash: exited with code 1 (ModuleNotFoundError: No module named 'transformerz')."
    )
    assert.include(r.stderr, `(\`trex status ${runDir} --node n1\` shows n1 in full, with its job's last log lines). Once mended: trex resume ${runDir}`)
    assert.notMatch(r.stderr, /\n\s+at /, "no stack trace")
    const stopped = JSON.parse(trex(["status", runDir, "--json"]).stdout) as { state: string; finishedReason?: string }
    assert.strictEqual(stopped.state, "finished")
    assert.match(stopped.finishedReason!, /^every trial failed the same way \(n1, n2, n3\): Crash: exited with code 1 \(ModuleNotFoundError/)
    // mended outside the task folder (a package installed): the same trainer code, so the run resumes
    fs.writeFileSync(module, "")
    const resumed = trex(["resume", runDir], env)
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const tree = ExperimentTree.fold((await Effect.runPromise(RunDir.readEntries(runDir))).map((e) => e.event))!.view
    const fingerprints = (ids: ReadonlyArray<string>) => ids.map((id) => tree.get(id)!.fingerprint)
    assert.deepStrictEqual(fingerprints(["n4", "n5", "n6"]), fingerprints(["n1", "n2", "n3"]), "their strategies again, first")
    assert.strictEqual(new Set(fingerprints(["n1", "n2", "n3"])).size, 3)
    assert.deepStrictEqual(["n4", "n5", "n6"].map((id) => tree.get(id)!.state._tag), ["Succeeded", "Succeeded", "Succeeded"])
    assert.strictEqual(tree.size, 8, "on to the budget")
    // --fail-fast 0 turns the stop off: the budget is spent, as before; a negative value is refused, naming the flag
    fs.rmSync(module)
    const off = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "4", "--fail-fast", "0"], env)
    assert.strictEqual(off.status, 1, off.stderr)
    assert.match(off.stderr, /no trial succeeded \(4 failed\)/)
    const bad = trex(["run", path.join(fixtures, "toy.task.yaml"), "--fail-fast", "-1"])
    assert.strictEqual(bad.status, 2)
    assert.match(bad.stderr, /--fail-fast must be 0 \(off\) or more, got -1/)
    const badResume = trex(["resume", runDir, "--fail-fast", "-2"])
    assert.strictEqual(badResume.status, 2)
    assert.match(badResume.stderr, /--fail-fast must be 0 \(off\) or more, got -2/)
  })

  it("a setup that breaks under a working run (a package removed after 3 trials) stops it after 6 alike in a row with exit 1, its best kept and printed; once mended, resume runs those strategies again first", async () => {
    const log = path.join(tmp(), "executions.log")
    const module = path.join(tmp(), "transformerz.py")
    fs.writeFileSync(module, "")
    const env = { TREX_TOY_MS: "30", TREX_TOY_LOG: log, TREX_TOY_NEEDS: module, TREX_TOY_BREAKS: "n3" }
    const r = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", tmp(), "--max-trials", "16", "--concurrency", "1"], env)
    assert.strictEqual(r.status, 1, r.stderr)
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    assert.strictEqual(fs.readFileSync(log, "utf8").trim().split("\n").length, 9, "3 that worked and 6 that failed, not the budget's 16")
    const stopped = JSON.parse(trex(["status", runDir, "--json"]).stdout) as { state: string; finishedReason?: string; best?: { id: string; score: number } }
    assert.strictEqual(stopped.state, "finished")
    assert.strictEqual(
      stopped.finishedReason,
      "the latest trials all failed the same way (n4, n5, n6, n7, n8, n9): Crash: exited with code 1 (ModuleNotFoundError: No module named 'transformerz')"
    )
    const best = stopped.best!
    assert.include(r.stdout, `Best: ${best.id} score=`, "the run's summary, its best among it, printed")
    assert.include(
      r.stderr,
      "trex: the latest 6 trials (n4, n5, n6, n7, n8, n9) failed the same way, one after another, after 3 had worked: Crash: exited with code 1 (ModuleNotFoundError: No module named 'transformerz')."
    )
    assert.include(r.stderr, `its best so far (${best.id}, score ${Number(best.score.toPrecision(4))}) kept`)
    assert.include(r.stderr, `(\`trex status ${runDir} --node n4\` shows n4 in full, with its job's last log lines). Once mended: trex resume ${runDir}`)
    assert.notMatch(r.stderr, /\n\s+at /, "no stack trace")
    // mended (the package installed again): the six strategies run again first, then the search goes on to its budget
    fs.writeFileSync(module, "")
    const resumed = trex(["resume", runDir], env)
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const tree = ExperimentTree.fold((await Effect.runPromise(RunDir.readEntries(runDir))).map((e) => e.event))!.view
    const fingerprints = (ids: ReadonlyArray<string>) => ids.map((id) => tree.get(id)!.fingerprint)
    assert.deepStrictEqual(fingerprints(["n10", "n11", "n12", "n13", "n14", "n15"]), fingerprints(["n4", "n5", "n6", "n7", "n8", "n9"]))
    for (const id of ["n10", "n11", "n12", "n13", "n14", "n15"]) {
      const n = tree.get(id)!
      assert.notInclude(n.state._tag === "Failed" ? n.state.result.failure?.logTail.join("\n") ?? "" : "", "transformerz", id)
    }
    assert.strictEqual(tree.size, 16, "on to the budget")
  })

  it.live("a researcher whose model refuses the key stops the run with exit 1, nothing exhausted, and says how to go on", () =>
    Effect.gen(function*() {
      const server = yield* Fake.make(() => Fake.error(401, "authentication_error", "invalid x-api-key"))
      const out = tmp()
      const r = yield* Effect.promise(() =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "run", path.join(fixtures, "toy.task.yaml"), "--researcher", "claude", "--out", out], {
            cwd: root,
            stdio: ["ignore", "pipe", "pipe"],
            env: { ...process.env, ANTHROPIC_API_KEY: "sk-wrong", ANTHROPIC_BASE_URL: server.url }
          })
          let stdout = ""
          let stderr = ""
          child.stdout.on("data", (d) => (stdout += d))
          child.stderr.on("data", (d) => (stderr += d))
          child.once("exit", (status) => resolve({ status, stdout, stderr }))
        })
      )
      assert.strictEqual(r.status, 1, r.stderr)
      const runDir = r.stdout.match(/run directory: (.*)/)![1]!
      assert.match(r.stderr, new RegExp(`trex: the researcher failed: .*invalid x-api-key.*; once it is mended \\(its key, model or network\\), continue with: trex resume ${runDir}`))
      // a refused key is not asked again: one request for the analysis, one for the first proposal
      assert.strictEqual(server.requests.length, 2, r.stderr)
      assert.notInclude(r.stdout, "WARN")
      const events = yield* RunDir.readEntries(runDir)
      assert.notInclude(events.map((e) => e.event._tag), "NodeExhausted")
      assert.notInclude(events.map((e) => e.event._tag), "NodeProposed")
    }), { timeout: 120_000 })

  it("a second controller on the same run is refused with a clear message", async () => {
    const out = tmp()
    const first = trex(["run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "2"], { TREX_TOY_MS: "30" })
    assert.strictEqual(first.status, 0, first.stderr)
    const runDir = first.stdout.match(/run directory: (.*)/)![1]!
    // hold the journal open for writing in this test process, as a running controller would
    const second = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const journal = yield* Journal.Journal
          // a trial whose job waits in its backend's queue, as the explorer journals it
          const proposed = (yield* journal.read()).map((e) => e.event).find((e) => e._tag === "NodeProposed")!
          const node = { ...proposed.node, id: "n9", fingerprint: `${proposed.node.fingerprint}-n9` }
          yield* journal.append([
            JournalEvent.make("NodeProposed", { node, at: 1 }),
            JournalEvent.make("NodeAdmitted", { nodeId: "n9", estimate: Cost.zero, at: 1 }),
            JournalEvent.make("JobSubmitted", { nodeId: "n9", job: { backend: "local", id: "n9", data: {} }, at: 1 }),
            JournalEvent.make("JobState", { nodeId: "n9", state: "Pending", reason: "Priority", at: 1 })
          ])
          // status tells a run being written from a stopped one, and why a trial waits
          const status = JSON.parse(trex(["status", runDir, "--json"]).stdout)
          assert.strictEqual(status.state, "running")
          assert.strictEqual(status.writerPid, process.pid)
          assert.strictEqual(status.nodes.find((n: { id: string }) => n.id === "n9")?.waiting, "Priority")
          // a live run's clock runs to now, not to its last event (these were stamped at the epoch)
          assert.isAbove(status.budget.elapsedSeconds, 0)
          const text = trex(["status", runDir]).stdout
          assert.strictEqual(status.writerHost, os.hostname())
          assert.include(text, `State: running (controller: process ${process.pid}; \`trex status ${runDir} --follow\` follows it, \`trex stop ${runDir}\` stops it)`)
          assert.include(text, "n9 waiting (Priority)")
          return yield* Effect.promise(() =>
            new Promise<{ status: number | null; stderr: string }>((resolve) => {
              const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "resume", runDir], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
              let stderr = ""
              child.stderr.on("data", (d) => (stderr += d))
              child.once("exit", (status) => resolve({ status, stderr }))
            })
          )
        }).pipe(Effect.provide(Journal.Journal.layerSqlite(path.join(runDir, "journal.sqlite"))))
      )
    )
    assert.strictEqual(second.status, 2)
    assert.match(second.stderr, new RegExp(`run is in use by process ${process.pid}`))
    assert.notMatch(second.stderr, /\n\s+at /)
  })

  it("a run stopped before it was recorded (a journal with no events): status and resume say so and exit 2", () => {
    for (const setup of ["no table", "empty table"]) {
      const runDir = path.join(tmp(), "20261203-000000-stopped")
      fs.mkdirSync(runDir)
      const file = path.join(runDir, "journal.sqlite")
      if (setup === "no table") {
        // what a controller killed between creating the journal and its first migration leaves
        const db = new DatabaseSync(file)
        db.exec("PRAGMA journal_mode = WAL")
        db.close()
      } else {
        Effect.runSync(Effect.scoped(Effect.provide(Effect.asVoid(Journal.Journal), Journal.Journal.layerSqlite(file))))
      }
      for (const command of ["status", "resume"]) {
        const r = trex([command, runDir])
        assert.strictEqual(r.status, 2, `${setup}, ${command}: ${r.stderr}`)
        assert.match(r.stderr, /was stopped before it started \(its journal holds no events\).*start it again with `trex run`/)
        assert.notMatch(r.stderr, /\n\s+at /, "no stack trace")
      }
      // job folders beside an empty journal: it was emptied, not stopped early
      fs.mkdirSync(path.join(runDir, "jobs", "n1"), { recursive: true })
      const emptied = trex(["status", runDir])
      assert.strictEqual(emptied.status, 2, emptied.stderr)
      assert.match(emptied.stderr, /holds no events, yet .*jobs holds 1 job folder: the journal was emptied or replaced after the run started/)
    }
  })

  it("kill -9 mid-run, then `trex resume`: finishes without repeating a finished trial", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "10"], {
      cwd: root,
      env: { ...process.env, TREX_TOY_LOG: log, TREX_TOY_MS: "600" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    child.stdout.on("data", (d) => (stdout += d))
    // wait until three trials have finished, then kill the controller outright
    const deadline = Date.now() + 60_000
    while ((stdout.match(/^done /gm) ?? []).length < 3) {
      if (Date.now() > deadline) throw new Error(`no progress: ${stdout}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    child.kill("SIGKILL")
    await new Promise((r) => child.once("exit", r))
    const runDir = stdout.match(/run directory: (.*)/)![1]!
    // what the controller printed as finished before it died: node id and what it reported
    const printed = new Map([...stdout.matchAll(/^done\s+(\S+) (.*?)  \| best/gm)].map((m) => [m[1]!, m[2]!]))
    assert.isAtLeast(printed.size, 3)
    const before = await readJournal(runDir)
    const finishedBefore = new Set(before.flatMap((e) => (e.event._tag === "NodeFinished" ? [e.event.nodeId] : [])))
    // finishes are journaled with a group commit (within 20 ms), so the journal holds those
    // printed, or all but the last few; none the controller did not print
    for (const id of finishedBefore) assert.isTrue(printed.has(id), `${id} journaled as finished but never printed`)
    assert.notInclude(before.map((e) => e.event._tag), "RunFinished")
    // a copy of the killed run that left its journal.sqlite-wal behind has none of its events (none were
    // folded into journal.sqlite yet): status names the file to copy back, and with it, shows the run
    const copy = path.join(tmp(), "copy")
    fs.mkdirSync(copy)
    for (const f of fs.readdirSync(runDir)) if (!f.startsWith("journal.sqlite-")) fs.cpSync(path.join(runDir, f), path.join(copy, f), { recursive: true })
    const walLeft = trex(["status", copy])
    assert.strictEqual(walLeft.status, 2, walLeft.stdout + walLeft.stderr)
    assert.include(
      walLeft.stderr,
      `or the run was copied or moved without its journal.sqlite-wal, where a controller that was killed (or is still running) keeps its latest events: ` +
        `if so, copy that file back beside journal.sqlite from where the run was, and \`trex status ${copy}\` shows the run. Else the run cannot be shown or resumed`
    )
    fs.copyFileSync(path.join(runDir, "journal.sqlite-wal"), path.join(copy, "journal.sqlite-wal"))
    const walBack = trex(["status", copy])
    assert.strictEqual(walBack.status, 0, walBack.stderr)
    assert.match(walBack.stdout, /State: stopped before it finished/)

    const resumed = trex(["resume", runDir], { TREX_TOY_LOG: log, TREX_TOY_MS: "100" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const after = await readJournal(runDir)
    const tree = ExperimentTree.fold(after.map((e) => e.event))!
    assert.strictEqual(tree.view.size, 10)
    for (const n of tree.view.nodes()) assert.oneOf(n.state._tag, ["Succeeded", "Failed"])
    // the analysis journaled before the kill is the run's: the resumed controller did not analyse again
    assert.strictEqual(after.filter((e) => e.event._tag === "AnalysisCompleted").length, 1)
    const executed = fs.readFileSync(log, "utf8").trim().split("\n")
    assert.strictEqual(new Set(executed).size, executed.length, `a job ran twice: ${executed.join(",")}`)
    assert.strictEqual(executed.length, 10, `${executed.join(",")} vs ${[...tree.view.nodes()].map((n) => `${n.id}:${n.state._tag}:${JSON.stringify((n.state as any).result?.reusedFrom ?? (n.state as any).result?.failure?.message)}`).join(" ")}`)
    // every trial printed as finished before the kill (journaled or not yet) kept its outcome and
    // score: the ones not yet journaled were recovered from their job directories, not re-run
    for (const [id, what] of printed) {
      const node = tree.view.get(id)!
      if (what.startsWith("FAILED")) assert.strictEqual(node.state._tag, "Failed", id)
      else {
        assert.strictEqual(node.state._tag, "Succeeded", id)
        assert.strictEqual(`score=${Number(ExperimentNode.score(node)!.toPrecision(4))}`, what.split(" ")[0], id)
      }
    }
  })

  /**
   * `trex run` of the toy task (or `task`) in the background, until two trials are submitted and
   * `jobs` of their jobs have started (two, by default).
   */
  const runUntilTwoRunning = async (out: string, log: string, options: { readonly task?: string; readonly jobs?: number; readonly env?: Record<string, string> } = {}) => {
    const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "run", options.task ?? path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "6"], {
      cwd: root,
      env: { ...process.env, TREX_TOY_LOG: log, TREX_TOY_MS: "3000", ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const output = { stdout: "", stderr: "" }
    child.stdout.on("data", (d) => (output.stdout += d))
    child.stderr.on("data", (d) => (output.stderr += d))
    const exited = new Promise<number | null>((r) => child.once("exit", (c) => r(c)))
    const deadline = Date.now() + 60_000
    const jobs = options.jobs ?? 2
    while ((output.stdout.match(/^start /gm) ?? []).length < 2 || !fs.existsSync(log) || fs.readFileSync(log, "utf8").trim().split("\n").length < jobs) {
      if (Date.now() > deadline) throw new Error(`no progress: ${output.stdout}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    return { child, output, exited }
  }
  const executions = (log: string) => fs.readFileSync(log, "utf8").trim().split("\n")

  it("Ctrl-C once: no new trial starts, the running ones finish and are kept; `trex resume` runs no trial twice", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    const { child, exited, output } = await runUntilTwoRunning(out, log)
    const running = executions(log)
    child.kill("SIGINT")
    assert.strictEqual(await exited, 130, output.stderr)
    assert.match(output.stderr, /Ctrl-C: stopping\. No new trials start; the running ones finish and are kept \(those still waiting in the backend's queue are withdrawn: they run on resume\)\. Press Ctrl-C again to cancel them now/)
    assert.match(output.stdout, /stopped; continue with: trex resume /)
    const runDir = output.stdout.match(/run directory: (.*)/)![1]!
    // the two running trials finished with their results, and nothing else started
    assert.deepStrictEqual(executions(log), running)
    const stopped = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    for (const node of running) assert.strictEqual(stopped.view.get(node)?.state._tag, "Succeeded", node)
    assert.include(trex(["status", runDir]).stdout, `State: finished (stopped by request) — \`trex resume ${runDir}\` continues it`)
    const resumed = trex(["resume", runDir], { TREX_TOY_LOG: log, TREX_TOY_MS: "50" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const all = executions(log)
    assert.strictEqual(new Set(all).size, all.length, `a trial ran twice: ${all.join(",")}`)
    const tree = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    assert.strictEqual(tree.view.size, 6)
    for (const n of tree.view.nodes()) assert.oneOf(n.state._tag, ["Succeeded", "Failed"])
  })

  it("`trex stop` from another shell stops a run as a first SIGTERM does (running trials finish); with --now --wait as a second (cancelled), then shows it; a run nobody runs, or a folder that is no run, is said so", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    // trials long enough that none ends between the look at what runs and the stop
    const { exited, output } = await runUntilTwoRunning(out, log, { env: { TREX_TOY_MS: "10000" } })
    const runDir = output.stdout.match(/run directory: (.*)/)![1]!
    const running = executions(log)
    const stop = trex(["stop", runDir])
    assert.strictEqual(stop.status, 0, stop.stderr)
    assert.match(stop.stdout, /^asked the run's controller \(process \d+\) to stop: it starts no new trial, and lets the running ones finish/)
    assert.strictEqual(await exited, 143, output.stderr)
    assert.match(output.stderr, /SIGTERM: stopping\. No new trials start/)
    // the running trials finished with their results, and nothing else started
    assert.deepStrictEqual(executions(log), running)
    const drained = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    for (const node of running) assert.strictEqual(drained.view.get(node)?.state._tag, "Succeeded", node)
    const idle = trex(["stop", runDir])
    assert.strictEqual(idle.status, 0, idle.stderr)
    assert.include(idle.stdout, `the run in ${runDir} is not running: it finished (stopped by request); nothing to stop`)
    // resumed, two trials running again: stopped now, waited for
    const resumed = spawn(process.execPath, ["--conditions=@trex/source", bin, "resume", runDir], {
      cwd: root,
      env: { ...process.env, TREX_TOY_LOG: log, TREX_TOY_MS: "20000" },
      stdio: ["ignore", "ignore", "pipe"]
    })
    const resumedExit = new Promise<number | null>((r) => resumed.once("exit", (c) => r(c)))
    const deadline = Date.now() + 60_000
    while (executions(log).length < running.length + 2) {
      if (Date.now() > deadline) throw new Error(`the resumed run started no trials: ${executions(log).join(",")}`)
      await new Promise((r) => setTimeout(r, 50))
    }
    const now = trex(["stop", runDir, "--now", "--wait"])
    assert.strictEqual(now.status, 0, now.stderr)
    assert.match(now.stdout, /^the run's controller \(process \d+\) has stopped\./)
    assert.match(now.stdout, /State: stopped before it finished — `trex resume .*` continues it \(2 trials were in flight/)
    assert.strictEqual(await resumedExit, 143)
    const cancelled = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    assert.strictEqual([...cancelled.view.nodes()].filter((n) => !ExperimentNode.isFinished(n)).length, 2)
    const notARun = trex(["stop", tmp()])
    assert.strictEqual(notARun.status, 2)
    assert.match(notARun.stderr, /is not a trex run directory \(no journal\.sqlite\)/)
  })

  it("SIGTERM (as Ctrl-C once) withdraws a trial whose job waits for a GPU: it does not start, exit 143, and it runs on resume", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    // one GPU, two trials in flight that need one each: the second waits in the local backend's queue
    const taskDir = tmp()
    fs.copyFileSync(path.join(fixtures, "toy-job.mjs"), path.join(taskDir, "toy-job.mjs"))
    const text = fs.readFileSync(path.join(fixtures, "toy.task.yaml"), "utf8").replace("resources: { cpus: 1,", "resources: { cpus: 1, gpus: 1,")
    assert.include(text, "gpus: 1")
    const task = writeTask(taskDir, "toy.task.yaml", text)
    const { child, exited, output } = await runUntilTwoRunning(out, log, { task, jobs: 1, env: { CUDA_VISIBLE_DEVICES: "0" } })
    const running = executions(log)
    assert.strictEqual(running.length, 1)
    child.kill("SIGTERM")
    assert.strictEqual(await exited, 143, output.stderr)
    assert.match(output.stderr, /SIGTERM: stopping\. .* Signal again to cancel them now/)
    const runDir = output.stdout.match(/run directory: (.*)/)![1]!
    // the running trial finished; the waiting one never started and is left for resume
    assert.deepStrictEqual(executions(log), running)
    const stopped = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    assert.strictEqual(stopped.view.get(running[0]!)?.state._tag, "Succeeded")
    const waiting = [...stopped.view.nodes()].filter((n) => !ExperimentNode.isFinished(n)).map((n) => n.id)
    assert.strictEqual(waiting.length, 1, "one trial was withdrawn")
    assert.include(output.stdout, `wait   ${waiting[0]}: no free slot or GPU`, "the live view said why it waited")
    assert.include(output.stdout, `finished: stopped by request; in flight, to run on resume: ${waiting[0]}`)
    const status = trex(["status", runDir]).stdout
    assert.include(status, `State: finished (stopped by request) — \`trex resume ${runDir}\` continues it (it runs the trial withdrawn from the backend's queue first)`)
    // its withdrawal was journaled: the stopped run shows it, and `--json` says so
    assert.include(status, `${waiting[0]} withdrawn (runs on resume)`)
    const json = JSON.parse(trex(["status", runDir, "--json"]).stdout) as { nodes: Array<{ id: string; waiting?: string; withdrawn?: boolean }> }
    const node = json.nodes.find((n) => n.id === waiting[0])!
    assert.isTrue(node.withdrawn)
    assert.isUndefined(node.waiting, "a stopped run's waits are not news")
    // the reports say so too: the Markdown one counts it and says how to go on; the HTML one draws it stopped
    const md = fs.readFileSync(path.join(runDir, "report.md"), "utf8")
    assert.match(md, /- State: finished — stopped by request \(`trex resume` on its run directory continues it\)/)
    assert.match(md, /- Trials: .*, 1 interrupted/)
    const html = fs.readFileSync(trex(["report", runDir, "--html"]).stdout.trim(), "utf8")
    assert.include(html, "finished: stopped by request (trex resume runs the trials it had in flight)")
    const start = html.indexOf(`id="trex-data">`) + `id="trex-data">`.length
    const drawn = JSON.parse(html.slice(start, html.indexOf("</script>", start))).nodes as Array<{ id: string; state: string }>
    assert.strictEqual(drawn.find((n) => n.id === waiting[0])?.state, "Interrupted")
    const resumed = trex(["resume", runDir], { TREX_TOY_LOG: log, TREX_TOY_MS: "50", CUDA_VISIBLE_DEVICES: "0" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const all = executions(log)
    assert.strictEqual(new Set(all).size, all.length, `a trial ran twice: ${all.join(",")}`)
    // the withdrawn trial is submitted afresh before any new one: it gets the GPU first
    assert.strictEqual(all[running.length], waiting[0], all.join(","))
    const tree = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    assert.strictEqual(tree.view.size, 6)
    for (const n of tree.view.nodes()) assert.oneOf(n.state._tag, ["Succeeded", "Failed"])
  })

  it("output that goes away (`trex run | head`) stops the run gently, as a first SIGTERM: exit 141, nothing lost, resumable", async () => {
    const out = tmp()
    const child = spawn(process.execPath, ["--conditions=@trex/source", bin, "run", path.join(fixtures, "toy.task.yaml"), "--out", out, "--max-trials", "6"], {
      cwd: root,
      env: { ...process.env, TREX_TOY_MS: "300" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stderr.on("data", (d) => (stderr += d))
    // the reader takes the first line, then goes away, as `head -1` does
    child.stdout.once("data", (d) => {
      stdout += d
      child.stdout.destroy()
    })
    const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)))
    assert.strictEqual(code, 141, stderr)
    assert.notMatch(stderr, /EPIPE|\n\s+at /, "no stack trace")
    assert.match(stderr, /output closed: stopping\. No new trials start/)
    const runDir = stdout.match(/run directory: (.*)/)![1]!
    assert.include(stderr, `trex: stopped; continue with: trex resume ${runDir}`)
    assert.include(trex(["status", runDir]).stdout, "State: finished (stopped by request)")
    const resumed = trex(["resume", runDir], { TREX_TOY_MS: "30" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    assert.include(resumed.stdout, "State: finished (budget: maxTrials)")
  })

  it("output and errors that go away together (`trex run 2>&1 | head`) stop the run as gently: exit 141, lock released, resumable", async () => {
    const out = tmp()
    const cmd = `"${process.execPath}" --conditions=@trex/source "${bin}" run "${path.join(fixtures, "toy.task.yaml")}" --out "${out}" --max-trials 6 2>&1 | head -1; echo "exit \${PIPESTATUS[0]}" >&2`
    const r = spawnSync("bash", ["-c", cmd], { cwd: root, encoding: "utf8", env: { ...process.env, TREX_TOY_MS: "300" }, timeout: 60_000 })
    const runDir = r.stdout.match(/run directory: (.*)/)![1]!
    assert.strictEqual(r.stderr.trim(), "exit 141")
    assert.isFalse(fs.existsSync(path.join(runDir, "journal.sqlite.lock.pid")), "the controller closed its journal")
    assert.include(trex(["status", runDir]).stdout, "State: finished (stopped by request)")
    assert.isTrue(fs.existsSync(path.join(runDir, "report.md")))
    const resumed = trex(["resume", runDir], { TREX_TOY_MS: "30" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    assert.include(resumed.stdout, "State: finished (budget: maxTrials)")
  })

  it("Ctrl-C, then SIGTERM, stops at once: running jobs cancelled, exit 143, journal consistent, and `trex resume` carries on", async () => {
    const out = tmp()
    const log = path.join(out, "executions.log")
    const { child, exited, output } = await runUntilTwoRunning(out, log)
    child.kill("SIGINT")
    const deadline = Date.now() + 10_000
    while (!output.stderr.includes("Ctrl-C: stopping") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    child.kill("SIGTERM")
    const code = await exited
    assert.strictEqual(code, 143)
    const stdout = output.stdout
    assert.match(stdout, /stopped, running trials cancelled; continue with: trex resume /)
    const runDir = stdout.match(/run directory: (.*)/)![1]!
    // the running jobs were cancelled: no job process is left (a zombie its supervisor has not
    // reaped yet counts as gone; the kill may take a moment to land)
    let checked = 0
    for (const node of fs.readdirSync(path.join(runDir, "jobs"))) {
      const pidFile = path.join(runDir, "jobs", node, "pid")
      if (!fs.existsSync(pidFile)) continue
      const { pid } = JSON.parse(fs.readFileSync(pidFile, "utf8")) as { pid: number }
      const deadline = Date.now() + 15_000
      while (!gone(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      assert.isTrue(gone(pid), `job ${node} (pid ${pid}) still runs 15 s after Ctrl-C`)
      checked++
    }
    assert.isAbove(checked, 0, "jobs had started when Ctrl-C came")
    assert.isFalse(fs.existsSync(path.join(runDir, "journal.sqlite.lock.pid")), "the lock is released")
    // status shows the cancelled trials as interrupted (resume runs them again), not as running
    const status = trex(["status", runDir])
    assert.strictEqual(status.status, 0, status.stderr)
    assert.match(status.stdout, /State: stopped before it finished — `trex resume .*` continues it \(2 trials were in flight: it reattaches to the jobs that still run, and runs the others again\)/)
    assert.match(status.stdout, /, 2 interrupted/)
    assert.strictEqual((status.stdout.match(/ interrupted \(running\)/g) ?? []).length, 2)
    assert.notMatch(status.stdout, / running$/m)
    assert.strictEqual(JSON.parse(trex(["status", runDir, "--json"]).stdout).state, "stopped")
    const resumed = trex(["resume", runDir], { TREX_TOY_LOG: log, TREX_TOY_MS: "50" })
    assert.strictEqual(resumed.status, 0, resumed.stderr)
    const tree = ExperimentTree.fold((await readJournal(runDir)).map((e) => e.event))!
    assert.strictEqual(tree.view.size, 6)
    for (const n of tree.view.nodes()) assert.oneOf(n.state._tag, ["Succeeded", "Failed"])
  })
})

describe("the trainer-code fingerprint", () => {
  const task = (command: ReadonlyArray<string>) => Schema.decodeUnknownSync(Task.Task)({ name: "t", objective: "o", metric: { name: "m", direction: "maximize" }, recipe: { command } })

  it("counts a file the command names whatever its extension, and nothing inside a run directory under the task folder", () => {
    const dir = tmp()
    fs.writeFileSync(path.join(dir, "train"), "#!/bin/sh\necho 1\n")
    fs.writeFileSync(path.join(dir, "lib.py"), "x = 1\n")
    const t = task(["{taskDir}/train"])
    const before = codeFingerprint(t, dir)
    assert.isString(before)
    // results of runs kept in the task folder (any --out): a run directory holds a journal.sqlite
    fs.mkdirSync(path.join(dir, "results", "run1", "jobs", "n1"), { recursive: true })
    fs.writeFileSync(path.join(dir, "results", "run1", "journal.sqlite"), "")
    fs.writeFileSync(path.join(dir, "results", "run1", "jobs", "n1", "result.json"), "{}")
    assert.strictEqual(codeFingerprint(t, dir), before, "a run's files are not code")
    fs.writeFileSync(path.join(dir, "train"), "#!/bin/sh\necho 2\n")
    assert.notStrictEqual(codeFingerprint(t, dir), before, "the script without an extension changed")
    const edited = codeFingerprint(t, dir)
    fs.writeFileSync(path.join(dir, "lib.py"), "x = 2\n")
    assert.notStrictEqual(codeFingerprint(t, dir), edited, "a source file beside it changed")
  })
})
