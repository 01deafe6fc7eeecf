/**
 * A {@link Backend.Backend} on a Grid Engine cluster (Son of Grid Engine, Open Grid Scheduler,
 * Univa/Altair Grid Engine): each job is a `qsub` script in its own directory on a shared
 * filesystem, its GPUs asked as a consumable complex (`-l gpu=N`), its labels in job context
 * variables (`-ac`). State comes from `qstat -xml` and, once the job has left the qmaster, the
 * exit record its script wrote (`qacct -j` when it has none); logs and `metrics.jsonl` are read as
 * they grow. Commands run on this machine (a submit host) or on a login node over SSH, through the
 * same `CommandRunner` as the Slurm backend.
 *
 * @since 0.1.0
 */
import { Backend, Errors, JobProtocol, TaskFile } from "@trex/core"
import type { ExperimentNode } from "@trex/core"
import { Effect, Layer, Queue, Redacted, Result, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as Runner from "./internal/commandRunner.ts"
import { jobOutput, signalName } from "./internal/followFile.ts"
import * as Query from "./internal/gridengineQuery.ts"
import * as Script from "./internal/gridengineScript.ts"
import * as ScriptCheck from "./internal/scriptCheck.ts"
import { isEnvName, isSafeRelativePath, pathSegment, renderEnvFile } from "./internal/shell.ts"
import { Unwatched } from "./internal/unwatched.ts"
import { WATCH_BUFFER } from "./internal/volume.ts"
import { pollThroughOutage, waited, waitWhileDown } from "./internal/waitWhileDown.ts"

/**
 * How to reach the cluster and what to ask of it.
 * @since 0.1.0 @category models
 */
export interface Config {
  /** Absolute directory on a filesystem that the submit host and the execution hosts share; jobs live in `<workDir>/<run>/<node>-<id>`. */
  readonly workDir: string
  /** `-q`: the cluster queue (or a list such as `gpu.q,long.q`). */
  readonly queue?: string
  /** `-P`: the project (share-tree and accounting). */
  readonly project?: string
  /** `-pe <pe> <cpus>`: a parallel environment that gives a job its CPUs as slots (without one, a job takes one slot). */
  readonly parallelEnvironment?: string
  /** The consumable complex that counts GPUs (default `gpu`): `-l gpu=N`. */
  readonly gpuResource?: string
  /** The complex a job's memory is asked with, per slot (default `h_vmem`); `false` asks none. */
  readonly memoryResource?: string | false
  /**
   * Name the granted GPUs in `CUDA_VISIBLE_DEVICES` when the site does not (default true): the job
   * claims free devices of its host under `gpuLockDir` (see docs/backends.md).
   */
  readonly assignGpus?: boolean
  /** A directory local to each execution host for the GPU claims (default `/tmp/trex-gpu-locks`). */
  readonly gpuLockDir?: string
  /** More `#$` options, one option and its value each, e.g. `-l arch=lx-amd64`. */
  readonly extraDirectives?: ReadonlyArray<string>
  /** Between two polls of the job's state and files (default 2 s). */
  readonly pollIntervalMs?: number
  /** Jobs TREX may keep in the queue at once (default: the queue's slots). */
  readonly slots?: number
  /**
   * Times Grid Engine may run a job again (its script exited 99, `qmod -rj`, its host failed in a
   * rerunnable queue) before the job is ended and its trial fails as Infra (default 2).
   */
  readonly maxRequeues?: number
  /**
   * How long a job's watch, a submit, `list`, a cancel and a withdraw wait for a qmaster that does not
   * answer (stopped, restarting, failing over) before they fail (default 30 minutes). Jobs keep running
   * under their execution daemons meanwhile; the watch polls again every `pollIntervalMs`.
   */
  readonly qmasterWaitMs?: number
  /**
   * How long a job that has left `qstat` with no exit record (its script was killed: `h_rt`, a signal)
   * may have no `qacct` record before it fails (default 2 minutes): the qmaster writes the accounting
   * file every `accounting_flush_time`.
   */
  readonly accountingWaitMs?: number
  /**
   * How long a job whose command has ended (its script wrote `trex-exit.json`) may still be listed
   * running before its end is read from its directory (default 2 minutes): its execution daemon has
   * not reported it (the execd or its host died), and the qmaster would list it running until that
   * host is back.
   */
  readonly exitReportWaitMs?: number
  /** `SGE_ROOT` for the commands, when their environment lacks it (often so over SSH). */
  readonly sgeRoot?: string
  /** `SGE_CELL` (default `default` when `sgeRoot` is set). */
  readonly sgeCell?: string
  /** Run the commands on a remote login node over SSH. */
  readonly ssh?: SshOptions
}

/** SSH access to a login node. @since 0.1.0 @category models */
export type SshOptions = Runner.SshOptions

const NAME = "gridengine"
/** What decides whether a queue can run a job. */
const NO_QUEUE_SETTINGS = "recipe.resources: gpus, cpus, memoryMb, timeLimitSeconds; backend.gridengine: queue, project, parallelEnvironment, gpuResource, extraDirectives"
const MEMORY_ERROR = /MemoryError|Cannot allocate memory|std::bad_alloc|out of memory/i

const fail = (operation: string, message: string, retryable = false) =>
  new Errors.BackendError({ backend: NAME, operation, message, retryable })

/**
 * A Grid Engine backend. Needs a `Scope` for the SSH connection (none is opened for local use).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend } from "@trex/core"
 * import { GridEngineBackend } from "@trex/executors"
 * const layer = GridEngineBackend.layer({ workDir: "/shared/trex-jobs", queue: "gpu.q", gpuResource: "gpu" })
 * const program = Effect.gen(function*() {
 *   const backend = yield* Backend.Backend
 *   return yield* backend.capacity
 * }).pipe(Effect.provide(layer))
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = Effect.fn("GridEngineBackend.make")(function*(config: Config) {
  if (!config.workDir.startsWith("/")) return yield* fail("make", `workDir ${JSON.stringify(config.workDir)} must be an absolute path (a directory on a filesystem the execution hosts share)`)
  const runner: Runner.CommandRunner = config.ssh !== undefined ? yield* Runner.ssh(config.ssh, NAME) : Runner.local(NAME)
  const ge = Query.client(runner, { sgeRoot: config.sgeRoot, sgeCell: config.sgeCell })
  const pollMs = config.pollIntervalMs ?? 2000
  const qmasterWaitMs = config.qmasterWaitMs ?? 30 * 60_000
  const maxRequeues = config.maxRequeues ?? 2
  if (!Number.isInteger(maxRequeues) || maxRequeues < 0) return yield* fail("make", `maxRequeues ${maxRequeues} must be a whole number of reruns, 0 or more`)
  const accountingWaitMs = config.accountingWaitMs ?? 2 * 60_000
  const exitReportWaitMs = config.exitReportWaitMs ?? 2 * 60_000
  const gpuResource = config.gpuResource ?? "gpu"
  const memoryResource = config.memoryResource === false ? undefined : config.memoryResource ?? "h_vmem"
  const CHECK = "Check `qstat` and `qping -info <qmaster host> 6444 qmaster 1` on the submit host"

  /**
   * Run `effect` again every `pollIntervalMs` while it fails with an error `retryIf` accepts (the
   * qmaster not answering), with one warning, for up to `qmasterWaitMs`; then fail, naming what to check.
   */
  const waitForQmaster = <A>(what: string, effect: Effect.Effect<A, Errors.BackendError>, retryIf: (e: Errors.BackendError) => boolean) =>
    waitWhileDown({
      effect,
      retryIf,
      pollMs,
      waitMs: qmasterWaitMs,
      warning: (e) => `gridengine: the qmaster does not answer; ${what} again every ${pollMs / 1000} s, for up to ${qmasterWaitMs / 1000} s (qmasterWaitMs): ${e.message}`,
      giveUp: (e, waited) => fail(e.operation, `the Grid Engine qmaster did not answer for ${waited} (qmasterWaitMs) while ${what}: ${e.message}. ${CHECK}`)
    })
  /** A command whose own failures are the caller's to read, waiting (as {@link waitForQmaster}) while the qmaster does not answer. */
  const execWaiting = (what: string, command: string, args: ReadonlyArray<string>) =>
    waitForQmaster(
      what,
      ge.exec(command, args).pipe(Effect.flatMap((o) => {
        const said = fail(command, `${command} ${args.join(" ")} exited ${o.code}: ${(o.stderr.trim() || o.stdout.trim()).split("\n").slice(-2).join(" ")}`, true)
        return o.code !== 0 && Query.isQmasterUnreachable(said) ? Effect.fail(said) : Effect.succeed(o)
      })),
      Query.isQmasterUnreachable
    )

  /** The exit record the job's script wrote in `jobDir` (see {@link Script.EXIT_FILE}); `undefined` while there is none. */
  const exitRecordIn = (jobDir: string) =>
    Effect.map(runner.readFrom(`${jobDir}/${Script.EXIT_FILE}`, 0, 4096), (bytes) =>
      bytes instanceof Uint8Array ? Script.exitRecord(new TextDecoder().decode(bytes)) : undefined)

  /** The script's input for `spec`, in `jobDir`. */
  const scriptInput = (spec: Backend.JobSpec, jobDir: string, submittedAt: number): Script.ScriptInput => ({
    jobName: spec.name,
    labels: spec.labels,
    jobDir,
    envFile: `${jobDir}/${Script.ENV_FILE}`,
    argv: spec.argv,
    submittedAt,
    gpus: spec.resources.gpus,
    gpuResource,
    assignGpus: config.assignGpus ?? true,
    gpuLockDir: config.gpuLockDir ?? "/tmp/trex-gpu-locks",
    cpus: spec.resources.cpus,
    parallelEnvironment: config.parallelEnvironment,
    memoryMb: spec.resources.memoryMb,
    memoryResource,
    timeLimitSeconds: spec.resources.timeLimitSeconds,
    queue: config.queue,
    project: config.project,
    extraDirectives: config.extraDirectives ?? [],
    maxRequeues
  })

  /** Jobs this instance submitted whose output no watch has given yet (see {@link Unwatched}). */
  const unwatched = new Unwatched()

  const submit = Effect.fn("GridEngineBackend.submit")(function*(spec: Backend.JobSpec) {
    for (const f of spec.files) {
      if (!isSafeRelativePath(f.path) || [Script.ENV_FILE, Script.SCRIPT_FILE, Script.RECORD_FILE, Script.CANCEL_FILE, Script.EXIT_FILE, `${Script.EXIT_FILE}.tmp`, Script.RUNS_FILE].includes(f.path)) {
        return yield* fail("submit", `job file ${JSON.stringify(f.path)} must be a relative path inside the job directory, other than the backend's own files`)
      }
    }
    const badEnv = Object.keys(spec.env).find((k) => !isEnvName(k))
    if (badEnv !== undefined) return yield* fail("submit", `env name ${JSON.stringify(badEnv)} is not a valid variable name`)
    if (spec.argv.length === 0) return yield* fail("submit", "argv is empty")
    const submittedAt = Date.now()
    const jobDir = `${config.workDir.replace(/\/$/, "")}/${pathSegment(spec.labels.run)}/${pathSegment(spec.labels.node)}-${submittedAt.toString(36)}${Math.random().toString(36).slice(2, 6)}`
    const envFile = `${jobDir}/${Script.ENV_FILE}`
    const input = scriptInput(spec, jobDir, submittedAt)
    const script = yield* Effect.try({ try: () => Script.renderScript(input), catch: (e) => fail("submit", e instanceof Error ? e.message : String(e)) })
    yield* runner.mkdirp(jobDir)
    for (const f of spec.files) yield* runner.writeFile(`${jobDir}/${f.path}`, f.content, 0o644)
    yield* runner.writeFile(envFile, renderEnvFile(Backend.revealEnv(spec.env)), 0o600)
    yield* runner.writeFile(`${jobDir}/${Script.SCRIPT_FILE}`, script, 0o700)
    // A qmaster that could not be reached (stopped, restarting) received nothing: submit again once
    // it answers. (A timeout after the request went out is not retried: it may have been submitted.)
    // `-w e`: a job no queue could ever run (more GPUs than any host has, a queue or limit it cannot meet) is
    // refused here, where a plain qsub takes it and it waits for ever
    const out = yield* waitForQmaster(`submitting ${spec.labels.node}`, ge.run("qsub", ["-terse", "-w", "e", `${jobDir}/${Script.SCRIPT_FILE}`]), Query.isConnectFailure).pipe(
      Effect.mapError((e) =>
        Query.isConnectFailure(e) || !/no suitable queues|Unable to run job/i.test(e.message)
          ? e
          : fail("submit", `${e.message.replace(/\s*Exiting\.$/, "")}: no queue of this cluster could ever run the job (${NO_QUEUE_SETTINGS})`)
      )
    )
    // -terse prints the id on a line of its own, after any warnings (an option given twice, a site default overridden)
    const id = out.split("\n").map((l) => /^(\d+)(?:\.\d+-\d+:\d+)?$/.exec(l.trim())?.[1]).findLast((x) => x !== undefined)
    // not retried: qsub succeeded, so a job may exist
    if (id === undefined) return yield* fail("submit", `qsub -terse printed no job id (a job may have been submitted: check \`qstat\`): ${JSON.stringify(out.slice(0, 300))}`)
    // The job writes the same record when it starts; this one covers a job that never starts.
    yield* runner.writeFile(`${jobDir}/${Script.RECORD_FILE}`, `${Script.recordPrefix}${id}${Script.recordSuffix(input)}\n`, 0o644).pipe(
      Effect.catch((e) => Effect.logWarning(`gridengine: job ${id}: ${e.message} (its record is written by the job when it starts)`))
    )
    unwatched.add(id)
    const ref: ExperimentNode.JobRef = {
      backend: NAME,
      id,
      data: { jobDir, gpus: spec.resources.gpus, name: Script.sanitizeJobName(spec.name), submittedAt }
    }
    return ref
  })

  const watch = (ref: ExperimentNode.JobRef): Stream.Stream<Backend.JobEvent, Errors.BackendError> =>
    Stream.callback<Backend.JobEvent, Errors.BackendError>((queue) =>
      Effect.gen(function*() {
        const jobDir = typeof ref.data.jobDir === "string" ? ref.data.jobDir : undefined
        if (jobDir === undefined) return yield* fail("watch", `job ref ${ref.id} has no jobDir`)
        const gpusAsked = typeof ref.data.gpus === "number" ? ref.data.gpus : 0
        const name = typeof ref.data.name === "string" ? ref.data.name : undefined
        const tail = new JobProtocol.Tail()
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
        const end = (exit: Backend.JobExit) => Effect.andThen(emit(exit), Queue.end(queue))
        const exitFile = exitRecordIn(jobDir)
        /**
         * Whether a cancel marked the job (`marked`), and whether that makes its end by a signal a cancel's (see
         * {@link Script.cancelledBy}), given its script's last exit record (`undefined`: none).
         */
        const cancelOf = (last: Script.ExitRecord | undefined) =>
          Effect.map(Query.readCancelMarker(runner, jobDir), (marker) => ({
            marked: marker !== undefined,
            cancelled: marker !== undefined && Script.cancelledBy(marker, last)
          }))
        /**
         * The job's Exit from its script's exit record or its accounting record (`from`), with its output read to the end;
         * `last` is its script's exit record, if any; `cancel`, what {@link cancelOf} said of it just before, if it was asked.
         */
        const finish = (
          from: Pick<Script.ExitRecord, "record" | "rerunLimit"> & { readonly gpus?: number },
          last: Script.ExitRecord | undefined,
          note: string,
          cancel?: { readonly marked: boolean; readonly cancelled: boolean }
        ) =>
          Effect.gen(function*() {
            const { record, gpus: gpusRecorded } = from
            const { marked, cancelled } = cancel ?? (yield* cancelOf(last))
            // a command that exited 99 asked Grid Engine to run it again (below maxRequeues: no rerunLimit); cancelled before that rerun, the job is cancelled
            const ended: Script.Ended = marked && from.rerunLimit === undefined && record.exit_status === "99" && (record.failed ?? "0") === "0"
              ? { outcome: "Cancelled", failureKind: "Cancelled", exitCode: 99, message: "deleted with qdel while Grid Engine waited to run it again (its command exited 99)" }
              : Script.mapAccounting({ record, cancelled })
            // A job that had ended before this watch began yields its Exit alone (its output only fills the tail),
            // but for the first watch of a job this instance submitted.
            silent = first && !replay
            yield* drain(true)
            silent = false
            // one byte past the bound: all of them read means the file is too big
            const resultBytes = yield* runner.readFrom(`${jobDir}/${JobProtocol.RESULT_FILE}`, 0, JobProtocol.MAX_RESULT_BYTES + 1)
            const parsed = JobProtocol.parseResultBytes(resultBytes === "truncated" ? undefined : resultBytes)
            const wall = Number.parseFloat(record.ru_wallclock ?? "")
            const wallSeconds = Number.isFinite(wall) ? wall : 0
            const requests = Script.categoryRequests(record.category)
            const gpus = requests[gpuResource] !== undefined ? Number(requests[gpuResource]) || 0 : gpusRecorded ?? gpusAsked
            const logTail = tail.get()
            let failureKind = ended.failureKind
            let message = `Grid Engine job ${ref.id}: ${ended.message}${note}`
            if (from.rerunLimit !== undefined) {
              // the script ended a job that Grid Engine would have run again past maxRequeues
              const runs = yield* readRuns
              const each = runs.ends.map((code, i) => `run ${i + 1} ${code === undefined ? "was killed" : `exited ${code}`}`).join(", ")
              failureKind = "Infra"
              message = `Grid Engine job ${ref.id} ran ${runs.ends.length} times (${each}) and would have run again: Grid Engine reruns a job whose script exits 99, one rescheduled with \`qmod -rj\`, and one whose host failed in a rerunnable queue. TREX allows ${from.rerunLimit} rerun${from.rerunLimit === 1 ? "" : "s"} (backend.gridengine.maxRequeues), so the job was ended${
                runs.ends.at(-1) === 99 ? ". A command that exits 99 asks Grid Engine to run it again: exit with another code for a failure" : ""
              }`
            }
            const memoryLimit = memoryResource !== undefined ? requests[memoryResource] : undefined
            if (failureKind === "Crash" && memoryLimit !== undefined && logTail.some((l) => MEMORY_ERROR.test(l))) {
              // under h_vmem an allocation past the limit fails inside the job, which then dies of it
              failureKind = "OOM"
              message = `${message}: out of memory at its limit (${memoryResource}=${memoryLimit}): ${logTail.findLast((l) => MEMORY_ERROR.test(l))!.trim().slice(0, 200)}`
            } else if (failureKind === "Crash" && ended.exitCode === Script.GPU_CLAIM_EXIT && logTail.some((l) => l.startsWith("trex: Grid Engine granted"))) {
              failureKind = "Infra"
              message = `${message}: ${logTail.findLast((l) => l.startsWith("trex: Grid Engine granted"))}`
            }
            // a job that filled its disk (its log says so) failed for the machine: Infra (the rule every backend shares)
            return yield* end(Backend.noSpaceExit({
              _tag: "Exit",
              outcome: ended.outcome,
              ...(failureKind !== undefined ? { failureKind } : {}),
              ...(ended.exitCode !== undefined ? { exitCode: ended.exitCode } : {}),
              ...(ended.signal !== undefined ? { signal: signalName(ended.signal) } : {}),
              message,
              ...parsed,
              logTail,
              wallSeconds,
              gpuSeconds: wallSeconds * gpus
            }))
          })
        const readRuns = Effect.map(runner.readFrom(`${jobDir}/${Script.RUNS_FILE}`, 0, 64 * 1024), (bytes) =>
          Script.parseRuns(bytes instanceof Uint8Array ? new TextDecoder().decode(bytes) : ""))
        let first = true
        // Set while the job is in neither qstat nor the accounting file (written every accounting_flush_time).
        let goneSince: number | undefined
        // Set while a job whose command has ended is still listed running.
        let endedSince: number | undefined
        while (true) {
          // the qmaster not answering: the job is left running and polled again
          const { value: jobs, recovered } = yield* pollThroughOutage({
            effect: Query.qstat(ge),
            retryIf: Query.isQmasterUnreachable,
            pollMs,
            waitMs: qmasterWaitMs,
            setting: "qmasterWaitMs",
            who: "the Grid Engine qmaster",
            state: () => (last.startsWith("Pending") ? "Pending" : "Running"),
            emit,
            giveUp: (waited) => fail("watch", `the Grid Engine qmaster did not answer for ${waited} (qmasterWaitMs): job ${ref.id} may still be running. ${CHECK}; once it answers, \`trex resume\` the run to follow the job again`)
          })
          if (recovered) last = ""
          const held = jobs.get(ref.id)
          // job ids are reused (after 9,999,999, or a new qmaster spool): another name is another job
          const job = held !== undefined && (name === undefined || held.name === name) ? held : undefined
          if (job !== undefined) {
            goneSince = undefined
            const live = Script.mapLive(job.state)
            if (live._tag === "Error") {
              // A job in error state waits for an admin's `qmod -cj` for ever: fail it, with Grid Engine's reason, and delete it.
              const why = yield* Effect.orElseSucceed(Query.details(ge, ref.id), () => undefined)
              const deleted = yield* Effect.result(ge.run("qdel", [ref.id]))
              silent = first && !replay
              yield* drain(true)
              silent = false
              const reasons = why?.errorReasons.join("; ") || "qstat -j gives no reason"
              return yield* end({
                _tag: "Exit",
                outcome: "Failed",
                failureKind: "Infra",
                message: `Grid Engine job ${ref.id} is in error state (${job.state}): ${reasons}. ${
                  Result.isSuccess(deleted) ? "It was deleted (qdel)" : `Deleting it failed (${deleted.failure.message}): delete it with \`qdel ${ref.id}\``
                }, as it would wait for an admin's \`qmod -cj\` for ever. Usually the execution host cannot reach the job directory ${jobDir}: workDir must be on a filesystem every execution host mounts and the job's user can write`,
                logTail: tail.get(),
                wallSeconds: 0,
                gpuSeconds: 0
              })
            }
            if (live._tag !== "Deleting") {
              let reason = live._tag === "Pending" ? live.reason : undefined
              if (live._tag === "Pending" && job.state.includes("R")) {
                // rescheduled: to run again, counted against maxRequeues
                const runs = yield* readRuns
                if (runs.starts > 0) reason = `${reason ?? `Grid Engine state ${job.state}`} (rerun ${runs.starts} of at most ${maxRequeues} (maxRequeues))`
              }
              if (live._tag === "Pending" && live.held !== true && reason === undefined) {
                const why = yield* Effect.orElseSucceed(Query.details(ge, ref.id), () => undefined)
                reason = why !== undefined ? Script.pendingReason(why) : undefined
              }
              const key = live._tag === "Pending" ? `Pending:${reason ?? ""}` : "Running"
              if (key !== last) {
                last = key
                yield* emit(live._tag === "Pending"
                  ? (reason !== undefined ? { _tag: "State", state: "Pending", reason } : { _tag: "State", state: "Pending" })
                  : { _tag: "State", state: "Running" })
              }
            }
            if (live._tag === "Running") {
              const recorded = yield* exitFile
              if (recorded === undefined) endedSince = undefined
              else if (endedSince === undefined) endedSince = Date.now()
              else if (Date.now() - endedSince >= exitReportWaitMs) {
                return yield* finish(recorded, recorded, ` (read from ${Script.EXIT_FILE}: the job's command ended ${waited(endedSince)} ago, but Grid Engine still lists the job running, as its execution daemon has not reported it: check the host with \`qhost\` and \`qstat -j ${ref.id}\`)`)
              }
            }
            yield* drain(false)
            first = false
            yield* Effect.sleep(pollMs)
            continue
          }
          // The job has left the qmaster: its script's exit record says how its command ended, at once;
          // qacct (which reads the whole accounting file, written every accounting_flush_time) only when
          // there is none (the script itself was killed: h_rt, a signal, a qdel past its grace), or when
          // the command was ended by a signal TREX did not send: at h_rt the script outlives its command
          // (exit 143 in the record, measured on SGE 8.1.9), and only accounting says it was the limit.
          const recorded = yield* exitFile
          const code = Number(recorded?.record.exit_status)
          if (recorded !== undefined) {
            // (the marker read once: a command ended by a signal is the job's end only when a cancel sent it)
            const cancel = code <= 128 ? undefined : yield* cancelOf(recorded)
            if (cancel === undefined || cancel.cancelled) return yield* finish(recorded, recorded, "", cancel)
          }
          const acct = yield* Query.qacct(ge, ref.id, name)
          if (acct.record === undefined) {
            // Grid Engine creates the output file when the job starts: a job deleted before it started has no accounting record
            const started = yield* runner.exists(`${jobDir}/${Script.STDOUT_FILE}`)
            if (!started && (yield* cancelOf(recorded)).marked) {
              return yield* end({ _tag: "Exit", outcome: "Cancelled", failureKind: "Cancelled", message: `Grid Engine job ${ref.id}: deleted with qdel before it started`, logTail: [], wallSeconds: 0, gpuSeconds: 0 })
            }
            if (goneSince === undefined) goneSince = Date.now()
            else if (Date.now() - goneSince >= accountingWaitMs) {
              if (recorded !== undefined) {
                return yield* finish(recorded, recorded, ` (read from ${Script.EXIT_FILE}: qacct has no record of it after ${waited(goneSince)}: ${acct.why})`)
              }
              yield* drain(true)
              return yield* end({
                _tag: "Exit",
                outcome: "Failed",
                failureKind: "Infra",
                message: `Grid Engine job ${ref.id} has left qstat with no exit record (its script was killed before its command ended), and qacct has no record of it after ${waited(goneSince)} (accountingWaitMs): ${acct.why}. ${
                  started ? "" : "It never started (it has no output file): was it deleted with qdel from outside TREX? "
                }Check \`qacct -j ${ref.id}\` and that the cluster keeps accounting (reporting_params accounting=true in \`qconf -sconf\`)`,
                logTail: tail.get(),
                wallSeconds: 0,
                gpuSeconds: 0
              })
            }
            yield* drain(false)
            first = false
            yield* Effect.sleep(pollMs)
            continue
          }
          return yield* finish({ record: acct.record }, recorded, "")
        }
      }).pipe(Effect.catch((e) => Queue.fail(queue, e))),
      // bounded: while the consumer is behind, the watch waits instead of reading more of the logs
      { bufferSize: WATCH_BUFFER }
    )

  // A qmaster that does not answer (restarting, failing over) is waited for, as a watch does: the
  // job runs on meanwhile, and a cancel that gave up at once left it running unwatched.
  const qdel = (id: string) =>
    execWaiting(`deleting job ${id}`, "qdel", [id]).pipe(
      Effect.flatMap((o) =>
        // deleting a job that has ended is a no-op
        o.code === 0 || /does not exist/i.test(o.stdout + o.stderr)
          ? Effect.void
          : Effect.fail(fail("qdel", `qdel ${id} exited ${o.code}: ${(o.stderr.trim() || o.stdout.trim()).split("\n").slice(-2).join(" ")}`, true))
      )
    )

  // The marker tells a job killed after this cancel from one the OOM killer (or someone else) killed.
  // The job was submitted with -notify: qdel sends SIGUSR2 first, which its script turns into a
  // SIGTERM to the job, and SIGKILL only after the queue's `notify` time.
  // The marker says what the cancel saw (Script.CancelMarker), and the job's exit record whether its command was told
  // to end: so a command that ends by itself between the look below and the marker (or the qdel) keeps its own end
  // (Script.cancelledBy). A job with no record is marked. One with a record (its command has ended) is marked only if
  // qstat still lists it (of the ref's name: ids are reused): Grid Engine may be about to run it again (its command
  // exited 99, `qmod -rj`, its host's failure: the record is the last run's until the rerun's script removes it), or
  // have started that rerun since the look; or the job is finishing its own end, which the marker's `runs` leaves
  // its own. A job that has left qstat has ended: no marker. qstat is asked only for a job with a record, once: a
  // qmaster that does not answer leaves the record to decide (`qdel` below waits for it). A record of an earlier TREX
  // (no `runs`) is marked, as before, only when its job waits to run again. The marker is written whole, and never over
  // one there: a second cancel leaves the first's (Query.markCancelled).
  // A job cancelled (or withdrawn) before any watch leaves `unwatched`: nothing waits for its lines.
  const cancel = Effect.fn("GridEngineBackend.cancel")(function*(ref: ExperimentNode.JobRef) {
    unwatched.drop(ref.id)
    if (typeof ref.data.jobDir === "string") {
      const jobDir = ref.data.jobDir
      const name = typeof ref.data.name === "string" ? ref.data.name : undefined
      yield* Effect.gen(function*() {
        const recorded = yield* exitRecordIn(jobDir)
        const look = Query.qstat(ge).pipe(Effect.map((jobs) => jobs.get(ref.id) ?? "gone" as const), Effect.orElseSucceed(() => undefined))
        yield* Query.markCancelled(runner, jobDir, recorded, look, name, new Date())
      }).pipe(
        Effect.catch((e) => Effect.logWarning(`gridengine: job ${ref.id}: ${e.message} (a job killed after this cancel may read as out of memory)`))
      )
    }
    yield* qdel(ref.id)
  })

  // Grid Engine has no "delete if still waiting": a user hold keeps a waiting job from being
  // dispatched (and does nothing to one that runs), so after `qhold` the state says which it is:
  // still waiting, it is deleted; started, its hold is released and it runs on.
  const withdraw = Effect.fn("GridEngineBackend.withdraw")(function*(ref: ExperimentNode.JobRef) {
    const what = `withdrawing job ${ref.id}`
    const held = yield* execWaiting(what, "qhold", ["-h", "u", ref.id])
    const job = (yield* waitForQmaster(what, Query.qstat(ge), Query.isQmasterUnreachable)).get(ref.id)
    if (job === undefined) return false
    if (Script.mapLive(job.state)._tag === "Pending" && job.state.includes("w")) {
      yield* cancel(ref)
      return true
    }
    if (held.code === 0) yield* execWaiting(what, "qrls", ["-h", "u", ref.id])
    return false
  })

  const list = Effect.fn("GridEngineBackend.list")(function*(runLabel: string) {
    // The job records in the run's directory (written by the backend after qsub, and by the job when
    // it starts): the jobs the qmaster has forgotten, and when each job was submitted.
    const runDir = `${config.workDir.replace(/\/$/, "")}/${pathSegment(runLabel)}`
    const listed = yield* runner.exec("find", [runDir, "-mindepth", "2", "-maxdepth", "2", "-name", Script.RECORD_FILE, "-exec", "grep", "-H", "", "{}", "+"])
    const records = new Map<string, { readonly record: NonNullable<ReturnType<typeof Script.parseRecord>>; readonly jobDir: string }>()
    for (const line of listed.stdout.split("\n")) {
      const at = line.lastIndexOf(`:${Script.recordPrefix}`)
      if (at < 0) continue
      const record = Script.parseRecord(line.slice(at + 1))
      if (record === undefined || record.labels.run !== runLabel) continue
      records.set(record.id, { record, jobDir: line.slice(0, at).slice(0, -(Script.RECORD_FILE.length + 1)) })
    }
    const submittedAt = (id: string) => {
      const at = records.get(id)?.record.submittedAt
      return at !== undefined ? { submittedAt: at } : {}
    }
    const found = new Map<string, Backend.JobInfo>()
    // A run that resumes reconciles its trials with this list: one that failed would be submitted again.
    const live = yield* waitForQmaster(`listing the jobs of run ${runLabel}`, Query.qstat(ge), Query.isQmasterUnreachable)
    const ids = [...live.keys()]
    for (let i = 0; i < ids.length; i += 200) {
      const contexts = yield* waitForQmaster(`listing the jobs of run ${runLabel}`, Query.contexts(ge, ids.slice(i, i + 200)), Query.isQmasterUnreachable)
      for (const [id, context] of contexts) {
        const mine = Script.labelsOf(context)
        const job = live.get(id)
        if (mine === undefined || mine.labels.run !== runLabel || job === undefined) continue
        const tag = Script.mapLive(job.state)._tag
        found.set(id, {
          ref: { backend: NAME, id, data: { ...(mine.jobDir !== undefined ? { jobDir: mine.jobDir } : {}), name: job.name } },
          labels: mine.labels,
          state: tag === "Running" || tag === "Deleting" ? "Running" : "Pending",
          ...submittedAt(id)
        })
      }
    }
    for (const [id, { record, jobDir }] of records) {
      if (found.has(id)) continue
      found.set(id, {
        ref: { backend: NAME, id, data: { jobDir, ...(record.name !== undefined ? { name: record.name } : {}) } },
        labels: record.labels,
        state: "Finished",
        ...submittedAt(id)
      })
    }
    return [...found.values()]
  })

  const capacity = Effect.gen(function*() {
    const queues = config.queue?.split(",").map((q) => q.trim()).filter((q) => q !== "")
    const slots = config.slots ?? Script.parseClusterQueues(yield* ge.run("qstat", ["-g", "c"]), queues)
    const hosts = (yield* ge.run("qconf", ["-sel"])).split("\n").map((h) => h.trim()).filter((h) => h !== "")
    const perHost = yield* Effect.forEach(["global", ...hosts], (h) =>
      Effect.map(ge.exec("qconf", ["-se", h]), (o) => (o.code === 0 ? Script.hostComplex(o.stdout, gpuResource) : 0)), { concurrency: 4 })
    const live = yield* Query.qstat(ge)
    const running = [...live.values()].filter((j) => Script.mapLive(j.state)._tag === "Running").map((j) => j.id)
    const contexts = yield* Query.contexts(ge, running)
    const inUse = [...contexts.values()].filter((c) => Script.labelsOf(c) !== undefined).length
    return { slots: Math.max(1, slots), gpus: perHost.reduce((a, b) => a + b, 0), inUse } satisfies Backend.Capacity
  }).pipe(Effect.withSpan("GridEngineBackend.capacity"))

  /**
   * The job's script as `submit` writes it, given to `qsub -w v` (Grid Engine checks that a queue could
   * run it, as on an empty cluster: its queue, project, parallel environment and resources; it starts
   * nothing) from a file in `workDir` that is removed after; and a command given by its full path
   * looked for on the submit host.
   */
  const preflight = (spec: Backend.JobSpec) =>
    Effect.try({
      try: () => Script.renderScript(scriptInput(spec, `${config.workDir.replace(/\/$/, "")}/.trex-check`, Date.now())),
      catch: (e) => fail("preflight", e instanceof Error ? e.message : String(e))
    }).pipe(Effect.flatMap((script) =>
      ScriptCheck.check({
        runner,
        workDir: config.workDir,
        setting: "backend.gridengine.workDir",
        script,
        test: (file) => ge.exec("qsub", ["-w", "v", file]),
        refused: (o) =>
          `qsub -w v: ${`${o.stdout}\n${o.stderr}`.split("\n").map((l) => l.trim()).filter((l) => l !== "" && l !== "Exiting.").join("; ")}: ` +
          `no queue of this cluster could run the job (${NO_QUEUE_SETTINGS})`,
        command: spec.argv[0] ?? "",
        runsOn: "the execution hosts"
      })
    ))

  return Backend.Backend.of(Backend.make({ name: NAME, submit, watch, cancel, withdraw, list, capacity, preflight }))
})

