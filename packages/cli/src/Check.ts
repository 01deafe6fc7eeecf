/**
 * `trex check <task-file>`: what a `trex run` with the same flags would meet, found before it starts:
 * the task and its settings checked (a model key that a model-backed agent needs among them), its
 * secrets looked for, its backend asked for its capacity (it answers, and has room for a trial's
 * GPUs) and, where the backend can, to look at the job a trial would run without running it
 * (`Backend.preflight`: the command on the host or hosts, the image on the engine, `sbatch --test-only`,
 * `qsub -w v`, Kubernetes RBAC and dry runs). A backend that answers but will not say its capacity
 * (a Kubernetes user who may not list the cluster's nodes) still has the job looked at, and only a
 * warning of it. It starts no trial and makes no run directory. A setup error found
 * here costs no trial.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Model } from "@trex/agents"
import { Backend, Cost, CostMeter, type Errors, Task } from "@trex/core"
import { Duration, Effect, Layer } from "effect"
import * as Trex from "./Trex.ts"
import type { Settings } from "./Settings.ts"
import * as Wiring from "./Wiring.ts"

/** One finding: `ok`, `warn` (the run would start, but read this) or `fail` (the run would not, or its trials would fail). @since 0.1.0 @category models */
export interface Finding {
  readonly what: "task" | "secrets" | "model" | "backend" | "job" | "budget"
  readonly status: "ok" | "warn" | "fail"
  readonly detail: string
}

/** What `trex check` found, in order. @since 0.1.0 @category models */
export interface Report {
  readonly task: string
  readonly backend: string
  readonly findings: ReadonlyArray<Finding>
  /** Whether no finding is `fail`. */
  readonly ok: boolean
  /**
   * What the check was billed, charged to no run: `--call-model`'s 1-token turn (`callModel`), whether the
   * model answered it or not (`estimated`: tokens counted from characters, the server's count cut off).
   * Absent when nothing was billed.
   */
  readonly spent?: Spent
}

/** Tokens and dollars a check was billed ({@link Report}'s `spent`). @since 0.1.0 @category models */
export interface Spent {
  readonly inputTokens: number
  readonly outputTokens: number
  readonly dollars: number
  readonly estimated?: boolean
}

/** `12 input and 1 output token, $0.000051`. */
const spentLine = (spent: Spent): string =>
  `${spent.inputTokens} input and ${spent.outputTokens} output token${spent.outputTokens === 1 ? "" : "s"}${spent.estimated === true ? " (estimated)" : ""}` +
  `${spent.dollars > 0 ? `, $${spent.dollars.toFixed(6)}` : ""}`

