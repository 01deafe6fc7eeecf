/**
 * Pure pieces of the Docker backend: the container a job spec becomes, the engine's
 * multiplexed log framing, how an engine error is classified, and how a finished
 * container's state becomes a job exit.
 */
import { constants } from "node:os"
import { posix } from "node:path"
import type { Backend, Result } from "@trex/core"
import { Backend as B, JobProtocol } from "@trex/core"
import type Docker from "dockerode"

/** Labels the backend sets on every container (never secrets). */
export const LABEL = {
  run: "trex.run",
  node: "trex.node",
  name: "trex.name",
  jobDir: "trex.jobdir",
  deadline: "trex.deadline",
  gpus: "trex.gpus",
  gpuIds: "trex.gpuids",
  /** When the job was submitted (the controller's clock, milliseconds): `list`'s order of a node's jobs. */
  submitted: "trex.submitted"
} as const

/** Marker files the backend writes into a job directory so that any controller knows why a job ended. */
export const MARKER = { cancelled: ".trex-cancelled", timeout: ".trex-timeout" } as const

/** Records in a job directory: the job (labels, container id) and, once read, its exit (containers may be removed). */
export const RECORD = { job: ".trex-job.json", exit: ".trex-exit.json" } as const

export interface ContainerOptions {
  /** Image when the spec names none. */
  readonly image?: string | undefined
  /** Docker network mode; "none" keeps the job off every network. */
  readonly network: string
  /** Where the job directory appears in the container; undefined: at its host path. */
  readonly mountAt?: string | undefined
  /** Run an init process as PID 1 (forwards SIGTERM on cancel, reaps zombies). */
  readonly init?: boolean | undefined
  /** Extra bind mounts (a model cache, read-only datasets). */
  readonly mounts?: ReadonlyArray<Mount> | undefined
  /** Size of /dev/shm (PyTorch data loaders need more than Docker's 64 MB). */
  readonly shmSizeMb?: number | undefined
}

/** A host directory mounted into every job's container. */
export interface Mount {
  readonly source: string
  readonly target: string
  readonly readOnly?: boolean
}

export interface Placement {
  /** Host path of the job directory. */
  readonly jobDir: string
  /** Explicit GPU device ids chosen from the configured pool, when there is one. */
  readonly gpuIds?: ReadonlyArray<string> | undefined
}

/** The `DeviceRequests` for a job: none without GPUs, explicit ids when given, else a count. */
export const deviceRequests = (gpus: number, gpuIds?: ReadonlyArray<string>): Array<Docker.DeviceRequest> => {
  if (gpus <= 0) return []
  return gpuIds !== undefined && gpuIds.length > 0
    ? [{ Driver: "", DeviceIDs: [...gpuIds], Capabilities: [["gpu"]] }]
    : [{ Driver: "", Count: gpus, Capabilities: [["gpu"]] }]
}

