/**
 * A {@link Backend.Backend} on a Slurm cluster: each job is an `sbatch` script in its own
 * directory on a shared filesystem, its GPUs asked with `--gres=gpu:N` (or `--gpus=N`), its
 * labels in `--comment`. State comes from `squeue` (or slurmrestd) and `sacct`; logs and
 * `metrics.jsonl` are read as they grow. Commands run on this machine (a login node) or on a
 * login node over SSH (ssh2 exec + SFTP), through one small `CommandRunner`.
 *
 * @since 0.1.0
 */
import { Backend, Errors, JobProtocol, TaskFile } from "@trex/core"
import type { ExperimentNode } from "@trex/core"
import { Effect, Layer, Queue, Redacted, Result, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Query from "./internal/slurmQuery.ts"
import * as Runner from "./internal/commandRunner.ts"
import { jobOutput, signalName } from "./internal/followFile.ts"
import { pathSegment } from "./internal/shell.ts"
import * as Script from "./internal/slurmScript.ts"
import * as ScriptCheck from "./internal/scriptCheck.ts"
import { Unwatched } from "./internal/unwatched.ts"
import { WATCH_BUFFER } from "./internal/volume.ts"
import { pollThroughOutage, waited, waitWhileDown } from "./internal/waitWhileDown.ts"

/**
 * How to reach the cluster and what to ask of it.
 * @since 0.1.0 @category models
 */
export interface Config {
  /** Absolute directory on a filesystem that the login and compute nodes share; jobs live in `<workDir>/<run>/<node>-<id>`. */
  readonly workDir: string
  readonly partition?: string
  readonly account?: string
  readonly qos?: string
  /** `gres` (default) asks `--gres=gpu:N`; `gpus` asks `--gpus=N`. */
  readonly gpuFlag?: Script.GpuFlag
  /** A GPU type such as `a100` (`--gres=gpu:a100:N`). */
  readonly gpuType?: string
  /** More `#SBATCH` options, e.g. `--constraint=ampere`. */
  readonly extraDirectives?: ReadonlyArray<string>
  /** Requeues after NODE_FAIL / PREEMPTED / BOOT_FAIL before the job fails as Infra (default 2). */
  readonly maxRequeues?: number
  /** Between two polls of the job's state and files (default 2 s). */
  readonly pollIntervalMs?: number
  /** Run the commands on a remote login node over SSH. */
  readonly ssh?: SshOptions
  /** Read live job states from slurmrestd instead of `squeue`. */
  readonly rest?: RestOptions
  /** Jobs TREX may keep in the queue at once (default: the partition's CPUs). */
  readonly slots?: number
  /**
   * How long a job's watch and a submit wait for a Slurm controller that does not answer
   * (slurmctld stopped or restarting) before they fail (default 30 minutes). Jobs keep running
   * under slurmd meanwhile; the watch polls again every `pollIntervalMs`.
   */
  readonly controllerWaitMs?: number
  /**
   * How long a job may stay pending for a reason Slurm never gets past by itself (its time limit over
   * its partition's, constraints no node meets, an account or QOS it may not use, a per-job limit it
   * alone exceeds) before it is cancelled and fails (`Infra`, with the reason and what to change; default
   * 10 minutes), counted from its submission. A job pending for room (`Resources`, `Priority`) waits on.
   */
  readonly stuckAfterMs?: number
}

/** SSH access to a login node. @since 0.1.0 @category models */
export type SshOptions = Runner.SshOptions
/** A slurmrestd endpoint and its JWT. @since 0.1.0 @category models */
export type RestOptions = Query.RestOptions

const NAME = "slurm"
/** States of a job that Slurm sent back to the queue after it ran. */
const REQUEUED = new Set(["PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING"])
/** Submissions of one job whose `sbatch` timed out (each after looking whether Slurm had it all the same), and looks per timeout. */
const SUBMIT_TRIES = 3
const SUBMIT_LOOKS = 3

const fail = (operation: string, message: string, retryable = false) =>
  new Errors.BackendError({ backend: NAME, operation, message, retryable })

/**
 * What sbatch refuses for good, and the setting to look at: a partition, account or QOS the cluster
 * does not have (or this user may not use), or resources no node has. Submitting again cannot mend
 * these, so they are not retryable: every trial would meet them (finding AX).
 */
const REFUSALS: ReadonlyArray<readonly [RegExp, string]> = [
  [/invalid partition/i, "backend.slurm.partition names a partition this cluster does not have (`sinfo -s` lists them)"],
  [/invalid account/i, "backend.slurm.account is not one this user may use with the partition (`sacctmgr show assoc user=$USER`)"],
  [/invalid qos/i, "backend.slurm.qos names a QOS this cluster does not have, or this user may not use (`sacctmgr show qos`)"],
  [
    /requested node configuration is not available|invalid generic resource|invalid feature specification/i,
    "no node of the partition has what the job asks for (recipe.resources: gpus, cpus, memoryMb; backend.slurm.gpuType, gpuFlag, extraDirectives)"
  ]
]
const refusal = (e: Errors.BackendError): Errors.BackendError => {
  const known = REFUSALS.find(([pattern]) => pattern.test(e.message))
  return known === undefined ? e : fail(e.operation, `${e.message}: ${known[1]}`, false)
}

/**
 * A Slurm backend. Needs a `Scope` for the SSH connection (none is opened for local use).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend } from "@trex/core"
 * import { SlurmBackend } from "@trex/executors"
 * const layer = SlurmBackend.layer({ workDir: "/shared/trex-jobs", partition: "gpu", account: "ml" })
 * const program = Effect.gen(function*() {
 *   const backend = yield* Backend.Backend
 *   return yield* backend.capacity
 * }).pipe(Effect.provide(layer))
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = Effect.fn("SlurmBackend.make")(function*(config: Config) {
  if (!config.workDir.startsWith("/")) return yield* fail("make", `workDir ${JSON.stringify(config.workDir)} must be an absolute path`)
  const runner: Runner.CommandRunner = config.ssh !== undefined ? yield* Runner.ssh(config.ssh, NAME) : Runner.local(NAME)
  const maxRequeues = config.maxRequeues ?? 2
  const pollMs = config.pollIntervalMs ?? 2000
  const controllerWaitMs = config.controllerWaitMs ?? 30 * 60_000
  const stuckAfterMs = config.stuckAfterMs ?? 10 * 60_000
  /**
   * Run `effect` again every `pollIntervalMs` while it fails with an error `retryIf` accepts (Slurm
   * not answering), with one warning, for up to `controllerWaitMs`; then fail, naming what to check.
   */
  const waitForController = <A>(what: string, effect: Effect.Effect<A, Errors.BackendError>, retryIf: (e: Errors.BackendError) => boolean) =>
    waitWhileDown({
      effect,
      retryIf,
      pollMs,
      waitMs: controllerWaitMs,
      warning: (e) => `slurm: Slurm does not answer; ${what} again every ${pollMs / 1000} s, for up to ${controllerWaitMs / 1000} s (controllerWaitMs): ${e.message}`,
      giveUp: (e, waited) => fail(e.operation, `Slurm did not answer for ${waited} (controllerWaitMs) while ${what}: ${e.message}. Check \`scontrol ping\` and \`sacctmgr ping\` on the login node`, false)
    })
  const run = (command: string, args: ReadonlyArray<string>) => Query.run(runner, command, args)

  /** The batch script of `spec` in `jobDir` (its env file there too). */
  const render = (operation: string, spec: Backend.JobSpec, jobDir: string) =>
    Effect.try({
      try: () =>
        Script.renderScript({
          jobName: spec.name,
          labels: spec.labels,
          jobDir,
          envFile: `${jobDir}/${Script.ENV_FILE}`,
          argv: spec.argv,
          gpus: spec.resources.gpus,
          gpuFlag: config.gpuFlag ?? "gres",
          gresType: config.gpuType,
          cpus: spec.resources.cpus,
          memoryMb: spec.resources.memoryMb,
          timeLimitSeconds: spec.resources.timeLimitSeconds,
          partition: config.partition,
          account: config.account,
          qos: config.qos,
          extraDirectives: config.extraDirectives ?? []
        }),
      catch: (e) => fail(operation, e instanceof Error ? e.message : String(e))
    })

  /** Jobs this instance submitted whose output no watch has given yet (see {@link Unwatched}). */
  const unwatched = new Unwatched()

  const submit = Effect.fn("SlurmBackend.submit")(function*(spec: Backend.JobSpec) {
    for (const f of spec.files) {
      if (!Script.isSafeRelativePath(f.path) || [Script.ENV_FILE, Script.SCRIPT_FILE].includes(f.path)) {
        return yield* fail("submit", `job file ${JSON.stringify(f.path)} must be a relative path inside the job directory`)
      }
    }
    const badEnv = Object.keys(spec.env).find((k) => !Script.isEnvName(k))
    if (badEnv !== undefined) return yield* fail("submit", `env name ${JSON.stringify(badEnv)} is not a valid variable name`)
    if (spec.argv.length === 0) return yield* fail("submit", "argv is empty")
    const jobDir = `${config.workDir.replace(/\/$/, "")}/${pathSegment(spec.labels.run)}/${pathSegment(spec.labels.node)}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
    const envFile = `${jobDir}/${Script.ENV_FILE}`
    const script = yield* render("submit", spec, jobDir)
    yield* runner.mkdirp(jobDir)
    for (const f of spec.files) yield* runner.writeFile(`${jobDir}/${f.path}`, f.content, 0o644)
    yield* runner.writeFile(envFile, Script.renderEnvFile(Backend.revealEnv(spec.env)), 0o600)
    yield* runner.writeFile(`${jobDir}/${Script.SCRIPT_FILE}`, script, 0o700)
    const id = yield* sbatch(jobDir, spec.labels.node)
    unwatched.add(id)
    const ref: ExperimentNode.JobRef = { backend: NAME, id, data: { jobDir, gpus: spec.resources.gpus, submittedAt: Date.now() } }
    return ref
  })

  /** The id of the job whose working directory is `jobDir` (one per submission), if Slurm has one. */
  const jobIn = (jobDir: string) =>
    waitForController(`looking for the job in ${jobDir}`, run("squeue", ["--me", "-h", "-t", "all", "-o", "%i|%Z"]), Query.isControllerUnreachable).pipe(
      Effect.map((out) => out.split("\n").map((l) => l.trim().split("|")).find(([, dir]) => dir === jobDir)?.[0])
    )

  /**
   * Submit the job in `jobDir`. A controller that cannot be reached (stopped, restarting) received
   * nothing: submit again once it answers. A timeout after the request went out (a controller too
   * busy to answer in time, or stopped while it read it) may have submitted it all the same: the job
   * is looked for by its directory, once the controller answers, and only sent again if it is not there.
   */
  const sbatch = (jobDir: string, node: string): Effect.Effect<string, Errors.BackendError> =>
    Effect.gen(function*() {
      for (let tries = 1; ; tries++) {
        const sent = yield* Effect.result(waitForController(
          `submitting ${node}`,
          run("sbatch", ["--parsable", `--chdir=${jobDir}`, `${jobDir}/${Script.SCRIPT_FILE}`]),
          Query.isConnectFailure
        ).pipe(Effect.mapError(refusal)))
        if (Result.isSuccess(sent)) {
          const id = sent.success.trim().split(";")[0]!.trim()
          if (!/^\d+$/.test(id)) return yield* fail("submit", `sbatch printed no job id: ${JSON.stringify(sent.success.slice(0, 200))}`, true)
          return id
        }
        if (!Query.isControllerUnreachable(sent.failure)) return yield* sent.failure
        // the controller may still be working through the request: looked for a few times
        for (let look = 0; look < SUBMIT_LOOKS; look++) {
          if (look > 0) yield* Effect.sleep(pollMs)
          const found = yield* jobIn(jobDir)
          if (found !== undefined) {
            yield* Effect.logInfo(`slurm: ${node}: sbatch timed out (${sent.failure.message}), but Slurm had the job: ${found}`)
            return found
          }
        }
        if (tries >= SUBMIT_TRIES) {
          return yield* fail("submit", `sbatch timed out ${tries} times and Slurm has no job in ${jobDir}: ${sent.failure.message}. Check \`scontrol ping\` and slurmctld's load on the login node`, true)
        }
      }
    })

  const watch = (ref: ExperimentNode.JobRef): Stream.Stream<Backend.JobEvent, Errors.BackendError> =>
    Stream.callback<Backend.JobEvent, Errors.BackendError>((queue) =>
      Effect.gen(function*() {
        const jobDir = typeof ref.data.jobDir === "string" ? ref.data.jobDir : undefined
        if (jobDir === undefined) return yield* fail("watch", `job ref ${ref.id} has no jobDir`)
        const gpusAsked = typeof ref.data.gpus === "number" ? ref.data.gpus : 0
        const tail = new JobProtocol.Tail()
        let requeues = 0
        let ran = false
        let last = ""
        // Set while re-reading the output of a job that ended before this watch began: fill the tail, emit nothing.
        let silent = false
        // ...unless no watch of this instance has given it yet
        const replay = unwatched.take(ref.id)
        const emit = (e: Backend.JobEvent) => (silent && e._tag !== "Exit" ? Effect.void : Queue.offer(queue, e))
        const drain = jobOutput(runner, {
          stdout: `${jobDir}/${Script.STDOUT_FILE}`,
          stderr: `${jobDir}/${Script.STDERR_FILE}`,
          metrics: `${jobDir}/${JobProtocol.METRICS_FILE}`
        }, tail, emit)
        let first = true
        /** Since when the job is pending for a reason Slurm never gets past by itself (see `stuckAfterMs`). */
        let stuckSince: number | undefined
        /** The failure of a job this watch (or an earlier one) cancelled because Slurm would never start it. */
        const neverStarted = (message: string) =>
          Effect.gen(function*() {
            yield* drain(true)
            yield* emit({ _tag: "Exit", outcome: "Failed", failureKind: "Infra", retryable: false, message, logTail: tail.get(), wallSeconds: 0, gpuSeconds: 0 })
            return yield* Queue.end(queue)
          })
        while (true) {
          // Slurm not answering (slurmctld, or slurmdbd for a job only accounting knows): the job is left
          // running and polled again
          const { value: status, recovered } = yield* pollThroughOutage({
            effect: Query.poll(runner, config.rest, ref.id),
            retryIf: Query.isControllerUnreachable,
            pollMs,
            waitMs: controllerWaitMs,
            setting: "controllerWaitMs",
            who: "Slurm",
            state: () => (last.startsWith("Pending") ? "Pending" : "Running"),
            emit,
            giveUp: (waited) => fail("watch", `Slurm did not answer for ${waited} (controllerWaitMs): job ${ref.id} may still be running. Check \`scontrol ping\` and \`sacctmgr ping\`; once they answer, \`trex resume\` the run to follow the job again`)
          })
          if (recovered) last = ""
          if (status === undefined) {
            yield* emit({ _tag: "Exit", outcome: "Failed", failureKind: "Infra", message: `Slurm has no record of job ${ref.id}`, logTail: tail.get(), wallSeconds: 0, gpuSeconds: 0 })
            return yield* Queue.end(queue)
          }
          const mapped = Script.mapState({ state: status.state, reason: status.reason, exitCode: status.exitCode, requeues, maxRequeues })
          // Jobs are submitted with --requeue, so Slurm itself requeues them after a node failure or a
          // preemption (Running -> Pending again): count those against the bound as well.
          if (ran && REQUEUED.has(Script.stateWord(status.state))) {
            ran = false
            requeues++
            if (requeues > maxRequeues) {
              yield* runner.exec("scancel", [ref.id])
              yield* drain(true)
              yield* emit({ _tag: "Exit", outcome: "Failed", failureKind: "Infra", message: `Slurm job ${ref.id} was requeued ${requeues} times (node failure or preemption)`, logTail: tail.get(), wallSeconds: status.elapsedSeconds ?? 0, gpuSeconds: 0 })
              return yield* Queue.end(queue)
            }
            last = ""
          }
          if (mapped._tag === "Running") ran = true
          if (mapped._tag === "Requeue") {
            const requeued = yield* runner.exec("scontrol", ["requeue", ref.id])
            if (requeued.code === 0) {
              requeues++
              last = `Pending:${mapped.reason}`
              yield* emit({ _tag: "State", state: "Pending", reason: `requeued after ${mapped.reason} (${requeues}/${maxRequeues})` })
            } else {
              requeues = maxRequeues
            }
          } else if (mapped._tag === "Exit") {
            // A job that had ended before this watch began yields its Exit alone (its output only fills the tail),
            // but for the first watch of a job this instance submitted.
            silent = first && !replay
            if (mapped.outcome === "Cancelled") {
              const never = yield* runner.readFrom(`${jobDir}/${Script.NEVER_FILE}`, 0, 4096)
              if (never instanceof Uint8Array && never.length > 0) return yield* neverStarted(new TextDecoder().decode(never))
            }
            yield* drain(true)
            silent = false
            // one byte past the bound: all of them read means the file is too big
            const resultBytes = yield* runner.readFrom(`${jobDir}/${JobProtocol.RESULT_FILE}`, 0, JobProtocol.MAX_RESULT_BYTES + 1)
            const parsed = JobProtocol.parseResultBytes(resultBytes === "truncated" ? undefined : resultBytes)
            const wall = status.elapsedSeconds ?? 0
            // a job that filled its disk (its log says so) failed for the machine: Infra (the rule every backend shares)
            yield* emit(Backend.noSpaceExit({
              _tag: "Exit",
              outcome: mapped.outcome,
              ...(mapped.failureKind !== undefined ? { failureKind: mapped.failureKind } : {}),
              ...(mapped.exitCode !== undefined ? { exitCode: mapped.exitCode } : {}),
              ...(mapped.signal !== undefined ? { signal: signalName(mapped.signal) } : {}),
              message: `Slurm job ${ref.id}: ${mapped.message}`,
              ...parsed,
              logTail: tail.get(),
              wallSeconds: wall,
              gpuSeconds: wall * (status.gpus ?? gpusAsked)
            }))
            return yield* Queue.end(queue)
          } else {
            const key = mapped._tag === "Pending" ? `Pending:${mapped.reason ?? ""}` : "Running"
            if (key !== last) {
              last = key
              const reason = mapped._tag === "Pending" && requeues > 0 ? `requeued (${requeues}/${maxRequeues})${mapped.reason !== undefined ? `: ${mapped.reason}` : ""}` : mapped._tag === "Pending" ? mapped.reason : undefined
              yield* emit(reason !== undefined ? { _tag: "State", state: "Pending", reason } : { _tag: "State", state: mapped._tag })
            }
            const never = mapped._tag === "Pending" ? Script.neverStarts(status.reason) : undefined
            // a job that never ran was stuck since it was submitted (a resumed run's watch counts the time before it)
            const submittedAt = typeof ref.data.submittedAt === "number" && !ran && requeues === 0 ? Math.min(ref.data.submittedAt, Date.now()) : Date.now()
            stuckSince = never === undefined ? undefined : stuckSince ?? submittedAt
            if (never !== undefined && Date.now() - stuckSince! >= stuckAfterMs) {
              // the same words for every trial of one cause (a run that fails fast compares them); no job id
              const message = `Slurm would never start it (pending: ${status.reason?.trim()}): ${never}; cancelled after ${Math.round(stuckAfterMs / 1000)} s (stuckAfterMs)`
              yield* runner.writeFile(`${jobDir}/${Script.NEVER_FILE}`, message, 0o600)
              // only while it is pending: a job that started meanwhile runs on
              if (yield* withdraw(ref)) return yield* neverStarted(message)
              yield* runner.exec("rm", ["-f", `${jobDir}/${Script.NEVER_FILE}`])
              stuckSince = undefined
            }
            yield* drain(false)
          }
          first = false
          yield* Effect.sleep(pollMs)
        }
      }).pipe(Effect.catch((e) => Queue.fail(queue, e))),
      // bounded: while the consumer is behind, the watch waits instead of reading more of the logs
      { bufferSize: WATCH_BUFFER }
    )

  // scancel of a finished job succeeds silently: cancelling twice is a no-op.
  // (a job cancelled before any watch: nothing waits for its lines)
  const cancel = Effect.fn("SlurmBackend.cancel")(function*(ref: ExperimentNode.JobRef) {
    unwatched.drop(ref.id)
    yield* run("scancel", [ref.id])
  })

  // `scancel --state=PENDING` signals the job only if it is still pending: slurmctld checks and
  // cancels in one step, so a job that has just started is not touched. Whether it was withdrawn
  // is then read back: a pending job is cancelled now, a started one is not.
  const withdraw = Effect.fn("SlurmBackend.withdraw")(function*(ref: ExperimentNode.JobRef) {
    yield* run("scancel", ["--state=PENDING", ref.id])
    const state = (yield* run("squeue", ["-h", "-t", "all", "-j", ref.id, "-o", "%T"])).trim()
    const acct = state !== "" ? undefined : yield* runner.exec("sacct", ["-X", "-n", "-P", "-j", ref.id, "-o", "State"])
    const withdrawn = acct === undefined ? state === "CANCELLED" : acct.code === 0 && acct.stdout.trim().startsWith("CANCELLED")
    if (withdrawn) unwatched.drop(ref.id)
    return withdrawn
  })

  const list = Effect.fn("SlurmBackend.list")(function*(runLabel: string) {
    const found = new Map<string, Backend.JobInfo>()
    const add = (id: string, state: string, comment: string, jobDir: string | undefined) => {
      const labels = Script.parseLabelComment(comment)
      if (labels === undefined || labels.run !== runLabel || found.has(id)) return
      const m = Script.mapState({ state, requeues: 0, maxRequeues })
      const data = jobDir !== undefined && jobDir !== "" ? { jobDir } : {}
      found.set(id, { ref: { backend: NAME, id, data }, labels, state: m._tag === "Running" ? "Running" : m._tag === "Pending" ? "Pending" : "Finished" })
    }
    // A run that resumes reconciles its trials with this list: one that failed would be submitted again.
    const queued = yield* waitForController(`listing the jobs of run ${runLabel}`, run("squeue", ["--me", "-h", "-t", "all", "-o", "%i|%T|%Z|%k"]), Query.isControllerUnreachable)
    for (const line of queued.split("\n")) {
      const [id, state, workDir, ...comment] = line.split("|")
      if (id !== undefined && state !== undefined && comment.length > 0) add(id.trim(), state, comment.join("|"), workDir)
    }
    // Finished jobs the controller has forgotten: only where accounting stores comments (AccountingStoreFlags=job_comment).
    const acct = yield* runner.exec("sacct", ["-X", "-P", "-S", "now-7days", "-o", "JobID,State,WorkDir,Comment"])
    if (acct.code === 0) {
      for (const r of Script.parseParsable2(acct.stdout)) add(r.JobID ?? "", r.State ?? "", r.Comment ?? "", r.WorkDir)
    }
    return [...found.values()]
  })

  const capacity = Effect.gen(function*() {
    const nodes = yield* run("sinfo", ["-h", "-N", ...(config.partition !== undefined ? ["-p", config.partition] : []), "-o", "%N|%c|%G"])
    const seen = new Map<string, { cpus: number; gpus: number }>()
    for (const line of nodes.split("\n")) {
      const [node, cpus, gres] = line.split("|")
      if (node === undefined || node === "" || seen.has(node)) continue
      const gpus = (gres ?? "").split(",").map((g) => /^gpu(?::[^:(]+)?:(\d+)/.exec(g.trim())).reduce((n, m) => n + (m !== null ? Number(m[1]) : 0), 0)
      seen.set(node, { cpus: Number(cpus) || 0, gpus })
    }
    const totals = [...seen.values()].reduce((a, n) => ({ cpus: a.cpus + n.cpus, gpus: a.gpus + n.gpus }), { cpus: 0, gpus: 0 })
    const mine = yield* run("squeue", ["--me", "-h", "-t", "RUNNING,CONFIGURING,COMPLETING", "-o", "%k"])
    const inUse = mine.split("\n").filter((c) => Script.parseLabelComment(c) !== undefined).length
    return { slots: config.slots ?? Math.max(1, totals.cpus), gpus: totals.gpus, inUse } satisfies Backend.Capacity
  }).pipe(Effect.withSpan("SlurmBackend.capacity"))

  /**
   * The job's script as `submit` writes it, given to `sbatch --test-only` (Slurm checks the partition,
   * account, QOS and resources, and starts nothing) from a file in `workDir` that is removed after;
   * and a command given by its full path looked for on the submit host.
   */
  const preflight = (spec: Backend.JobSpec) =>
    Effect.gen(function*() {
      const script = yield* render("preflight", spec, `${config.workDir.replace(/\/$/, "")}/.trex-check`)
      const concerns = yield* ScriptCheck.check({
        runner,
        workDir: config.workDir,
        setting: "backend.slurm.workDir",
        script,
        test: (file) => runner.exec("sbatch", ["--test-only", `--chdir=${config.workDir}`, file]),
        refused: (o) => refusal(fail("submit", `sbatch --test-only exited ${o.code}: ${o.stderr.trim()}`)).message,
        command: spec.argv[0] ?? "",
        runsOn: "the compute nodes"
      })
      // what sbatch --test-only does not say: the partition (named, or the default) as scontrol shows it
      const shown = yield* runner.exec("scontrol", ["show", "partition", "-o", ...(config.partition !== undefined ? [config.partition] : [])])
      const line = shown.stdout.split("\n").find((l) => config.partition !== undefined ? l.startsWith(`PartitionName=${config.partition} `) : / Default=YES /.test(l))
      if (line === undefined) return concerns
      const field = (name: string) => new RegExp(`\\b${name}=(\\S+)`).exec(line)?.[1]
      const partition = field("PartitionName")
      // over its partition's MaxTime, Slurm (EnforcePartLimits=NO, its default) takes a job and keeps it pending,
      // and `sbatch --test-only` says when it would start
      const limit = spec.resources.timeLimitSeconds
      const maxTime = field("MaxTime")
      const max = maxTime !== undefined ? Script.parseSlurmTime(maxTime) : undefined
      // Slurm keeps time limits in whole minutes
      if (limit !== undefined && max !== undefined && Math.ceil(limit / 60) * 60 > max) {
        concerns.push({
          severity: "fail",
          message: `a trial's time limit (${limit} s, recipe.resources.timeLimitSeconds) is over partition ${partition}'s MaxTime (${maxTime}): Slurm would keep its jobs pending (PartitionTimeLimit) and never start them; lower the limit, or name another partition (backend.slurm.partition)`
        })
      }
      // a partition that is DOWN takes jobs and starts none until an administrator brings it up
      const state = field("State")
      if (state === "DOWN") {
        concerns.push({ severity: "warn", message: `partition ${partition} is DOWN: Slurm takes jobs and starts none until it is up again (\`scontrol show partition ${partition}\`; backend.slurm.partition)` })
      }
      return concerns
    })

  return Backend.Backend.of(Backend.make({ name: NAME, submit, watch, cancel, withdraw, list, capacity, preflight }))
})

