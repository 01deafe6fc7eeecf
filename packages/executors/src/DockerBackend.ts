/**
 * A {@link Backend.Backend} that runs each trial in its own Docker container (dockerode), with GPUs
 * through `DeviceRequests`, the job directory `<root>/<labels.node>` bind-mounted, memory and CPU
 * limits, live logs and metrics, and containers labelled `trex.run` / `trex.node` so that a new
 * controller can list and reattach to them. A daemon that is down or restarting is retried with a
 * capped exponential schedule and reported as a retryable `BackendError` when retries run out; a
 * running job's watch waits for it longer (`engineWait`), its container left be.
 * Podman's Docker-compatible API works too: the engine is asked once which it is, a GPU job is
 * refused there (Podman would ignore the request), its log is read unfollowed (its followed
 * log drops lines), and limits it would ignore (rootless) are warned of; see docs/backends.md, "Podman".
 *
 * @since 0.1.0
 */
import { Backend, Errors, JobProtocol } from "@trex/core"
import type { ExperimentNode } from "@trex/core"
import type Docker from "dockerode"
import { Cause, Duration, Effect, Fiber, Layer, Queue, Schedule, Semaphore, Stream } from "effect"
import * as Fs from "node:fs"
import type * as Http from "node:http"
import * as Path from "node:path"
import type { Readable } from "node:stream"
import { AdmissionQueue, LOST_IN_QUEUE, QueuePoll, unstarted } from "./internal/admissionQueue.ts"
import { engineHost, engineOptions, socketRefusal, type SshAccess } from "./internal/dockerEngine.ts"
import * as Spec from "./internal/dockerSpec.ts"
import * as Clients from "./internal/clients.ts"
import { boundedWatch } from "./internal/volume.ts"

/**
 * How to reach the engine and how to run containers.
 * @since 0.1.0 @category models
 */
export interface Config {
  /** Host directory holding job directories: a job's is `<root>/<labels.node>` (it must exist on the engine's host). */
  readonly root: string
  /** Image for specs that name none. */
  readonly image?: string
  /** Engine socket (default: `DOCKER_HOST`, else /var/run/docker.sock); Podman's is /run/podman/podman.sock (rootful) or `$XDG_RUNTIME_DIR/podman/podman.sock`. */
  readonly socketPath?: string
  /**
   * Engine URL instead: `ssh://user@gpu-host[:port]` (needs `ssh`), `tcp://host:2375`, `unix:///path`. A
   * `DOCKER_HOST=ssh://...` without it is reached the same way (`ssh`, else the SSH agent then each usable `~/.ssh/id_*`, and
   * `~/.ssh/known_hosts`, `known_hosts2`, `/etc/ssh/ssh_known_hosts` and `ssh_known_hosts2`). `~/.ssh/config`'s `Host` blocks fill in what the URL does not
   * say (`HostName`, `User`, `Port`; without `ssh`, `IdentityFile` and `UserKnownHostsFile` too); what it cannot honour
   * (`ProxyJump`, a `Match exec`) is a warning naming the line; a `HostName` or `Port` that moves the URL's host
   * elsewhere is logged once at make. A URL without a user logs in as the local user.
   */
  readonly host?: string
  /** Key and known_hosts for an `ssh://` engine; the host key must be known (no trust on first use). */
  readonly ssh?: SshAccess
  /** Full dockerode options (TLS...), overriding `socketPath` and `host`. */
  readonly docker?: Docker.DockerOptions
  /** Network mode (default "none": no network; "host" reaches the host's loopback; "bridge" the internet). */
  readonly network?: string
  /** Keep containers after their exit was read (default false: removed). */
  readonly keep?: boolean
  /** GPU device ids to hand out explicitly (`DeviceIDs`); without them a job asks for `Count: n`. */
  readonly gpus?: ReadonlyArray<string>
  /** Container path of the job directory (default: its host path); `TREX_JOB_DIR` follows. */
  readonly mountAt?: string
  /**
   * Trex containers running at once on the engine (default: its CPU count). A job submitted while
   * every slot (or every GPU it needs, of `gpus`) is taken waits in this backend's queue, reported
   * `Pending` with the reason, and starts in submission order as they free; a stop can withdraw it.
   */
  readonly slots?: number
  /** Run the engine's init as PID 1 so that the job gets SIGTERM on cancel (default true; on Podman it needs `catatonit`). */
  readonly init?: boolean
  /** Extra bind mounts for every job, e.g. a shared Hugging Face cache. */
  readonly mounts?: ReadonlyArray<Spec.Mount>
  /** Size of /dev/shm in MB (Docker's default of 64 MB starves PyTorch data loaders). */
  readonly shmSizeMb?: number
  /** Retry budget for a daemon that is down (default 30 s; delays from 200 ms, doubling, capped at 5 s). */
  readonly retryFor?: Duration.Input
  /**
   * How long a running job's watch, or a job waiting to start, waits for an engine that stopped
   * answering (default 30 minutes): a container is left be and the engine asked again every second;
   * then the trial fails, naming what to check, and `trex resume` follows the container again once
   * the engine answers.
   */
  readonly engineWait?: Duration.Input
  /** Between SIGTERM and SIGKILL on cancel or timeout (default 10 s). */
  readonly stopGraceSeconds?: number
}

const NAME = "docker"
const QUEUE_POLL = "250 millis"
const NODE_LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
const METRICS_POLL = "250 millis"
/** Between reads of a container's log on an engine whose followed log drops lines (Podman), at least. */
const LOG_POLL_MS = 250
/** At most this many bytes of `metrics.jsonl` are read a step. */
const READ_CHUNK = 4 << 20

/** Hands an event to the watch's consumer, waiting while its queue is full. */
type Emit = (e: Backend.JobEvent) => Effect.Effect<void>

/** Bytes of `file` from `offset` on, at most {@link READ_CHUNK}; none when it is not there (yet). */
const readSlice = (file: string, offset: number): Buffer => {
  let fd: number
  try {
    fd = Fs.openSync(file, "r")
  } catch {
    return Buffer.alloc(0)
  }
  try {
    const buf = Buffer.allocUnsafe(Math.max(0, Math.min(READ_CHUNK, Fs.fstatSync(fd).size - offset)))
    let got = 0
    while (got < buf.length) {
      const n = Fs.readSync(fd, buf, got, buf.length - got, offset + got)
      if (n === 0) break
      got += n
    }
    return buf.subarray(0, got)
  } finally {
    Fs.closeSync(fd)
  }
}

/** A running job's watch's view of the engine: since when it has not answered, and whether it went away at all. */
interface Outage {
  since: number | undefined
  seen: boolean
  /** Tells the watch's consumer that the engine stopped answering (with why), and that it answers again. */
  tell: (reason: string | undefined) => Effect.Effect<void>
}
const ENGINE_POLL = "1 second"
const waited = (since: number) => `${Math.round((Date.now() - since) / 1000)} s`

const fail = (operation: string, message: string, retryable = false) =>
  new Errors.BackendError({ backend: NAME, operation, message, retryable })

const isNotFound = (e: unknown) => Spec.classifyError(e).status === 404

/** `value` if it is a JSON object (not null, not an array). */
const anObject = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined

/** An exit file's JSON as an exit, if it is of the shape written (an object with an outcome). */
const anExit = (value: unknown): Backend.JobExit | undefined => {
  const exit = anObject(value)
  return typeof exit?.["outcome"] === "string" ? exit as unknown as Backend.JobExit : undefined
}

/**
 * The containers whose exits a job directory records, from its `.trex-job.json` and (read only if that names a
 * container) its `.trex-exit.json`: the earlier jobs' (`ended`), and the last one's when its exit was recorded.
 */
const endedFrom = (recordJson: unknown, exitJson: () => unknown): ReadonlyArray<EndedJob> => {
  const record = anObject(recordJson) as JobRecord | undefined
  const last = typeof record?.container === "string" ? anExit(exitJson()) : undefined
  const earlier = endedOf(record).filter((e) => e.container !== record?.container)
  return last !== undefined ? [...earlier, { container: record!.container!, outcome: last.outcome }] : earlier
}

/**
 * A file's JSON read off the event loop, as at a backend's start from the job directories of other roots (anyone's
 * paths: a hung network mount, a FIFO): only a regular file is opened (without waiting for a writer, should it be
 * swapped for a FIFO meanwhile), and a read that takes over {@link FOREIGN_READ_MS} is given up; undefined then.
 */
