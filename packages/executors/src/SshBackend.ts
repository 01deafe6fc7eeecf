/**
 * A {@link Backend.Backend} over a pool of SSH hosts (ssh2, key auth, host keys checked against
 * known_hosts). Each job gets `<remoteRoot>/<run>/<node>` on its host, written over SFTP, and runs
 * detached under a small wrapper (`setsid nohup`) that records its process group, enforces the
 * time limit and writes the exit code, so jobs survive dropped connections and controller restarts:
 * `watch` polls the job's files, `cancel` kills its process group, `list` scans the remote root.
 *
 * @since 0.1.0
 */
import { Backend, Errors, JobProtocol } from "@trex/core"
import type { ExperimentNode } from "@trex/core"
import { Duration, Effect, Layer, Queue, Schedule, Stream } from "effect"
import { constants } from "node:os"
import { randomBytes } from "node:crypto"
import { posix } from "node:path"
import { AdmissionQueue, AGAIN, LOST_IN_QUEUE, QueuePoll, unstarted } from "./internal/admissionQueue.ts"
import { resolveJobFile } from "./internal/dockerSpec.ts"
import { Connection, type HostSetting, type PreparedHost, prepare, SshFailure } from "./internal/sshConnection.ts"
import * as SshConfig from "./internal/sshConfig.ts"
import * as Script from "./internal/sshScript.ts"
import { boundedWatch } from "./internal/volume.ts"
import * as Clients from "./internal/clients.ts"

/**
 * One machine of the pool: `host` (a name, or a `Host` alias of `~/.ssh/config`), and `port`, `username`,
 * `privateKeyPath`, `knownHostsPath`, each taken from `~/.ssh/config` when not given (`Port`, `User`, `IdentityFile`,
 * `UserKnownHostsFile`; else 22, the local user, the first of OpenSSH's default keys, `~/.ssh/known_hosts` and
 * `known_hosts2` with the system's), and
 * `passphraseEnv` for a key with a passphrase (the name of the environment variable holding it). Each is checked
 * when the backend is made (the key read then, once), naming the field that is wrong. A `ProxyJump` of `~/.ssh/config`
 * is followed: the connection goes through its jump hosts (each with its own settings and host-key check).
 * @since 0.1.0 @category models
 */
export interface Host extends HostSetting {
  /**
   * A short name for the host in job refs (default `user@host:port` as given here: `host` as written, not the
   * `HostName` of `~/.ssh/config`, and the port given, else 22, whatever port the file says).
   */
  readonly name?: string
  /** GPU ids on this host; a job asking for `k` GPUs gets `k` free ones in `CUDA_VISIBLE_DEVICES`. */
  readonly gpus?: ReadonlyArray<string>
  /**
   * Jobs at once on this host (default 1). A job submitted while no host has a free slot and the
   * GPUs it needs waits in the backend's queue, reported `Pending` with the reason, and starts in
   * submission order as they free; a stop can withdraw it.
   */
  readonly slots?: number
}

/**
 * The pool and where jobs live on it.
 * @since 0.1.0 @category models
 */
export interface Config {
  readonly hosts: ReadonlyArray<Host>
  /**
   * Absolute directory on every host; a job's directory is `<remoteRoot>/<run>/<node>`. Hosts may share it (NFS): a
   * job's files there are then read only while its record names its host (see docs/backends.md), but one per host is safer.
   */
  readonly remoteRoot: string
  /** How often `watch` polls a job's files (default 500 ms). */
  readonly pollInterval?: Duration.Input
  /** Between SIGTERM and SIGKILL on cancel or timeout (default 10 s). */
  readonly killGraceSeconds?: number
  /** Retry budget for an unreachable host (default 20 s). */
  readonly retryFor?: Duration.Input
  /**
   * A host that could not be reached (after `retryFor`) gets no new jobs for this long; then it is
   * tried again, and takes jobs once it answers (default 30 s).
   */
  readonly hostRetryAfter?: Duration.Input
  /**
   * How long a running job's host may stay unreachable before the job is reported lost
   * (`Failed`/`Infra`, so it runs again elsewhere); its copy is killed if the host comes back (default 5 min).
   * Also how long `list` waits for a host that does not answer before it leaves that host's jobs out
   * (they count as lost, and a copy there of a job since started elsewhere is killed when it answers).
   */
  readonly hostLostAfter?: Duration.Input
}

const NAME = "ssh"
const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
const LIVENESS_EVERY = 10
/** At most this many bytes of a log are read a step (see {@link WATCH_BUFFER}). */
const READ_CHUNK = 4 << 20

/** Hands an event to the watch's consumer, waiting while its queue is full. */
type Emit = (e: Backend.JobEvent) => Effect.Effect<void>
const QUEUE_POLL = "1 second"

/**
 * A host's name in job refs and job records: its `name`, else `user@host:port` as the task file writes them (the
 * `username` given, else the local user; the port given, else 22), not what `~/.ssh/config` resolves them to (its
 * `HostName`, `User`, `Port`): a run started before the file was read (or before it changed) finds its jobs again.
 */
const nameOf = (h: Host) => h.name ?? `${h.username ?? SshConfig.here().user}@${h.host}:${h.port ?? 22}`

const fail = (operation: string, message: string, retryable = false) =>
  new Errors.BackendError({ backend: NAME, operation, message, retryable })

interface PoolHost {
  readonly name: string
  readonly user: string
  readonly conn: Connection
  readonly slots: number
  readonly gpus: ReadonlyArray<string>
  /** Its running jobs are known (adopted): only then may it take new ones. */
  adopted: boolean
  /** Set while its disk under `remoteRoot` is full (a job's files could not be written): no new jobs until `until` (ms). */
  full: { until: number; reason: string } | undefined
  /** Set while it cannot be reached: no new jobs until `until` (ms), then it is tried again. */
  down: { until: number; reason: string } | undefined
  /** Jobs (dir, process group) reported lost or cancelled while it was down: killed when it answers again. */
  readonly abandoned: Map<string, number | undefined>
  /** When a call to it last succeeded (ms). */
  lastOk: number
  /**
   * Runs whose jobs here could not be listed (unreachable for `hostLostAfter`), and when that was given
   * up: a copy here of a job since started on another host is stopped when it answers again.
   */
  readonly unlisted: Map<string, number>
}

/** Where the queue's head may start: a host, and the GPUs it gets there. */
interface Placed {
  readonly host: PoolHost
  readonly gpuIds: ReadonlyArray<string>
}

/** A slot a started job holds on its host (counted by the admission queue). */
interface Held {
  readonly host: string
  readonly gpuIds: ReadonlyArray<string>
}

/**
 * A job waiting in the backend's queue. Its ref (`data.queued`) stands for it until it starts on a
 * host; the job record there names the ticket, so any controller can find where it went.
 */
interface QueuedJob {
  readonly gpus: number
  /** Start it there, or (the host unreachable before it started) on another host with room; `undefined` when none has. */
  readonly launch: (host: PoolHost, gpuIds: ReadonlyArray<string>) => Effect.Effect<ExperimentNode.JobRef | undefined, Errors.BackendError>
}

/**
 * What a watch has read of its job, kept across its host's outages: a watch that goes on after one
 * neither says `Running` again nor replays the output already passed on.
 */
