/**
 * A {@link Backend.Backend} that runs jobs as child processes on this machine, at most `slots` at
 * once, handing GPUs out through `CUDA_VISIBLE_DEVICES`. Each job runs in `<root>/<labels.node>`
 * under a small detached supervisor that enforces the time limit and records `exit.json`, so jobs
 * outlive the controller: a new backend on the same root lists, watches and cancels them. A
 * directory holds one job at a time (a submit while one is queued or running there fails) and
 * takes the next as soon as the last one's exit is recorded.
 *
 * @since 0.1.0
 */
import { Backend, Errors } from "@trex/core"
import type { ExperimentNode } from "@trex/core"
import { Effect, Layer, Schedule, Stream } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Job from "./internal/localJob.ts"
import { installSupervisor } from "./internal/localSupervisor.ts"
import { type Known, watchDir } from "./internal/localWatch.ts"

/**
 * Where jobs run and how many at once.
 * @since 0.1.0 @category models
 */
export interface Config {
  /** The jobs root: a job's directory is `<root>/<labels.node>`. */
  readonly root: string
  /** Jobs that may run at once (default 1); each job takes one slot whatever its `cpus`. `memoryMb` is not enforced. */
  readonly slots?: number
  /** GPU ids to hand out; a job asking for `k` GPUs gets `k` free ids in `CUDA_VISIBLE_DEVICES`. */
  readonly gpus?: ReadonlyArray<string>
  /** Between SIGTERM and SIGKILL when a job is cancelled or times out (default 10 s). */
  readonly killGraceMs?: number
  /**
   * Which of the controller's environment variables a job inherits (default {@link defaultInheritedEnv}:
   * paths, locale, temp dirs, CUDA/NVIDIA, Python, Hugging Face and `TREX_*` settings — never API keys). A job
   * gets any other variable only through its spec's `env`. `"all"` passes everything through.
   */
  readonly inheritEnv?: "all" | ReadonlyArray<string | RegExp>
}

/**
 * The controller variables a job inherits by default. Secrets such as `ANTHROPIC_API_KEY` are not
 * among them: a job that needs one gets it through its spec's `env`, as a `Redacted` value.
 * @since 0.1.0 @category constants
 */
export const defaultInheritedEnv: ReadonlyArray<string | RegExp> = [
  "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "TMP", "TEMP",
  /^LC_/, /^XDG_/, /^CUDA_/, /^NVIDIA_/, /^NCCL_/, "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONUNBUFFERED", "VIRTUAL_ENV",
  /^CONDA_/, /^HF_/, /^TRANSFORMERS_/, /^TREX_/, "NODE_PATH"
]

/** The controller variables a job inherits under `rule`. */
const inherited = (rule: Config["inheritEnv"]): Record<string, string> => {
  if (rule === "all") return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined))
  const allow = rule ?? defaultInheritedEnv
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && allow.some((a) => (typeof a === "string" ? a === k : a.test(k)))) out[k] = v
  }
  return out
}

/** Whether `file` is a file this process may execute. */
const executable = (file: string): boolean => {
  try {
    return Fs.statSync(file).isFile() && (Fs.accessSync(file, Fs.constants.X_OK), true)
  } catch {
    return false
  }
}

/** What would stop a job from starting here: its command not found as the job's `PATH` finds it. */
const preflight = (spec: Backend.JobSpec, env: Readonly<Record<string, string>>): Array<Backend.Concern> => {
  const out: Array<Backend.Concern> = []
  const command = spec.argv[0]
  if (command === undefined || command === "") out.push({ severity: "fail", message: "the job's command is empty (recipe.command[0])" })
  else if (Path.isAbsolute(command)) {
    if (!executable(command)) out.push({ severity: "fail", message: `the job's command ${command} does not exist or is not executable (recipe.command[0])` })
  } else if (command.includes("/")) {
    out.push({ severity: "warn", message: `the job's command ${command} is relative to each job's own directory, which holds only the files trex writes: write {taskDir}/${command.replace(/^\.\//, "")} (recipe.command[0])` })
  } else if (!(env["PATH"] ?? "").split(Path.delimiter).some((dir) => executable(Path.join(dir === "" ? "." : dir, command)))) {
    out.push({ severity: "fail", message: `the job's command ${command} is not on the PATH jobs get (${env["PATH"] ?? "unset"}): give its full path in recipe.command[0], or install it` })
  }
  return out
}