/**
 * The backend as a layer.
 * @since 0.1.0 @category layers
 */
export const layer = (config: Config): Layer.Layer<Backend.Backend, Errors.BackendError> => Layer.effect(Backend.Backend, make(config))

const Str = Schema.String
const optional = Schema.optionalKey

/**
 * The `backend.slurm` section of a task file: {@link Config} with secrets by reference — the SSH
 * key as `privateKeyFile`, the slurmrestd JWT as the name of an environment variable (`tokenEnv`,
 * default `SLURM_JWT`) — so a task file never holds one.
 * @since 0.1.0 @category schemas
 */
export const ConfigJson = Schema.Struct({
  workDir: Str,
  partition: optional(Str),
  account: optional(Str),
  qos: optional(Str),
  gpuFlag: optional(Schema.Literals(["gres", "gpus"])),
  gpuType: optional(Str),
  extraDirectives: optional(Schema.Array(Str)),
  maxRequeues: optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  pollIntervalMs: optional(Schema.Finite.check(Schema.isGreaterThan(0))),
  slots: optional(Schema.Int.check(Schema.isGreaterThan(0))),
  controllerWaitMs: optional(Schema.Finite.check(Schema.isGreaterThan(0))),
  stuckAfterMs: optional(Schema.Finite.check(Schema.isGreaterThan(0))),
  ssh: optional(Schema.Struct({
    host: Str,
    port: optional(Schema.Int),
    username: Str,
    privateKeyFile: Str,
    hostKeySha256: optional(Str)
  })),
  rest: optional(Schema.Struct({ url: Str, user: Str, tokenEnv: optional(Str), version: optional(Str) }))
})