interface Followed {
  pid: number | undefined
  phase: "Init" | "Pending" | "Running"
  /** Its host stopped answering, and the watch's consumer was told: the next look that works tells the end. */
  unreachable: boolean
  readonly tail: JobProtocol.Tail
  readonly streams: ReadonlyArray<{ readonly file: string; readonly kind: "stdout" | "stderr" | "metrics"; offset: number; readonly split: JobProtocol.LineSplitter }>
}

/** How long a watch that finds its job's record missing from a directory still there waits before it looks again (a newer job's submit writes its record right after clearing the directory). */
const RECORD_GAP = "1 second"

/** How long a job nobody here launched may have a record and no process before it counts as never started (its controller died between the two). */
const LAUNCH_GRACE_MS = 10_000

/** Why a job whose directory vanished counts as lost. */
const gone = (host: { readonly name: string }, dir: string) =>
  `its job directory ${host.name}:${dir} is gone, and its processes with it (the host rebooted and cleared it, or it was removed): the job counts as lost and runs again`

const signalName = (code: number) =>
  code > 128 ? Object.entries(constants.signals).find(([, v]) => v === code - 128)?.[0] : undefined

const numbers = (b: Buffer | undefined): Array<number> | undefined =>
  b === undefined || b.length === 0 ? undefined : b.toString("utf8").trim().split(/\s+/).map(Number)