const NAME = "local"
const NODE_LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** A job's hold on a slot: its GPU ids, and whether its `pid` file is out yet. */
interface Slot {
  readonly gpuIds: ReadonlyArray<string>
  started: boolean
}

interface Queued {
  readonly dir: string
  readonly spec: Backend.JobSpec
}

const fail = (operation: string, message: string, retryable = false) =>
  new Errors.BackendError({ backend: NAME, operation, message, retryable })

const attempt = <A>(operation: string, f: () => A) =>
  Effect.try({ try: f, catch: (e) => fail(operation, e instanceof Error ? e.message : String(e), true) })

const pollUntil = <A>(f: () => A | undefined, timeoutMs: number, everyMs = 20): Effect.Effect<A | undefined> =>
  Effect.suspend(() => {
    const deadline = Date.now() + timeoutMs
    const loop: Effect.Effect<A | undefined> = Effect.suspend(() => {
      const a = f()
      return a !== undefined || Date.now() >= deadline ? Effect.succeed(a) : Effect.delay(loop, everyMs)
    })
    return loop
  })

/** Write the job's files into its directory, refusing any path that would leave it. */
const writeFiles = (dir: string, files: Backend.JobSpec["files"]): void => {
  for (const file of files) {
    const parts = file.path.split(/[\\/]/)
    if (Path.isAbsolute(file.path) || parts.includes("..") || file.path === "" || Job.CONTROL_FILES.has(Path.normalize(file.path))) {
      throw fail("submit", `job file ${JSON.stringify(file.path)} must be a relative path inside the job directory`)
    }
    const target = Path.join(dir, file.path)
    Fs.mkdirSync(Path.dirname(target), { recursive: true })
    Fs.writeFileSync(target, file.content)
  }
}

/** The env as written to `job.spec.json`: secret values replaced by a marker. */
const describeEnv = (env: Backend.JobSpec["env"]): Record<string, string> =>
  Object.fromEntries(Object.entries(env).map(([k, v]) => [k, typeof v === "string" ? v : "<redacted>"]))