/**
 * Decode a task file's `backend.slurm` section into a {@link Config}, reading the SSH key file and
 * the slurmrestd token from the environment.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SlurmBackend } from "@trex/executors"
 * const config = SlurmBackend.fromJson({ workDir: "/shared/trex", partition: "gpu", ssh: { host: "login1", username: "me", privateKeyFile: "~/.ssh/id_ed25519" } })
 * const layer = Effect.map(config, SlurmBackend.layer)
 * ```
 * @since 0.1.0 @category constructors
 */
export const fromJson = Effect.fn("SlurmBackend.fromJson")(function*(input: unknown, env: Readonly<Record<string, string | undefined>> = process.env) {
  const invalid = (message: string) => new Errors.InvalidInput({ source: "backend.slurm", message })
  const json = yield* Schema.decodeUnknownEffect(ConfigJson)(input, { errors: "all", onExcessProperty: "error" }).pipe(
    Effect.mapError((e) => invalid(`invalid backend.slurm settings:\n${TaskFile.formatIssues(e, ConfigJson.ast).replace(/^ {2}/gm, "  backend.slurm.")}`))
  )
  const { ssh, rest, ...rest0 } = json
  let config: Config = rest0
  if (ssh !== undefined) {
    const file = ssh.privateKeyFile.replace(/^~(?=\/|$)/, os.homedir())
    const key = yield* Effect.try({ try: () => fs.readFileSync(file, "utf8"), catch: (e) => invalid(`cannot read ssh.privateKeyFile ${file}: ${String(e)}`) })
    const { privateKeyFile: _, ...target } = ssh
    config = { ...config, ssh: { ...target, privateKey: Redacted.make(key) } }
  }
  if (rest !== undefined) {
    const name = rest.tokenEnv ?? "SLURM_JWT"
    const token = env[name]
    if (token === undefined || token === "") return yield* invalid(`set ${name} to a slurmrestd JWT (scontrol token) for rest.url ${rest.url}`)
    const { tokenEnv: _, ...target } = rest
    config = { ...config, rest: { ...target, token: Redacted.make(token) } }
  }
  return config
})

