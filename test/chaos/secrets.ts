/**
 * Campaign 4, secrets and isolation. (a) `trex run` with `ANTHROPIC_API_KEY=sk-ant-test-<random>`
 * in the controller's environment; (b) an embedded run with Claude on a local Messages API
 * (its key) and a `Redacted` job secret given through the template executor's `env`. Then
 * every artifact is scanned for the secrets' values: the journal's bytes, every file under the
 * run directories, report.md/report.html, `trex status` output, and each job's environment (the
 * job writes its variable names and a SHA-256 of each value, never a value). Also: strategy
 * values with shell syntax never run (argv everywhere), artifact paths with `..` in result.json
 * are not followed, and job files with `..` are refused by the backend.
 */
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Backend, Strategy } from "@trex/core"
import type { Researcher } from "@trex/core"
import { LocalBackend } from "@trex/executors"
import { Effect, Exit, Redacted } from "effect"
import { loadTask, runEmbedded } from "./embedded.ts"
import * as FakeModel from "./fakeModel.ts"
import { campaign, type CampaignOptions, chaosTask, runDirOf, tmpDir, trex } from "./lib.ts"

const files = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name))

/** Files under `dir` holding any of `secrets` (raw bytes). */
const scan = (dir: string, secrets: ReadonlyArray<string>): Array<string> =>
  files(dir).filter((f) => {
    const bytes = fs.readFileSync(f)
    return secrets.some((s) => bytes.includes(s))
  })

const sha = (s: string) => createHash("sha256").update(s).digest("hex")

/** Job directories whose env.json shows `name`, or any value hashing like `secret`. */
const jobEnvs = (runDir: string, name: string, secret: string) => {
  let jobs = 0
  let withName = 0
  let withValue = 0
  const jobsDir = path.join(runDir, "jobs")
  for (const job of fs.existsSync(jobsDir) ? fs.readdirSync(jobsDir) : []) {
    const file = path.join(jobsDir, job, "env.json")
    if (!fs.existsSync(file)) continue
    jobs++
    const env = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, string>
    if (name in env) withName++
    if (Object.values(env).includes(sha(secret))) withValue++
  }
  return { jobs, withName, withValue }
}

const INJECTIONS = ["$(touch {f})", "`touch {f}`", "x; touch {f}", "x && touch {f} #", "'; touch {f}; '", "\"$(touch {f})\"", "x\ntouch {f}"]