/**
 * An SSH backend. Needs a `Scope`: closing it closes the connections (jobs keep running).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SshBackend } from "@trex/executors"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const backend = yield* SshBackend.make({
 *     remoteRoot: "/scratch/trex",
 *     hosts: [{ host: "gpu1.lab", username: "me", privateKeyPath: "/home/me/.ssh/id_ed25519",
 *               knownHostsPath: "/home/me/.ssh/known_hosts", gpus: ["0", "1"], slots: 2 }]
 *   })
 *   return yield* backend.capacity
 * }))
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = Effect.fn("SshBackend.make")(function*(config: Config) {
  if (config.hosts.length === 0) return yield* fail("make", "the SSH backend needs at least one host")
  if (!posix.isAbsolute(config.remoteRoot)) return yield* fail("make", `remoteRoot ${JSON.stringify(config.remoteRoot)} must be an absolute path`)
  // each host's key read once, here (its connections use it), and its known_hosts readable: a bad path is said now
  const prepared: Array<PreparedHost & { readonly given: Host }> = []
  const ssh2 = yield* Effect.promise(Clients.ssh2)
  for (const h of config.hosts) {
    const p = prepare(h, ssh2)
    if ("refusal" in p) return yield* fail("make", p.refusal)
    for (const w of p.warnings) yield* Effect.logWarning(`ssh backend: ${w}`)
    if (p.moved !== undefined) yield* Effect.logInfo(`ssh backend: ~/.ssh/config connects ${p.moved}; its jobs are still named ${nameOf(h)}`)
    prepared.push({ ...p.ok, given: h })
  }
  const remoteRoot = posix.normalize(config.remoteRoot)
  const grace = config.killGraceSeconds ?? 10
  const poll = config.pollInterval ?? "500 millis"
  const schedule = Schedule.max([
    Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("5 seconds")]),
    Schedule.during(config.retryFor ?? "20 seconds")
  ])
  const retryAfter = Duration.toMillis(Duration.fromInputUnsafe(config.hostRetryAfter ?? "30 seconds"))
  const lostAfter = Duration.toMillis(Duration.fromInputUnsafe(config.hostLostAfter ?? "5 minutes"))
  const pool: Array<PoolHost> = prepared.map(({ given: h, ...p }) => ({
    name: nameOf(h),
    user: p.username,
    conn: new Connection(p),
    slots: Math.max(1, h.slots ?? 1),
    gpus: [...(h.gpus ?? [])],
    adopted: false,
    full: undefined,
    down: undefined,
    abandoned: new Map(),
    lastOk: Date.now(),
    unlisted: new Map()
  }))
  /** Jobs (`run/node`) started here on a host, and when, for runs some host could not list. */
  const startedWhileUnlisted = new Map<string, { readonly host: string; readonly at: number }>()
  /** Jobs submitted here whose exit nobody has read yet: their first watch replays all output. */
  const fresh = new Set<string>()
  yield* Effect.addFinalizer(() => Effect.sync(() => pool.forEach((h) => h.conn.close())))

  /** Errors of hosts that could not be reached (not of the command run there). */
  const unreachable = new WeakSet<Errors.BackendError>()
  /** Of those, the hosts that answered and refused the key. */
  const refused = new WeakSet<Errors.BackendError>()
  const isUnreachable = (e: Errors.BackendError) => unreachable.has(e)
  /** Within its wait after failing to connect: no new jobs, and no connection attempt. */
  const resting = (host: PoolHost) => host.down !== undefined && Date.now() < host.down.until
  /** Its disk was full when a job was last written to it: no new jobs there until `hostRetryAfter` has passed. */
  const filled = (host: PoolHost) => host.full !== undefined && Date.now() < host.full.until
  /** Errors of a job that could not be written for a full disk: it goes to another host, or waits. */
  const noSpace = new WeakSet<Errors.BackendError>()
  const markFull = (host: PoolHost, e: Errors.BackendError, reason: string) =>
    Effect.suspend(() => {
      const first = host.full === undefined
      host.full = { until: Date.now() + retryAfter, reason }
      noSpace.add(e)
      return Effect.andThen(
        first
          ? Effect.logWarning(
            `ssh host ${host.name}: ${reason}. It gets no new jobs (they go to the other hosts, or wait) until a job can be written there ` +
              `(tried again every ${Duration.format(Duration.millis(retryAfter))}); its running jobs are followed on.`
          )
          : Effect.void,
        Effect.fail(e)
      )
    })

  const markDown = (host: PoolHost, e: Errors.BackendError) =>
    Effect.suspend(() => {
      const first = host.down === undefined
      host.down = { until: Date.now() + retryAfter, reason: e.message }
      const what = refused.has(e) ? "refuses this controller's key" : "is unreachable"
      const check = refused.has(e) ? "Fix its authorized_keys (or the key) as said: its jobs run on meanwhile." : "Check that the host and its sshd are up."
      return first
        ? Effect.logWarning(
          `ssh host ${host.name} (${host.conn.label}) ${what}: ${e.message}. It gets no new jobs (they go to the other hosts, or wait); ` +
            `it is tried again every ${Duration.format(Duration.millis(retryAfter))}, and its running jobs are waited for up to ` +
            `${Duration.format(Duration.millis(lostAfter))} before they count as lost and run again elsewhere. ${check}`
        )
        : Effect.void
    })

  const markUp = (host: PoolHost) =>
    Effect.suspend(() => {
      if (host.down === undefined) return Effect.void
      host.down = undefined
      const stale = [...host.abandoned]
      host.abandoned.clear()
      const unlisted = [...host.unlisted]
      host.unlisted.clear()
      const stopping = stale.length === 0 ? "" : `; stopping ${stale.length} job(s) given up on while it was down`
      const log = Effect.logInfo(`ssh host ${host.name} is reachable again: it takes new jobs${stopping}`)
      if (stale.length === 0 && unlisted.length === 0) return log
      return log.pipe(
        Effect.andThen(Effect.forEach(stale, ([dir, pgid]) => Effect.ignore(call("cancel", host, (c) => c.exec(killScript(host, dir, pgid)))), { discard: true })),
        Effect.andThen(Effect.ignore(sweepUnlisted(host, unlisted))),
        Effect.forkIn(scope),
        Effect.asVoid
      )
    })

  const call = <A>(operation: string, host: PoolHost, f: (c: Connection) => Promise<A>): Effect.Effect<A, Errors.BackendError> =>
    Effect.suspend(() => {
      // a host known down is not waited for again: failing fast lets the others be used
      if (resting(host)) {
        const e = fail(operation, `${host.name} is unreachable (${host.down!.reason}); tried again later`, true)
        unreachable.add(e)
        return Effect.fail(e)
      }
      const once = Effect.tryPromise({
        try: () => f(host.conn),
        catch: (e) => {
          const err = e instanceof SshFailure ? fail(operation, e.message, e.retryable) : fail(operation, `${host.name}: ${String(e)}`, true)
          if (e instanceof SshFailure && e.unreachable) unreachable.add(err)
          if (e instanceof SshFailure && e.refused) refused.add(err)
          return err
        }
      })
      // a host that was down gets one try (a probe), not the whole retry budget
      return (host.down !== undefined ? once : Effect.retry(once, { schedule, while: (e) => e.retryable })).pipe(
        Effect.tapError((e) => (isUnreachable(e) ? markDown(host, e) : Effect.void)),
        Effect.tap(() => {
          host.lastOk = Date.now()
          return markUp(host)
        })
      )
    })

  /** A watched job that ended (or is lost) gives back its slot and GPUs (the queue looks for room at once). */
  const release = (id: string) => {
    queue.release(id)
    fresh.delete(id)
  }

  /** The names of the pool's hosts but `host` (a job record naming one of them is that host's job). */
  const others = (host: PoolHost) => pool.filter((h) => h !== host).map((h) => h.name)

  const hostOf = (ref: ExperimentNode.JobRef) => {
    const h = pool.find((p) => p.name === ref.data["host"])
    return h !== undefined && typeof ref.data["dir"] === "string"
      ? Effect.succeed({ host: h, dir: ref.data["dir"] })
      : Effect.fail(fail("watch", `job ${ref.id}: host ${JSON.stringify(ref.data["host"])} is not in this backend's pool`))
  }

  /** Release the slots of jobs that have ended (seen from their files). */
  const refresh = Effect.fnUntraced(function*() {
    for (const [id, h] of [...queue.held]) {
      const host = pool.find((p) => p.name === h.host)!
      // an unreachable host's jobs keep their slots (they may well be running); its other slots are not offered anyway
      if (resting(host)) continue
      const dir = id.slice(0, id.indexOf("@"))
      const out = yield* call("submit", host, (c) =>
        c.exec(`cd ${Script.quote(posix.join(remoteRoot, dir))} && { ${Script.exited(".")} || { [ -f ${Script.FILES.pid} ] && ! ${Script.alive(".")}; }; }`)
      ).pipe(Effect.catchIf(isUnreachable, () => Effect.succeed(undefined)))
      if (out?.code === 0) queue.release(id)
    }
  })

  const place = (gpus: number, skip?: ReadonlySet<PoolHost>): { host: PoolHost; gpuIds: Array<string> } | undefined => {
    for (const host of pool) {
      if (!host.adopted || resting(host) || filled(host) || skip?.has(host)) continue
      const mine = [...queue.held.values()].filter((h) => h.host === host.name)
      const busy = new Set(mine.flatMap((h) => h.gpuIds))
      const free = host.gpus.filter((g) => !busy.has(g))
      if (mine.length < host.slots && free.length >= gpus) return { host, gpuIds: free.slice(0, gpus) }
    }
    return undefined
  }

  /**
   * Jobs a previous controller left running hold their slots and GPUs: found once per host, on
   * first use; a host that cannot be reached then is adopted when it answers.
   */
  const adopt = Effect.fnUntraced(function*() {
    const script = Script.running(remoteRoot)
    for (const host of pool) {
      if (host.adopted || resting(host)) continue
      const out = yield* call("submit", host, (c) => c.exec(script)).pipe(Effect.catchIf(isUnreachable, () => Effect.succeed(undefined)))
      if (out === undefined) continue
      for (const line of out.stdout.split("\n")) {
        const space = line.indexOf(" ")
        if (space < 0) continue
        try {
          const job = JSON.parse(line.slice(space + 1)) as { host?: string; gpuIds?: Array<string> }
          // a record naming a host outside the pool is this host's (the host renamed between controllers, see stillOurs)
          if (job.host === host.name || !pool.some((h) => h.name === job.host)) queue.take(`${line.slice(0, space)}@${host.name}`, { host: host.name, gpuIds: job.gpuIds ?? [] })
        } catch {
          // a half-written record: not a job to account for
        }
      }
      host.adopted = true
    }
  })

  /** Why a job needing `gpus` GPUs cannot be placed now. */
  const why = (gpus: number): string => {
    const up = pool.filter((h) => h.adopted && !resting(h))
    const down = pool.filter((h) => !up.includes(h))
    const unreach = down.length > 0 ? ` (unreachable: ${down.map((h) => h.name).join(", ")})` : ""
    if (up.length === 0) return `no host reachable: ${down.map((h) => `${h.name}: ${h.down?.reason ?? "not reached yet"}`).join("; ")}`
    const full = up.filter(filled)
    if (full.length === up.length) return `no host with room on its disk: ${full.map((h) => `${h.name}: ${h.full!.reason}`).join("; ")}${unreach}`
    const noRoom = full.length > 0 ? ` (disk full: ${full.map((h) => h.name).join(", ")})` : ""
    const slots = up.reduce((n, h) => n + h.slots, 0)
    const inUse = [...queue.held.values()].filter((j) => up.some((h) => h.name === j.host)).length
    if (noRoom !== "") return `no free slot on a host with room on its disk: ${inUse} of ${slots} in use${noRoom}${unreach}`
    return inUse >= slots ? `no free slot: ${inUse} of ${slots} in use${unreach}` : `no host with ${gpus} free GPU${gpus === 1 ? "" : "s"}${unreach}`
  }

  const scope = yield* Effect.scope
  /** Jobs waiting for a host: started in submission order. */
  const queue: AdmissionQueue<QueuedJob, Placed, ExperimentNode.JobRef, Held> = new AdmissionQueue<QueuedJob, Placed, ExperimentNode.JobRef, Held>({
    room: (e) =>
      Effect.map(Effect.andThen(adopt(), refresh()), () => {
        const got = place(e.job.gpus)
        return got !== undefined ? { go: got } : { wait: why(e.job.gpus) }
      }),
    // the host it was given stopped answering and no other has room: it waits again
    start: (e, got) => Effect.map(e.job.launch(got.host, got.gpuIds), (ref) => ref ?? AGAIN),
    fork: (effect) => Effect.forkIn(effect, scope),
    poll: (yield* QueuePoll) ?? QUEUE_POLL
  })
  let ticketCount = 0

  /**
   * What became of a ticket: the ref of its job, or its exit when it never started. Awaited while
   * it waits here (reporting why); an earlier controller's ticket is looked for on the pool's hosts.
   */
  const settle = Effect.fnUntraced(function*(ref: ExperimentNode.JobRef, emit?: (e: Backend.JobEvent) => void) {
    if (queue.knows(ref.id)) return yield* queue.settle(ref.id, emit)
    const dir = String(ref.data["dir"])
    for (const host of pool) {
      const text = yield* call("watch", host, (c) => c.readFrom(posix.join(dir, Script.FILES.job), 0))
      try {
        const job = JSON.parse(text?.toString("utf8") ?? "{}") as { ticket?: string; host?: unknown }
        // on hosts sharing one file system each reads the record: the job is the host's it names
        const on = pool.find((h) => h.name === job.host)?.name ?? host.name
        if (job.ticket === ref.id) return { backend: NAME, id: `${ref.data["rel"]}@${on}`, data: { host: on, dir } } satisfies ExperimentNode.JobRef
      } catch {
        // a half-written record: not this ticket's
      }
    }
    return unstarted("Lost", LOST_IN_QUEUE)
  })

  const submit = Effect.fn("SshBackend.submit")(function*(spec: Backend.JobSpec) {
    for (const [what, v] of [["labels.run", spec.labels.run], ["labels.node", spec.labels.node]] as const) {
      if (!LABEL.test(v)) return yield* fail("submit", `${what} ${JSON.stringify(v)} must match ${LABEL} (it names a remote directory)`)
    }
    if (spec.argv.length === 0) return yield* fail("submit", "argv is empty")
    if (!pool.some((h) => h.gpus.length >= spec.resources.gpus)) {
      return yield* fail("submit", `the job needs ${spec.resources.gpus} GPUs; no host of the pool has that many`)
    }
    const rel = `${spec.labels.run}/${spec.labels.node}`
    const dir = posix.join(remoteRoot, rel)
    const files = yield* Effect.try({
      try: () =>
        spec.files.map((f) => {
          const target = resolveJobFile(dir, f.path)
          if (target === undefined) throw new Error(`job file ${JSON.stringify(f.path)} must be a relative path inside the job directory`)
          return { target, content: f.content }
        }),
      catch: (e) => fail("submit", e instanceof Error ? e.message : String(e))
    })
    const envText = yield* Effect.try({
      try: () => Script.envFile(Backend.revealEnv(spec.env)),
      catch: (e) => fail("submit", e instanceof Error ? e.message : String(e))
    })
    let launching = false
    const launchOn = (host: PoolHost, gpuIds: ReadonlyArray<string>, ticket?: string) => {
      const id = `${rel}@${host.name}`
      launching = false
      if (pool.some((h) => h.unlisted.has(spec.labels.run))) startedWhileUnlisted.set(rel, { host: host.name, at: Date.now() })
      // taken at once, in the step that found it free
      queue.take(id, { host: host.name, gpuIds })
      const prepare = Effect.gen(function*() {
        const dirs = [...new Set([dir, ...files.map((f) => posix.dirname(f.target))])]
        const reset = [...Object.values(Script.FILES), JobProtocol.RESULT_FILE, JobProtocol.METRICS_FILE]
        const mk = yield* call("submit", host, (c) =>
          c.exec(`mkdir -p ${dirs.map(Script.quote).join(" ")} && cd ${Script.quote(dir)} && rm -f ${reset.join(" ")}`)
        )
        if (mk.code !== 0) {
          const full = yield* diskFull(host, dir)
          const e = fail("submit", `${host.name}: cannot prepare ${dir}: ${mk.stderr.trim()}: ${full ?? `remoteRoot (${remoteRoot}) must be writable by ${host.user}`}`)
          return yield* (full !== undefined ? markFull(host, e, full) : Effect.fail(e))
        }
        // its token marks its exit, time-out and cancel markers as its own (see Script.markerOf)
        const token = randomBytes(8).toString("hex")
        const job = { name: spec.name, labels: spec.labels, host: host.name, gpuIds, resources: spec.resources, submittedAt: Date.now(), token, ...(ticket !== undefined ? { ticket } : {}) }
        const wrapper = Script.wrapper({ jobDir: dir, argv: spec.argv, gpuIds, timeLimitSeconds: spec.resources.timeLimitSeconds, killGraceSeconds: grace, token })
        const writes = [
          ...files.map((x) => ({ ...x, mode: 0o644 })),
          { target: posix.join(dir, Script.FILES.job), content: JSON.stringify(job), mode: 0o644 },
          // Secrets travel over the encrypted channel into a 0600 file the wrapper sources and deletes.
          { target: posix.join(dir, Script.FILES.env), content: envText, mode: 0o600 },
          { target: posix.join(dir, Script.FILES.script), content: wrapper, mode: 0o700 }
        ]
        const write = (w: (typeof writes)[number]) => call("submit", host, (c) => c.writeFile(w.target, w.content, w.mode))
        yield* Effect.forEach(writes, (w) =>
          write(w).pipe(
            // SFTP says only "Failure" of a full disk: df says which. A disk with room again by the time df
            // looks (freed in between) gets the write once more before the failure counts
            Effect.catchIf((e) => !isUnreachable(e), (e) =>
              Effect.flatMap(diskFull(host, dir), (full) =>
                full !== undefined ? markFull(host, fail("submit", `${host.name}: cannot write ${w.target}: ${full}`), full)
                : write(w).pipe(Effect.catchIf((again) => !isUnreachable(again), () => Effect.fail(e)))))
          ), { concurrency: "unbounded" })
        // from here a lost connection leaves it unknown whether the job started: not placed elsewhere
        launching = true
        const started = yield* call("submit", host, (c) => c.exec(Script.launch(dir)))
        if (started.code !== 0) return yield* fail("submit", `${host.name}: cannot start the job: ${started.stderr.trim()}`)
        fresh.add(id)
        host.full = undefined
        return { backend: NAME, id, data: { host: host.name, dir } } satisfies ExperimentNode.JobRef
      })
      return Effect.onError(prepare, () => Effect.sync(() => queue.release(id)))
    }
    /** On `host`; if it cannot be reached before the job starts, on the next host with room (`undefined`: none has). */
    const launch = (host: PoolHost, gpuIds: ReadonlyArray<string>, ticket?: string, tried: ReadonlySet<PoolHost> = new Set()): Effect.Effect<ExperimentNode.JobRef | undefined, Errors.BackendError> =>
      launchOn(host, gpuIds, ticket).pipe(
        Effect.catchIf((e) => (isUnreachable(e) || noSpace.has(e)) && !launching, () => {
          // the host is marked down (or full) now (and each host is tried once, whatever `hostRetryAfter`)
          const skip = new Set([...tried, host])
          const next = place(spec.resources.gpus, skip)
          return next === undefined ? Effect.succeed(undefined) : launch(next.host, next.gpuIds, ticket, skip)
        })
      )
    yield* adopt()
    let got = queue.length === 0 ? place(spec.resources.gpus) : undefined
    if (got === undefined && queue.length === 0) {
      yield* refresh()
      got = queue.length === 0 ? place(spec.resources.gpus) : undefined
    }
    const ref = got !== undefined ? yield* launch(got.host, got.gpuIds) : undefined
    if (ref !== undefined) return ref
    // No host has room: queued here and started in turn, so that a stop can withdraw it.
    const id = `${rel}@queued-${Date.now().toString(36)}-${++ticketCount}`
    const job: QueuedJob = { gpus: spec.resources.gpus, launch: (host, gpuIds) => launch(host, gpuIds, id) }
    yield* queue.enqueue({ id, labels: spec.labels, job, wait: why(spec.resources.gpus) })
    return { backend: NAME, id, data: { dir, rel, queued: true } } satisfies ExperimentNode.JobRef
  })

  /**
   * Why the disk of `dir` on `host` is full (df of its nearest existing directory shows under 1 MB
   * free, as the local backend counts a full disk: a write that failed can leave a few KB, and a job's
   * wrapper frees some when it deletes its env file), or `undefined`: it has room, or could not be asked.
   */
  const diskFull = (host: PoolHost, dir: string): Effect.Effect<string | undefined> =>
    call("watch", host, (c) => c.exec(`d=${Script.quote(dir)}; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; df -Pk "$d" | tail -n 1`)).pipe(
      Effect.map((out) => {
        const f = out.stdout.trim().split(/\s+/)
        return f.length >= 6 && /^\d+$/.test(f[3]!) && Number(f[3]) < 1024
          ? `the disk of ${host.name}:${dir} is full (${f[5]} has ${f[3]} KB free): free space there (finished job directories under ${remoteRoot}, say), or set remoteRoot to a disk with room`
          : undefined
      }),
      Effect.orElseSucceed(() => undefined)
    )

  /** How long ago (ms, by the host's own clock) the job record in `dir` was last written; 0 when that cannot be told. */
  const recordAge = (host: PoolHost, dir: string) =>
    call("watch", host, (c) => c.exec(`cd ${Script.quote(dir)} && echo $(( $(date +%s) - $(stat -c %Y ${Script.FILES.job} 2>/dev/null || stat -f %m ${Script.FILES.job}) ))`)).pipe(
      Effect.map((out) => {
        const seconds = Number(out.stdout.trim())
        return out.code === 0 && out.stdout.trim() !== "" && Number.isFinite(seconds) ? Math.max(0, seconds) * 1000 : 0
      })
    )

  const readText = (host: PoolHost, path: string) =>
    call("watch", host, (c) => c.readFrom(path, 0)).pipe(Effect.map((b) => b?.toString("utf8")))

  /** Errors of a watch whose job's directory no longer holds its job (see {@link stillOurs}): the job reads as lost. */
  const taken = new WeakSet<Errors.BackendError>()

  /** Job directories whose record names a host outside the pool (`<host>\0<dir>\0<named>`), warned of once. */
  const strangers = new Set<string>()

  /**
   * Fails (an error of `taken`) if the job record in `dir` names another host of the pool (or is gone); returns its
   * token (`undefined`: a record of an earlier version, without one). A record naming a host outside the pool is
   * followed as `host`'s, with a warning once: the host renamed in the configuration between controllers (an alias of
   * `~/.ssh/config`, a `hosts` entry) is the same machine, and losing its job would run it twice. A job's id is its directory and its host
   * (`<run>/<node>@<host>`), and on hosts sharing one file system the node's directory is one: a job of the node on
   * another host (its retry) takes it, clearing the files and writing its own record. So an exit, a pid, a result, a
   * log or metrics read there are the job's only if its record, read after them, still names its host; else the job
   * reads as lost (as a Docker container whose directory a newer job took), never as the other job. A record missing
   * or unreadable in a directory still there is read again after {@link RECORD_GAP} (a newer job's submit clears the
   * directory before it writes its record); a directory gone is a job gone.
   */
  const stillOurs = Effect.fnUntraced(function*(host: PoolHost, dir: string) {
    const file = posix.join(dir, Script.FILES.job)
    const hostIn = (text: string | undefined) => text === undefined ? undefined : recordOf(text)?.["host"]
    let text = yield* readText(host, file)
    if (typeof hostIn(text) !== "string") {
      if ((yield* call("watch", host, (c) => c.exec(`[ -d ${Script.quote(dir)} ]`))).code !== 0) return yield* lostWith(gone(host, dir))
      // a newer job's submit clears the directory, then writes its record: looked at again once that is done
      yield* Effect.sleep(RECORD_GAP)
      text = yield* readText(host, file)
    }
    const on = hostIn(text)
    const token = () => {
      const t = text === undefined ? undefined : recordOf(text)?.["token"]
      return typeof t === "string" ? t : undefined
    }
    if (on === host.name) return token()
    if (typeof on === "string" && !pool.some((h) => h.name === on)) {
      const key = `${host.name}\0${dir}\0${on}`
      if (!strangers.has(key)) {
        strangers.add(key)
        yield* Effect.logWarning(
          `ssh job ${host.name}:${dir}: its record names host ${JSON.stringify(on)}, which is not in this backend's pool: it is followed as ` +
            `${host.name}'s (the host renamed in the configuration?); on hosts sharing one file system, a host removed from the pool is no ` +
            `longer told apart from this one`
        )
      }
      return token()
    }
    return yield* lostWith(
      typeof on === "string"
        ? `its job directory ${dir} was given to a newer job of the node, on host ${on} (hosts sharing one file system share it): ` +
          "its exit, result and logs there are that job's, so how this one ended is unknown; it counts as lost and runs again"
        : `its job record ${host.name}:${file} is ${text === undefined ? "gone" : "not one this backend wrote"} (removed or edited, or ` +
          "cleared by a newer job's submit that did not finish): how the job ended is unknown; it counts as lost and runs again"
    )
  })
  const lostWith = (message: string) => {
    const e = fail("watch", message)
    taken.add(e)
    return Effect.fail(e)
  }

  /** `result.json`, read up to {@link JobProtocol.MAX_RESULT_BYTES} as every backend does (a bigger one by its size only). */
  const readResult = (host: PoolHost, path: string) =>
    Effect.flatMap(call("watch", host, (c) => c.size(path)), (size) =>
      size === undefined || size > JobProtocol.MAX_RESULT_BYTES
        ? Effect.succeed(JobProtocol.parseResultBytes(size === undefined ? undefined : "", size))
        : call("watch", host, (c) => c.readFrom(path, 0, JobProtocol.MAX_RESULT_BYTES)).pipe(Effect.map((b) => JobProtocol.parseResultBytes(b, size))))

  const toExit = Effect.fnUntraced(function*(host: PoolHost, dir: string, code: number | undefined, logTail: ReadonlyArray<string>) {
    const f = (name: string) => posix.join(dir, name)
    // SFTP requests pipeline over one channel: read the small files at once
    const [texts, result] = yield* Effect.all([
      Effect.all(
        [Script.FILES.pid, Script.FILES.exit, Script.FILES.cancelled, Script.FILES.timeout, Script.FILES.job].map((name) => readText(host, f(name))),
        { concurrency: "unbounded" }
      ),
      readResult(host, f(JobProtocol.RESULT_FILE))
    ], { concurrency: "unbounded" })
    // read after them: they are this job's only if its record still names its host, and its markers only if they carry
    // its record's token (one a job of another record wrote after it tested the record is not, see Script.markerOf)
    const token = yield* stillOurs(host, dir)
    const [pidText, exitText, cancelledText, timeoutText, jobText] = texts
    const pid = numbers(pidText === undefined ? undefined : Buffer.from(pidText))
    const exit = Script.markerOf(Script.FILES.exit, exitText, token) ? numbers(Buffer.from(exitText!)) : undefined
    const cancelled = Script.markerOf(Script.FILES.cancelled, cancelledText, token)
    const timedOut = Script.markerOf(Script.FILES.timeout, timeoutText, token)
    const job = JSON.parse(jobText ?? "{}") as { gpuIds?: Array<string>; resources?: { timeLimitSeconds?: number } }
    const started = pid?.[1]
    const ended = exit?.[1] ?? Math.floor(Date.now() / 1000)
    const wallSeconds = started !== undefined ? Math.max(0, ended - started) : 0
    const signal = code !== undefined ? signalName(code) : undefined
    const base = {
      _tag: "Exit" as const,
      logTail,
      wallSeconds,
      gpuSeconds: wallSeconds * (job.gpuIds?.length ?? 0),
      ...result,
      ...(code !== undefined ? { exitCode: code } : {}),
      ...(signal !== undefined ? { signal } : {})
    }
    if (cancelled) return { ...base, outcome: "Cancelled", failureKind: "Cancelled", message: "cancelled" } satisfies Backend.JobExit
    if (timedOut) {
      return { ...base, outcome: "Failed", failureKind: "Timeout", message: `time limit of ${job.resources?.timeLimitSeconds ?? "?"} s exceeded: process group killed` } satisfies Backend.JobExit
    }
    if (code === undefined && jobText === undefined) return { ...base, outcome: "Failed", failureKind: "Infra", message: gone(host, dir) } satisfies Backend.JobExit
    if (code === undefined && pidText?.trim().split(/\s+/)[2] !== undefined) {
      const rebooted = yield* call("watch", host, (c) => c.exec(`cd ${Script.quote(dir)} && ${Script.sameBoot(".")}`))
      if (rebooted.code !== 0) {
        return { ...base, outcome: "Failed", failureKind: "Infra", message: `host ${host.name} rebooted after the job started (its boot id changed): the job's processes are gone and it runs again` } satisfies Backend.JobExit
      }
    }
    if (code === undefined) {
      const full = yield* diskFull(host, dir)
      if (full !== undefined) return { ...base, outcome: "Failed", failureKind: "Infra", message: `the job's exit code could not be written: ${full}` } satisfies Backend.JobExit
      const log = (yield* readText(host, f(Script.FILES.wrapperLog)))?.trim()
      return { ...base, outcome: "Failed", failureKind: "Infra", message: `the job's processes are gone without an exit code (host rebooted or processes killed)${log ? `: ${log}` : ""}` } satisfies Backend.JobExit
    }
    if (code === 0) return { ...base, outcome: "Succeeded" } satisfies Backend.JobExit
    // Without a cgroup to ask, a SIGKILL nobody here sent is most likely the kernel's OOM killer.
    if (signal === "SIGKILL") return { ...base, outcome: "Failed", failureKind: "OOM", message: "killed by SIGKILL (out of memory?)" } satisfies Backend.JobExit
    // a job that filled its disk (its log says so) failed for the machine: Infra (the rule every backend shares)
    return Backend.noSpaceExit({ ...base, outcome: "Failed", failureKind: "Crash", message: signal !== undefined ? `killed by ${signal} (exit code ${code})` : `exit code ${code}` })
  })

  const drive = Effect.fnUntraced(function*(ref: ExperimentNode.JobRef, emit: Emit, known: Followed) {
    const { host, dir } = yield* hostOf(ref)
    const f = (name: string) => posix.join(dir, name)
    // submit returns a ref only once the record is written: it was there, and is gone with the job (or names another host's)
    yield* stillOurs(host, dir)
    const { tail, streams } = known
    const onLine = (kind: "stdout" | "stderr" | "metrics", line: string): Effect.Effect<void> => {
      if (kind === "metrics") {
        const point = JobProtocol.parseMetricsFileLine(line)
        return point !== undefined ? emit({ _tag: "Metric", point }) : Effect.void
      }
      tail.push(line)
      return emit((kind === "stdout" ? JobProtocol.parseLine(line) : undefined) ?? { _tag: "Log", stream: kind, line })
    }
    const onLines = (kind: "stdout" | "stderr" | "metrics", lines: ReadonlyArray<string>) => Effect.forEach(lines, (l) => onLine(kind, l), { discard: true })
    /**
     * A slice ({@link READ_CHUNK}) of each file, its lines emitted before more is read: a log of
     * gigabytes is never held whole. Returns whether a file has more; a final drain reads to the end.
     */
    const drain = Effect.fnUntraced(function*(final: boolean) {
      let behind: boolean
      do {
        const bufs = yield* Effect.all(streams.map((s) => call("watch", host, (c) => c.readFrom(f(s.file), s.offset, READ_CHUNK))), { concurrency: "unbounded" })
        // the lines are the job's only if its record still names its host once they are read (none read, none to check:
        // the job's end is checked by its own exit's read)
        if (bufs.some((b) => b !== undefined && b.length > 0)) yield* stillOurs(host, dir)
        behind = false
        for (const [i, s] of streams.entries()) {
          const buf = bufs[i]
          if (buf === undefined || buf.length === 0) continue
          s.offset += buf.length
          behind ||= buf.length === READ_CHUNK
          yield* onLines(s.kind, s.split.push(buf))
        }
      } while (final && behind)
      if (final) for (const s of streams) yield* onLines(s.kind, s.split.end())
      return behind
    })
    const finish = Effect.fnUntraced(function*(code: number | undefined, replay: boolean) {
      if (replay) {
        yield* drain(true)
      } else {
        // Not ours to replay: only the last lines, for the log tail.
        for (const s of streams.slice(0, 2)) {
          const size = (yield* call("watch", host, (c) => c.exec(`wc -c < ${Script.quote(f(s.file))} 2>/dev/null || echo 0`))).stdout
          s.offset = Math.max(0, Number(size.trim()) - 8192)
          const buf = yield* call("watch", host, (c) => c.readFrom(f(s.file), s.offset))
          for (const l of [...s.split.push(buf ?? Buffer.alloc(0)), ...s.split.end()]) tail.push(l)
        }
      }
      const exit = yield* toExit(host, dir, code, tail.get())
      release(ref.id)
      yield* emit(exit)
    })
    let unlaunchedSince: number | undefined
    /** The job's exit code and time, if `.trex-exit` is there and its own (see {@link toExit}). */
    const ownExit = Effect.fnUntraced(function*() {
      const text = yield* readText(host, f(Script.FILES.exit))
      if (text === undefined || text.trim() === "") return undefined
      return Script.markerOf(Script.FILES.exit, text, yield* stillOurs(host, dir)) ? numbers(Buffer.from(text)) : undefined
    })
    for (let tick = 0; ; tick++) {
      const exit = yield* ownExit()
      if (known.unreachable) {
        known.unreachable = false
        yield* emit({ _tag: "State", state: known.phase === "Pending" ? "Pending" : "Running" })
      }
      if (exit !== undefined) {
        const replay = known.phase !== "Init" || fresh.has(ref.id)
        if (replay && known.phase !== "Running") yield* emit({ _tag: "State", state: "Running" })
        return yield* finish(exit[0], replay)
      }
      known.pid ??= numbers(yield* call("watch", host, (c) => c.readFrom(f(Script.FILES.pid), 0)))?.[0]
      const pid = known.pid
      // until it is shown running (then each poll's log read is checked so): its pid is its own only while its record names its host
      if (known.phase !== "Running") yield* stillOurs(host, dir)
      // the grace runs from when the record was written (by the host's clock): a record a controller long gone wrote
      // is not waited on for another LAUNCH_GRACE_MS (and its job shown Pending meanwhile)
      if (pid === undefined && unlaunchedSince === undefined) unlaunchedSince = Date.now() - (fresh.has(ref.id) ? 0 : yield* recordAge(host, dir))
      const stale = pid === undefined && Date.now() - unlaunchedSince! > LAUNCH_GRACE_MS
      // launched here, and no pid yet: a wrapper that could not record it (a full disk) exits without starting the job
      const full = stale && fresh.has(ref.id) ? yield* diskFull(host, dir) : undefined
      if (stale && (!fresh.has(ref.id) || full !== undefined)) {
        // A record and no process, and nobody here launched it: its controller stopped between
        // writing the job and launching it, so nobody will. Made unlaunchable (its secrets go too), then reported.
        const F = Script.FILES
        const out = yield* call("watch", host, (c) => c.exec(`cd ${Script.quote(dir)} && [ -f ${F.job} ] && ! ${Script.namesOneOf(others(host))} && { [ -f ${F.pid} ] || [ -f ${F.exit} ] || { rm -f ${F.script} ${F.env}; echo gone; }; }`))
        if (out.stdout.trim() === "gone") {
          release(ref.id)
          return yield* emit(unstarted("Lost", full !== undefined ? `the job could not start: ${full}` : "its controller stopped after writing the job and before launching it"))
        }
      }
      if (pid === undefined && (yield* readText(host, f(Script.FILES.job))) === undefined) {
        // cleared before its wrapper ran, or before this watch saw it run (a reboot): nothing will write its pid
        release(ref.id)
        return yield* emit(unstarted("Lost", gone(host, dir)))
      }
      if (pid === undefined && known.phase === "Init") {
        yield* emit({ _tag: "State", state: "Pending" })
        known.phase = "Pending"
      }
      if (pid !== undefined && known.phase !== "Running") {
        yield* emit({ _tag: "State", state: "Running" })
        known.phase = "Running"
      }
      // a file not read to its end (a slice a poll): the next poll comes at once
      const behind = known.phase === "Running" ? yield* drain(false) : false
      if (pid !== undefined && tick % LIVENESS_EVERY === LIVENESS_EVERY - 1) {
        // its directory gone too: the host rebooted and cleared it (its pid may be another process's by now)
        // (or a pid file of an earlier boot: the host rebooted and kept the directory)
        const alive = yield* call("watch", host, (c) => c.exec(`cd ${Script.quote(dir)} && [ -f ${Script.FILES.job} ] && ${Script.alive(".")}`))
        const late = yield* ownExit()
        if (alive.code !== 0) return yield* finish(late?.[0], true)
      }
      if (!behind) yield* Effect.sleep(poll)
    }
  })

  /**
   * `drive`, through its host's outages: while the host cannot be reached the job is waited for
   * (it likely runs on); unreachable for `hostLostAfter`, it is reported lost (`Failed`/`Infra`, run
   * again elsewhere) and its copy is stopped if the host comes back.
   */
  const driveThrough = (ref: ExperimentNode.JobRef, emit: Emit): Effect.Effect<void, Errors.BackendError> => {
    const known: Followed = {
      pid: undefined,
      phase: "Init",
      unreachable: false,
      tail: new JobProtocol.Tail(40),
      streams: [
        { file: Script.FILES.stdout, kind: "stdout", offset: 0, split: new JobProtocol.LineSplitter() },
        { file: Script.FILES.stderr, kind: "stderr", offset: 0, split: new JobProtocol.LineSplitter() },
        { file: JobProtocol.METRICS_FILE, kind: "metrics", offset: 0, split: new JobProtocol.LineSplitter() }
      ]
    }
    const since = Date.now()
    // a job whose directory no longer holds it (see stillOurs) ends lost
    const own = Effect.catchIf(drive(ref, emit, known), (e) => taken.has(e), (e) =>
      Effect.suspend(() => {
        release(ref.id)
        return emit(unstarted("Lost", e.message))
      }))
    const loop: Effect.Effect<void, Errors.BackendError> = Effect.catchIf(own, isUnreachable, (e) =>
      Effect.flatMap(hostOf(ref), ({ host, dir }) => {
        if (Date.now() - Math.max(since, host.lastOk) < lostAfter) {
          // told once an outage (the job taken to run on), in the state last shown
          const told = known.unreachable ? Effect.void : Effect.suspend(() => {
            known.unreachable = true
            return emit(Backend.unreachable({
              state: known.phase === "Pending" ? "Pending" : "Running",
              who: `host ${host.name}`,
              since: Math.max(since, host.lastOk),
              cause: e.message,
              meanwhile: `the job is taken to run on, and counts as lost (run again elsewhere) after ${Duration.format(Duration.millis(lostAfter))} (hostLostAfter)`
            }))
          })
          return Effect.andThen(told, Effect.andThen(Effect.sleep(QUEUE_POLL), loop))
        }
        release(ref.id)
        host.abandoned.set(dir, known.pid)
        return emit(unstarted("Lost", `host ${host.name} was unreachable for ${Duration.format(Duration.millis(lostAfter))} (${e.message}): the job counts as lost and runs again elsewhere; if the host comes back, this copy is stopped`))
      }))
    return loop
  }

  const follow = Effect.fnUntraced(function*(ref: ExperimentNode.JobRef, emit: Emit, emitNow: (e: Backend.JobEvent) => void) {
    if (ref.data["queued"] !== true) return yield* driveThrough(ref, emit)
    // waiting in the queue reports a few states, before any output: a callback that cannot wait
    const got = yield* settle(ref, emitNow)
    return yield* "_tag" in got ? emit(got) : driveThrough(got, emit)
  })

  const watch = (ref: ExperimentNode.JobRef): Stream.Stream<Backend.JobEvent, Errors.BackendError> =>
    boundedWatch((emit, emitNow) => follow(ref, emit, emitNow))

  const cancel = Effect.fn("SshBackend.cancel")(function*(ref: ExperimentNode.JobRef) {
    if (ref.data["queued"] !== true) return yield* kill(ref)
    if (queue.remove(ref.id, "cancelled before it started")) return
    // starting now, or started: stop its job
    const got = yield* settle(ref).pipe(Effect.orElseSucceed(() => undefined))
    if (got !== undefined && !("_tag" in got)) yield* kill(got)
  })

  /** A queued job leaves the queue without starting; one that has started is let run. */
  const withdraw = (ref: ExperimentNode.JobRef) => Effect.sync(() => ref.data["queued"] === true && queue.remove(ref.id, "withdrawn before it started"))

  /** See {@link Script.kill}: only `host`'s copy (a record naming another host of the pool is that host's job), and only the process group `pgid` known then. */
  const killScript = (host: PoolHost, dir: string, pgid?: number) =>
    Script.kill({ dir, grace, others: others(host), ...(pgid !== undefined ? { pgid } : {}) })

  const kill = Effect.fnUntraced(function*(ref: ExperimentNode.JobRef) {
    const { host, dir } = yield* hostOf(ref)
    // not while the directory's record names another host of the pool: its job is that host's (hosts sharing one file
    // system), whose cancel marker it would write and whose process group it would signal
    const out = yield* call("cancel", host, (c) => c.exec(killScript(host, dir))).pipe(
      // stopped when the host answers again (the caller hears that it could not be done now)
      Effect.tapError((e) => Effect.sync(() => isUnreachable(e) && host.abandoned.set(dir, host.abandoned.get(dir))))
    )
    if (out.code !== 0) return yield* fail("cancel", `${host.name}: cancel failed: ${out.stderr.trim()}`)
  })

  /**
   * One host's part of `list`. A host that cannot be reached is waited for (a job of the run may be
   * running there, and one missed would be started again beside it), probed every `hostRetryAfter`;
   * unreachable for `hostLostAfter`, its jobs count as lost, as a watched job's do: it is left out,
   * and when it answers again a copy there of a job since started on another host is stopped.
   */
  const listOn = (host: PoolHost, run: string, script: string): Effect.Effect<string | undefined, Errors.BackendError> => {
    const since = Date.now()
    const loop: Effect.Effect<string | undefined, Errors.BackendError> = Effect.catchIf(
      Effect.map(call("list", host, (c) => c.exec(script)), (out) => out.stdout),
      isUnreachable,
      (e) => {
        if (Date.now() - Math.max(since, host.lastOk) < lostAfter) return Effect.andThen(Effect.sleep(QUEUE_POLL), loop)
        host.unlisted.set(run, Date.now())
        return Effect.as(
          Effect.logWarning(
            `ssh host ${host.name} has been unreachable for ${Duration.format(Duration.millis(lostAfter))} (${e.message}): run ${run}'s jobs there ` +
              `could not be listed, so they count as lost; a trial whose job was there runs again on another host, and that copy is stopped if the host comes back`
          ),
          undefined
        )
      }
    )
    return loop
  }

  /** A host that answers again after `listOn` gave up on it: stop its copies of jobs since started elsewhere. */
  const sweepUnlisted = Effect.fnUntraced(function*(host: PoolHost, runs: ReadonlyArray<readonly [string, number]>) {
    for (const [run, givenUp] of runs) {
      const out = yield* call("cancel", host, (c) => c.exec(Script.runningGroups(posix.join(remoteRoot, run))))
      for (const line of out.stdout.split("\n")) {
        const [node, pgid] = line.split(" ")
        if (node === undefined || pgid === undefined) continue
        const moved = startedWhileUnlisted.get(`${run}/${node}`)
        if (moved === undefined || moved.host === host.name || moved.at < givenUp) continue
        yield* Effect.logInfo(`ssh host ${host.name}: stopping its copy of job ${run}/${node}, started again on ${moved.host} while it was unreachable`)
        yield* call("cancel", host, (c) => c.exec(killScript(host, posix.join(remoteRoot, run, node), Number(pgid))))
      }
    }
  })

  /** A job's `.trex-job.json` as `states` lists it, if it is a JSON object (anyone may edit it: its fields are checked where used). */
  const recordOf = (text: string): Record<string, unknown> | undefined => {
    try {
      const value: unknown = JSON.parse(text)
      return typeof value === "object" && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
    } catch {
      return undefined
    }
  }

  const list = Effect.fn("SshBackend.list")(function*(run: string) {
    if (!LABEL.test(run)) return []
    const script = Script.states(posix.join(remoteRoot, run))
    const jobs: Array<Backend.JobInfo> = queue.entries()
      .filter((e) => e.labels.run === run)
      .map((e) => ({ ref: { backend: NAME, id: e.id, data: { dir: posix.join(remoteRoot, run, e.labels.node), rel: `${run}/${e.labels.node}`, queued: true } }, labels: e.labels, state: "Pending" }))
    // A node's jobs on several hosts are each listed (job 1 on host A, its retry on host B), by node and host: the host
    // is the one the directory's record names (on hosts sharing one file system every host lists the same directory, and
    // the job is the named host's, its state as that host sees it), else the one listing it.
    const found = new Map<string, { readonly job: Backend.JobInfo; readonly own: boolean }>()
    for (const host of pool) {
      const out = yield* listOn(host, run, script)
      if (out === undefined) continue
      for (const line of out.split("\n")) {
        const [state, node] = line.split(" ", 2)
        if (node === undefined || node === "" || (state !== "Finished" && state !== "Running" && state !== "Pending")) continue
        const record = recordOf(line.slice(state.length + node.length + 2))
        const named = typeof record?.["host"] === "string" ? pool.find((h) => h.name === record["host"])?.name : undefined
        const on = named ?? host.name
        const key = `${node}@${on}`
        const own = on === host.name
        if (found.get(key)?.own === true || (found.has(key) && !own)) continue
        const at = record?.["submittedAt"]
        found.set(key, {
          own,
          job: {
            ref: { backend: NAME, id: `${run}/${node}@${on}`, data: { host: on, dir: posix.join(remoteRoot, run, node) } },
            labels: { run, node },
            state,
            ...(typeof at === "number" && Number.isFinite(at) ? { submittedAt: at } : {})
          }
        })
      }
    }
    return [...jobs, ...[...found.values()].map((f) => f.job)]
  })

  /**
   * On each host that answers: `remoteRoot` can be made and written, and the job's command is there
   * (an absolute path executable, else found on the `PATH` a job gets: the host's, or the job's own).
   */
  const preflight = (spec: Backend.JobSpec) =>
    Effect.gen(function*() {
      yield* adopt()
      const command = spec.argv[0] ?? ""
      const env = Backend.revealEnv(spec.env)
      const path = env["PATH"] !== undefined ? `PATH=${Script.quote(env["PATH"])}; ` : ""
      const found = posix.isAbsolute(command) ? `[ -f ${Script.quote(command)} ] && [ -x ${Script.quote(command)} ]` : `${path}command -v ${Script.quote(command)} >/dev/null 2>&1`
      const probe = `mkdir -p ${Script.quote(remoteRoot)} 2>/dev/null && [ -w ${Script.quote(remoteRoot)} ] || echo root; ${found} || echo command`
      const concerns: Array<Backend.Concern> = []
      for (const host of pool.filter((h) => h.adopted && !resting(h))) {
        const out = yield* call("preflight", host, (c) => c.exec(probe)).pipe(Effect.catchIf(isUnreachable, () => Effect.succeed(undefined)))
        const said = out?.stdout.split("\n").map((l) => l.trim()) ?? []
        if (said.includes("root")) concerns.push({ severity: "fail", message: `${host.name}: remoteRoot ${remoteRoot} cannot be made or written by ${host.user}: name a directory it can write (backend.ssh.remoteRoot)` })
        if (said.includes("command")) {
          concerns.push({
            severity: "fail",
            message: posix.isAbsolute(command)
              ? `${host.name}: the job's command ${command} is not an executable file there (recipe.command[0])`
              : `${host.name}: the job's command ${command} is not on the PATH a job gets there (a non-interactive shell's${path !== "" ? ", or recipe.env.PATH" : ""}): give its full path in recipe.command[0]`
          })
        }
      }
      return concerns
    })

  return Backend.make<Backend.BackendShape>({
    name: NAME,
    submit,
    watch,
    cancel,
    withdraw,
    list,
    // the hosts that can take jobs now: an unreachable one (or one not reached yet) counts for nothing, also once
    // its `hostRetryAfter` is over, until it has been reached again
    capacity: Effect.map(Effect.suspend(() => adopt()), () => {
      const up = pool.filter((h) => h.adopted && h.down === undefined)
      return {
        slots: up.reduce((n, h) => n + h.slots, 0),
        gpus: up.reduce((n, h) => n + h.gpus.length, 0),
        inUse: [...queue.held.values()].filter((j) => up.some((h) => h.name === j.host)).length
      }
    }),
    preflight
  })
})

/**
 * The SSH backend as the {@link Backend.Backend} service (connections close with the layer).
 *
 * @example
 * ```ts
 * import { SshBackend } from "@trex/executors"
 * const BackendLive = SshBackend.layer({
 *   remoteRoot: "/scratch/trex",
 *   hosts: [{ host: "gpu1.lab", username: "me", privateKeyPath: "/home/me/.ssh/id_ed25519", knownHostsPath: "/home/me/.ssh/known_hosts", gpus: ["0"] }]
 * })
 * ```
 * @since 0.1.0 @category layers
 */
export const layer = (config: Config): Layer.Layer<Backend.Backend, Errors.BackendError> => Layer.effect(Backend.Backend, make(config))