/** A word of the command as a shell would take it back: quoted when it needs to be. */
const shellWord = (word: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`)

/** The job a trial runs, as a line: the command, image, environment (secrets by name) and resources. */
const jobLine = (spec: Backend.JobSpec, secretNames: ReadonlyArray<string>): string => {
  const env = [...Object.keys(spec.env).filter((name) => !secretNames.includes(name)), ...secretNames.map((name) => `${name} (secret)`)]
  const r = spec.resources
  const resources = [
    r.gpus > 0 ? `${r.gpus} GPU${r.gpus === 1 ? "" : "s"}` : "no GPU",
    `${r.cpus} CPU${r.cpus === 1 ? "" : "s"}`,
    ...(r.memoryMb !== undefined ? [`${r.memoryMb} MB`] : []),
    r.timeLimitSeconds !== undefined ? `time limit ${r.timeLimitSeconds} s` : "no time limit"
  ]
  return `a trial runs ${spec.argv.map(shellWord).join(" ")}${spec.image !== undefined ? ` in ${spec.image}` : ""}` +
    `${env.length > 0 ? `, env ${env.join(", ")}` : ""}; ${resources.join(", ")}`
}

/**
 * Whether the model the agents would call is there for them: the API asked, without a call that
 * costs anything, whether it takes the key and serves the model's name (`Model.probe`). A refusal
 * fails, as every call of the run would be refused; a server that does not answer fails, as a run's
 * calls would fail after their retries; a busy one (429, 5xx) warns, as a run waits it out. Whether
 * the key may call the model is shown free only where the API has a free call that says so (Claude's
 * `count_tokens`); elsewhere the finding says it was not checked, and with `callModel` a one-token
 * turn asks it (`Model.probeTurn`, billed: a few tokens, said in the finding).
 */
const modelFinding = (settings: Settings, timeout: Duration.Input, callModel: boolean): Effect.Effect<{ readonly finding?: Finding; readonly spent?: Spent }> =>
  Effect.gen(function*() {
    const model = yield* Model.Model
    const probe = model.probe
    if (probe === undefined) return {}
    // what the 1-token turn was billed, answered or not
    const costs: Array<Cost.Cost> = []
    let estimated = false
    const billed = (): Spent | undefined => {
      if (costs.length === 0) return undefined
      const spent = costs.reduce(Cost.add, Cost.zero)
      return { inputTokens: spent.inputTokens, outputTokens: spent.outputTokens, dollars: spent.dollars, ...(estimated ? { estimated } : {}) }
    }
    const finding = yield* Effect.gen(function*() {
      const within = <A>(asked: Effect.Effect<A, Model.ModelError>) =>
        Effect.result(asked.pipe(
          Effect.timeoutOrElse({
            duration: timeout,
            orElse: () => Effect.fail(new Model.ModelError({ provider: model.provider, message: `no answer within ${Duration.format(Duration.fromInputUnsafe(timeout))}`, retryable: true }))
          })
        ))
      const found = (status: Finding["status"], detail: string): Finding => ({ what: "model", status, detail })
      // `served`: what the free probe found before a 1-token turn met `e` (none: the probe met it)
      const failed = (e: Model.ModelError, served?: string): Finding =>
        e.retryable && e.status !== undefined
          ? found("warn", `${model.provider} answers, but is busy now (${served !== undefined ? "a 1-token turn: " : ""}${e.message}): a run waits, retrying its calls`)
          : e.retryable
          ? found("fail", `${model.provider} does not answer${served !== undefined ? " a 1-token turn" : ""}: ${e.message}`)
          : found("fail", served !== undefined ? `${served}, but refused a 1-token turn with this key: ${e.message}` : `${model.provider}: ${e.message}`)
      const answer = yield* within(probe)
      if (answer._tag === "Failure") return failed(answer.failure)
      const p = answer.success
      const served = p.unchecked === undefined ? `${model.provider} serves ${p.model}${p.detail !== undefined ? ` (${p.detail})` : ""}` : undefined
      if (callModel && model.probeTurn !== undefined) {
        // a turn of one token, billed: what it cost is said, a failed one's too
        const meter: CostMeter.CostMeterShape = {
          record: (cost, reason) => Effect.sync(() => {
            costs.push(cost)
            if (reason.includes("tokens estimated")) estimated = true
          })
        }
        const turn = yield* within(model.probeTurn.pipe(Effect.provideService(CostMeter.CostMeter, meter)))
        const spent = billed()
        if (turn._tag === "Failure") {
          const f = failed(turn.failure, served ?? `${model.provider} (${p.unchecked})`)
          return spent === undefined ? f : { ...f, detail: `${f.detail} (--call-model's attempt was billed: ${spentLine(spent)})` }
        }
        const paid = spent !== undefined ? spentLine(spent) : "0 input and 0 output tokens"
        return found("ok", `${served ?? `${model.provider} serves ${turn.success.model}`}; it answered a 1-token turn with this key (--call-model: ${paid})`)
      }
      if (served === undefined) {
        return found("warn", `${model.provider}: whether it serves ${p.model} and takes the key was not checked (${p.unchecked}): a run's first call finds out, or --call-model's 1-token turn, billed (a few tokens)`)
      }
      return found(
        "ok",
        p.callUnchecked === undefined ? served : `${served}; whether the key may call it was not checked (${p.callUnchecked}): --call-model asks a 1-token turn, billed (a few tokens)`
      )
    })
    const spent = billed()
    return { finding, ...(spent !== undefined ? { spent } : {}) }
  }).pipe(
    Effect.provide(Wiring.model(settings)),
    // the settings were read by Trex.resolve: a model that cannot be made now is said as a finding
    Effect.catch((e) => Effect.succeed({ finding: { what: "model", status: "fail", detail: e.message } as Finding }))
  )