/** Run the campaign. */
export const run = (options: CampaignOptions) =>
  campaign("secrets", options, async (findings) => {
    const apiKey = `sk-ant-test-${randomBytes(12).toString("hex")}`
    const modelKey = `sk-ant-test-${randomBytes(12).toString("hex")}`
    const jobSecret = `hf_${randomBytes(16).toString("hex")}`
    const secrets = [apiKey, modelKey, jobSecret]

    // (a) the CLI with the key in the controller's environment
    const out = tmpDir("secrets-cli")
    const cliEnv = { ANTHROPIC_API_KEY: apiKey, TREX_CHAOS_ENV_DUMP: "1", TREX_CHAOS_MS: "30" }
    const r = trex(["run", chaosTask, "--max-trials", options.quick ? "3" : "8", "--out", out], cliEnv)
    const runDir = runDirOf(r.stdout)
    if (r.status !== 0 || runDir === undefined) throw new Error(`trex run failed: ${r.stderr}`)
    const outputs = [r.stdout, r.stderr]
    for (const args of [["status", runDir], ["status", runDir, "--json"], ["report", runDir], ["report", runDir, "--html"]]) {
      const s = trex(args, { ANTHROPIC_API_KEY: apiKey })
      outputs.push(s.stdout, s.stderr)
    }
    const cliEnvs = jobEnvs(runDir, "ANTHROPIC_API_KEY", apiKey)
    if (cliEnvs.withName > 0) {
      findings.push(`${cliEnvs.withName} of ${cliEnvs.jobs} jobs got the controller's ANTHROPIC_API_KEY (see ${runDir}/jobs/*/env.json): the local backend passes its whole environment to jobs`)
    }

    // (b) embedded: Claude on a local server with its key, a Redacted secret for the jobs, and
    // strategies whose string fields hold shell syntax
    const pwnedDir = tmpDir("secrets-pwned")
    const marker = (i: number) => path.join(pwnedDir, `pwned-${i}`)
    const server = await FakeModel.start(() => undefined)
    const embeddedDir = path.join(tmpDir("secrets-embedded"), "run")
    let injected = 0
    try {
      const base = await loadTask("chaos.task.yaml")
      await runEmbedded({
        task: { ...base, budget: { maxTrials: options.quick ? 3 : 6 } },
        runDir: embeddedDir,
        claude: { url: server.url, apiKey: modelKey, timeoutMs: 5000 },
        env: { HF_TOKEN: Redacted.make(jobSecret), TREX_CHAOS_ENV_DUMP: "1", TREX_CHAOS_MS: "30" }
      })
      // shell syntax in every string field a strategy has, through the same path
      const n = INJECTIONS.length
      let k = 0
      const researcher: Researcher.ResearcherShape = {
        name: "chaos-shell",
        analyze: () => Effect.succeed({ summary: "", metricNotes: "", dataNotes: "", risks: [], notes: {} }),
        propose: () =>
          Effect.sync(() => {
            if (k >= n) return []
            const i = k++
            const s = INJECTIONS[i]!.replaceAll("{f}", marker(i))
            injected++
            return [{
              strategy: Strategy.decodeSync({
                data: { sources: [{ name: s, split: s, config: s }], format: s },
                training: { learningRate: 0.001 * (i + 1), epochs: 1, batchSize: 8, extra: { cmd: s } },
                evaluation: { splits: [s], description: s },
                rationale: s
              })
            }]
          }),
        distill: () => Effect.succeed([])
      }
      await runEmbedded({ task: { ...base, budget: { maxTrials: n } }, runDir: path.join(tmpDir("secrets-shell"), "run"), researcher })
    } finally {
      await server.close()
    }
    const created = fs.readdirSync(pwnedDir).length
    const embeddedEnvs = jobEnvs(embeddedDir, "HF_TOKEN", jobSecret)

    // artifact paths with `..` in result.json, and job files with `..`, on the local backend
    const escapeRoot = tmpDir("secrets-escape")
    const jobsRoot = path.join(escapeRoot, "deep", "jobs")
    const outside = path.join(escapeRoot, "outside.txt")
    const spec = (node: string, extra: Partial<Backend.JobSpec>): Backend.JobSpec => ({
      name: node,
      argv: [process.execPath, "-e", "1"],
      env: {},
      files: [],
      resources: { gpus: 0, cpus: 1 },
      labels: { run: "escape", node },
      ...extra
    })
    const escape = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const backend = yield* LocalBackend.make({ root: jobsRoot, slots: 1, killGraceMs: 200 })
      const refused: Array<boolean> = []
      for (const p of ["../outside.txt", "../../outside.txt", "a/../../outside.txt", "/tmp/absolute.txt"]) {
        const exit = yield* Effect.exit(backend.submit(spec(`f${refused.length}`, { files: [{ path: p, content: "escaped" }] })))
        refused.push(Exit.isFailure(exit))
      }
      const result = JSON.stringify({ metrics: { score: 1 }, primary: 1, artifacts: [{ name: "x", path: "../../../outside.txt" }, { name: "y", path: "/etc/passwd" }] })
      const exit = yield* Backend.run(backend, spec("art", {
        argv: [process.execPath, "-e", `require("fs").writeFileSync(process.env.TREX_JOB_DIR + "/result.json", ${JSON.stringify(result)})`]
      }))
      return { refused, exit }
    })))
    const filesRefused = escape.refused.filter((x) => x).length
    const escaped = fs.existsSync(outside) ? 1 : 0

    const leaks = [...scan(out, secrets), ...scan(path.dirname(embeddedDir), secrets)]
    for (const f of leaks) findings.push(`a secret is in ${f}`)
    const printed = outputs.filter((o) => secrets.some((s) => o.includes(s))).length
    if (created > 0) findings.push(`shell syntax in a strategy ran: ${fs.readdirSync(pwnedDir).join(", ")}`)
    return {
      figures: {
        "files scanned": files(out).length + files(path.dirname(embeddedDir)).length,
        "files holding a secret": leaks.length,
        "CLI outputs holding a secret (run, status, report)": printed,
        "jobs (CLI run) that recorded their environment": cliEnvs.jobs,
        "jobs (CLI run) with ANTHROPIC_API_KEY in their environment": cliEnvs.withName,
        "jobs (CLI run) with the key's value in their environment": cliEnvs.withValue,
        "jobs (embedded) that recorded their environment": embeddedEnvs.jobs,
        "jobs (embedded) not given the Redacted HF_TOKEN they needed": embeddedEnvs.jobs - embeddedEnvs.withValue,
        "strategies with shell syntax run": injected,
        "shell commands that ran": created,
        "job files with .. or absolute paths refused": `${filesRefused} / ${escape.refused.length}`,
        "job files not refused": escape.refused.length - filesRefused,
        "files written outside the job directory": escaped,
        "artifact paths with .. (recorded, not followed)": escape.exit.result === undefined ? "no result" : "recorded only"
      },
      mustBeZero: [
        "files holding a secret",
        "CLI outputs holding a secret (run, status, report)",
        "jobs (CLI run) with ANTHROPIC_API_KEY in their environment",
        "jobs (CLI run) with the key's value in their environment",
        "shell commands that ran",
        "job files not refused",
        "files written outside the job directory",
        "jobs (embedded) not given the Redacted HF_TOKEN they needed"
      ],
      mustBePositive: [
        "files scanned",
        "jobs (CLI run) that recorded their environment",
        "jobs (embedded) that recorded their environment",
        "strategies with shell syntax run"
      ]
    }
  })