/**
 * The backend as a layer.
 * @since 0.1.0 @category layers
 */
export const layer = (config: Config): Layer.Layer<Backend.Backend, Errors.BackendError> => Layer.effect(Backend.Backend, make(config))

const Str = Schema.String
const optional = Schema.optionalKey
const PositiveMs = Schema.Finite.check(Schema.isGreaterThan(0))

/**
 * The `backend.gridengine` section of a task file: {@link Config} with the SSH key by reference
 * (`privateKeyFile`), so a task file never holds one.
 * @since 0.1.0 @category schemas
 */
export const ConfigJson = Schema.Struct({
  workDir: Str,
  queue: optional(Str),
  project: optional(Str),
  parallelEnvironment: optional(Str),
  gpuResource: optional(Str),
  memoryResource: optional(Schema.Union([Str, Schema.Literal(false)])),
  assignGpus: optional(Schema.Boolean),
  gpuLockDir: optional(Str),
  extraDirectives: optional(Schema.Array(Str)),
  pollIntervalMs: optional(PositiveMs),
  slots: optional(Schema.Int.check(Schema.isGreaterThan(0))),
  maxRequeues: optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  qmasterWaitMs: optional(PositiveMs),
  accountingWaitMs: optional(PositiveMs),
  exitReportWaitMs: optional(PositiveMs),
  sgeRoot: optional(Str),
  sgeCell: optional(Str),
  ssh: optional(Schema.Struct({
    host: Str,
    port: optional(Schema.Int),
    username: Str,
    privateKeyFile: Str,
    hostKeySha256: optional(Str)
  }))
})