/** What a check asks besides what a run would meet: `callModel`, a billed 1-token turn of the model (`trex check --call-model`). @since 0.1.0 @category models */
export interface Extra {
  readonly callModel?: boolean
}

/**
 * Check a task and the settings `options` give, as `trex run` would start with them (see
 * {@link Report}). Fails when the task or the settings are bad input, as `trex run` would (a model
 * key that is not set among them); every other problem is a `fail` finding. The backend is asked
 * within `timeout` (default 30 s): one that does not answer by then is a `fail` (a run would wait for it).
 * With `callModel`, the model is asked a one-token turn too (`Model.probeTurn`: billed, a few tokens),
 * which shows whether the key may call it where no free call does (an OpenAI-compatible server).
 * @since 0.1.0 @category checking
 */
export const run = (options: Trex.Options, timeout: Duration.Input = "30 seconds", extra: Extra = {}): Effect.Effect<Report, Errors.InvalidInput> =>
  Effect.gen(function*() {
    const { landscape, settings, task } = yield* Trex.resolve(options)
    const findings: Array<Finding> = []
    let spent: Spent | undefined
    const space = task.searchSpace?.parameters.length ?? 0
    findings.push({
      what: "task",
      status: "ok",
      detail: `${task.name}: ${task.metric.direction} ${task.metric.name}; ${space > 0 ? `${space} parameter${space === 1 ? "" : "s"} to search` : "no search space (the researcher proposes the strategies)"}; ` +
        `${settings.researcher} researcher, ${settings.executor} executor, ${settings.policy} policy, concurrency ${settings.concurrency}`
    })
    const secretNames = task.recipe?.secretEnv ?? []
    const secrets = yield* Effect.result(Wiring.secrets(task))
    if (secretNames.length > 0) {
      findings.push(
        secrets._tag === "Failure"
          ? { what: "secrets", status: "fail", detail: secrets.failure.message }
          : { what: "secrets", status: "ok", detail: `${secretNames.join(", ")} set; every job gets ${secretNames.length === 1 ? "it" : "them"} as a secret` }
      )
    }
    if (settings.researcher === "claude" || settings.executor === "code-agent") {
      const found = yield* modelFinding(settings, timeout, extra.callModel === true)
      if (found.finding !== undefined) findings.push(found.finding)
      spent = found.spent
    }
    // the job a trial runs, its strategy aside (a preflight looks at where and how it runs); the code agent's jobs run
    // where and as the recipe's do, with its command's interpreter
    const recipe = task.recipe
    const vars = { taskDir: settings.taskDir, run: "trex-check", node: "n0", execPath: process.execPath }
    const spec: Backend.JobSpec | undefined = settings.backend === "simulator" || recipe === undefined
      ? undefined
      : {
        name: "trex-check",
        argv: recipe.command.map((part) => Task.substitute(part, vars)),
        ...(recipe.image !== undefined ? { image: recipe.image } : {}),
        env: { ...Task.substituteEnv(recipe.env, vars), ...(secrets._tag === "Success" ? secrets.success : {}) },
        files: [],
        resources: recipe.resources,
        labels: { run: "trex-check", node: "n0" }
      }
    // the backend, in a folder of its own that is removed after (the local and Docker backends keep jobs under it)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-check-"))
    const gpus = settings.backend === "simulator" ? 0 : recipe?.resources.gpus ?? 0
    const asked = Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const capacity = yield* Effect.result(backend.capacity)
      // a backend that answered with a refusal (a user who may not list a cluster's nodes) may still say what a job would meet
      if (capacity._tag === "Failure" && capacity.failure.retryable) return yield* capacity.failure
      const concerns = spec !== undefined && backend.preflight !== undefined ? yield* backend.preflight(spec) : undefined
      // (without a look at the job, a refusal is all it said)
      if (capacity._tag === "Failure" && concerns === undefined) return yield* capacity.failure
      return { capacity, concerns }
    }).pipe(
      Effect.provide(Wiring.backend(settings, task, dir, landscape)),
      Effect.mapError((e) => new Error(e.message)),
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () => Effect.fail(new Error(`it did not answer within ${Duration.format(Duration.fromInputUnsafe(timeout))} (a run would wait for it)`))
      }),
      Effect.ensuring(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    )
    const answer = yield* Effect.result(asked)
    if (answer._tag === "Failure") {
      findings.push({ what: "backend", status: "fail", detail: `${settings.backend}: ${answer.failure.message}` })
    } else {
      const capacity = answer.success.capacity
      if (capacity._tag === "Failure") {
        // it answered, and looked at the job: only its capacity is not known (a run does not need it)
        findings.push({
          what: "backend",
          status: "warn",
          detail: `${settings.backend} answers, but not with its capacity (${capacity.failure.message})${gpus > 0 ? `: whether it has the ${gpus} GPU${gpus === 1 ? "" : "s"} a trial asks for is not known` : ""}`
        })
      } else {
        const c = capacity.success
        findings.push(
          gpus > c.gpus
            ? { what: "backend", status: "fail", detail: `${settings.backend}: a trial asks for ${gpus} GPUs (recipe.resources.gpus) and the backend has ${c.gpus}: no trial could start` }
            : { what: "backend", status: "ok", detail: `${settings.backend} answers: ${c.slots} slot${c.slots === 1 ? "" : "s"}, ${c.gpus} GPU${c.gpus === 1 ? "" : "s"}, ${c.inUse} in use` }
        )
      }
    }
    if (settings.backend === "simulator") {
      findings.push({ what: "job", status: "ok", detail: "trials replay the recorded table in simulated time: no job runs" })
    } else if (spec !== undefined) {
      const concerns = answer._tag === "Success" ? answer.success.concerns : undefined
      const unchecked = answer._tag === "Success" && concerns === undefined ? ` (the ${settings.backend} backend does not look at a job before it runs it)` : ""
      findings.push({
        what: "job",
        status: "ok",
        detail: settings.executor === "code-agent"
          ? `the code agent writes each trial's scripts, run where and as the recipe's command would be (${jobLine(spec, secretNames).replace(/^a trial runs /, "")})${unchecked}`
          : `${jobLine(spec, secretNames)}${unchecked}`
      })
      for (const c of concerns ?? []) findings.push({ what: "job", status: c.severity, detail: c.message })
    }
    for (const warning of Wiring.budgetWarnings(settings, task)) findings.push({ what: "budget", status: "warn", detail: warning })
    return { task: task.name, backend: settings.backend, findings, ok: findings.every((f) => f.status !== "fail"), ...(spent !== undefined ? { spent } : {}) }
  })

/** The report as `trex check` prints it: a line a finding, then what to do. @since 0.1.0 @category rendering */
export const toText = (report: Report, taskFile: string): string =>
  [
    ...report.findings.map((f) => `${f.status.padEnd(4)}  ${f.what.padEnd(7)}  ${f.detail}`),
    // billed, and charged to no run: said apart, so that it is seen
    ...(report.spent !== undefined ? ["", `spent: ${spentLine(report.spent)} on --call-model's 1-token turn, charged to no run`] : []),
    "",
    report.ok
      ? `no problem found: \`trex run ${taskFile}\` with the same flags starts this search`
      : `${report.findings.filter((f) => f.status === "fail").length} problem(s) found: a run would not start, or its trials would fail; mend them and check again`
  ].join("\n")