/**
 * A local backend. Needs a `Scope`: closing it stops the queue (queued jobs end as `Infra`
 * failures) but leaves running jobs running, for the next controller to reattach.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend } from "@trex/core"
 * import { LocalBackend } from "@trex/executors"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const backend = yield* LocalBackend.make({ root: "trex-runs/r1/jobs", slots: 2 })
 *   return yield* Backend.run(backend, {
 *     name: "hello", argv: ["node", "-e", "console.log(1)"], env: {}, files: [],
 *     resources: { gpus: 0, cpus: 1 }, labels: { run: "r1", node: "n1" }
 *   })
 * }))
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = Effect.fn("LocalBackend.make")(function*(config: Config) {
  const root = Path.resolve(config.root)
  const slots = Math.max(1, config.slots ?? 1)
  const allGpus = [...(config.gpus ?? [])]
  const killGraceMs = config.killGraceMs ?? 10_000
  const supervisor = yield* attempt("make", () => {
    Fs.mkdirSync(root, { recursive: true })
    return installSupervisor(root)
  })
  const scope = yield* Effect.scope

  const queue: Array<Queued> = []
  /**
   * Jobs holding a slot, by directory: their GPU ids, and whether their `pid` file is out yet. A slot is
   * an object of its own, so that a job's late bookkeeping never frees the slot of the next job in the
   * same directory.
   */
  const running = new Map<string, Slot>()
  let freeGpus = [...allGpus]

  /** Give back `slot` (if it still holds `dir`) and its GPUs: `true` when it did. */
  const release = (dir: string, slot: Slot): boolean => {
    if (running.get(dir) !== slot) return false
    running.delete(dir)
    freeGpus = allGpus.filter((id) => freeGpus.includes(id) || slot.gpuIds.includes(id))
    return true
  }

  /**
   * Free the slot of the job in `dir` at once if it has ended (its exit recorded), rather than at
   * its monitor's next poll: the moment a watch delivers an Exit, the directory takes a new job.
   */
  const settle = (dir: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      const slot = running.get(dir)
      return slot !== undefined && exitOf(dir) !== undefined && release(dir, slot) ? pump : Effect.void
    })

  // Exits this backend could not record (no room on a full disk): its watches, monitors and `settle`
  // read them here, as they read `exit.json`; a new submission to the directory forgets them.
  const unrecorded = new Map<string, Job.ExitFile>()
  const exitOf = (dir: string): Job.ExitFile | undefined => Job.readExit(dir) ?? unrecorded.get(dir)

  const spawnError = (dir: string, message: string) => {
    const now = Date.now()
    const exit: Job.ExitFile = { code: null, signal: null, startedAt: now, endedAt: now, reason: "spawn-error", message }
    try {
      Job.writeExitOnce(dir, exit)
    } catch {
      unrecorded.set(dir, exit)
    }
  }

  /**
   * Hold a slot until the job in `dir` has ended (its exit recorded, or all its processes gone), or
   * until {@link settle} freed it first.
   */
  const monitor = (dir: string, slot: Slot): Effect.Effect<void> =>
    Effect.sync(() => {
      if (running.get(dir) !== slot || exitOf(dir) !== undefined) return true
      const pid = Job.readPid(dir)
      return pid !== undefined && !Job.isRunning(pid) && Job.readExit(dir) === undefined
    }).pipe(
      Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (ended) => ended }),
      // Not on interruption: a closing backend starts nothing new.
      Effect.andThen(Effect.suspend(() => (release(dir, slot) ? pump : Effect.void)))
    )

  /** Launch the supervisor of a job that got a slot, wait for its `pid` file, then hold the slot. */
  const start = ({ dir, spec }: Queued, slot: Slot): Effect.Effect<void> =>
    Effect.gen(function*() {
      let exited = false
      const launched = yield* Effect.try({
        try: () => {
          Job.writeJsonAtomic(Path.join(dir, Job.SPEC_FILE), { ...Job.readSpec(dir)!, gpuIds: slot.gpuIds })
          const log = Fs.openSync(Path.join(dir, Job.SUPERVISOR_LOG), "a")
          const child = spawn(process.execPath, [supervisor, dir], {
            cwd: dir,
            detached: true,
            stdio: ["ignore", log, log],
            env: { ...inherited(config.inheritEnv), ...Backend.revealEnv(spec.env), CUDA_VISIBLE_DEVICES: slot.gpuIds.join(","), TREX_JOB_DIR: dir }
          })
          Fs.closeSync(log)
          child.on("error", () => {}) // then no pid file appears: reported below
          // a supervisor that exits before it records a pid or an exit could not start the job (no room
          // on a full disk to record anything): reported at once, not after the wait for its pid
          child.on("exit", () => void (exited = true))
          child.unref()
        },
        catch: (e) => (e instanceof Error ? e.message : String(e))
      }).pipe(
        Effect.as(true),
        Effect.catch((e) =>
          Effect.sync(() => {
            spawnError(dir, `cannot start the supervisor: ${e}`)
            return false
          })
        )
      )
      const seen = () => Job.readPid(dir) ?? Job.readExit(dir)
      // Its slot released meanwhile (its Exit was read and delivered), the directory may be the next job's,
      // its files cleared for it: nothing seen there says this supervisor did not start.
      const mine = () => running.get(dir) === slot
      if (launched && ((yield* pollUntil(() => seen() ?? (exited ? "exited" : undefined), 15_000)) ?? "exited") === "exited" && mine() && seen() === undefined) {
        const log = Path.join(dir, Job.SUPERVISOR_LOG)
        spawnError(dir, `the supervisor did not start: ${Fs.existsSync(log) ? Fs.readFileSync(log, "utf8").slice(-2000) : ""}`)
      }
      slot.started = true
      yield* monitor(dir, slot)
    })

  /** Start queued jobs, in order, while a slot and enough GPUs are free. */
  const pump: Effect.Effect<void> = Effect.suspend(() => {
    const startable: Array<Effect.Effect<void>> = []
    while (queue.length > 0 && running.size < slots && queue[0]!.spec.resources.gpus <= freeGpus.length) {
      const job = queue.shift()!
      const gpuIds = freeGpus.slice(0, job.spec.resources.gpus)
      freeGpus = freeGpus.slice(gpuIds.length)
      const slot: Slot = { gpuIds, started: false }
      running.set(job.dir, slot)
      startable.push(start(job, slot))
    }
    return Effect.forEach(startable, (s) => Effect.forkIn(s, scope), { discard: true })
  })

  const known = (dir: string) => (): Known =>
    queue.some((q) => q.dir === dir) ? "queued" : running.get(dir)?.started === false ? "starting" : "unknown"

  // The job's directory: under this backend's root, where a moved run directory's jobs are now;
  // else the one the ref recorded (a job of another root).
  const refDir = (ref: ExperimentNode.JobRef): string => {
    const here = Path.join(root, ref.id)
    const recorded = ref.data["dir"]
    if (typeof recorded !== "string" || recorded === here) return here
    return Fs.existsSync(Path.join(here, Job.SPEC_FILE)) || !Fs.existsSync(Path.join(recorded, Job.SPEC_FILE)) ? here : recorded
  }

  const toRef = (dir: string): ExperimentNode.JobRef => ({ backend: NAME, id: Path.basename(dir), data: { dir } })

  // Jobs a previous controller left running hold their slots and GPUs until they end.
  for (const entry of yield* attempt("make", () => Fs.readdirSync(root, { withFileTypes: true }))) {
    const dir = Path.join(root, entry.name)
    const pid = entry.isDirectory() ? Job.readPid(dir) : undefined
    if (pid === undefined || Job.readExit(dir) !== undefined || !Job.isRunning(pid)) continue
    const slot: Slot = { gpuIds: pid.gpuIds, started: true }
    running.set(dir, slot)
    freeGpus = freeGpus.filter((id) => !pid.gpuIds.includes(id))
    yield* Effect.forkIn(monitor(dir, slot), scope)
  }

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      const now = Date.now()
      for (const { dir } of queue.splice(0)) {
        Job.writeExitOnce(dir, { code: null, signal: null, startedAt: now, endedAt: now, reason: "abandoned" })
      }
    })
  )

  const submit = Effect.fn("LocalBackend.submit")(function*(spec: Backend.JobSpec) {
    if (!NODE_LABEL.test(spec.labels.node)) {
      return yield* fail("submit", `labels.node ${JSON.stringify(spec.labels.node)} must match ${NODE_LABEL} (it names the job directory)`)
    }
    if (spec.argv.length === 0) return yield* fail("submit", "argv is empty")
    if (spec.resources.gpus > allGpus.length) {
      return yield* fail("submit", `the job needs ${spec.resources.gpus} GPUs; this backend has ${allGpus.length}`)
    }
    const dir = Path.join(root, spec.labels.node)
    // the job before it in this directory ended (a watch may just have delivered its Exit): its slot is free now
    yield* settle(dir)
    if (queue.some((q) => q.dir === dir) || running.has(dir)) {
      return yield* fail("submit", `a job for node ${spec.labels.node} is already queued or running`)
    }
    const previous = Job.readPid(dir)
    if (previous !== undefined && Job.readExit(dir) === undefined && Job.isRunning(previous)) {
      return yield* fail("submit", `a job for node ${spec.labels.node} is still running (pid ${previous.pid})`)
    }
    yield* Effect.try({
      try: () => {
        Fs.mkdirSync(dir, { recursive: true })
        // A resubmitted node starts from a clean slate.
        for (const f of [...Job.CONTROL_FILES, "result.json", "metrics.jsonl"]) Fs.rmSync(Path.join(dir, f), { force: true })
        unrecorded.delete(dir)
        writeFiles(dir, spec.files)
        const specFile: Job.SpecFile = {
          name: spec.name,
          argv: spec.argv,
          labels: spec.labels,
          resources: spec.resources,
          env: describeEnv(spec.env),
          gpuIds: [],
          killGraceMs,
          submittedAt: Date.now()
        }
        Job.writeJsonAtomic(Path.join(dir, Job.SPEC_FILE), specFile)
      },
      catch: (e) =>
        e instanceof Errors.BackendError ? e
        : Errors.noSpace(e) !== undefined ? fail("submit", `cannot prepare ${dir}: ${Errors.noSpace(e)}: free space on the disk holding it (or make it writable)`, true)
        : fail("submit", `cannot prepare ${dir}: ${String(e)}`, true)
    })
    queue.push({ dir, spec })
    yield* pump
    return toRef(dir)
  })

  // Synchronous, so the queue cannot start the job between the check and the removal.
  const withdraw = (ref: ExperimentNode.JobRef) =>
    Effect.sync(() => {
      const dir = refDir(ref)
      const queued = queue.findIndex((q) => q.dir === dir)
      if (queued < 0) return false
      queue.splice(queued, 1)
      const now = Date.now()
      Job.writeExitOnce(dir, { code: null, signal: null, startedAt: now, endedAt: now, reason: "cancel" })
      return true
    })

  const cancel = Effect.fn("LocalBackend.cancel")(function*(ref: ExperimentNode.JobRef) {
    if (yield* withdraw(ref)) return
    const dir = refDir(ref)
    // A job that is starting gets its pid file (or its exit) within moments.
    const pid = yield* pollUntil(() => (Job.readExit(dir) !== undefined ? "ended" : Job.readPid(dir)), known(dir)() === "starting" ? 15_000 : 0)
    if (pid === undefined || pid === "ended") return
    // The supervisor kills the group (TERM, then KILL after the grace) and records the exit...
    const supervised = () => Job.isAlive(pid.supervisorPid, pid.supervisorProcStart)
    if (supervised()) Job.signal(pid.supervisorPid, "SIGTERM")
    yield* pollUntil(() => (Job.readExit(dir) !== undefined || !supervised() ? true : undefined), killGraceMs + 5_000, 50)
    if (Job.readExit(dir) !== undefined) return
    // ...unless it is gone (or hung): then we do it ourselves.
    Job.signal(-pid.pid, "SIGTERM")
    yield* pollUntil(() => (Job.isAlive(pid.pid, pid.procStart) ? undefined : true), killGraceMs, 50)
    Job.signal(-pid.pid, "SIGKILL")
    Job.writeExitOnce(dir, { code: null, signal: "SIGTERM", startedAt: pid.startedAt, endedAt: Date.now(), reason: "cancel" })
  })

  const list = Effect.fn("LocalBackend.list")(function*(run: string) {
    const entries = yield* attempt("list", () => Fs.readdirSync(root, { withFileTypes: true }))
    const jobs: Array<Backend.JobInfo> = []
    for (const entry of entries) {
      if (!entry.isDirectory()) continue
      const dir = Path.join(root, entry.name)
      const spec = Job.readSpec(dir)
      if (spec === undefined || spec.labels.run !== run) continue
      const pid = Job.readPid(dir)
      const state = exitOf(dir) !== undefined
        ? "Finished"
        : pid !== undefined
        ? (Job.isRunning(pid) ? "Running" : "Finished")
        : known(dir)() !== "unknown"
        ? "Pending"
        : "Finished"
      jobs.push({ ref: toRef(dir), labels: spec.labels, state, ...(spec.submittedAt !== undefined ? { submittedAt: spec.submittedAt } : {}) })
    }
    return jobs
  })

  return Backend.make<Backend.BackendShape>({
    name: NAME,
    submit,
    watch: (ref) =>
      Stream.suspend(() => {
        const dir = refDir(ref)
        return Fs.existsSync(Path.join(dir, Job.SPEC_FILE))
          // chunk by chunk (a poll's events stay together: a consumer handles a burst of them at once)
          ? watchDir(dir, known(dir), () => unrecorded.get(dir)).pipe(
            Stream.mapArrayEffect((events) => (events.some((e) => e._tag === "Exit") ? Effect.as(settle(dir), events) : Effect.succeed(events)))
          )
          : Stream.fail(fail("watch", `no job at ${dir}`))
      }),
    cancel,
    withdraw,
    list,
    capacity: Effect.sync(() => ({ slots, gpus: allGpus.length, inUse: running.size })),
    preflight: (spec) => Effect.sync(() => preflight(spec, { ...inherited(config.inheritEnv), ...Backend.revealEnv(spec.env) }))
  })
})

/**
 * The local backend as the {@link Backend.Backend} service.
 *
 * @example
 * ```ts
 * import { LocalBackend } from "@trex/executors"
 * const BackendLive = LocalBackend.layer({ root: "trex-runs/r1/jobs", slots: 1, gpus: ["0", "1"] })
 * ```
 * @since 0.1.0 @category layers
 */
export const layer = (config: Config): Layer.Layer<Backend.Backend, Errors.BackendError> =>
  Layer.effect(Backend.Backend, make(config))