/**
 * Decode a task file's `backend.gridengine` section into a {@link Config}, reading the SSH key file.
 * Errors name the field (`backend.gridengine.queue: ...`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { GridEngineBackend } from "@trex/executors"
 * const config = GridEngineBackend.fromJson({ workDir: "/shared/trex", queue: "gpu.q", ssh: { host: "login1", username: "me", privateKeyFile: "~/.ssh/id_ed25519" } })
 * const layer = Effect.map(config, GridEngineBackend.layer)
 * ```
 * @since 0.1.0 @category constructors
 */
export const fromJson = Effect.fn("GridEngineBackend.fromJson")(function*(input: unknown) {
  const invalid = (message: string) => new Errors.InvalidInput({ source: "backend.gridengine", message })
  const json = yield* Schema.decodeUnknownEffect(ConfigJson)(input, { errors: "all", onExcessProperty: "error" }).pipe(
    Effect.mapError((e) => invalid(`invalid backend.gridengine settings:\n${TaskFile.formatIssues(e, ConfigJson.ast).replace(/^ {2}/gm, "  backend.gridengine.")}`))
  )
  if (!json.workDir.startsWith("/")) return yield* invalid(`backend.gridengine.workDir ${JSON.stringify(json.workDir)} must be an absolute path on a filesystem the execution hosts share`)
  const { ssh, ...rest } = json
  const config: Config = rest
  if (ssh === undefined) return config
  const file = ssh.privateKeyFile.replace(/^~(?=\/|$)/, os.homedir())
  const key = yield* Effect.try({ try: () => fs.readFileSync(file, "utf8"), catch: (e) => invalid(`cannot read backend.gridengine.ssh.privateKeyFile ${file}: ${String(e)}`) })
  const { privateKeyFile: _, ...target } = ssh
  const withSsh: Config = { ...config, ssh: { ...target, privateKey: Redacted.make(key) } }
  return withSsh
})
