// The trex CLI as a user runs it: bad input, the Node.js version, start-up, help, the trainer-code fingerprint.
// Its runs are in CliRuns.test.ts, CliResume.test.ts and CliSignals.test.ts: files of their own, which vitest runs side by side.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Task } from "@trex/core"
import { Effect, Schema } from "effect"
import * as BackendSettings from "../src/BackendSettings.ts"
import { codeFingerprint } from "../src/internal/codeFingerprint.ts"
import * as NodeVersion from "../src/nodeVersion.ts"
import * as Settings from "../src/Settings.ts"
import { bin, fixtures, root, tmp, trex, writeTask } from "./support/cli.ts"

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

  it("backend.ssh hosts may give only a host (a ~/.ssh/config alias) and passphraseEnv; backend.docker.ssh takes passphraseEnv", async () => {
    const ok = await Effect.runPromise(BackendSettings.ssh({ ssh: { remoteRoot: "/scratch", hosts: [{ host: "gpu1", passphraseEnv: "GPU1_KEY_PASSPHRASE" }] } }))
    assert.deepStrictEqual(ok.hosts, [{ host: "gpu1", passphraseEnv: "GPU1_KEY_PASSPHRASE" }])
    const docker = await Effect.runPromise(BackendSettings.docker({ docker: { ssh: { privateKeyPath: "/k", knownHostsPath: "/kh", passphraseEnv: "P" } } }, "/tmp"))
    assert.deepStrictEqual(docker.ssh, { privateKeyPath: "/k", knownHostsPath: "/kh", passphraseEnv: "P" })
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
    // a value that is no number at all: what the flag takes, as its help says (not "a string representing a finite number")
    for (const [flag, value, takes] of [["--concurrency", "two", "an integer"], ["--gpu-hours", "lots", "a number"]] as const) {
      const bad = trex(["run", path.join(fixtures, "toy.task.yaml"), flag, value])
      assert.strictEqual(bad.status, 2)
      assert.include(bad.stderr, `Invalid value for flag ${flag}: "${value}". Expected ${takes}\n`)
    }
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
    assert.match(help.stdout, /--model-max-retries integer .*after its first attempt \(default 4; 0: none\)\n/)
    // resume's flags default to the run's: none of them also shows run's default as its own
    const resume = trex(["resume", "--help"])
    assert.strictEqual(resume.status, 0, resume.stderr)
    assert.deepStrictEqual(resume.stdout.split("\n").filter((l) => /\(default[: ].*\(default[: ]/.test(l)), [])
    assert.match(resume.stdout, /--model-max-retries integer .*for this session \(default: the run's\) \(0: none\)\n/)
    const bench = trex(["bench", "--help"])
    assert.match(bench.stdout, /--seeds integer +runs per method, the same seeds for every method \(default 20\)/)
    assert.match(bench.stdout, /--trials string +comma-separated trial counts at which regret is reported \(default 5,10,20,30\)/)
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