/** The create-container request for a job. Secrets appear only in `Env`. */
export const containerConfig = (
  spec: Backend.JobSpec,
  options: ContainerOptions,
  placement: Placement,
  now: number = Date.now()
): Docker.ContainerCreateOptions => {
  const image = spec.image ?? options.image
  if (image === undefined) throw new Error(`job ${spec.name}: no image (set spec.image or the backend's default image)`)
  const inner = options.mountAt ?? placement.jobDir
  const env = { ...B.revealEnv(spec.env), [JobProtocol.JOB_DIR_ENV]: inner }
  const labels: Record<string, string> = {
    [LABEL.run]: spec.labels.run,
    [LABEL.node]: spec.labels.node,
    [LABEL.name]: spec.name,
    [LABEL.jobDir]: placement.jobDir,
    [LABEL.gpus]: String(spec.resources.gpus)
  }
  if (spec.resources.timeLimitSeconds !== undefined) {
    labels[LABEL.deadline] = String(Math.round(now + spec.resources.timeLimitSeconds * 1000))
  }
  if (placement.gpuIds !== undefined && placement.gpuIds.length > 0) labels[LABEL.gpuIds] = placement.gpuIds.join(",")
  const hostConfig: Docker.HostConfig = {
    Mounts: [
      { Type: "bind", Source: placement.jobDir, Target: inner, ReadOnly: false },
      ...(options.mounts ?? []).map((m) => ({ Type: "bind" as const, Source: m.source, Target: m.target, ReadOnly: m.readOnly ?? false }))
    ],
    NetworkMode: options.network,
    NanoCpus: Math.round(spec.resources.cpus * 1e9),
    DeviceRequests: deviceRequests(spec.resources.gpus, placement.gpuIds),
    AutoRemove: false,
    Init: options.init ?? true
  }
  if (options.shmSizeMb !== undefined) hostConfig.ShmSize = options.shmSizeMb * 1024 * 1024
  if (spec.resources.memoryMb !== undefined) {
    hostConfig.Memory = spec.resources.memoryMb * 1024 * 1024
    hostConfig.MemorySwap = hostConfig.Memory // no swap: over the limit is an OOM kill, not a crawl
  }
  return {
    Image: image,
    // argv is the whole command: the image's ENTRYPOINT would otherwise be prepended to it
    Entrypoint: [spec.argv[0]!],
    Cmd: spec.argv.slice(1),
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: labels,
    WorkingDir: inner,
    Tty: false,
    OpenStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: hostConfig
  }
}

/** Incremental parser of the engine's multiplexed stdout/stderr framing (8-byte headers). */
export class FrameDemux {
  private pending: Buffer = Buffer.alloc(0)
  push(chunk: Buffer): Array<{ readonly stream: "stdout" | "stderr"; readonly data: Buffer }> {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    const out: Array<{ stream: "stdout" | "stderr"; data: Buffer }> = []
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4)
      if (this.pending.length < 8 + size) break
      out.push({ stream: this.pending[0] === 2 ? "stderr" : "stdout", data: this.pending.subarray(8, 8 + size) })
      this.pending = this.pending.subarray(8 + size)
    }
    return out
  }
}

interface EngineError {
  readonly message?: string
  readonly code?: string
  readonly statusCode?: number
  readonly json?: { readonly message?: string } | null
}