const readJsonOff = (file: string) =>
  Effect.tryPromise(async () => {
    if (!(await Fs.promises.lstat(file)).isFile()) return undefined
    const handle = await Fs.promises.open(file, Fs.constants.O_RDONLY | Fs.constants.O_NONBLOCK)
    try {
      return (await handle.stat()).isFile() ? JSON.parse(await handle.readFile("utf8")) as unknown : undefined
    } finally {
      await handle.close()
    }
  }).pipe(Effect.timeout(FOREIGN_READ_MS), Effect.orElseSucceed(() => undefined))

/**
 * The dead containers of earlier controllers that a backend's start could not remove and said so, in this process: the
 * warning is said once a process, not at each backend's start. A `trex run` or `resume` makes one backend, so each
 * run's log still says it once, as a user reading that run's log expects while the container is there (it holds its
 * files on the engine's disk, and the fix is theirs); a record that it was said, kept on disk, would silence it for
 * every later run, and one missed line would leave it unheard of. A process that makes many backends (a program that
 * embeds TREX and makes one per run, a service, the tests) says it once; each of its backends still tries the removal
 * again after its jobs' ends, quietly.
 */
const saidAtStart = new Set<string>()

/** How long a backend's start waits for a file of a dead container's job directory (see {@link readJsonOff}). */
const FOREIGN_READ_MS = 5_000

/** The uid that owns `path`, if it can be looked at (off the event loop, within {@link FOREIGN_READ_MS}). */
const ownerOf = (path: string) =>
  Effect.tryPromise(() => Fs.promises.stat(path)).pipe(
    Effect.map((st): number | undefined => st.uid),
    Effect.timeout(FOREIGN_READ_MS),
    Effect.orElseSucceed(() => undefined)
  )

/**
 * A record's `ended`, the entries of the shape written (a container and an outcome, strings) only: a job directory is
 * anyone's to edit, and a record of another shape counts as no record (never as a recorded exit).
 */
const endedOf = (record: JobRecord | undefined): ReadonlyArray<EndedJob> =>
  Array.isArray(record?.ended)
    ? record.ended.filter((e: unknown): e is EndedJob => typeof anObject(e)?.["container"] === "string" && typeof anObject(e)?.["outcome"] === "string")
    : []

/** A container of an earlier job of a job directory, whose exit was recorded before a new job there cleared the records. */
interface EndedJob {
  readonly container: string
  readonly outcome: Backend.JobExit["outcome"]
}

/** `<jobdir>/.trex-job.json`: the job's container (once created), and the containers of the directory's earlier jobs whose exits were recorded. */
interface JobRecord {
  readonly name?: string
  readonly labels?: Backend.Labels
  readonly container?: string
  readonly ticket?: string
  /** When the job was submitted (the controller's clock, milliseconds; also its container's label): `list` reports it once the container is gone. */
  readonly submittedAt?: number
  readonly ended?: ReadonlyArray<EndedJob>
}

/** A job waiting in the backend's queue for a slot, GPUs or the engine (its ref, `data.queued`, stands for it until it starts). */
interface QueuedJob {
  readonly spec: Backend.JobSpec
  readonly jobDir: string
  /** Its directory's earlier containers that the engine still had (`ended`), as its submit read and wrote them. */
  readonly ended: ReadonlyArray<EndedJob>
  /** When it was submitted (milliseconds): its record's once it starts. */
  readonly submittedAt: number
  readonly options: (gpuIds: ReadonlyArray<string> | undefined) => Effect.Effect<Docker.ContainerCreateOptions, Errors.BackendError>
  /** Since when the engine has not answered while this job waited (bounded by `engineWait`). */
  engineDownSince: number | undefined
}

/** How long a container nobody here created may stay `created` before it counts as never started (its controller died between creating and starting it). */
const START_GRACE_MS = 10_000

/**
 * The container-create request for a job: exported so callers can see exactly what is sent
 * (GPU `DeviceRequests`, mounts, limits, labels).
 *
 * @example
 * ```ts
 * import { DockerBackend } from "@trex/executors"
 * declare const spec: import("@trex/core").Backend.JobSpec
 * const req = DockerBackend.containerConfig(spec, { network: "none", image: "python:3.12" }, { jobDir: "/runs/r1/n1" })
 * req.HostConfig?.DeviceRequests // [{ Driver: "", Count: 1, Capabilities: [["gpu"]] }] when spec.resources.gpus = 1
 * ```
 * @since 0.1.0 @category utilities
 */
export const containerConfig: (
  spec: Backend.JobSpec,
  options: Spec.ContainerOptions,
  placement: Spec.Placement,
  now?: number
) => Docker.ContainerCreateOptions = Spec.containerConfig

/**
 * A Docker backend on one engine.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend } from "@trex/core"
 * import { DockerBackend } from "@trex/executors"
 * const program = Effect.gen(function*() {
 *   const backend = yield* DockerBackend.make({ root: "/srv/trex/jobs", image: "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", network: "bridge" })
 *   return yield* backend.capacity
 * })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = Effect.fn("DockerBackend.make")(function*(config: Config) {
  const root = Path.resolve(config.root)
  const Dockerode = yield* Clients.dockerode
  // an ssh:// engine, named by `host` or by DOCKER_HOST, is reached through a pool of SSH connections of the backend's own
  const host = config.docker === undefined ? engineHost(config) : undefined
  const ssh2 = host?.startsWith("ssh:") === true ? yield* Effect.promise(Clients.ssh2) : undefined
  // what of ~/.ssh/config an ssh:// engine cannot honour (Include, Match, ProxyJump...), each naming its line
  const sshWarnings: Array<string> = []
  const sshNotes: Array<string> = []
  const options = config.docker ?? (yield* Effect.try({
    try: () =>
      engineOptions({ socketPath: config.socketPath, host: config.host, ssh: config.ssh }, ssh2, process.env, undefined, (w) => sshWarnings.push(w), (n) => sshNotes.push(n)),
    catch: (e) => fail("make", `engine ${host}: ${e instanceof Error ? e.message : String(e)}`)
  }))
  for (const w of sshWarnings) yield* Effect.logWarning(`docker engine ${w}`)
  for (const n of sshNotes) yield* Effect.logInfo(`docker engine ${n}`)
  const docker = new Dockerode(options)
  // an ssh:// engine's SSH connections and their sessions (`docker system dial-stdio` on the host) end with the backend
  const sshAgent = config.docker === undefined ? (options as { readonly agent?: Http.Agent } | undefined)?.agent : undefined
  if (sshAgent !== undefined) yield* Effect.addFinalizer(() => Effect.sync(() => sshAgent.destroy()))
  const keep = config.keep ?? false
  const network = config.network ?? "none"
  const grace = config.stopGraceSeconds ?? 10
  const gpuPool = [...(config.gpus ?? [])]
  const schedule = Schedule.max([
    Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("5 seconds")]),
    Schedule.during(config.retryFor ?? "30 seconds")
  ])
  const engineWaitMs = Duration.toMillis(Duration.fromInputUnsafe(config.engineWait ?? "30 minutes"))
  /** The engine as the user named it (or as dockerode finds it), for messages that say where to look. */
  const where = config.docker !== undefined
    ? "the engine of the given dockerode options"
    : config.socketPath ?? config.host ?? (process.env["DOCKER_HOST"] !== undefined ? `DOCKER_HOST=${process.env["DOCKER_HOST"]}` : "unix:///var/run/docker.sock (DOCKER_HOST is not set)")
  /** Exits already read (their containers may be gone); containers created here whose exit nobody read yet. */
  const exits = new Map<string, Backend.JobExit>()
  const fresh = new Set<string>()

  /** `GET /_ping`: the answer's headers, which say which engine answers, and its version. */
  const ping = () =>
    new Promise<Readonly<Record<string, string | ReadonlyArray<string> | undefined>>>((resolve, reject) =>
      docker.modem.dial({ path: "/_ping", method: "GET", isStream: true, statusCodes: { 200: true, 500: "server error" } }, (err: Error | null, res: unknown) => {
        if (err !== null) return reject(err)
        const answer = res as Readable & { readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>> }
        answer.resume()
        resolve(answer.headers)
      })
    )

  /** One try of an engine call; an unreachable engine is a retryable error. */
  const once = <A>(operation: string, f: () => Promise<A>) =>
    Effect.tryPromise({
      try: f,
      catch: (e) => {
        const c = Spec.classifyError(e)
        return fail(operation, c.retryable ? `Docker engine unreachable: ${c.message}` : c.message, c.retryable)
      }
    })

  /** One engine call, retried while the daemon is unreachable; the error of the last try says how many there were. */
  const call = <A>(operation: string, f: () => Promise<A>) =>
    Effect.suspend(() => {
      let attempts = 0
      return once(operation, () => {
        attempts++
        return f()
      }).pipe(
        Effect.retry({ schedule, while: (e) => e.retryable }),
        Effect.mapError((e) => (attempts > 1 ? fail(operation, `${e.message} (after ${attempts} attempts)`, e.retryable) : e))
      )
    })

  /**
   * One engine call of a running job's watch, tried again every second while the engine does not
   * answer (dockerd stopped or restarting), the container left be, for up to `engineWait`: told to the
   * watch's consumer (the run journals it, `trex status` shows it) when the engine stops answering, and
   * when it answers again. `outage.seen` records
   * that the engine was away while the container was followed (a daemon restart stops it, unless
   * live-restore is on).
   */
  const patiently = <A>(id: string, outage: Outage, f: () => Promise<A>) =>
    Effect.gen(function*() {
      while (true) {
        const tried = yield* Effect.result(once("watch", f))
        if (tried._tag === "Success") {
          if (outage.since !== undefined) {
            yield* outage.tell(undefined)
            outage.since = undefined
          }
          return tried.success
        }
        const e = tried.failure
        if (!e.retryable) return yield* e
        outage.seen = true
        if (outage.since === undefined) {
          outage.since = Date.now()
          const said = Backend.unreachable({
            state: "Running",
            who: `${engine?.kind === "podman" ? "the Podman service" : "the Docker engine"} at ${where}`,
            since: outage.since,
            cause: e.message,
            meanwhile: `the container is left be, the engine asked again every second for up to ${Math.round(engineWaitMs / 1000)} s (engineWait)`
          }).reason
          yield* outage.tell(said)
        } else if (Date.now() - outage.since >= engineWaitMs) {
          return yield* fail(
            "watch",
            `the Docker engine at ${where} did not answer for ${waited(outage.since)} (engineWait): container ${id} may still be running. Check \`docker info\` on the engine's host (is dockerd running?); once it answers, \`trex resume\` the run to follow the container again`
          )
        }
        yield* Effect.sleep(ENGINE_POLL)
      }
    })

  yield* Effect.try({ try: () => Fs.mkdirSync(root, { recursive: true }), catch: (e) => fail("make", `cannot create ${root}: ${String(e)}`) })
  // An engine that does not answer is said once, at the start, with where to look, rather than as
  // each trial's failure after its retries.
  const pinged = yield* call("make", ping).pipe(
    Effect.mapError((e) => {
      if (e.retryable) {
        return fail(
          "make",
          `no Docker engine answers at ${where}: ${e.message}. Start dockerd on that host (\`sudo systemctl start docker\`; \`docker info\` must answer), ` +
            `or point TREX at a running engine with DOCKER_HOST or backend.docker.host / socketPath`,
          true
        )
      }
      // the engine's socket may be there, and this user may not use it
      const refused = socketRefusal(e.message)
      return fail("make", `the Docker engine at ${where}: ${e.message}${refused !== undefined ? `: ${refused}` : ""}`)
    })
  )

  /**
   * The engine behind the API, asked once: Podman's compatible API ignores GPU requests, drops followed log lines,
   * and (without cgroup controllers) ignores limits; its own API says which controllers it has.
   */
  interface Engine {
    readonly kind: Spec.EngineKind
    readonly version: string
    readonly podman?: Spec.PodmanHost
  }
  let engine: Engine | undefined
  const podmanHost = (version: string) =>
    Effect.tryPromise(() =>
      new Promise<unknown>((resolve, reject) =>
        docker.modem.dial({ path: `/v${version}/libpod/info?`, method: "GET", statusCodes: { 200: true }, options: {} }, (err: Error | null, data: unknown) =>
          err !== null ? reject(err) : resolve(data))
      )
    ).pipe(
      Effect.map((info): Spec.PodmanHost | undefined => {
        const host = (info as { host?: { security?: { rootless?: boolean }; cgroupVersion?: string; cgroupControllers?: ReadonlyArray<string> | null; cpus?: number } }).host
        if (host === undefined) return undefined
        const cpus = typeof host.cpus === "number" && host.cpus >= 1 ? { cpus: host.cpus } : {}
        return { rootless: host.security?.rootless === true, cgroupVersion: host.cgroupVersion ?? "?", controllers: host.cgroupControllers ?? [], ...cpus }
      }),
      // an older Podman without this endpoint: its limits are taken to hold, as Docker's are
      Effect.orElseSucceed(() => undefined)
    )
  const engineAs = (kind: Spec.EngineKind, version: string): Effect.Effect<Engine> =>
    kind === "docker" ? Effect.succeed({ kind, version }) : Effect.map(podmanHost(version), (h) => ({ kind, version, ...(h !== undefined ? { podman: h } : {}) }))
  const engineOf = (operation: string): Effect.Effect<Engine, Errors.BackendError> =>
    Effect.suspend(() =>
      engine !== undefined
        ? Effect.succeed(engine)
        : call(operation, () => docker.version()).pipe(
          Effect.flatMap((v) => engineAs(Spec.engineKind(v), v.Version)),
          Effect.tap((e) => Effect.sync(() => (engine = e)))
        )
    )
  /** Warnings of limits Podman ignores, each said once. */
  const warned = new Set<string>()
  // asked now, while the engine answers (checked above): a job submitted during an outage then waits
  // in the queue rather than failing on the question. The ping's headers say which engine it is, when they do:
  // Podman's `/version` takes seconds (see Spec.engineFromPing)
  const pingSaid = Spec.engineFromPing(pinged)
  if (pingSaid !== undefined) engine = yield* engineAs(pingSaid.kind, pingSaid.version)
  yield* engineOf("make")

  const running = (run?: string, ask: typeof call = call) =>
    ask("list", () =>
      docker.listContainers({
        all: run !== undefined,
        filters: { label: run !== undefined ? [`${Spec.LABEL.run}=${run}`] : [Spec.LABEL.node] }
      })
    )

  const admission = yield* Semaphore.make(1)
  let engineCpus: number | undefined
  const slots = (ask: typeof call = call) =>
    config.slots !== undefined
      ? Effect.succeed(config.slots)
      : Effect.suspend(() =>
        engineCpus !== undefined
          ? Effect.succeed(engineCpus)
          // Podman's own info has the CPU count (asked at the start); its `/info` takes seconds
          : engine?.podman?.cpus !== undefined
          ? Effect.succeed(engineCpus = engine.podman.cpus)
          : ask("capacity", () => docker.info() as Promise<{ NCPU: number }>).pipe(Effect.map((i) => (engineCpus = Math.max(1, i.NCPU))))
      )

  const writeJson = (file: string, value: unknown) => {
    Fs.writeFileSync(`${file}.tmp`, JSON.stringify(value))
    Fs.renameSync(`${file}.tmp`, file)
  }
  const readJson = (file: string): unknown => {
    try {
      return JSON.parse(Fs.readFileSync(file, "utf8"))
    } catch {
      return undefined
    }
  }
  /** `<jobDir>/.trex-job.json`, if it is an object (its fields are checked where they are used). */
  const jobRecord = (jobDir: string) => anObject(readJson(Path.join(jobDir, Spec.RECORD.job))) as JobRecord | undefined

  /**
   * Whether a job needing `n` GPUs can start now (`go`: the GPU ids it gets), or why it must wait
   * (`down`: the engine does not answer; asked once, so that a submit returns a ticket at once and
   * the queue asks again at its next poll).
   */
  const room = Effect.fnUntraced(function*(n: number) {
    const asked = yield* Effect.result(Effect.all([running(undefined, once), slots(once)]))
    if (asked._tag === "Failure") {
      if (!asked.failure.retryable) return yield* asked.failure
      return { wait: `the Docker engine at ${where} does not answer (${asked.failure.message})`, down: true as const }
    }
    const [live, limit] = asked.success
    if (live.length >= limit) return { wait: `no free slot: ${live.length} of ${limit} in use` }
    if (n === 0 || gpuPool.length === 0) return { go: undefined }
    const busy = new Set(live.flatMap((c) => (c.Labels[Spec.LABEL.gpuIds] ?? "").split(",")))
    const free = gpuPool.filter((id) => !busy.has(id))
    if (free.length < n) return { wait: `no free GPU: ${free.length} of ${gpuPool.length} free, ${n} needed` }
    return { go: free.slice(0, n) }
  })

  /** Jobs waiting for room: started in submission order, one admission at a time. */
  const queue = new AdmissionQueue<QueuedJob, ReadonlyArray<string> | undefined, { readonly container: string }>({
    room: (e) =>
      Effect.flatMap(room(e.job.spec.resources.gpus), (fit) => {
        if (!("down" in fit)) {
          e.job.engineDownSince = undefined
          return Effect.succeed(fit)
        }
        const since = (e.job.engineDownSince ??= Date.now())
        return Date.now() - since < engineWaitMs ? Effect.succeed(fit) : Effect.fail(fail(
          "submit",
          `the Docker engine at ${where} did not answer for ${waited(since)} (engineWait) while the job waited to start; check \`docker info\` on the engine's host (is dockerd running?)`
        ))
      }),
    start: (e, gpuIds) => Effect.flatMap(e.job.options(gpuIds), (o) => Effect.map(start(e.job.spec, e.job.jobDir, e.job.ended, o, e.id, e.job.submittedAt), (c) => ({ container: c.id }))),
    exclusive: admission.withPermits(1),
    fork: Effect.forkDetach,
    poll: (yield* QueuePoll) ?? QUEUE_POLL
  })
  let ticketCount = 0
  const ticketRef = (id: string, jobDir: string): ExperimentNode.JobRef => ({ backend: NAME, id, data: { jobDir, queued: true } })

  const create = Effect.fnUntraced(function*(options: Docker.ContainerCreateOptions) {
    const made = yield* Effect.tryPromise({ try: () => docker.createContainer(options), catch: (e) => e }).pipe(Effect.result)
    if (made._tag === "Success") return made.success
    if (!isNotFound(made.failure)) return yield* call("submit", () => Promise.reject(made.failure))
    // Image not present: pull it once, then create again.
    yield* call("pull", () =>
      docker.pull(options.Image!).then((stream: NodeJS.ReadableStream) =>
        new Promise<void>((resolve, reject) =>
          docker.modem.followProgress(stream, (err, output: ReadonlyArray<{ readonly error?: unknown }> | undefined) => {
            // Podman answers a pull that fails with 200 and says why in the progress stream (Docker with an HTTP error)
            const failed = (output ?? []).find((o) => typeof o?.error === "string")
            return err ? reject(err) : failed !== undefined ? reject(new Error(String(failed.error))) : resolve()
          })
        )
      )
    ).pipe(Effect.mapError((e) =>
      fail(
        "submit",
        `image ${options.Image} is not on the engine and cannot be pulled: ${e.message}. Build or load it on the engine's host ` +
          `(\`docker build -t ${options.Image} ...\`, \`docker load -i ...\`), or name an image the engine has in recipe.image or backend.docker.image`,
        e.retryable
      )
    ))
    return yield* call("submit", () => docker.createContainer(options))
  })

  const submit = Effect.fn("DockerBackend.submit")(function*(spec: Backend.JobSpec) {
    if (!NODE_LABEL.test(spec.labels.node)) {
      return yield* fail("submit", `labels.node ${JSON.stringify(spec.labels.node)} must match ${NODE_LABEL} (it names the job directory)`)
    }
    if (spec.argv.length === 0) return yield* fail("submit", "argv is empty")
    if (gpuPool.length > 0 && spec.resources.gpus > gpuPool.length) {
      return yield* fail("submit", `the job needs ${spec.resources.gpus} GPUs; this backend has ${gpuPool.length}`)
    }
    const e = yield* engineOf("submit")
    if (e.kind === "podman" && spec.resources.gpus > 0) return yield* fail("submit", Spec.podmanGpuRefusal(spec.resources.gpus, e.version))
    const unlimited = e.podman !== undefined ? Spec.podmanLimitWarning(e.version, e.podman, spec.resources) : undefined
    if (unlimited !== undefined && !warned.has(unlimited)) {
      // the job itself runs right, only unlimited: said, not refused
      warned.add(unlimited)
      yield* Effect.logWarning(`DockerBackend: ${unlimited}`)
    }
    const jobDir = Path.join(root, spec.labels.node)
    // the containers of this directory's earlier jobs whose exits were recorded stay known as such while the engine
    // has them (one left `dead`, its removal refused, is removed by a later backend's start: see the end of `make`)
    const ended = yield* stillOnEngine(endedIn(jobDir))
    yield* Effect.try({
      try: () => {
        Fs.mkdirSync(jobDir, { recursive: true })
        // written first, in one step (over the earlier job's record), so that a submit that fails halfway loses none
        if (ended.length > 0) writeJson(Path.join(jobDir, Spec.RECORD.job), { ended } satisfies JobRecord)
        for (const f of [...Object.values(Spec.MARKER), ...Object.values(Spec.RECORD), JobProtocol.RESULT_FILE, JobProtocol.METRICS_FILE]) {
          if (f !== Spec.RECORD.job || ended.length === 0) Fs.rmSync(Path.join(jobDir, f), { force: true })
        }
        for (const file of spec.files) {
          const target = Spec.resolveJobFile(jobDir, file.path)
          if (target === undefined) throw fail("submit", `job file ${JSON.stringify(file.path)} must be a relative path inside the job directory`)
          Fs.mkdirSync(Path.dirname(target), { recursive: true })
          Fs.writeFileSync(target, file.content)
        }
      },
      catch: (e) => (e instanceof Errors.BackendError ? e : fail("submit", `cannot prepare ${jobDir}: ${String(e)}`, true))
    })
    const options = (gpuIds: ReadonlyArray<string> | undefined) =>
      Effect.try({
        try: () => Spec.containerConfig(spec, { image: config.image, network, mountAt: config.mountAt, init: config.init, mounts: config.mounts, shmSizeMb: config.shmSizeMb }, { jobDir, gpuIds }),
        catch: (e) => fail("submit", e instanceof Error ? e.message : String(e))
      })
    // a spec the engine could never take is refused now, not when its turn comes
    yield* options(undefined)
    return yield* admission.withPermits(1)(Effect.gen(function*() {
      const fit = yield* room(spec.resources.gpus)
      if ("go" in fit && queue.length === 0) {
        const container = yield* start(spec, jobDir, ended, yield* options(fit.go), undefined, Date.now())
        return { backend: NAME, id: container.id, data: { jobDir } } satisfies ExperimentNode.JobRef
      }
      // Every slot or GPU is taken, or the engine does not answer: queued here and started in turn, so that a stop can withdraw it.
      const id = `queued-${spec.labels.node}-${Date.now().toString(36)}-${++ticketCount}`
      yield* queue.enqueue({ id, labels: spec.labels, job: { spec, jobDir, ended, submittedAt: Date.now(), options, engineDownSince: "down" in fit ? Date.now() : undefined }, wait: "wait" in fit ? fit.wait : "the jobs ahead of it are starting" })
      return ticketRef(id, jobDir)
    }))
  })

  /** Remove a container (one already gone counts as removed). */
  const removeContainer = (id: string) => docker.getContainer(id).remove({ force: true }).catch((e) => (isNotFound(e) ? undefined : Promise.reject(e)))
  /** Containers whose exit was read and whose removal failed (see {@link finish}). */
  const unremoved = new Set<string>()

  /**
   * Create and start a job's container (the admission permit held), recording it in the job directory with `ended`,
   * the directory's earlier containers its submit kept (read there once, not again here).
   */
  const start = Effect.fnUntraced(function*(
    spec: Backend.JobSpec,
    jobDir: string,
    ended: ReadonlyArray<EndedJob>,
    options: Docker.ContainerCreateOptions,
    ticket: string | undefined,
    submittedAt: number
  ) {
    // An earlier start of this job whose create the engine carried out but never answered (it went
    // away mid-call; the call was tried again and failed) left a container that will never start.
    const stale = yield* call("submit", () => docker.listContainers({ all: true, filters: { label: [`${Spec.LABEL.jobDir}=${jobDir}`], status: ["created"] } }))
    yield* Effect.forEach(stale, (c) =>
      call("submit", () => removeContainer(c.Id)), { discard: true })
    const container = yield* create({ ...options, Labels: { ...options.Labels, [Spec.LABEL.submitted]: String(submittedAt) } }).pipe(Effect.mapError((e) => {
      const why = Spec.explainStartError(e.message)
      return why !== undefined ? fail("submit", why) : e
    }))
    yield* Effect.sync(() =>
      writeJson(Path.join(jobDir, Spec.RECORD.job), {
        name: spec.name,
        labels: spec.labels,
        container: container.id,
        submittedAt,
        ...(ticket !== undefined ? { ticket } : {}),
        ...(ended.length > 0 ? { ended } : {})
      } satisfies JobRecord)
    )
    fresh.add(container.id)
    const started = yield* call("submit", () => container.start()).pipe(Effect.result)
    if (started._tag === "Failure") {
      fresh.delete(container.id)
      yield* Effect.promise(() => container.remove({ force: true }).catch(() => undefined))
      const why = Spec.explainStartError(started.failure.message)
      return yield* why !== undefined ? fail("submit", why) : started.failure
    }
    return container
  })

  /**
   * What became of a ticket: its container, or its exit when it never started. Awaited while it
   * waits here (reporting why); an earlier controller's ticket is looked up in its job directory.
   */
  const settle = (ref: ExperimentNode.JobRef, emit?: (e: Backend.JobEvent) => void): Effect.Effect<{ readonly container: string } | Backend.JobExit, Errors.BackendError> => {
    if (queue.knows(ref.id)) return queue.settle(ref.id, emit)
    const jobDir = typeof ref.data["jobDir"] === "string" ? ref.data["jobDir"] : ""
    const job = readJson(Path.join(jobDir, Spec.RECORD.job)) as JobRecord | undefined
    return Effect.succeed(job?.ticket === ref.id && job.container !== undefined ? { container: job.container } : unstarted("Lost", LOST_IN_QUEUE))
  }

  const inspect = (id: string) => call("watch", () => docker.getContainer(id).inspect())

  const readResult = (jobDir: string): { readonly result: unknown } | { readonly resultError: string } => {
    const file = Path.join(jobDir, JobProtocol.RESULT_FILE)
    const size = Fs.statSync(file, { throwIfNoEntry: false })?.size
    if (size === undefined) return JobProtocol.parseResultBytes(undefined)
    return JobProtocol.parseResultBytes(size > JobProtocol.MAX_RESULT_BYTES ? "" : Fs.readFileSync(file), size)
  }

  /**
   * The signals the engine sent a container that a signal ended (`docker kill`, `docker stop`,
   * dockerd stopping it), from the engine's recent events; none for one that ended otherwise, or
   * when the engine no longer has them (it keeps its last 256 events).
   */
  const engineSignals = (info: Docker.ContainerInspectInfo): Effect.Effect<ReadonlyArray<number>> => {
    if (info.State.ExitCode <= 128 || info.State.OOMKilled) return Effect.succeed([])
    const since = Math.floor(Spec.epochSeconds(info.State.StartedAt))
    const until = Math.ceil(Spec.epochSeconds(info.State.FinishedAt)) + 1
    if (!Number.isFinite(since) || !Number.isFinite(until)) return Effect.succeed([])
    return once("watch", () =>
      (docker.getEvents({ since, until, filters: { container: [info.Id], event: ["kill"] } } as Docker.GetEventsOptions) as Promise<Readable>)
        .then(async (stream) => {
          let text = ""
          for await (const chunk of stream as AsyncIterable<Buffer>) text += chunk.toString("utf8")
          return text
        })
    ).pipe(
      Effect.map((text) => Spec.killSignals(text)),
      Effect.orElseSucceed(() => [])
    )
  }

  /** Read a finished container into its exit, then remove it (unless kept). */
  const finish = Effect.fnUntraced(function*(info: Docker.ContainerInspectInfo, tail: JobProtocol.Tail | undefined, engineWentAway = false) {
    const jobDir = info.Config.Labels[Spec.LABEL.jobDir] ?? Path.join(root, info.Config.Labels[Spec.LABEL.node] ?? "")
    // `dead`: a removal failed (its logs are gone with it); the exit read before it, recorded, is the job's
    const recorded = info.State.Status === "dead" ? recordedExit(jobDir, info.Id) : undefined
    if (recorded !== undefined) {
      exits.set(info.Id, recorded)
      fresh.delete(info.Id)
      return yield* removeAfter(info, recorded)
    }
    // its directory since given to a newer job (a retry submitted meanwhile): the result files and markers there, and
    // the exit record, are that job's; none is read as this one's nor written over
    if (jobRecord(jobDir)?.container !== info.Id) {
      const exit = resubmitted(info.Id, jobDir, tail?.get() ?? [])
      exits.set(info.Id, exit)
      fresh.delete(info.Id)
      return yield* removeAfter(info, exit)
    }
    let logTail = tail?.get()
    if (logTail === undefined) {
      const buf = yield* call("watch", () => docker.getContainer(info.Id).logs({ stdout: true, stderr: true, follow: false, tail: 40 }))
      const splitter = new JobProtocol.LineSplitter()
      logTail = new Spec.FrameDemux().push(Buffer.from(buf)).flatMap((f) => splitter.push(f.data)).concat(splitter.end())
    }
    const deadline = Number(info.Config.Labels[Spec.LABEL.deadline])
    const exit = Spec.toExit({
      state: info.State,
      gpus: Number(info.Config.Labels[Spec.LABEL.gpus] ?? 0),
      cancelled: Fs.existsSync(Path.join(jobDir, Spec.MARKER.cancelled)),
      timedOut: Fs.existsSync(Path.join(jobDir, Spec.MARKER.timeout)),
      timeLimitSeconds: Number.isFinite(deadline) ? (deadline - Date.parse(info.Created)) / 1000 : undefined,
      result: readResult(jobDir),
      logTail,
      engineWentAway,
      engineSignals: yield* engineSignals(info)
    })
    exits.set(info.Id, exit)
    fresh.delete(info.Id)
    yield* Effect.sync(() => writeJson(Path.join(jobDir, Spec.RECORD.exit), exit)).pipe(Effect.ignore)
    return yield* removeAfter(info, exit)
  })

  /** The exit recorded in `jobDir` for container `id`, when one is (a record of another shape than written is none). */
  const recordedExit = (jobDir: string, id: string): Backend.JobExit | undefined =>
    jobRecord(jobDir)?.container === id ? anExit(readJson(Path.join(jobDir, Spec.RECORD.exit))) : undefined

  /** The containers of `jobDir`'s jobs whose exits were recorded, the last one's included (before a new job there clears the records). */
  const endedIn = (jobDir: string): ReadonlyArray<EndedJob> =>
    endedFrom(readJson(Path.join(jobDir, Spec.RECORD.job)), () => readJson(Path.join(jobDir, Spec.RECORD.exit)))

  /**
   * Of a job directory's ended containers, those a later start may have to remove. An entry of `ended` serves only a
   * backend's start's removal of its container left `dead`: when the directory's next job is submitted, one the engine
   * says it no longer has (404) is dropped, and so is one kept (`keep`: exited, never removed by this backend; without
   * `keep` an exited one stays, its watch removing it, and a refusal leaving it dead), so that `ended` holds only
   * containers whose removal was refused (none, as a rule). Any other answer, or none (the engine away), keeps it. The
   * directory's last job (its container and `.trex-exit.json`, which a resume reads) is not an entry until a new job
   * there replaces it.
   */
  const stillOnEngine = (ended: ReadonlyArray<EndedJob>) =>
    Effect.map(
      Effect.forEach(ended, (e) =>
        Effect.promise(() =>
          docker.getContainer(e.container).inspect().then(
            (info) => !keep || ["dead", "removing"].includes(info.State.Status),
            (err: unknown) => !isNotFound(err)
          )
        )),
      (kept) => ended.filter((_, i) => kept[i])
    )

  /**
   * A container whose exit was read and whose removal the engine refused: said once (`how`: what became of it), and
   * tried again, quietly, after each later job's end.
   */
  const unremovable = (id: string, node: string | undefined, how: string, reason: string) =>
    Effect.suspend(() => {
      if (unremoved.has(id)) return Effect.void
      unremoved.add(id)
      return Effect.logWarning(
        `docker: container ${id.slice(0, 12)} (job ${node ?? "?"}) ${how} and its exit was read, but the engine did not remove it: ${reason}. ` +
          `It holds no slot; it is removed again after the next job's end, or remove it yourself: \`docker rm -f ${id}\``
      )
    })

  /** Remove an ended container whose exit was read (unless kept), and those whose removal failed before. */
  const removeAfter = Effect.fnUntraced(function*(info: Docker.ContainerInspectInfo, exit: Backend.JobExit) {
    if (keep) return exit
    // A removal the engine refuses (a file system it cannot delete, a removal already under way) does not
    // hide the job's exit, which is read: the container is said, and removed again after a later job's end.
    const removed = yield* Effect.result(call("watch", () => removeContainer(info.Id)))
    // a refused removal after which the container is gone: on Docker, another removal of it finished (one already
    // under way is refused so); Podman forgets the container before it deletes its files, and only its files are left
    const gone = removed._tag === "Failure" &&
      (yield* Effect.promise(() => docker.getContainer(info.Id).inspect().then(() => false, (e) => isNotFound(e))))
    const forgotten = gone && (yield* engineOf("watch").pipe(Effect.map((e) => e.kind === "podman"), Effect.orElseSucceed(() => false)))
    if (removed._tag === "Success" || gone) unremoved.delete(info.Id)
    if (forgotten) {
      yield* Effect.logWarning(
        `docker: container ${info.Id.slice(0, 12)} (job ${info.Config.Labels[Spec.LABEL.node] ?? "?"}) ended ${exit.outcome} and its exit was read; ` +
          `the engine removed the container but not all of its files: ${removed.failure.message}. Podman tries to delete them again ` +
          `before it mounts any container, and no container starts until it can: make them deletable on the engine's host ` +
          `(an immutable file: \`chattr -i\`; a file system mounted inside: unmount it; see docs/backends.md, "Podman")`
      )
    } else if (removed._tag === "Failure" && !gone) {
      yield* unremovable(info.Id, info.Config.Labels[Spec.LABEL.node], `ended ${exit.outcome}`, removed.failure.message)
    }
    // containers whose removal failed before: once each, quietly (they are said already)
    for (const id of [...unremoved]) {
      if (id === info.Id) continue
      if ((yield* Effect.result(once("watch", () => removeContainer(id))))._tag === "Success") unremoved.delete(id)
    }
    return exit
  })

  /** Kill the container at its deadline, recording why. */
  const enforceDeadline = (id: string, jobDir: string, deadline: number) =>
    Effect.sleep(Duration.millis(Math.max(0, deadline - Date.now()))).pipe(
      Effect.andThen(Effect.sync(() => Fs.writeFileSync(Path.join(jobDir, Spec.MARKER.timeout), String(Date.now())))),
      Effect.andThen(call("watch", () => docker.getContainer(id).stop({ t: grace }).catch((e) => (Spec.classifyError(e).status === 304 || isNotFound(e) ? undefined : Promise.reject(e))))),
      Effect.ignore
    )

  /**
   * Emit the metric lines `metrics.jsonl` gained since the last call, a slice ({@link READ_CHUNK}) at
   * a time, each slice's before the next is read: a file of gigabytes is never held whole.
   */
  const tailMetrics = (file: string, state: { offset: number; splitter: JobProtocol.LineSplitter }, emit: Emit, final: boolean) => {
    const metric = (line: string) => {
      const point = JobProtocol.parseMetricsFileLine(line)
      return point !== undefined ? emit({ _tag: "Metric", point }) : Effect.void
    }
    return Effect.gen(function*() {
      while (true) {
        const buf = readSlice(file, state.offset)
        if (buf.length === 0) break
        state.offset += buf.length
        yield* Effect.forEach(state.splitter.push(buf), metric, { discard: true })
        if (buf.length < READ_CHUNK) break
      }
      if (final) yield* Effect.forEach(state.splitter.end(), metric, { discard: true })
    })
  }

  /** The container's log as a stream, read as it is consumed (dockerode buffers a log that is not followed whole). */
  const logRequest = (id: string, query: { readonly follow: boolean; readonly timestamps?: boolean; readonly since?: number | undefined }) =>
    new Promise<Readable>((resolve, reject) =>
      docker.modem.dial({
        path: `/containers/${id}/logs?`,
        method: "GET",
        isStream: true,
        statusCodes: { 200: true, 404: "no such container", 500: "server error" },
        options: { stdout: true, stderr: true, follow: query.follow, timestamps: query.timestamps ?? false, ...(query.since !== undefined ? { since: query.since } : {}) }
      }, (err: Error | null, data: unknown) => (err !== null ? reject(err) : resolve(data as Readable)))
    )

  /** One log line of a stream: into the tail, and out as an event (stdout's protocol lines parsed). */
  const logLine = (emit: Emit, tail: JobProtocol.Tail, s: "stdout" | "stderr", l: string) => {
    tail.push(l)
    return emit((s === "stdout" ? JobProtocol.parseLine(l) : undefined) ?? { _tag: "Log", stream: s, line: l })
  }

  /**
   * Follow the container's logs until they end (the container stopped or the daemon went away).
   * A later follow replays the log from its start: the first `seen` lines of each stream are skipped.
   * The log is pulled as the events are taken: while the watch's consumer is behind, the engine's
   * stream waits (TCP backpressure) instead of filling the controller's memory.
   */
  const followLogs = (id: string, emit: Emit, tail: JobProtocol.Tail, seen: { stdout: number; stderr: number }, outage: Outage) =>
    Effect.acquireUseRelease(
      // a container removed (or being removed) has no logs to follow: it is inspected next
      patiently(id, outage, () =>
        logRequest(id, { follow: true }).catch((e) => (isNotFound(e) || Spec.classifyError(e).status === 409 ? undefined : Promise.reject(e)))),
      (stream) => {
        if (stream === undefined) return Effect.void
        const demux = new Spec.FrameDemux()
        const splitters = { stdout: new JobProtocol.LineSplitter(), stderr: new JobProtocol.LineSplitter() }
        const count = { stdout: 0, stderr: 0 }
        const lines = (s: "stdout" | "stderr", ls: ReadonlyArray<string>) =>
          Effect.forEach(ls, (l) => {
            if (++count[s] <= seen[s]) return Effect.void
            seen[s] = count[s]
            return logLine(emit, tail, s, l)
          }, { discard: true })
        return Stream.fromAsyncIterable(stream as AsyncIterable<Buffer>, (e) => e).pipe(
          Stream.runForEach((chunk) => Effect.forEach(demux.push(chunk), (f) => lines(f.stream, splitters[f.stream].push(f.data)), { discard: true })),
          // an error ends the logs as their end does: the container is inspected again
          Effect.ignore,
          Effect.andThen(Effect.forEach(["stdout", "stderr"] as const, (s) => lines(s, splitters[s].end()), { discard: true }))
        )
      },
      (stream) => Effect.sync(() => stream?.destroy())
    )

  /**
   * Podman's followed log drops entries when a job prints fast (4.3: 20,000 to 170,000 of 200,000 lines arrive), and
   * ends early when the container exits; a log that is not followed is whole. So on Podman the log is read again
   * every {@link LOG_POLL_MS} ms or more, each read from where the last one ended ({@link Spec.LogCursor}), until a read that
   * began after the container exited. The lines are split across reads (an entry may hold part of a line).
   * Podman finds the entries of a `since` by parsing its log file from the start (5 s for 2,000,000 lines), so the
   * wait after a read is at least as long as the read took: the service spends at most half its time on one watch.
   */
  const pollLogs = (id: string, emit: Emit, tail: JobProtocol.Tail, outage: Outage) =>
    Effect.gen(function*() {
      const cursor = new Spec.LogCursor()
      const splitters = { stdout: new JobProtocol.LineSplitter(), stderr: new JobProtocol.LineSplitter() }
      const lines = (s: "stdout" | "stderr", ls: ReadonlyArray<string>) => Effect.forEach(ls, (l) => logLine(emit, tail, s, l), { discard: true })
      while (true) {
        const began = Date.now()
        // asked patiently while the service does not answer; a container gone is inspected next, by the caller
        const info = yield* inspectPatiently(id, outage)
        if (info === undefined) break
        const done = ["exited", "dead"].includes(info.State.Status)
        let whole = true
        if (info.State.Status !== "created") {
          const since = cursor.begin()
          whole = yield* Effect.acquireUseRelease(
            patiently(id, outage, () => logRequest(id, { follow: false, timestamps: true, since }).catch((e) => (isNotFound(e) ? undefined : Promise.reject(e)))),
            (stream) => {
              if (stream === undefined) return Effect.succeed(false)
              const demux = new Spec.FrameDemux()
              return Stream.fromAsyncIterable(stream as AsyncIterable<Buffer>, (e) => e).pipe(
                Stream.runForEach((chunk) =>
                  Effect.forEach(demux.push(chunk), (f) => {
                    const data = cursor.take(f.data)
                    return data === undefined ? Effect.void : lines(f.stream, splitters[f.stream].push(data))
                  }, { discard: true })
                ),
                // a read cut short (the service went away) is taken up by the next one, from where it stopped
                Effect.as(true),
                Effect.orElseSucceed(() => false)
              )
            },
            (stream) => Effect.sync(() => stream?.destroy())
          )
        }
        if (done && whole) break
        yield* Effect.sleep(Duration.millis(Math.max(LOG_POLL_MS, Date.now() - began)))
      }
      yield* Effect.forEach(["stdout", "stderr"] as const, (s) => lines(s, splitters[s].end()), { discard: true })
    })

  /** The container, or `undefined` when it is gone; asked patiently while the engine does not answer. */
  const inspectPatiently = (id: string, outage: Outage) =>
    patiently(id, outage, () => docker.getContainer(id).inspect().catch((e) => (isNotFound(e) ? undefined : Promise.reject(e))))

  /** The exit of a container whose job directory a newer job has taken (its record names another container, or none yet). */
  const resubmitted = (id: string, jobDir: string, tail: ReadonlyArray<string>): Backend.JobExit => ({
    ...unstarted(
      "Lost",
      `container ${id.slice(0, 12)}'s job directory ${jobDir} was given to a newer job (submitted after it): its exit record and ` +
        "result files there are that job's, so how this one ended is unknown"
    ),
    logTail: tail
  })

  /**
   * A container that is gone: its recorded exit (when the directory's record names it), or, when nobody read it, a
   * lost job (removed from outside, or its directory given to a newer job), to run again.
   */
  const gone = (ref: ExperimentNode.JobRef, tail: ReadonlyArray<string>): Backend.JobExit => {
    const jobDir = ref.data["jobDir"]
    const recorded = typeof jobDir === "string" ? recordedExit(jobDir, ref.id) : undefined
    if (recorded !== undefined) return recorded
    fresh.delete(ref.id)
    const record = typeof jobDir === "string" ? jobRecord(jobDir) : undefined
    if (typeof jobDir === "string" && typeof record?.container === "string" && record.container !== ref.id) return resubmitted(ref.id, jobDir, tail)
    return {
      ...unstarted("Lost", "the container was removed from outside TREX (`docker rm -f`, a prune) before its exit was read: how it ended is unknown, and the trial runs again"),
      logTail: tail
    }
  }

  /**
   * Follow a container to its end, returning its exit (the caller emits it). The look holds the job's slot
   * (`queue.holding`): however it ends, the queue looks for room at once, not at its next poll.
   */
  const drive = (ref: ExperimentNode.JobRef, emit: Emit) => Effect.flatMap(queue.holding(followToEnd(ref, emit)), emit)

  const followToEnd = Effect.fnUntraced(function*(ref: ExperimentNode.JobRef, emit: Emit) {
    const known = exits.get(ref.id)
    if (known !== undefined) return known
    // an engine away at the first look is told at once, the job taken to run (as the ref of a started container
    // says); the state that look then finds, sent next without a reason, ends it
    const outage: Outage = { since: undefined, seen: false, tell: (reason) => (reason !== undefined ? emit({ _tag: "State", state: "Running", reason }) : Effect.void) }
    const found = yield* inspectPatiently(ref.id, outage)
    if (found === undefined) return gone(ref, [])
    // An engine away at the first look explains a signal only for a container started here: one of an
    // earlier controller may have been stopped long before.
    if (!fresh.has(ref.id)) outage.seen = false
    let first = found
    if (["exited", "dead"].includes(first.State.Status) && !fresh.has(ref.id)) return yield* finish(first, undefined)
    if (first.State.Status === "created" && !fresh.has(ref.id)) {
      // Created by a controller that is gone: it starts a container right after creating it, so
      // one still `created` a while later will never start. Removed, and its job runs again.
      const since = Date.now()
      while (first.State.Status === "created" && Date.now() - since < START_GRACE_MS) {
        yield* Effect.sleep("250 millis")
        first = yield* inspect(ref.id)
      }
      if (first.State.Status === "created") {
        yield* call("watch", () => removeContainer(ref.id))
        return unstarted("Lost", "its controller stopped after creating its container and before starting it")
      }
    }
    const shown = first.State.Status === "created" ? "Pending" : "Running"
    yield* emit({ _tag: "State", state: shown })
    // from now on an outage of the engine is told, and its end (a job shown waiting keeps that state)
    outage.tell = (reason) => emit(reason !== undefined ? { _tag: "State", state: shown, reason } : { _tag: "State", state: shown })
    const jobDir = first.Config.Labels[Spec.LABEL.jobDir] ?? Path.join(root, first.Config.Labels[Spec.LABEL.node] ?? "")
    const deadline = Number(first.Config.Labels[Spec.LABEL.deadline])
    if (Number.isFinite(deadline)) yield* Effect.forkScoped(enforceDeadline(ref.id, jobDir, deadline))
    const metrics = { offset: 0, splitter: new JobProtocol.LineSplitter() }
    const metricsFile = Path.join(jobDir, JobProtocol.METRICS_FILE)
    // one read of metrics.jsonl at a time: the last one (below) waits for a poll that is emitting
    const metricsLock = yield* Semaphore.make(1)
    const metricsPoll = yield* Effect.forkScoped(
      metricsLock.withPermits(1)(tailMetrics(metricsFile, metrics, emit, false)).pipe(Effect.repeat(Schedule.spaced(METRICS_POLL)))
    )
    const tail = new JobProtocol.Tail(40)
    const seen = { stdout: 0, stderr: 0 }
    let info: Docker.ContainerInspectInfo | undefined = first
    const podman = (yield* engineOf("watch")).kind === "podman"
    // Logs end when the container stops, or when the daemon goes away: then wait for it and look again.
    // A container created here whose exit nobody read yet replays its logs from the start.
    do {
      yield* podman ? pollLogs(ref.id, emit, tail, outage) : followLogs(ref.id, emit, tail, seen, outage)
      info = yield* inspectPatiently(ref.id, outage)
      if (info?.State.Status === "created") yield* Effect.sleep("200 millis")
    } while (info !== undefined && !["exited", "dead"].includes(info.State.Status))
    yield* metricsLock.withPermits(1)(Effect.andThen(Fiber.interrupt(metricsPoll), tailMetrics(metricsFile, metrics, emit, true)))
    const exit = info === undefined ? gone(ref, tail.get()) : yield* finish(info, tail, outage.seen)
    // the trial runs again on its own: say why, where the run's output goes
    if (exit.outcome === "Failed" && exit.failureKind === "Infra") yield* Effect.logWarning(`docker: container ${ref.id.slice(0, 12)}: ${exit.message}`)
    return exit
  })

  const follow = Effect.fnUntraced(function*(ref: ExperimentNode.JobRef, emit: Emit, emitNow: (e: Backend.JobEvent) => void) {
    if (ref.data["queued"] !== true) return yield* drive(ref, emit)
    // waiting in the queue reports a few states, before any output: a callback that cannot wait
    const got = yield* settle(ref, emitNow)
    return yield* "_tag" in got ? emit(got) : drive({ ...ref, id: got.container }, emit)
  })

  const watch = (ref: ExperimentNode.JobRef): Stream.Stream<Backend.JobEvent, Errors.BackendError> =>
    boundedWatch((emit, emitNow) => follow(ref, emit, emitNow))

  const cancel = Effect.fn("DockerBackend.cancel")(function*(ref: ExperimentNode.JobRef) {
    if (ref.data["queued"] !== true) return yield* stop(ref.id)
    if (queue.remove(ref.id, "cancelled before it started")) return
    // starting now, or started: stop its container
    const got = yield* settle(ref).pipe(Effect.orElseSucceed(() => undefined))
    if (got !== undefined && !("_tag" in got)) yield* stop(got.container)
  })

  /** A queued job leaves the queue without starting; one that has started is let run. */
  const withdraw = (ref: ExperimentNode.JobRef) =>
    Effect.sync(() => ref.data["queued"] === true && queue.remove(ref.id, "withdrawn before it started"))

  const stop = Effect.fnUntraced(function*(id: string) {
    if (exits.has(id)) return
    const info = yield* call("cancel", () => docker.getContainer(id).inspect().catch((e) => (isNotFound(e) ? undefined : Promise.reject(e))))
    if (info === undefined || ["exited", "dead"].includes(info.State.Status)) return
    const jobDir = info.Config.Labels[Spec.LABEL.jobDir]
    // the marker is the directory's current job's: written only when that is this container (a newer job that took the
    // directory would read it as its own cancel, and end Cancelled)
    if (jobDir !== undefined && jobRecord(jobDir)?.container === id) {
      yield* Effect.sync(() => Fs.writeFileSync(Path.join(jobDir, Spec.MARKER.cancelled), String(Date.now())))
    }
    yield* call("cancel", () =>
      docker.getContainer(id).stop({ t: grace }).catch((e) => (Spec.classifyError(e).status === 304 || isNotFound(e) ? undefined : Promise.reject(e)))
    )
  })

  /** Whether a container's job directory (its label) is one of this backend's root: `<root>/<node>`. */
  const ownContainer = (labels: Record<string, string>) => {
    const jobDir = labels[Spec.LABEL.jobDir]
    return jobDir !== undefined && Path.isAbsolute(jobDir) && Path.dirname(Path.normalize(jobDir)) === root
  }

  /** When a container's job was submitted, from its label (none on a container made before the label was). */
  const submittedAtOf = (labels: Record<string, string>): { readonly submittedAt?: number } => {
    const at = Number(labels[Spec.LABEL.submitted])
    return labels[Spec.LABEL.submitted] !== undefined && Number.isFinite(at) ? { submittedAt: at } : {}
  }

  const list = Effect.fn("DockerBackend.list")(function*(run: string) {
    // the run's containers of this root only: a run id is the engine's to share with other roots (another backend's,
    // another user's), whose jobs a reconciling trial here must never adopt. A container's job directory (its label
    // since the first version, so also on containers an earlier version made) says whose it is
    const containers = (yield* running(run)).filter((c) => ownContainer(c.Labels))
    const jobs = containers.map((c): Backend.JobInfo => ({
      ref: { backend: NAME, id: c.Id, data: { jobDir: c.Labels[Spec.LABEL.jobDir] ?? "" } },
      labels: { run, node: c.Labels[Spec.LABEL.node] ?? "" },
      // a container whose removal failed is listed `removing` (Docker 20.10), `dead` elsewhere: ended either way
      state: c.State === "created" ? "Pending" : ["exited", "dead", "removing"].includes(c.State) ? "Finished" : "Running",
      // the engine lists the newest first: the order of a node's jobs is their submissions' (a ticket's, its queueing)
      ...submittedAtOf(c.Labels)
    }))
    for (const e of queue.entries()) {
      if (e.labels.run === run) jobs.push({ ref: ticketRef(e.id, e.job.jobDir), labels: e.labels, state: "Pending", submittedAt: e.job.submittedAt })
    }
    // Jobs whose containers were removed after their exit was read are known from their records.
    const ids = new Set(containers.map((c) => c.Id))
    const dirs = yield* Effect.sync(() => (Fs.existsSync(root) ? Fs.readdirSync(root) : []))
    for (const node of dirs) {
      const jobDir = Path.join(root, node)
      const job = readJson(Path.join(jobDir, Spec.RECORD.job)) as JobRecord | undefined
      if (job?.labels?.run !== run || job.container === undefined || ids.has(job.container)) continue
      jobs.push({
        ref: { backend: NAME, id: job.container, data: { jobDir } },
        labels: job.labels,
        state: "Finished",
        ...(typeof job.submittedAt === "number" ? { submittedAt: job.submittedAt } : {})
      })
    }
    return jobs
  })

  const capacity = Effect.gen(function*() {
    return { slots: yield* slots(), gpus: gpuPool.length, inUse: (yield* running()).length }
  })

  /** The job's image: on the engine, or else a trial's first job will pull it (and fail if it cannot). */
  const preflight = (spec: Backend.JobSpec) =>
    Effect.gen(function*() {
      const image = spec.image ?? config.image
      if (image === undefined) {
        return [{ severity: "fail", message: "the job names no image: set recipe.image, or backend.docker.image for every job" }] satisfies Array<Backend.Concern>
      }
      const found = yield* Effect.tryPromise({ try: () => docker.getImage(image).inspect(), catch: (e) => e }).pipe(Effect.result)
      if (found._tag === "Success") return []
      if (!isNotFound(found.failure)) return yield* once("preflight", () => Promise.reject(found.failure))
      return [{
        severity: "warn",
        message: `image ${image} is not on the engine (${where}): a trial's first job pulls it, and fails if the engine cannot reach its registry ` +
          `(then build or load it on the engine's host: \`docker build -t ${image} ...\`, \`docker load -i ...\`)`
      }] satisfies Array<Backend.Concern>
    })

  // Containers that an earlier controller left `dead` (their removal refused, after it read and recorded their exit)
  // and then stopped: no later watch may look at them (a finished run's, or an earlier job of a directory whose job was
  // submitted again), so they are removed at the start: those of this root's jobs (`trex resume`, or a backend of the
  // same root), and those of another root's whose run (`trex.run`, in that root) has no container created, running or
  // paused on the engine (a new run's start removes an earlier run's; a run whose jobs still run is left to its
  // controller; another root's run of the same id is another run). One
  // whose exit was not recorded (in its job directory, read here) is left to its watch.
  // (Docker 20.10 lists a container whose removal failed as `removing`, and inspects it as `dead`; Podman forgets a
  // container before it deletes its files, so that none is left so there: see docs/backends.md, "Podman".)
  if (!keep && engine?.kind !== "podman") {
    const dead = yield* once("make", () => docker.listContainers({ all: true, filters: { label: [Spec.LABEL.jobDir], status: ["dead", "removing"] } })).pipe(
      Effect.orElseSucceed((): ReadonlyArray<Docker.ContainerInfo> => [])
    )
    /**
     * The runs with a container that has not ended, each with its root (a run id is unique to a root's controller, not
     * to the engine: another root's run of that id is another run), as {@link liveKey}s; asked once, when a container
     * of another root's is to be removed; "unknown" if the engine did not say.
     */
    let live: ReadonlySet<string> | "unknown" | undefined
    const liveKey = (jobDir: string | undefined, run: string) => `${jobDir !== undefined && Path.isAbsolute(jobDir) ? Path.dirname(Path.normalize(jobDir)) : "?"}\n${run}`
    const liveRuns = once("make", () => docker.listContainers({ all: true, filters: { label: [Spec.LABEL.run], status: ["created", "restarting", "running", "paused"] } })).pipe(
      Effect.map((cs): ReadonlySet<string> | "unknown" => new Set(cs.map((c) => liveKey(c.Labels[Spec.LABEL.jobDir], c.Labels[Spec.LABEL.run] ?? "")))),
      Effect.orElseSucceed(() => "unknown" as const)
    )
    const removeDead = Effect.fnUntraced(function*(c: Docker.ContainerInfo) {
      const jobDir = c.Labels[Spec.LABEL.jobDir]
      if (jobDir === undefined || !Path.isAbsolute(jobDir)) return
      const ours = jobDir.startsWith(root + Path.sep)
      // another root's whose job directory another user owns is theirs (on a shared engine), whatever this one may read
      if (!ours && process.getuid !== undefined && (yield* ownerOf(jobDir)) !== process.getuid()) return
      const record = yield* readJsonOff(Path.join(jobDir, Spec.RECORD.job))
      const exitJson = typeof anObject(record)?.["container"] === "string" ? yield* readJsonOff(Path.join(jobDir, Spec.RECORD.exit)) : undefined
      const exit = endedFrom(record, () => exitJson).find((e) => e.container === c.Id)
      if (exit === undefined) return
      if (!ours) {
        const run = c.Labels[Spec.LABEL.run]
        live ??= yield* liveRuns
        // (a live container of the run without a job directory could be of any root's run)
        if (run === undefined || live === "unknown" || live.has(liveKey(jobDir, run)) || live.has(liveKey(undefined, run))) return
      }
      // one being removed now (by another controller) is let be
      const now = yield* Effect.result(once("make", () => docker.getContainer(c.Id).inspect()))
      if (now._tag === "Failure" || now.success.State.Status !== "dead") return
      const removed = yield* Effect.result(once("make", () => removeContainer(c.Id)))
      if (removed._tag === "Failure") {
        // said by the first backend of the process that cannot remove it, the others retrying it quietly (see saidAtStart)
        if (saidAtStart.has(c.Id)) yield* Effect.sync(() => unremoved.add(c.Id))
        else {
          saidAtStart.add(c.Id)
          yield* unremovable(c.Id, c.Labels[Spec.LABEL.node], `ended ${exit.outcome} under an earlier controller`, removed.failure.message)
        }
      }
    })
    // each on its own: what one container's directory holds (anyone's to edit) never stops the backend's start
    for (const c of dead) {
      const done = yield* Effect.exit(removeDead(c))
      if (done._tag === "Failure") {
        yield* Effect.logWarning(`docker: container ${c.Id.slice(0, 12)}, left dead, was not looked at (it is left as it is): ${Cause.pretty(done.cause)}`)
      }
    }
  }

  return Backend.make<Backend.BackendShape>({ name: NAME, submit, watch, cancel, withdraw, list, capacity, preflight })
})

/**
 * The Docker backend as the {@link Backend.Backend} service.
 *
 * @example
 * ```ts
 * import { DockerBackend } from "@trex/executors"
 * const BackendLive = DockerBackend.layer({ root: "/srv/trex/jobs", image: "local/busybox:latest", gpus: ["0", "1"] })
 * ```
 * @since 0.1.0 @category layers
 */
export const layer = (config: Config): Layer.Layer<Backend.Backend, Errors.BackendError> => Layer.effect(Backend.Backend, make(config))