const CONNECTION_CODES = new Set(["ECONNREFUSED", "ENOENT", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ECONNABORTED"])

/** What an engine error says, and whether trying again later may help (daemon down or restarting). */
export const classifyError = (error: unknown): { readonly message: string; readonly retryable: boolean; readonly status?: number } => {
  const e = (typeof error === "object" && error !== null ? error : { message: String(error) }) as EngineError
  const raw = (e.json?.message ?? e.message ?? String(error)).trim()
  const detail = /Host denied \(verification failed\)/.test(raw)
    ? `the engine host's SSH host key is not in known_hosts, does not match it, or is marked @revoked there (${raw}); refusing to connect`
    : raw
  const retryable = (e.code !== undefined && CONNECTION_CODES.has(e.code)) ||
    e.statusCode === 502 || e.statusCode === 503 || e.statusCode === 504 ||
    /socket hang up|connect ECONNREFUSED/.test(detail)
  return e.statusCode !== undefined ? { message: detail, retryable, status: e.statusCode } : { message: detail, retryable }
}

/** A readable explanation for the engine's refusal to give a container GPUs. */
export const explainGpuError = (message: string): string | undefined =>
  /could not select device driver|nvidia-container-cli|unknown or invalid runtime name: nvidia/i.test(message)
    ? `Docker could not give the container GPUs (${message.trim()}). Install the NVIDIA Container Toolkit on the ` +
      `Docker host and restart dockerd (see docs/backends.md), or run the trial with resources.gpus = 0.`
    : undefined

/** A readable explanation for an engine's refusal to create or start a job's container, when there is one. */
export const explainStartError = (message: string): string | undefined =>
  explainGpuError(message) ??
    (/container-init binary not found|catatonit/i.test(message)
      ? `Podman has no init binary for the container (${message.trim()}); the backend runs one as PID 1 (init: true) so ` +
        `that a cancelled job gets SIGTERM. Install catatonit on the engine's host (apt-get install catatonit, ` +
        `dnf install catatonit), or set the backend's init: false (see docs/backends.md, Podman).`
      : explainLeftFiles(message))

/**
 * Podman forgets a container before it deletes its files; files it cannot delete (an immutable one, a mount inside)
 * are left in a layer that Podman tries to delete again before it mounts any container, and until it can, no
 * container starts: `mounting storage for container <new>: unlinkat <a file of the old layer>: operation not permitted`.
 */
const explainLeftFiles = (message: string): string | undefined => {
  const file = /mounting storage for container \S+: unlinkat (\S+): operation not permitted/.exec(message)?.[1]
  if (file === undefined) return undefined
  return `the engine cannot start a container while it cannot delete the files an earlier container left (${message.trim()}): ` +
    `Podman deletes them before it mounts any container. Make ${file} deletable on the engine's host (an immutable file: ` +
    `\`chattr -i ${file}\`; a file system mounted inside: unmount it); the next start deletes them (see docs/backends.md, Podman).`
}

/** Which engine answers the Docker API: Podman's compatible API differs in a few ways the backend works around. */
export type EngineKind = "docker" | "podman"

/** The engine of a `GET /version` answer (Podman names itself among the components). */
export const engineKind = (version: { readonly Components?: ReadonlyArray<{ readonly Name?: string }> | null }): EngineKind =>
  (version.Components ?? []).some((c) => /podman/i.test(c.Name ?? "")) ? "podman" : "docker"

/**
 * The engine and its version from the headers of a `GET /_ping` answer (Podman's has `Libpod-Api-Version`, Docker's a
 * `Server: Docker/<version>`), or `undefined` when they do not say (then `GET /version` is asked). Podman answers
 * `/version` (and `/info`) slowly, asking the host's package manager for its components' versions: 4.4 s and 2.3 s
 * for Podman 4.3 on Debian 12, against 0.2 s for the ping.
 */
export const engineFromPing = (headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>): { readonly kind: EngineKind; readonly version: string } | undefined => {
  const header = (name: string) => {
    const v = headers[name]
    return typeof v === "string" ? v.trim() : undefined
  }
  const libpod = header("libpod-api-version") ?? /^Libpod\/(\S+)/.exec(header("server") ?? "")?.[1]
  if (libpod !== undefined && libpod !== "") return { kind: "podman", version: libpod }
  const docker = /^Docker\/(\S+)/.exec(header("server") ?? "")?.[1]
  return docker !== undefined ? { kind: "docker", version: docker } : undefined
}

/** Why a GPU job is refused on Podman: its Docker API takes `DeviceRequests` and ignores them. */
export const podmanGpuRefusal = (gpus: number, version: string): string =>
  `the job needs ${gpus} GPU${gpus === 1 ? "" : "s"}, but the engine is Podman ${version}, whose Docker-compatible API ` +
  `accepts a GPU request (DeviceRequests) and ignores it: the job would run on no GPU. Run GPU trials on Docker Engine ` +
  `with the NVIDIA Container Toolkit (or the SSH or Slurm backend), or set resources.gpus = 0 for a trial that needs ` +
  `none (see docs/backends.md, Podman).`

/** What Podman's own API (`/libpod/info`) says of the host: the cgroup controllers its containers can be limited by. */
export interface PodmanHost {
  readonly rootless: boolean
  readonly cgroupVersion: string
  readonly controllers: ReadonlyArray<string>
  /** The host's CPU count, when `/libpod/info` says it (the backend's default slots, without asking the slow `/info`). */
  readonly cpus?: number
}

/**
 * Why a job's limits would not hold on this Podman, or undefined when they do: without the cgroup controllers
 * (rootless Podman on cgroup v1, or on v2 without delegation) Podman drops `Memory` and `NanoCpus` without a word.
 */
export const podmanLimitWarning = (version: string, host: PodmanHost, resources: { readonly memoryMb?: number | undefined; readonly cpus: number }): string | undefined => {
  const lost = [
    ...(resources.memoryMb !== undefined && !host.controllers.includes("memory") ? ["memory limit"] : []),
    ...(resources.cpus > 0 && !host.controllers.includes("cpu") ? ["CPU limit"] : [])
  ]
  if (lost.length === 0) return undefined
  return `the engine is Podman ${version}${host.rootless ? ", rootless," : ""} on cgroup ${host.cgroupVersion} with ` +
    `${host.controllers.length === 0 ? "no cgroup controller" : `only the ${host.controllers.join(", ")} cgroup controllers`} ` +
    `for its containers: it ignores a job's ${lost.join(" and ")}, so jobs run unlimited. Run rootful Podman, or ` +
    `Podman on cgroup v2 with the memory and cpu controllers delegated to its user (see docs/backends.md, Podman).`
}

/**
 * Where the next read of a container's log begins, for an engine whose followed log cannot be trusted (Podman 4's
 * drops entries under load). Each read asks for the entries `since` a whole second, with timestamps: an engine
 * gives every entry of that second again (Podman's timestamps have whole seconds), and the ones an earlier read
 * took are skipped by count. Entries are the engine's frames, in the order of its log file.
 */
export class LogCursor {
  private second = 0
  private taken = 0
  private skip = 0
  /** The `since` of the next read (undefined: from the start); call once before each read. */
  begin(): number | undefined {
    this.skip = this.taken
    return this.second === 0 ? undefined : this.second
  }
  /** A timestamped frame of the read: its data without the timestamp, or undefined when an earlier read took it. */
  take(data: Buffer): Buffer | undefined {
    const space = data.indexOf(0x20)
    const at = Date.parse(data.subarray(0, Math.max(0, space)).toString("latin1"))
    if (space < 0 || !Number.isFinite(at)) return data
    const second = Math.floor(at / 1000)
    if (second < this.second) return undefined
    if (second === this.second) {
      if (this.skip > 0) {
        this.skip--
        return undefined
      }
      this.taken++
    } else {
      this.second = second
      this.taken = 1
      this.skip = 0
    }
    return data.subarray(space + 1)
  }
}

const signalName = (code: number): string | undefined => {
  if (code <= 128) return undefined
  const n = code - 128
  return Object.entries(constants.signals).find(([, v]) => v === n)?.[0]
}

/** What the backend knows about a finished container besides its engine state. */
export interface Finish {
  readonly state: Docker.ContainerInspectInfo["State"]
  readonly gpus: number
  readonly cancelled: boolean
  readonly timedOut: boolean
  readonly timeLimitSeconds?: number | undefined
  /** Its `result.json`, as `JobProtocol.parseResultBytes` read it. */
  readonly result: { readonly result: unknown } | { readonly resultError: string }
  readonly logTail: ReadonlyArray<string>
  /** The engine stopped answering while the container was followed (dockerd stopped or restarted). */
  readonly engineWentAway?: boolean
  /** Signals the engine sent the container (its `kill` events): `docker kill`, `docker stop`, dockerd stopping it. */
  readonly engineSignals?: ReadonlyArray<number>
}

/** The signals of the engine's `kill` events in an events response (one JSON object a line). */
export const killSignals = (events: string): Array<number> =>
  events.split("\n").flatMap((line) => {
    try {
      const e = JSON.parse(line) as { Action?: string; Actor?: { Attributes?: Record<string, string> } }
      const raw = e.Action === "kill" ? e.Actor?.Attributes?.["signal"] : undefined
      if (raw === undefined) return []
      const n = /^\d+$/.test(raw) ? Number(raw) : (constants.signals as Record<string, number>)[raw.startsWith("SIG") ? raw : `SIG${raw}`]
      return n !== undefined ? [n] : []
    } catch {
      return []
    }
  })

const nameOf = (n: number): string => Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`

/** Engine timestamps carry nanoseconds; `Date.parse` keeps milliseconds. */
export const epochSeconds = (t: string): number => {
  const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(t)
  return m === null ? NaN : Date.parse(m[1]! + m[3]!) / 1000 + Number(m[2] ?? 0)
}

const seconds = (from: string, to: string): number => {
  const a = epochSeconds(from)
  const b = epochSeconds(to)
  return Number.isFinite(a) && Number.isFinite(b) && b > a && a > 0 ? b - a : 0
}

/** A finished container's state as a job exit. */
export const toExit = (f: Finish): Backend.JobExit => {
  const wallSeconds = seconds(f.state.StartedAt, f.state.FinishedAt)
  const code = f.state.ExitCode
  const signal = signalName(code)
  const base = {
    _tag: "Exit" as const,
    exitCode: code,
    logTail: f.logTail,
    wallSeconds,
    gpuSeconds: wallSeconds * f.gpus,
    ...f.result,
    ...(signal !== undefined ? { signal } : {})
  }
  const failed = (failureKind: Result.FailureKind, message: string): Backend.JobExit => ({ ...base, outcome: "Failed", failureKind, message })
  if (f.cancelled) return { ...base, outcome: "Cancelled", failureKind: "Cancelled", message: "cancelled" }
  if (f.timedOut) return failed("Timeout", `time limit of ${f.timeLimitSeconds ?? "?"} s exceeded: container killed`)
  if (f.state.OOMKilled) return failed("OOM", "the container ran out of memory (OOMKilled)")
  if (f.state.Error !== undefined && f.state.Error !== "") {
    return failed("Infra", explainGpuError(f.state.Error) ?? `the container could not run: ${f.state.Error}`)
  }
  if (code === 0) return { ...base, outcome: "Succeeded" }
  if (signal !== undefined && f.engineWentAway === true) {
    // dockerd without live-restore stops its running containers when it stops, and those it finds
    // still running when it starts again: the job did not fail, the engine ended it
    return failed(
      "Infra",
      `the Docker engine restarted while the container ran and stopped it (${signal}, exit code ${code}): dockerd stops running containers ` +
        `when it stops or starts unless live-restore is on. The trial runs again; to keep trials running through a daemon restart, ` +
        `set "live-restore": true in /etc/docker/daemon.json on the engine's host and reload dockerd`
    )
  }
  const sent = f.engineSignals ?? []
  if (signal !== undefined && sent.length > 0) {
    // someone stopped it through the engine: neither the job's crash nor an OOM (the engine says which signal)
    return {
      ...base,
      outcome: "Cancelled",
      failureKind: "Cancelled",
      message: `stopped from outside TREX: the Docker engine sent the container ${[...new Set(sent.map(nameOf))].join(", then ")} ` +
        `(\`docker stop\`, \`docker kill\`, or dockerd stopping it) and it ended with exit code ${code}`
    }
  }
  // 137: the job protocol's out-of-memory code (a trainer that caught CUDA out of memory), and what
  // a SIGKILL from outside the engine leaves when Docker did not flag OOMKilled (cgroup v2 may not)
  if (code === 137) return failed("OOM", "exit code 137: out of memory (the job's own report, or a SIGKILL from outside)")
  // a job that filled its disk (its log says so) failed for the machine: Infra (the rule every backend shares)
  return B.noSpaceExit(failed("Crash", signal !== undefined ? `killed by ${signal} (exit code ${code})` : `exit code ${code}`))
}

/** Resolve a job file's relative path inside the job directory, refusing escapes. */
export const resolveJobFile = (jobDir: string, path: string): string | undefined => {
  const full = posix.resolve(jobDir, path)
  return full.startsWith(jobDir.endsWith("/") ? jobDir : jobDir + "/") ? full : undefined
}
