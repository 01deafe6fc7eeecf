/**
 * A {@link Backend.Backend} on Kubernetes: one batch/v1 Job per trial (`restartPolicy: Never`,
 * `backoffLimit: 0`), GPUs as `nvidia.com/gpu` limits, node selectors and tolerations from config,
 * labels `trex.dev/run` / `trex.dev/node`. Job files travel in a ConfigMap copied into an emptyDir
 * job directory, secrets in a Secret read through `secretKeyRef`, and `result.json` comes back as a
 * `TREX_RESULT <base64>` line that a wrapper prints at the end of the pod's log. Job and Pod watches
 * become State events; the log is followed. Cancel deletes the Job with `propagationPolicy:
 * Foreground`; finished Jobs are deleted (also in the foreground) by the TTL controller
 * (`ttlSecondsAfterFinished`), and the ConfigMap and Secret go with their owner Job. An API server
 * that does not answer is waited for (`apiWaitMs`): a job submitted meanwhile is queued in the
 * backend, `Pending` with the reason, and its watch creates its objects once the server answers. A Job a batch
 * queue suspends after its pod was made (Kueue preempting it) is a trial waiting in the queue again, not failed: its
 * pod's end is not the job's, and the pod its controller makes once the Job is resumed is followed from its start.
 * One whose Kueue workload was deactivated (never admitted again by itself) is taken back after `stuckAfterMs`, and
 * one suspended by hand (no batch queue's) is said so. A withdrawal mark a stopped controller left on a Job is
 * settled by the next watch of it: the withdrawal finished, or the mark taken off.
 *
 * @since 0.1.0
 */
import { Backend, Errors, JobProtocol, TaskFile } from "@trex/core"
import type { ExperimentNode } from "@trex/core"
import type { ConfigurationOptions, KubeConfig } from "@kubernetes/client-node"
import type { V1ConfigMap, V1Job, V1OwnerReference, V1Pod, V1Toleration } from "@kubernetes/client-node"
import { Effect, Layer, Queue, Schema, Scope, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { PassThrough } from "node:stream"
import * as K from "./internal/k8sJob.ts"
import * as Clients from "./internal/clients.ts"
import { WATCH_BUFFER } from "./internal/volume.ts"
import { waited } from "./internal/waitWhileDown.ts"

/**
 * A volume for every job (`Config.mounts`): at `target` in the container, from exactly one of `claim`
 * (a PersistentVolumeClaim of the namespace), `hostPath` (a directory of the node) or `nfs`
 * (`{ server, path }`); `subPath` mounts a folder of it, made when it is not there; `readOnly`.
 * @since 0.1.0 @category models
 */
export type Mount = K.Mount

/**
 * Where and how jobs run.
 * @since 0.1.0 @category models
 */
export interface Config {
  /** The cluster; default: `KubeConfig.loadFromDefault()` (KUBECONFIG, ~/.kube/config or in-cluster). */
  readonly kubeConfig?: KubeConfig
  /** Default `default`. */
  readonly namespace?: string
  /** The image for jobs whose spec names none. It needs `/bin/sh` and `base64`. */
  readonly image?: string
  /** The extended resource for GPUs (default `nvidia.com/gpu`). */
  readonly gpuResource?: string
  readonly nodeSelector?: Readonly<Record<string, string>>
  readonly tolerations?: ReadonlyArray<V1Toleration>
  readonly serviceAccountName?: string
  readonly imagePullSecrets?: ReadonlyArray<string>
  /** The job directory inside the container (default `/trex/job`). */
  readonly jobDir?: string
  /**
   * How long a finished Job stays for `list` and reattaching before the TTL controller deletes it (default 1 h); a job's
   * end record stays as long once written (at least an hour and `apiWaitMs`), its tombstone at least a week, then a
   * submit removes them. A run resumed later than this after a stop reads a job that ended meanwhile failed, not run
   * again: set it above the longest time a run may stay stopped.
   */
  readonly ttlSecondsAfterFinished?: number
  /** Jobs TREX may run at once (default: the allocatable CPUs of the matching nodes). */
  readonly slots?: number
  /**
   * How long to wait for the end of a finished job's log before giving up on following it (default 10 s):
   * the rest of the log is then read, unless its result came.
   */
  readonly logGraceMs?: number
  /**
   * How long the backend waits for an API server that does not answer (a control-plane upgrade or
   * restart; the cluster's pods run on meanwhile) before it fails (default 30 minutes), asking again
   * every second. A job's watch says so once (`trex status`: the trial is `unreachable`) and follows
   * the job's log on from where it was once the server answers; a job submitted meanwhile waits
   * `Pending` (`trex status`: `waiting (the Kubernetes API server ... does not answer ...)`) and its
   * Job is created once the server answers; cancel, withdraw and list wait with one warning.
   */
  readonly apiWaitMs?: number
  /**
   * How long one request (not a watch or a followed log) waits for the API server's answer before it
   * counts as not answered (default 60 s, the API server's own limit for a request): a server that
   * takes requests and never answers would otherwise hold each one for 5 minutes.
   */
  readonly requestTimeoutMs?: number
  /**
   * How long a job may wait in a state it does not leave by itself before it starts — its image cannot
   * be pulled (`ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`), its configuration is missing
   * (`CreateContainerConfigError`), or its Job's controller is refused its pod for a reason that lasts
   * (a missing service account, an admission policy, a quota that one pod alone exceeds) — before it is
   * taken back and fails (`Infra`, with the reason; default 10 minutes), counted by the API server's
   * times from when the kubelet first said its container could not start (a pull that failed, not the
   * pull's start: a big image's long pull is not stuck; without its Events, from when the watch saw it)
   * or its controller was first refused its pod. A job that waits
   * for room (GPUs, CPUs, a quota that other pods fill) waits on. A pod that mounts a
   * PersistentVolumeClaim that is not in the namespace is stuck too, counted from when it was made,
   * and so is one whose volume its node cannot mount (the kubelet's `FailedMount`), from the first, and one whose
   * Kueue workload was deactivated (`spec.active: false`), from its `Evicted` condition: it is reactivated meanwhile,
   * or taken back.
   */
  readonly stuckAfterMs?: number
  /**
   * Volumes for every job: a PersistentVolumeClaim (`claim`: a shared Hugging Face cache, datasets),
   * a directory of the node (`hostPath`) or an NFS export (`nfs`), at `target` in the container,
   * optionally a `subPath` of it and `readOnly`.
   */
  readonly mounts?: ReadonlyArray<Mount>
  /**
   * A PersistentVolumeClaim to hold the job directories, each at `<run>/<Job name>` in it: what a job
   * leaves there (checkpoints, adapters, the artifacts its result names) outlives its pod. Without it
   * the job directory is an `emptyDir`, gone with the pod.
   */
  readonly jobDirClaim?: string
  /** The size of `/dev/shm` in megabytes, memory-backed (Kubernetes gives 64 MB; PyTorch data loaders usually need several GB). */
  readonly shmSizeMb?: number
  /**
   * Labels for every Job and its pod, beside TREX's own: a batch queue's (`kueue.x-k8s.io/queue-name`
   * for Kueue, which holds the Job suspended until it admits it), a team's or a cost centre's.
   */
  readonly labels?: Readonly<Record<string, string>>
  /** Annotations for every Job and its pod, beside TREX's own. */
  readonly annotations?: Readonly<Record<string, string>>
  /** The PriorityClass of every job's pod (a low one makes trials preemptible by other work; see `Config.stuckAfterMs` for one that is not there). */
  readonly priorityClassName?: string
}

const NAME = "kubernetes"
/** Why a Job whose `spec.suspend` is set has no pod. */
const SUSPENDED = "Suspended: its Job waits to be admitted (a batch queue such as Kueue holds it until its quota has room)"
/** Why Kueue deactivates a workload by itself. */
const DEACTIVATES = "Kueue deactivates a workload requeued more than its waitForPodsReady.requeuingStrategy.backoffLimitCount " +
  "(its pods not ready within waitForPodsReady.timeout), one an admission check rejected"
/** How many times more, a second apart, the Events of a deactivated Job that is gone are asked for Kueue's `Deleted` (see `kueueDeletionOf`). */
const KUEUE_DELETED_ASKS = 5
/**
 * Why a trial waits whose Job was suspended after its pod was made (a batch queue such as Kueue preempting it): its
 * pod deleted, not counted failed, and a new one made once the Job is resumed. `stopped`: who stopped it and why
 * (`K.stoppedBy`), first, as `trex status` shows the first 120 characters.
 */
const requeuedWhy = (stopped: string | undefined) =>
  `Suspended (${stopped ?? "spec.suspend set: by a batch queue such as Kueue, or a user"}): its Job's pod is deleted, and the trial waits in ` +
  "the queue again, to run from its start in a new pod once the Job is resumed"
/**
 * Why a trial waits whose Job was suspended while Kueue admits its Workload `workload`: not Kueue's doing (a person's
 * `kubectl patch job`), and Kueue resumes it (its reconciler starts a suspended Job whose workload is admitted).
 */
const admittedByHandWhy = (workload: string, ran: boolean) =>
  `Suspended by hand (spec.suspend: true while Kueue admits its Workload ${workload}: not by Kueue, which resumes the Job): ` +
  `${ran ? "its pod is deleted, and the trial runs from its start in a new pod" : "its Job makes no pod, and the trial runs"} once the Job is resumed`
/**
 * Why a trial waits whose Job no batch queue suspended (`spec.suspend` set by a user or a script: no Kueue Workload of it
 * where Kueue's API answers, no `Stopped` Event), in a Job of `namespace`: `ran`, its pod was made before; `since`: its
 * `Suspended` condition's time, once its controller set it. It is waited for without a bound (a person's pause, theirs to
 * lift): `trex status` shows since when, first.
 */
const byHandWhy = (namespace: string, name: string, ran: boolean, since: string | undefined) =>
  `Suspended by hand${since !== undefined ? ` since ${since}` : ""} (spec.suspend: true, not by a batch queue: no Kueue Workload of it, no Stopped Event): ` +
  `${ran ? "its pod is deleted, and the trial runs from its start in a new pod" : "its Job makes no pod, and the trial runs"} once the Job is resumed ` +
  `(\`kubectl patch job -n ${namespace} ${name} --type=merge -p '{"spec":{"suspend":false}}'\`)`
/** Where a job's files (its ConfigMap) are mounted, read-only, for the wrapper to copy into the job directory. */
const SPEC_DIR = "/trex/spec"

/** The `message` of an API server's Status answer (`namespaces "ml" not found`), given as text or parsed. */
const statusMessage = (body: unknown): string | undefined => {
  let o = body
  if (typeof body === "string") {
    try {
      o = JSON.parse(body)
    } catch {
      return undefined
    }
  }
  const message = (o as { kind?: unknown; message?: unknown } | null)?.message
  return (o as { kind?: unknown } | null)?.kind === "Status" && typeof message === "string" && message !== "" ? message : undefined
}

/**
 * A failed request as a BackendError: the API server's answer (an `ApiException`: its HTTP code and
 * body), or why there was none, with the cause the client hides behind `fetch failed` (`connect
 * ECONNREFUSED 10.0.0.1:6443`, `other side closed`) and a request given up after `timeoutMs`.
 */
const toError = (operation: string, timeoutMs?: number) => (e: unknown) => {
  const api = e as { code?: unknown; body?: unknown } | undefined
  const answered = typeof e === "object" && e !== null && "body" in e && typeof api?.code === "number"
  const code = answered ? Number(api?.code) : undefined
  const body = answered ? api?.body : undefined
  const cause = (e as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause
  const why = typeof cause?.message === "string"
    ? typeof cause.code === "string" && !cause.message.includes(cause.code) ? ` (${cause.code}: ${cause.message})` : ` (${cause.message})`
    : ""
  const detail = answered && body !== undefined
    ? statusMessage(body) ?? (typeof body === "string" ? body : JSON.stringify(body))
    : e instanceof Error && e.name === "TimeoutError" && timeoutMs !== undefined
    ? `no answer within ${Math.round(timeoutMs / 1000)} s (requestTimeoutMs)`
    : `${e instanceof Error ? e.message : String(e)}${why}`
  return new Errors.BackendError({
    backend: NAME,
    operation,
    message: `${operation}: ${code !== undefined ? `HTTP ${code}: ` : ""}${detail.slice(0, 500)}`,
    retryable: code === undefined || code === 429 || code >= 500
  })
}

/** Causes of a request that never reached the API server (nothing it asked for can have been done). */
const NOT_SENT = /\b(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|UND_ERR_CONNECT_TIMEOUT)\b/
/** A request that failed without an answer, and that may have reached the API server (its answer lost). */
const mayHaveBeenDone = (e: Errors.BackendError) => e.retryable && !NOT_SENT.test(e.message)

const isNotFound = (e: Errors.BackendError) => e.message.includes("HTTP 404")
const isConflict = (e: Errors.BackendError) => e.message.includes("HTTP 409")
/** How often a cancel deletes a Job on the condition that it is as read, before it deletes it as it is. */
const CANCEL_AS_READ_TRIES = 5
/** How long a Job may be without a pod before `watch` asks its Events why, and how often again after. */
const NO_POD_FIRST_MS = 2_000
const NO_POD_AGAIN_MS = 5_000
/**
 * How many times, a second apart, a followed log that ended cleanly without its result marker has its
 * pod looked at for its container's end (which the kubelet reports a moment after the log ends) before
 * the log is followed again.
 */
const LOG_END_CHECKS = 5
/** Why a container waits that it will not get past by itself soon: its image cannot be pulled, or its configuration is missing. */
const STUCK: ReadonlySet<string> = new Set(["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"])
/**
 * Whether a watch event carries the watched object: an `ERROR` event carries a Status (`410 Expired`, an
 * internal error) after which the API server ends the watch, and a `BOOKMARK` only a resourceVersion.
 */
const isObjectEvent = (type: string) => type === "ADDED" || type === "MODIFIED" || type === "DELETED"
/** Where a JSON patch finds the withdrawal mark (`K.WITHDRAWN_ANNOTATION`) on a Job (RFC 6901: `/` as `~1`). */
const MARK_PATH = `/metadata/annotations/${K.WITHDRAWN_ANNOTATION.replace(/~/g, "~0").replace(/\//g, "~1")}`
/** The name of the ConfigMap that records that a Job was cancelled (it outlives the Job). */
const tombstone = (job: string) => `${job}-cancelled`
/** The ConfigMap that records the own end of a job whose Job was deleted (a cancel) before its controller recorded it. */
const endedRecord = (job: string) => `${job}-ended`
/** The longest result (base64) an end record keeps: a ConfigMap holds at most 1 MiB. */
const ENDED_RESULT_MAX = 512 * 1024
/** The shortest time a job's end record is kept once written (see `sweepRecords`). */
const RECORD_KEEP_MIN_MS = 3_600_000
/**
 * The shortest time a tombstone is kept once written (a few bytes each): a run stopped overnight or over a weekend
 * before it journaled a cancel's (or a withdrawal's) end still reads it `Cancelled` (or why it was taken back) when
 * resumed. Also the keep of a record written before records said theirs (`KEEP_ANNOTATION`): the refs of that version
 * have no `submittedAt`, so a gone Job of theirs with no record reads lost and is run again.
 */
const TOMBSTONE_KEEP_MIN_MS = 7 * 24 * 3_600_000
/** The annotation of a tombstone or end record that says how long its writer keeps it (ms; see `recordKeepMs`). */
const KEEP_ANNOTATION = "trex.dev/keep-ms"
/** How often one backend instance looks for tombstones and end records to remove (see `sweepRecords`). */
const SWEEP_EVERY_MS = 10 * 60_000
/** How long one list of the names tombstones and end records hold serves the submits of one backend instance (see `freshName`). */
const NAMES_EVERY_MS = 60_000

/**
 * What the backend asks of the API server, as RBAC names it: each verb on each resource (in the
 * namespace, but for `nodes`). `without`: what a missing one costs, when trials run without it.
 */
interface Permission {
  readonly verb: string
  readonly group: "" | "batch" | "kueue.x-k8s.io"
  readonly resource: string
  readonly subresource?: string
  readonly cluster?: true
  /** Only for a job with secret env (its Secret). */
  readonly secrets?: true
  /** Only for jobs that name a Kueue queue (`Config.labels` `kueue.x-k8s.io/queue-name`). */
  readonly queue?: true
  readonly without?: string
}
const PERMISSIONS: ReadonlyArray<Permission> = [
  ...["create", "get", "list", "watch", "delete"].map((verb) => ({ verb, group: "batch" as const, resource: "jobs" })),
  ...["get", "list", "watch", "delete"].map((verb) => ({ verb, group: "" as const, resource: "pods" })),
  { verb: "get", group: "", resource: "pods", subresource: "log" },
  { verb: "create", group: "", resource: "configmaps" },
  { verb: "get", group: "", resource: "configmaps" },
  {
    verb: "list",
    group: "",
    resource: "configmaps",
    without: "a fresh controller's list (a resumed run's reconciliation) leaves out the jobs whose Jobs are gone that ended as they were cancelled or were taken back stuck, and a job may be given the name of an earlier one whose records are left"
  },
  {
    verb: "delete",
    group: "",
    resource: "configmaps",
    without: "a job cancelled as it ended keeps its tombstone, so a resumed run reads it as Cancelled once its Job is deleted (the cancel warns), and old tombstones and end records are left for `kubectl delete configmap` by hand"
  },
  { verb: "create", group: "", resource: "secrets", secrets: true },
  { verb: "get", group: "", resource: "secrets", secrets: true },
  {
    verb: "patch",
    group: "batch",
    resource: "jobs",
    without: "a job a drain took back before it started reads as Failed / Infra, not Cancelled, to another controller (a resumed run) that finds its Job before it is deleted"
  },
  {
    verb: "list",
    group: "kueue.x-k8s.io",
    resource: "workloads",
    queue: true,
    without: "a trial whose Workload Kueue deactivated waits until the run is stopped, and a Job suspended by hand shows as one a batch queue holds"
  },
  { verb: "list", group: "", resource: "events", without: "a Job whose pod its controller refuses (a quota, a missing service account) shows Pending with no reason" },
  { verb: "list", group: "", resource: "nodes", cluster: true, without: "`trex check` cannot count the cluster's CPUs and GPUs, nor find a node that fits a trial's pod" }
]
const permissionName = (p: Permission) => `${p.verb} ${p.resource}${p.subresource !== undefined ? `/${p.subresource}` : ""}${p.group !== "" ? `.${p.group}` : ""}`

type Update =
  | { readonly _tag: "Job"; readonly type: string; readonly job: V1Job }
  | { readonly _tag: "Pod"; readonly type: string; readonly pod: V1Pod }
  | { readonly _tag: "WatchDone"; readonly which: "job" | "pod" }
  /** A piece of the followed log; the log is paused until `next` is called (at most one piece waits). */
  | { readonly _tag: "Chunk"; readonly data: Uint8Array; readonly next: () => void }
  /** The log ended; `cut`: its stream failed (the API server went away) rather than ended with the container; `follow`: which follow's. */
  | { readonly _tag: "LogEnd"; readonly cut?: boolean; readonly follow?: number }
  | { readonly _tag: "NoPod" }
  /** Time to look at a job stuck before it started again. */
  | { readonly _tag: "Tick" }

/**
 * The stream a pod log is piped into. `Log.log` pipes the HTTP body into it without an error
 * handler on the body, so aborting a followed log (when a watch ends early) would be an uncaught
 * error: the `pipe` event hands us the body, and its errors become errors of this stream.
 */
const logSink = (): PassThrough => {
  const out = new PassThrough()
  out.on("pipe", (src) => src.on("error", (e: Error) => out.destroy(e)))
  return out
}

const seconds = (from: Date | undefined, to: Date | undefined) =>
  from !== undefined && to !== undefined ? Math.max(0, (new Date(to).getTime() - new Date(from).getTime()) / 1000) : 0

/**
 * A Kubernetes backend.
 *
 * @example
 * ```ts
 * import { KubernetesBackend } from "@trex/executors"
 * const layer = KubernetesBackend.layer({
 *   namespace: "ml",
 *   image: "nvcr.io/nvidia/pytorch:24.05-py3",
 *   nodeSelector: { "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB" },
 *   tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }]
 * })
 * ```
 * @since 0.1.0 @category constructors
 */
export const make = Effect.fn("KubernetesBackend.make")(function*(config: Config) {
  const { AuthorizationV1Api, BatchV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, Log, Observable, Watch } = yield* Clients.kubernetes
  const kc = config.kubeConfig ?? (yield* Effect.try({
    try: () => {
      const k = new KubeConfig()
      k.loadFromDefault()
      return k
    },
    catch: toError("loadKubeConfig")
  }))
  const batch = kc.makeApiClient(BatchV1Api)
  const core = kc.makeApiClient(CoreV1Api)
  const authz = kc.makeApiClient(AuthorizationV1Api)
  const custom = kc.makeApiClient(CustomObjectsApi)
  const watcher = new Watch(kc)
  const logs = new Log(kc)
  const namespace = config.namespace ?? "default"
  const gpuResource = config.gpuResource ?? "nvidia.com/gpu"
  const logGraceMs = config.logGraceMs ?? 10_000
  const apiWaitMs = config.apiWaitMs ?? 30 * 60_000
  const requestTimeoutMs = config.requestTimeoutMs ?? 60_000
  const stuckAfterMs = config.stuckAfterMs ?? 10 * 60_000
  const server = kc.getCurrentCluster()?.server ?? "(the kubeconfig's cluster)"
  const jobDir = config.jobDir ?? "/trex/job"
  const badSettings = [...K.volumeProblems({ ...config, jobDir, specDir: SPEC_DIR }), ...K.metadataProblems(config)]
  if (badSettings.length > 0) {
    return yield* new Errors.BackendError({ backend: NAME, operation: "make", message: `invalid settings: ${badSettings.join("; ")}`, retryable: false })
  }
  /** Jobs this instance submitted or saw end, so a Job already deleted can still be watched and listed. */
  const known = new Map<string, { readonly labels: Backend.Labels; exit?: Backend.JobExit }>()
  /**
   * Jobs whose pod this instance deleted to take them back before they started (see `takeBack`). The Job's
   * controller counts a pod deleted before it succeeded as failed, so with `backoffLimit: 0` their Job may
   * fail (BackoffLimitExceeded) before it is deleted: that failure is the withdrawal's, not the job's.
   */
  const withdrawnPods = new Set<string>()
  const withdrawnMessage = (name: string) => `Job ${name} was withdrawn before its pod started`
  /**
   * Jobs this instance submitted, and those it wrote a tombstone for. Only the controller of a job's run cancels or
   * withdraws it (a run has one controller at a time), so a job submitted here has a tombstone only if this instance
   * wrote one: the end of one without is not asked for a stale tombstone (see `dropStaleStone`).
   */
  const submittedHere = new Set<string>()
  const stoned = new Set<string>()

  /** One request, given up after `requestTimeoutMs` without an answer, and aborted when interrupted. */
  const call = <A>(operation: string, f: (options: ConfigurationOptions) => Promise<A>) =>
    Effect.tryPromise({
      try: (signal) => {
        const bounded = AbortSignal.any([signal, AbortSignal.timeout(requestTimeoutMs)])
        return f({
          middleware: [{
            pre: (ctx) => {
              ctx.setSignal(bounded)
              return new Observable(Promise.resolve(ctx))
            },
            post: (response) => new Observable(Promise.resolve(response))
          }],
          middlewareMergeStrategy: "append"
        })
      },
      catch: toError(operation, requestTimeoutMs)
    })

  /**
   * `effect` (requests that may be made again) again every second while the API server does not
   * answer, for up to `apiWaitMs`, with one warning and a line once it answers; then a failure that
   * names what to check. A stop ends the wait (its pauses are interruptible, even in a finalizer).
   */
  const waitForServer = <A>(what: string, effect: Effect.Effect<A, Errors.BackendError>) =>
    Effect.gen(function*() {
      let since: number | undefined
      while (true) {
        const tried = yield* Effect.result(effect)
        if (tried._tag === "Success") {
          if (since !== undefined) yield* Effect.logInfo(`kubernetes: the API server at ${server} answers again after ${waited(since)}: ${what}`)
          return tried.success
        }
        const e = tried.failure
        if (!e.retryable) return yield* e
        if (since === undefined) {
          since = Date.now()
          yield* Effect.logWarning(
            `kubernetes: the Kubernetes API server at ${server} does not answer (${e.message}); ${what} again every second, for up to ${Math.round(apiWaitMs / 1000)} s (apiWaitMs)`
          )
        } else if (Date.now() - since >= apiWaitMs) {
          return yield* new Errors.BackendError({
            backend: NAME,
            operation: e.operation,
            message: `the Kubernetes API server at ${server} did not answer for ${waited(since)} (apiWaitMs) while ${what}: ${e.message}. Check \`kubectl cluster-info\``,
            retryable: false
          })
        }
        yield* Effect.interruptible(Effect.sleep("1 second"))
      }
    })

  /**
   * A submission's objects, and how far they got. A submit made while the API server did not answer
   * is queued here rather than waited for (a submit is one uninterruptible step): its watch creates
   * them once the server answers, the job `Pending` meanwhile. `sent`: a create of its Job may have
   * reached the server (the Job may exist); `dropped`: cancelled or withdrawn, its objects not to be made.
   */
  interface Submission {
    readonly m: ReturnType<typeof K.manifests>
    readonly labels: Backend.Labels
    readonly gpus: number
    sent: boolean
    dropped: boolean
  }
  const queued = new Map<string, Submission>()

  /**
   * Create a submission's Job, then its ConfigMap and Secret (owned by the Job: deleting it, a cancel
   * or the TTL controller, deletes them; its pod waits for them). Each may be asked for again: a
   * request whose answer was lost may have made it, and an `AlreadyExists` then means it is there.
   */
  const createObjects = (name: string, sub: Submission) =>
    Effect.gen(function*() {
      const create = <A>(operation: string, make: (o: ConfigurationOptions) => Promise<A>, read: (o: ConfigurationOptions) => Promise<A>) =>
        call(operation, make).pipe(Effect.catchIf(isConflict, () => call(operation, read)))
      const before = sub.sent
      sub.sent = true
      const job = yield* create("createJob", (o) => batch.createNamespacedJob({ namespace, body: sub.m.job }, o), (o) => batch.readNamespacedJob({ name, namespace }, o)).pipe(
        // a request that cannot have reached the server made nothing
        Effect.tapError((e) => Effect.sync(() => void (sub.sent = before || mayHaveBeenDone(e))))
      )
      if (sub.dropped) return
      const owner: V1OwnerReference = { apiVersion: "batch/v1", kind: "Job", name, uid: job.metadata!.uid!, blockOwnerDeletion: true }
      const owned = <T extends { metadata?: object }>(o: T): T => ({ ...o, metadata: { ...o.metadata, ownerReferences: [owner] } })
      yield* create("createConfigMap", (o) => core.createNamespacedConfigMap({ namespace, body: owned(sub.m.configMap) }, o), (o) => core.readNamespacedConfigMap({ name, namespace }, o))
      if (Object.keys(sub.m.secret.data ?? {}).length > 0) {
        yield* create("createSecret", (o) => core.createNamespacedSecret({ namespace, body: owned(sub.m.secret) }, o), (o) => core.readNamespacedSecret({ name, namespace }, o))
      }
    })

  /** A job's objects, named `name` (`operation`: whose failure a bad spec is). */
  const manifestsOf = (operation: string, spec: Backend.JobSpec, name: string, marker?: string) =>
    Effect.gen(function*() {
      const image = spec.image ?? config.image
      if (image === undefined) {
        return yield* new Errors.BackendError({ backend: NAME, operation, message: "no image for the job: set the recipe's `image`, or the backend's (backend.k8s.image)", retryable: false })
      }
      return yield* Effect.try({
        try: () =>
          K.manifests(spec, {
            name,
            namespace,
            image,
            jobDir,
            specDir: SPEC_DIR,
            gpuResource,
            nodeSelector: config.nodeSelector,
            tolerations: config.tolerations,
            serviceAccountName: config.serviceAccountName,
            imagePullSecrets: config.imagePullSecrets,
            ttlSecondsAfterFinished: config.ttlSecondsAfterFinished ?? 3600,
            mounts: config.mounts,
            jobDirClaim: config.jobDirClaim,
            shmSizeMb: config.shmSizeMb,
            labels: config.labels,
            annotations: config.annotations,
            priorityClassName: config.priorityClassName,
            marker
          }),
        catch: (e) => new Errors.BackendError({ backend: NAME, operation, message: e instanceof Error ? e.message : String(e), retryable: false })
      })
    })

  /**
   * How long a job's tombstone or end record is kept once written: as long as its Job would have been kept once
   * ended (`ttlSecondsAfterFinished`: a record stands for a Job a cancel deleted, and a resumed run finds the end of a
   * job that ended by itself only that long), and at least an hour and `apiWaitMs` (a live controller waiting out an
   * outage reads its jobs' records once the server answers).
   */
  const recordKeepMs = Math.max((config.ttlSecondsAfterFinished ?? 3600) * 1000, apiWaitMs, RECORD_KEEP_MIN_MS)
  /**
   * How long a tombstone, or a record that does not say its keep, is kept: a week at least (`TOMBSTONE_KEEP_MIN_MS`). End
   * records keep `recordKeepMs`: each may hold 512 KiB of result, and the own end it stands for is kept no longer as a
   * Job (its TTL), the common case, so one knob (`ttlSecondsAfterFinished`) says how long any own end is known.
   */
  const tombstoneKeepMs = Math.max(recordKeepMs, TOMBSTONE_KEEP_MIN_MS)
  /**
   * A job submitted longer ago than records are kept (`ref.data.submittedAt`, by the submitting controller's clock): a
   * Job of it that is gone with no tombstone or end record may have ended and had them removed (`sweepRecords`), so it
   * is not taken for a job lost before it ran (which a run retries). Not one submitted while the API server did not
   * answer (`queued`): its Job may never have been made (its controller stopped before the server answered).
   */
  const recordsMayBeGone = (ref: ExperimentNode.JobRef) =>
    typeof ref.data.submittedAt === "number" && Date.now() - ref.data.submittedAt > recordKeepMs && ref.data.queued !== true
  /**
   * The Job names the namespace's tombstones and end records hold (`K.TOMBSTONE_LABEL`, every run's), from one list per
   * `NAMES_EVERY_MS` (the newest submit's), with those this instance wrote since; `undefined` before the first list, or
   * when it could not be listed (no `list configmaps`, no answer within 5 s).
   */
  let held: { readonly at: number; readonly names: Set<string>; readonly items: ReadonlyArray<V1ConfigMap> } | undefined
  /** This instance may not list or delete ConfigMaps (said once): no sweep again. */
  let sweepRefused = false
  /** When this instance last looked for records to remove (`sweepRecords`), in ms; 0: not yet. */
  let sweptAt = 0
  const listHeld = Effect.gen(function*() {
    if (held !== undefined && Date.now() - held.at < NAMES_EVERY_MS) return held
    const at = Date.now()
    const listed = yield* call("listRecords", (o) => core.listNamespacedConfigMap({ namespace, labelSelector: K.TOMBSTONE_LABEL }, o)).pipe(
      Effect.map((l) => l.items),
      Effect.catchIf((e) => /HTTP 403/.test(e.message), (e) => Effect.andThen(refuseSweep(e), Effect.succeed(undefined))),
      Effect.orElseSucceed(() => undefined),
      // (a server that does not answer is not waited for here: the create says so)
      Effect.timeoutOption("5 seconds"),
      Effect.map((o) => (o._tag === "Some" ? o.value : undefined))
    )
    held = listed === undefined ? undefined : { at, items: listed, names: new Set(listed.flatMap((c) => c.metadata?.labels?.[K.TOMBSTONE_LABEL] ?? [])) }
    return held
  })
  const refuseSweep = (e: Errors.BackendError) =>
    sweepRefused
      ? Effect.void
      : Effect.andThen(
        Effect.sync(() => void (sweepRefused = true)),
        Effect.logWarning(
          `kubernetes: old tombstones and end records (ConfigMaps labelled ${K.TOMBSTONE_LABEL}) in namespace ${namespace} are not removed: ` +
            `the kubeconfig's user may not list, or delete, configmaps there (${e.message}); remove them by hand (docs/backends.md, Kubernetes)`
        )
      )
  /**
   * Remove the namespace's tombstones and end records (of every run) that nothing can need any more, from the list of
   * held names (`listHeld`): older than their writer keeps them (`KEEP_ANNOTATION`, else `tombstoneKeepMs`; by their
   * `creationTimestamp`) and whose Job is gone (a tombstone
   * of a Job that is still there, left by a controller stopped before its delete, is kept until it goes). Each is deleted
   * as listed (a precondition on its uid and resourceVersion). At most once per `SWEEP_EVERY_MS` per instance, as a
   * submit begins; best-effort, bounded: a user who may not list or delete ConfigMaps, or a server that does not answer,
   * leaves them (a 403 is said once per instance).
   */
  const sweepRecords = (items: ReadonlyArray<V1ConfigMap>) =>
    Effect.gen(function*() {
      if (sweepRefused || Date.now() - sweptAt < SWEEP_EVERY_MS) return
      sweptAt = Date.now()
      // (each as long as its writer keeps it, whose settings may be longer than this one's; one written before records
      // said it: as a tombstone, a week at least, since that version's refs have no `submittedAt` and read lost)
      const old = items.filter((c) => {
        const at = c.metadata?.creationTimestamp
        const keep = Number(c.metadata?.annotations?.[KEEP_ANNOTATION])
        return at !== undefined && Date.now() - new Date(at).getTime() > (Number.isFinite(keep) && keep > 0 ? keep : tombstoneKeepMs) &&
          c.metadata?.labels?.[K.TOMBSTONE_LABEL] !== undefined
      })
      for (const record of old) {
        const job = record.metadata!.labels![K.TOMBSTONE_LABEL]!
        const there = yield* call("readJob", (o) => batch.readNamespacedJob({ name: job, namespace }, o)).pipe(
          Effect.as(true),
          Effect.catchIf(isNotFound, () => Effect.succeed(false))
        )
        if (there) continue
        yield* call("deleteRecord", (o) =>
          core.deleteNamespacedConfigMap({
            name: record.metadata!.name!,
            namespace,
            body: { preconditions: { uid: record.metadata!.uid!, resourceVersion: record.metadata!.resourceVersion! } }
          }, o)).pipe(Effect.catchIf((e) => isNotFound(e) || isConflict(e), () => Effect.void))
      }
    }).pipe(
      Effect.catchIf((e) => /HTTP 403/.test(e.message), refuseSweep),
      Effect.ignore,
      Effect.timeoutOption("5 seconds"),
      Effect.asVoid
    )

  /**
   * A Job name for a node: `trex-<node>-<5 random characters>`, not one an earlier job's tombstone or end record
   * (`endedRecord`) still names: node ids repeat across runs, those ConfigMaps outlive their Jobs, and a watch that finds
   * its Job gone would read the earlier job's end as its own. The names held are listed once per `NAMES_EVERY_MS`, not
   * per submit (a record written since that list holds the name of a Job made meanwhile, as likely to be drawn as any
   * live Job's, which no submit looks for either). Best-effort: a list that fails (no `list configmaps`, the server not
   * answering within 5 s) takes the name drawn.
   */
  const freshName = (node: string) =>
    Effect.gen(function*() {
      const names = (yield* listHeld)?.names
      let name = K.jobName(node, Math.random().toString(36).slice(2, 7))
      for (let i = 0; i < 5 && names?.has(name) === true; i++) {
        yield* Effect.logInfo(`kubernetes: ${node}: the name ${name} is still that of an earlier job's tombstone or end record: another is drawn`)
        name = K.jobName(node, Math.random().toString(36).slice(2, 7))
      }
      return name
    })

  const submit = Effect.fn("KubernetesBackend.submit")(function*(spec: Backend.JobSpec) {
    const name = yield* freshName(spec.labels.node)
    if (held !== undefined) yield* sweepRecords(held.items)
    // (the wrapper's per-job mark of its TERM and end lines: a job's own line cannot be taken for them by chance)
    const m = yield* manifestsOf("submit", spec, name, randomBytes(8).toString("hex"))
    const sub: Submission = { m, labels: spec.labels, gpus: spec.resources.gpus, sent: false, dropped: false }
    const made = yield* Effect.result(createObjects(name, sub))
    if (made._tag === "Failure") {
      const e = made.failure
      if (!e.retryable) {
        // refused (a quota on objects, RBAC...): a Job made already is deleted (its pod would wait for its files)
        if (e.operation !== "createJob") yield* Effect.ignore(call("deleteJob", (o) => batch.deleteNamespacedJob({ name, namespace, propagationPolicy: "Foreground" }, o)))
        return yield* e
      }
      // not answered (or not now): the job waits here, and its watch makes it once the server answers
      queued.set(name, sub)
      yield* Effect.logInfo(`kubernetes: ${spec.labels.node}: ${e.message}; Job ${name} is created once the API server at ${server} answers`)
    }
    known.set(name, { labels: spec.labels })
    submittedHere.add(name)
    const ref: ExperimentNode.JobRef = {
      backend: NAME,
      id: name,
      data: {
        namespace,
        gpus: spec.resources.gpus,
        run: K.labelValue(spec.labels.run),
        // (a Job gone with no record, of a job submitted longer ago than records are kept, may have had its end removed)
        submittedAt: Date.now(),
        // where what the job leaves is kept (`trex status --node` shows it)
        ...(config.jobDirClaim !== undefined ? { folder: `PersistentVolumeClaim ${config.jobDirClaim} in namespace ${namespace}, folder ${K.jobDirSubPath(spec.labels.run, name)}` } : {}),
        ...(made._tag === "Failure" ? { queued: true } : {})
      }
    }
    return ref
  })

  /** A Job's newest pod (of two made in the same second, one being deleted comes first: a suspended Job's, replaced once it was resumed). */
  const podsOf = (name: string) =>
    call("listPods", (o) => core.listNamespacedPod({ namespace, labelSelector: `${K.JOB_LABEL}=${name}` }, o)).pipe(
      Effect.map((l) =>
        l.items.sort((a, b) =>
          String(a.metadata?.creationTimestamp).localeCompare(String(b.metadata?.creationTimestamp)) ||
          Number(a.metadata?.deletionTimestamp == null) - Number(b.metadata?.deletionTimestamp == null)
        ).at(-1)
      )
    )
  /** A pod by its name; `undefined` once it is gone. */
  const podNamed = (pod: string) =>
    call("readPod", (o) => core.readNamespacedPod({ name: pod, namespace }, o)).pipe(Effect.catchIf(isNotFound, () => Effect.succeed(undefined)))

  /**
   * Why a Job has no pod, if its controller said (a quota, an admission webhook...), and whether that
   * lasts (see `K.refusalLasts`); and who stopped it, if a batch queue did (`K.stoppedBy`). Events are only
   * read for this: a cluster that does not let the backend list them gives no reason, not an error.
   */
  const refusalOf = (name: string) =>
    call("listEvents", (o) => core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=Job,involvedObject.name=${name}` }, o)).pipe(
      Effect.map((l) => ({
        why: K.creationRefusal(l.items),
        lasting: K.refusalLasts(l.items),
        since: K.refusedSince(l.items),
        // (a stop a resume lifted since is not why the Job is suspended now)
        stopped: K.stopLifted(l.items) ? undefined : K.stoppedBy(l.items),
        suspendedAfterStart: K.suspendedAfterStart(l.items),
        deletedByKueue: K.deletedByKueue(l.items)
      })),
      Effect.orElseSucceed(() => ({ why: undefined, lasting: false, since: undefined, stopped: undefined, suspendedAfterStart: undefined, deletedByKueue: undefined }))
    )
  /**
   * Why a Job that is gone failed, when Kueue deleted it (its `Deleted` Event: a workload it deactivated, inactive
   * past its `objectRetentionPolicies.workloads.afterDeactivatedByKueue`); `what`: the Workload and its deactivation, as
   * the watch saw them. Kueue records the Event after its delete: a watch of a Job Kueue manages (`patient`: it may not
   * have seen the deactivation, which can come as its pod starts) asks again for a few seconds, unless a tombstone says a
   * controller deleted it (a cancel writes it first, a withdraw at once after). `undefined` when no Event says so (someone
   * else deleted it, or Events may not be read).
   */
  const kueueDeletionOf = (name: string, what: string | undefined, patient: boolean) =>
    Effect.gen(function*() {
      for (let asked = 0; ; asked++) {
        // (Events that may not be read, or a server that does not answer now, say nothing: the deletion reads as before)
        const events = yield* refusalOf(name)
        if (events.deletedByKueue !== undefined) {
          // (the Workload went with its Job: its deactivation is the one the watch saw, else Kueue's `Stopped` Event's)
          const why = what ?? (events.stopped !== undefined && /\bdeactivated\b/i.test(events.stopped) ? `its Workload (${events.stopped})` : "its Workload")
          return `Kueue deactivated ${why}, and deleted its Job once it had been inactive for Kueue's ` +
            `objectRetentionPolicies.workloads.afterDeactivatedByKueue (${events.deletedByKueue}), before stuckAfterMs ` +
            `(${Math.round(stuckAfterMs / 1000)} s). ${DEACTIVATES}`
        }
        if (!patient || asked >= KUEUE_DELETED_ASKS) return undefined
        const stone = yield* call("readTombstone", (o) => core.readNamespacedConfigMap({ name: tombstone(name), namespace }, o)).pipe(
          Effect.orElseSucceed(() => undefined)
        )
        if (stone !== undefined) return undefined
        yield* Effect.sleep(1000)
      }
    })

  /** The version of Kueue's API that answered (its newest first): a Workload is asked for there from then on. */
  let kueueVersion: string | undefined
  /**
   * Kueue's Workload of the Job of `uid` (listed by `K.KUEUE_JOB_UID_LABEL`): `managed` when there is one; not when the API
   * server says there is none (Kueue is not installed: its resource is not found; or it does not manage the Job);
   * `undefined` when that cannot be told (the user may not list Workloads, the server does not answer now).
   */
  const workloadOf = (uid: string) =>
    Effect.gen(function*() {
      for (const version of kueueVersion !== undefined ? [kueueVersion] : ["v1beta2", "v1beta1"]) {
        const listed = yield* Effect.result(call("listWorkloads", (o) =>
          custom.listNamespacedCustomObject({ group: "kueue.x-k8s.io", version, namespace, plural: "workloads", labelSelector: `${K.KUEUE_JOB_UID_LABEL}=${uid}` }, o)))
        if (listed._tag === "Success") {
          kueueVersion = version
          const workload = (listed.success as { items?: ReadonlyArray<K.KueueWorkload> }).items?.[0]
          return workload !== undefined ? { managed: true, workload } : { managed: false }
        }
        if (!isNotFound(listed.failure)) return undefined
      }
      return { managed: false }
    })
  /**
   * Why a suspended Job makes no pod: Kueue deactivated its Workload (`deactivated`, a wait it does not leave by itself:
   * see `stuckAfterMs`); Kueue took it back (its `Stopped` Event, `stopped`) or holds it (its Workload); or no batch queue
   * did (no Workload of it where Kueue's API answers, no `Stopped` Event): it was suspended by hand. `said`: what the
   * Job's Events say (`refusalOf`): who stopped it, and whether its suspension came after Kueue started it. `ran`: its pod was
   * made before (the Job was suspended after, and the trial runs again from its start); `since`: when its controller saw
   * it suspended (`K.suspendedSince`).
   */
  const suspensionOf = (
    name: string,
    uid: string | undefined,
    said: { readonly stopped: string | undefined; readonly suspendedAfterStart: boolean | undefined },
    ran: boolean,
    since: string | undefined
  ) =>
    Effect.gen(function*() {
      const stopped = said.stopped
      const found = uid !== undefined ? yield* workloadOf(uid) : undefined
      // without the Workload, Kueue's `Stopped` Event says a deactivation in its words (`The workload is deactivated ...`)
      const deactivated = found?.workload !== undefined
        ? K.deactivationOf(found.workload)
        : found === undefined && stopped !== undefined && /\bdeactivated\b/i.test(stopped)
        ? { workload: undefined, why: stopped, since: undefined }
        : undefined
      if (deactivated !== undefined) {
        // (read from the Event, the Workload's name is not known: the command finds it by the Job's uid)
        const target = deactivated.workload !== undefined
          ? `workload -n ${namespace} ${deactivated.workload}`
          : `-n ${namespace} $(kubectl get workloads -n ${namespace} -l ${K.KUEUE_JOB_UID_LABEL}=${uid} -o name)`
        const reactivate = `\`kubectl patch ${target} --type=merge -p '{"spec":{"active":true}}'\``
        const its = deactivated.workload !== undefined ? `its Workload ${deactivated.workload}` : "its Workload"
        return {
          why: `Deactivated by Kueue (${deactivated.why}): ${its} is inactive, so the Job is not admitted again; reactivate it within ` +
            `${Math.round(stuckAfterMs / 1000)} s (stuckAfterMs) to run the trial (${reactivate}), else its Job is deleted and the trial fails`,
          deactivated: {
            since: deactivated.since,
            message: `Kueue deactivated ${its} (${deactivated.why}), and it was not reactivated within ${Math.round(stuckAfterMs / 1000)} s ` +
              `(stuckAfterMs): its Job was deleted. ${DEACTIVATES}, or one a user set inactive; one is reactivated by ${reactivate}`,
            what: `${its} (${deactivated.why})`
          },
          byHand: false
        }
      }
      // (before its controller recorded the suspension, it is taking place now)
      const admittedByHand = stopped === undefined && found?.workload !== undefined && K.admittedBefore(found.workload, since ?? new Date().toISOString(), said.suspendedAfterStart)
      const byHand = admittedByHand || (stopped === undefined && found?.managed === false)
      const why = stopped !== undefined
        ? requeuedWhy(stopped)
        : admittedByHand
        ? admittedByHandWhy(found?.workload?.metadata?.name ?? "(unnamed)", ran)
        : byHand
        ? byHandWhy(namespace, name, ran, since)
        : ran
        ? requeuedWhy(found?.managed === true ? "by Kueue" : undefined)
        : SUSPENDED
      return { why, deactivated: undefined, byHand }
    })

  /** A pod's Events (none when they may not be read). */
  const podEvents = (pod: string) =>
    call("listEvents", (o) => core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${pod}` }, o)).pipe(
      Effect.map((l) => l.items),
      Effect.orElseSucceed(() => [])
    )
  /**
   * When the kubelet first said a pod's container could not start, and, of a pull, what it said
   * (`K.startFailedSince`, `K.pullFailure`), from its Events; each `undefined` when they say nothing or
   * may not be read.
   */
  const startFailureOf = (pod: string) => Effect.map(podEvents(pod), (events) => ({ since: K.startFailedSince(events), pull: K.pullFailure(events) }))
  /**
   * Why a job is taken back: for an image that cannot be pulled, what the kubelet's Event says the
   * pull met (`ErrImagePull: Failed to pull image "x": <the registry's answer>`), read as it is taken
   * back, since the pod's state says `Back-off pulling image` half the time and a late watch may have
   * seen no other; else the words it was stuck with.
   */
  const takenBackWhy = (why: string, pod: string | undefined) =>
    pod !== undefined && (why.startsWith("ErrImagePull") || why.startsWith("ImagePullBackOff"))
      ? Effect.map(startFailureOf(pod), (f) => (f.pull !== undefined ? `ErrImagePull: ${f.pull}` : why))
      : Effect.succeed(why)

  /**
   * Hand a finished pod's log, each line after its timestamp (see `K.StampedLog`), to `onChunk` a piece at a
   * time, pulled as it is handled (the HTTP body waits meanwhile): a log of gigabytes is never held whole.
   * `sinceTime`: from that second on. `false` when the log is gone.
   */
  const readLog = <E>(pod: string, sinceTime: string | undefined, onChunk: (data: Uint8Array) => Effect.Effect<void, E>) =>
    Effect.acquireUseRelease(
      Effect.sync(logSink),
      (out) =>
        call("readLog", () => logs.log(namespace, pod, K.CONTAINER, out, { follow: false, timestamps: true, ...(sinceTime !== undefined ? { sinceTime } : {}) })).pipe(
          Effect.andThen(Stream.runForEach(Stream.fromAsyncIterable(out as AsyncIterable<Buffer>, toError("readLog")), onChunk)),
          Effect.as(true),
          // The pod went between listing it and reading its log (a cancel's foreground deletion, the TTL
          // controller): there is no log left to read, which the exit then says (no result), not an error.
          // `follow` below treats the same 404 the same way.
          Effect.catchIf((e) => e instanceof Errors.BackendError && isNotFound(e), () => Effect.succeed(false))
        ),
      (out) => Effect.sync(() => out.destroy())
    )

  const watch = (ref: ExperimentNode.JobRef): Stream.Stream<Backend.JobEvent, Errors.BackendError> =>
    Stream.callback<Backend.JobEvent, Errors.BackendError>((queue) =>
      Effect.gen(function*() {
        const name = ref.id
        const gpus = typeof ref.data.gpus === "number" ? ref.data.gpus : 0
        const emit = (e: Backend.JobEvent) => Queue.offer(queue, e)
        /** The job's state as last shown (`Pending:<reason>`, `Running:<reason>`, `Terminated`), "" before any. */
        let lastState = ""
        const shown = (): "Pending" | "Running" => (lastState === "" || lastState.startsWith("Pending") ? "Pending" : "Running")
        /**
         * One call of the watch, asked again every second while the API server does not answer (the
         * Job is left be), for up to `apiWaitMs`: the outage said once (in the state last shown), and its end.
         */
        let outageSince: number | undefined
        /**
         * The node whose kubelet does not answer for the pod's log while the API server answers (a node not ready,
         * unreachable, before its pods are deleted): what is waited for is then that kubelet, not the API server.
         */
        let silentNode: string | undefined
        /** Set while the watch makes the objects of a job submitted while the server did not answer. */
        let creating = false
        const patiently = <A>(operation: string, effect: Effect.Effect<A, Errors.BackendError>): Effect.Effect<A, Errors.BackendError> =>
          Effect.gen(function*() {
            while (true) {
              const tried = yield* Effect.result(effect)
              if (tried._tag === "Success") {
                if (outageSince !== undefined) {
                  outageSince = undefined
                  yield* emit({ _tag: "State", state: shown() })
                }
                return tried.success
              }
              const e = tried.failure
              if (!e.retryable) return yield* e
              if (outageSince === undefined) {
                outageSince = Date.now()
                yield* emit(Backend.unreachable({
                  state: shown(),
                  who: silentNode !== undefined ? `the kubelet of node ${silentNode}, asked through the API server for the pod's log,` : `the Kubernetes API server at ${server}`,
                  since: outageSince,
                  cause: e.message,
                  meanwhile: creating
                    ? `Job ${name} is created once it answers, asked again every second for up to ${Math.round(apiWaitMs / 1000)} s (apiWaitMs)`
                    : `Job ${name} is left be, the server asked again every second for up to ${Math.round(apiWaitMs / 1000)} s (apiWaitMs)`
                }))
              } else if (Date.now() - outageSince >= apiWaitMs) {
                return yield* new Errors.BackendError({
                  backend: NAME,
                  operation,
                  message: silentNode !== undefined
                    ? `the kubelet of node ${silentNode} did not answer for the log of Job ${namespace}/${name}'s pod for ${waited(outageSince)} (apiWaitMs), the API server answering: ` +
                      `its node may be down (\`kubectl get node ${silentNode}\`); once its pod is deleted or the node is back, \`trex resume\` the run to follow the Job again (${e.message})`
                    : creating
                    ? `the Kubernetes API server at ${server} did not answer for ${waited(outageSince)} (apiWaitMs): Job ${namespace}/${name} was not created. Check \`kubectl cluster-info\` (${e.message})`
                    : `the Kubernetes API server at ${server} did not answer for ${waited(outageSince)} (apiWaitMs): Job ${namespace}/${name} may still be running. ` +
                      `Check \`kubectl cluster-info\`; once it answers, \`trex resume\` the run to follow the Job again (${e.message})`,
                  retryable: false
                })
              }
              yield* Effect.sleep("1 second")
            }
          })
        const tail = new JobProtocol.Tail()
        // the result marker's line is kept whole (it can be long); others are cut as every backend cuts them
        let lines = new JobProtocol.LineSplitter({ whole: K.RESULT_MARKER })
        let resultB64: string | undefined
        /** The job wrapper's mark that its container got a deletion's SIGTERM (`K.TERM_MARKER`) is in the log read. */
        let termSeen = false
        /** The wrapper's last line (`K.END_MARKER`) is in the log read: it was read to its end, a result or none. */
        let endSeen = false
        /** The wrapper's marker lines of this Job (`K.markersOf`), once it is read. */
        let markers = K.markersOf(undefined)
        let silent = false
        // The wrapper starts the marker with a newline (the job's output may lack a final one): an empty
        // line is held back, and dropped when the marker follows it.
        let heldEmpty = false
        const logLine = (line: string) => {
          tail.push(line)
          return silent ? Effect.void : emit(JobProtocol.parseLine(line) ?? { _tag: "Log", stream: "stdout", line })
        }
        const onLine = (line: string): Effect.Effect<void> => {
          if (line.startsWith(K.RESULT_MARKER)) {
            heldEmpty = false
            resultB64 = K.withoutInnerStamps(line.slice(K.RESULT_MARKER.length))
            return Effect.void
          }
          // (the wrapper starts its TERM and end marks with a newline too)
          const marker = K.markerLine(line, markers)
          if (marker !== undefined) {
            heldEmpty = false
            if (marker === "term") termSeen = true
            else endSeen = true
            return Effect.void
          }
          const held = heldEmpty ? logLine("") : Effect.void
          heldEmpty = line === ""
          return heldEmpty ? held : Effect.andThen(held, logLine(line))
        }
        /** Why the rest of the log could not be read (its pod gone, or its node's kubelet out of reach), if it could not. */
        let logLost: string | undefined
        const GONE = `the pod of Job ${name} was deleted before its log (which carries ${JobProtocol.RESULT_FILE}) could be read`
        const onLines = (ls: ReadonlyArray<string>) => Effect.forEach(ls, onLine, { discard: true })
        /** The log as read so far, and where it was: a read that goes on from a cut asks from there (see `K.StampedLog`). */
        let stamped = new K.StampedLog()
        const unstamped = (data: Uint8Array) => {
          const pieces = stamped.push(data)
          return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces)
        }
        const readAll = (pod: string) =>
          Effect.gen(function*() {
            if (!(yield* readLog(pod, undefined, (data) => onLines(lines.push(unstamped(data)))))) logLost = GONE
            else yield* onLines(lines.end())
          })
        const finish = (exit: Omit<Backend.JobExit, "_tag" | "logTail" | "result" | "resultError">) =>
          Effect.gen(function*() {
            const parsed = resultB64 === undefined && logLost !== undefined
              ? { resultError: logLost }
              : JobProtocol.parseResultBytes(resultB64 === undefined ? undefined : Buffer.from(resultB64, "base64"))
            if (heldEmpty) tail.push("")
            // a job that filled its disk (its log says so) failed for the machine: Infra (the rule every backend shares)
            const full = Backend.noSpaceExit({ _tag: "Exit", ...exit, ...parsed, logTail: tail.get() })
            const k = known.get(name)
            if (k !== undefined) k.exit = full
            yield* emit(full)
            return yield* Queue.end(queue)
          })
        const cancelled = { outcome: "Cancelled", failureKind: "Cancelled", message: `Job ${name} was deleted before it finished`, wallSeconds: 0, gpuSeconds: 0 } as const
        /** The withdrawal mark whose look again `settleMark` has set going. */
        let rechecked: string | undefined
        /** Take the withdrawal mark `text` off the Job: a JSON patch that tests it first, so only that mark goes (a refusal is let be). */
        const unmark = (text: string) =>
          Effect.ignore(call("unmarkJob", (o) =>
            batch.patchNamespacedJob({ name, namespace, body: [{ op: "test", path: MARK_PATH, value: text }, { op: "remove", path: MARK_PATH }] }, o)))
        /**
         * A withdrawal mark (`K.WITHDRAWN_ANNOTATION`) on the Job, as this watch begins or as the Job changes, that no
         * withdraw of this instance is carrying out: left by a controller stopped between its mark and the Job's deletion, before the run journaled the
         * withdrawal (so a resumed run reattaches to the trial and watches it), or another controller's withdraw in progress.
         * Its pod deleted (or gone) before it ran: the withdrawal took place, and is finished as the withdraw would have
         * finished it (the Job deleted, then its tombstone written), the exit the withdrawal's. Its pod there, not deleted
         * and the mark older than a request (a withdraw deletes the pod in the request after its mark), or a pod that ran:
         * nothing was withdrawn, and the mark is taken off, so that no controller reads the pod's own end (a failure before
         * it ran) as a withdrawal; a younger mark is looked at again once it is that old. `undefined` but for a withdrawal finished.
         */
        const settleMark = (job: V1Job): Effect.Effect<Omit<Backend.JobExit, "_tag" | "logTail" | "result" | "resultError"> | undefined, Errors.BackendError, Scope.Scope> =>
          Effect.gen(function*() {
            const mark = K.markOf(job)
            const text = job.metadata?.annotations?.[K.WITHDRAWN_ANNOTATION]
            if (mark === undefined || text === undefined || withdrawnPods.has(name) || job.metadata?.deletionTimestamp != null || K.jobOutcome(job)?.complete === true) return undefined
            const pods = yield* patiently("listPods", call("listPods", (o) => core.listNamespacedPod({ namespace, labelSelector: `${K.JOB_LABEL}=${name}` }, o)))
            const pod = pods.items.find((p) => p.metadata?.uid === mark.pod)
            const ran = pod !== undefined && (K.terminated(pod)?.startedAt != null || K.podState(pod)?.state === "Running")
            // (a suspended Job's pod is deleted by its controller, not by a withdraw)
            if (!ran && job.spec?.suspend !== true && (pod === undefined || pod.metadata?.deletionTimestamp != null)) {
              yield* patiently("deleteJob", deleteJob(name))
              yield* patiently("createTombstone", tombstoneOf(ref, mark.failed, job))
              yield* Effect.logInfo(`kubernetes: Job ${name}: finished its withdrawal, which a controller stopped before it was done (its pod was deleted before it ran: ${mark.at})`)
              return mark.failed !== undefined
                ? { outcome: "Failed", failureKind: "Infra", retryable: false, message: mark.failed, wallSeconds: 0, gpuSeconds: 0 } as const
                : { ...cancelled, message: withdrawnMessage(name) }
            }
            const left = Date.parse(mark.at) + requestTimeoutMs - Date.now()
            if (ran || !(left > 0)) {
              yield* unmark(text)
              return undefined
            }
            // perhaps another controller's withdraw in progress: looked at again once the mark is a request old (once a mark)
            if (rechecked === text) return undefined
            rechecked = text
            yield* Effect.forkScoped(Effect.sleep(left).pipe(
              Effect.andThen(call("readJob", (o) => batch.readNamespacedJob({ name, namespace }, o))),
              Effect.flatMap((now) =>
                now.metadata?.annotations?.[K.WITHDRAWN_ANNOTATION] === text && now.metadata?.deletionTimestamp == null && K.jobOutcome(now) === undefined
                  // (no pod: a suspended Job's, its controller's doing; the mark is as stale as with a pod let be)
                  ? pod?.metadata?.name === undefined
                    ? unmark(text)
                    : Effect.flatMap(podNamed(pod.metadata.name), (p) => (p !== undefined && p.metadata?.deletionTimestamp == null ? unmark(text) : Effect.void))
                  : Effect.void
              ),
              Effect.ignore
            ))
            return undefined
          })
        /** The newest state of the Job's pod its watch saw, deleted or not. */
        let lastPod: V1Pod | undefined
        /** When the Job's deletion began, as this watch saw it (its `deletionTimestamp`). */
        let deletedAt: Date | undefined
        /**
         * The exit of a job whose container ended by itself before its Job's deletion began (`K.endedBeforeDeletion`), the
         * Job deleted (a cancel that came as it exited) before its controller recorded the end: the container's own end.
         * It is recorded (`endedRecord`, with its result), so that a controller that reads the job once its Job is gone
         * (a resumed run) reads that end too, not the cancel's tombstone. The node's clock (`finishedAt`) and the API
         * server's (the deletion's time) may differ, so the clocks alone do not decide: the container's log, read to its
         * end, must hold the wrapper's last line (`K.END_MARKER` with the Job's mark, printed with or without a result, so
         * that a job that failed by itself without one keeps its failure; of a wrapper from before it, its result's line,
         * `K.RESULT_MARKER`) and not its mark of a SIGTERM (`K.TERM_MARKER`, a job that exits 0 on it included); else the
         * deletion's `Cancelled`, as the cancel meant. Nor
         * is an end recorded whose result the record cannot hold: a later controller reads the tombstone's `Cancelled` then.
         */
        const ownExit = (pod: V1Pod) =>
          Effect.gen(function*() {
            // (a wrapper's log from before its end line: read to its end only when its result's line came)
            if (termSeen || logLost !== undefined || !(markers.end !== undefined ? endSeen : resultB64 !== undefined)) {
              yield* Effect.logInfo(`kubernetes: Job ${name} was deleted as its container ended: read as cancelled, since ${
                termSeen ? "its container got the deletion's SIGTERM (its log says so)" : "its log was not read to its end"
              }`)
              return cancelled
            }
            const t = K.terminated(pod)
            const wall = seconds(t?.startedAt, t?.finishedAt)
            const exit = { ...K.mapExit(K.endedAs(pod), pod), wallSeconds: wall, gpuSeconds: (wall + takenBackSeconds) * gpus }
            const result = resultB64
            if (result !== undefined && result.length > ENDED_RESULT_MAX) return exit
            // (a resumed controller's watch knows its run and node from the pod, as read)
            yield* patiently("createEndRecord", writeRecord("createEndRecord", endedRecord(name), ref, known.get(name)?.labels ?? K.labelsOf(pod), {
              exit: JSON.stringify(exit),
              ...(result !== undefined ? { result } : {})
            }))
            return exit
          })
        /**
         * This attempt's pod's own end before the Job's deletion began, for a Job deleted before its controller recorded an
         * end: the kubelet says how a container ended before its pod goes, so its word is waited for (a few seconds) while
         * the pod is there and has not said it.
         */
        const endedBeforeDeletion = Effect.gen(function*() {
          // (an attempt a batch queue took back ended for that: not by itself)
          if (deletedAt === undefined || attempt === undefined || requeued) return undefined
          let pod = lastPod?.metadata?.name === attempt ? lastPod : undefined
          let gone = false
          for (let i = 0; ; i++) {
            for (const u of yield* Queue.clear(mailbox)) {
              if (u._tag === "Pod" && u.pod.metadata?.name === attempt) {
                pod = u.pod
                gone ||= u.type === "DELETED"
              } else if (u._tag === "Chunk") u.next()
            }
            if (K.terminated(pod) !== undefined || gone || i >= LOG_END_CHECKS) break
            // (a refusal, a 4xx, is no word: the pod as last seen decides, and the deletion's Cancelled where it says nothing)
            const now = yield* patiently("readPod", podNamed(attempt)).pipe(Effect.catchIf((e) => /HTTP 4\d\d/.test(e.message), () => Effect.succeed(undefined)))
            if (now !== undefined) pod = now
            if (K.terminated(pod) !== undefined) break
            yield* Effect.sleep("1 second")
          }
          return pod !== undefined && K.endedBeforeDeletion(pod, deletedAt) ? pod : undefined
        })
        /** How long the pods a batch queue took back ran (see `newAttempt`): their GPUs were held, and count in the exit's `gpuSeconds`. */
        let takenBackSeconds = 0
        const exitFromJob = (job: V1Job) =>
          Effect.gen(function*() {
            // A Job whose failure came with or after its deletion (a cancel from any controller:
            // foreground deletion kills the pod first) was cancelled, not failed.
            if (withdrawnPods.has(name)) return { ...cancelled, message: withdrawnMessage(name) }
            const pod = (yield* patiently("listPods", podsOf(name))) ?? lastPod
            // (unless its container had ended by itself before: its controller counted the pod failed as it was deleted,
            // before the kubelet said how it ended)
            if (K.failedByDeletion(job)) return K.endedBeforeDeletion(pod, job.metadata?.deletionTimestamp) ? yield* ownExit(pod!) : cancelled
            // taken back by another controller (or an earlier run of this one), which marked the Job first
            const withdrawal = K.withdrawalOf(job, pod)
            if (withdrawal !== undefined) {
              return withdrawal.failed !== undefined
                ? { outcome: "Failed", failureKind: "Infra", retryable: false, message: withdrawal.failed, wallSeconds: 0, gpuSeconds: 0 } as const
                : { ...cancelled, message: withdrawnMessage(name) }
            }
            const m = K.mapExit(job, pod)
            const t = K.terminated(pod)
            const wall = t !== undefined ? seconds(t.startedAt, t.finishedAt) : seconds(job.status?.startTime, job.status?.completionTime ?? new Date())
            return { ...m, wallSeconds: wall, gpuSeconds: (wall + takenBackSeconds) * gpus }
          })

        /**
         * A Job that ended by itself and is not being deleted: a cancel's tombstone of it is stale (written by a controller
         * stopped between its tombstone and its delete, the Job completing since), and goes, so that a controller that
         * reads the job once its Job is deleted (by its TTL) does not read it as cancelled. A cancel in progress is not
         * disturbed: its delete, as read before the end, is refused and it reads the Job again. Nor is a withdrawal (its
         * Job fails for the pod it deleted, then is deleted, then gets its tombstone): its `exit` is `Cancelled`. Nor is it
         * asked for when this instance submitted the job and wrote no tombstone of it (`submittedHere`). `exit`, as it was.
         */
        const dropStaleStone = <X extends { readonly outcome: string }>(job: V1Job, exit: X) =>
          endedByItself(job) && job.metadata?.deletionTimestamp == null && exit.outcome !== "Cancelled" && (!submittedHere.has(name) || stoned.has(name))
            // best-effort, one try: the exit is the Job's whatever comes of it (an outage now is a warning, not waited out)
            ? Effect.as(
              removeCancelTombstone(name).pipe(Effect.catch((e) =>
                Effect.logWarning(`kubernetes: Job ${name} ended by itself; a cancel's tombstone of it, if one is left, could not be removed (${e.message}): a controller that reads the Job once it is deleted would read it as Cancelled`)
              )),
              exit
            )
            : Effect.succeed(exit)

        // A job submitted while the server did not answer: its objects are made first (by whichever of its
        // watches gets there; each is asked for by name, so twice is once), unless it was cancelled meanwhile.
        const sub = queued.get(name)
        if (sub !== undefined) {
          creating = true
          yield* patiently("createJob", Effect.suspend(() => (sub.dropped ? Effect.void : createObjects(name, sub))))
          creating = false
          if (sub.dropped && !sub.sent) return yield* finish({ ...cancelled, message: `Job ${name} was cancelled before it was created` })
          // cancelled while its Job was being made: deleted (the cancel's own delete may have come first)
          if (sub.dropped) yield* patiently("deleteJob", deleteJob(name))
          else queued.delete(name)
        }

        const initial = yield* patiently("readJob", call("readJob", (o) => batch.readNamespacedJob({ name, namespace }, o))).pipe(
          Effect.catchIf(isNotFound, () => Effect.succeed(undefined))
        )
        markers = K.markersOf(initial)
        const withdrawn = initial !== undefined ? yield* settleMark(initial) : undefined
        if (withdrawn !== undefined) return yield* finish(withdrawn)
        if (initial === undefined || K.jobOutcome(initial) !== undefined || initial.metadata?.deletionTimestamp != null) {
          const cached = known.get(name)?.exit
          if (cached !== undefined) {
            yield* emit(cached)
            return yield* Queue.end(queue)
          }
          if (initial === undefined) {
            const stone = yield* patiently("readTombstone", call("readTombstone", (o) => core.readNamespacedConfigMap({ name: tombstone(name), namespace }, o))).pipe(
              Effect.map((c) => c.data ?? {}),
              Effect.catchIf(isNotFound, () => Effect.succeed(undefined))
            )
            // its container ended by itself before its Job was deleted (a cancel as it exited), as a watch recorded it
            const record = stone?.failed === undefined ? yield* endRecordOf(name) : undefined
            if (record !== undefined) {
              resultB64 = record.result
              return yield* finish(record.exit)
            }
            // deleted by Kueue while no controller watched it (a workload it deactivated, past its retention)
            const byKueue = stone === undefined ? yield* kueueDeletionOf(name, undefined, false) : undefined
            return yield* finish(
              stone?.failed !== undefined
                // taken back by its watch, stuck before it started (see `stuckAfterMs`)
                ? { outcome: "Failed", failureKind: "Infra", retryable: false, message: stone.failed, wallSeconds: 0, gpuSeconds: 0 }
                : stone !== undefined
                ? cancelled
                : byKueue !== undefined
                ? { outcome: "Failed", failureKind: "Infra", retryable: false, message: byKueue, wallSeconds: 0, gpuSeconds: 0 }
                : recordsMayBeGone(ref)
                // its records may have been removed (`sweepRecords`): it ended, perhaps by itself, and is not run again
                ? {
                  outcome: "Failed",
                  failureKind: "Infra",
                  retryable: false,
                  message: `Job ${namespace}/${name} no longer exists, and was submitted more than ${Math.round(recordKeepMs / 1000)} s ago ` +
                    `(its Job and end record are kept that long once it ended): its end is not known, and it is not run again; ` +
                    `to keep ends for a run resumed later, raise ttlSecondsAfterFinished (backend.k8s) above the longest time a run may stay stopped`,
                  wallSeconds: 0,
                  gpuSeconds: 0
                }
                : {
                  outcome: "Failed",
                  failureKind: "Infra",
                  // (a job queued by a controller that stopped before the server answered was never made)
                  message: `Job ${namespace}/${name} no longer exists${
                    ref.data.queued === true ? " (it was submitted while the API server did not answer: it may never have been created)" : ""
                  }`,
                  wallSeconds: 0,
                  gpuSeconds: 0
                }
            )
          }
          // Ended before this watch began: its log fills the tail and gives the result; only the Exit is emitted.
          silent = true
          const pod = yield* patiently("listPods", podsOf(name))
          if (pod !== undefined && K.terminated(pod) !== undefined) {
            yield* readAll(pod.metadata!.name!)
          }
          return yield* finish(
            K.jobOutcome(initial) !== undefined
              ? yield* dropStaleStone(initial, yield* exitFromJob(initial))
              // being deleted before its controller recorded an end: one its container came to by itself first is its own
              : K.endedBeforeDeletion(pod, initial.metadata?.deletionTimestamp)
              ? yield* ownExit(pod!)
              : cancelled
          )
        }

        const mailbox = yield* Queue.unbounded<Update>()
        const startWatch = (which: "job" | "pod") =>
          Effect.acquireRelease(
            patiently("watch", Effect.tryPromise({
              try: () =>
                which === "job"
                  ? watcher.watch(`/apis/batch/v1/namespaces/${namespace}/jobs`, { fieldSelector: `metadata.name=${name}` }, (type, obj) => {
                    if (isObjectEvent(type)) Queue.offerUnsafe(mailbox, { _tag: "Job", type, job: obj as V1Job })
                  }, () => Queue.offerUnsafe(mailbox, { _tag: "WatchDone", which }))
                  : watcher.watch(`/api/v1/namespaces/${namespace}/pods`, { labelSelector: `${K.JOB_LABEL}=${name}` }, (type, obj) => {
                    if (isObjectEvent(type)) Queue.offerUnsafe(mailbox, { _tag: "Pod", type, pod: obj as V1Pod })
                  }, () => Queue.offerUnsafe(mailbox, { _tag: "WatchDone", which })),
              catch: toError("watch")
            })),
            (controller) => Effect.sync(() => controller.abort())
          )
        yield* startWatch("job")
        yield* startWatch("pod")

        let podSeen = false
        /** Its Job is suspended (`spec.suspend`), as a batch queue holds a Job until it admits it. */
        let suspended = initial.spec?.suspend === true
        /**
         * This watch saw the Job not suspended: started (by Kueue, for a Job it manages, which its webhook makes suspended),
         * so a suspension it then sees while Kueue admits the Workload is a person's (Kueue suspends a Job it admitted only
         * once it evicted the Workload, or stopped it: its `Stopped` Event). This tells a Job its controller never saw
         * suspended before Kueue started it, which the Events do not (see `K.suspendedAfterStart`).
         */
        let startSeen = !suspended
        const seenSaid = <A extends { readonly suspendedAfterStart: boolean | undefined }>(said: A): A => (startSeen ? { ...said, suspendedAfterStart: true } : said)
        /** Since when its controller saw the Job suspended (its `Suspended` condition), as last read. */
        let suspendedSince = K.suspendedSince(initial)
        /** The Job's uid, by which Kueue's Workload of it is found. */
        const jobUid = initial.metadata?.uid
        /** Kueue deactivated the Job's Workload (which, and why), as last seen: a deletion then may be Kueue's (see `kueueDeletionOf`). */
        let deactivatedWhat: string | undefined
        /** The Job names a Kueue queue (Kueue manages it): a deletion of it suspended may be Kueue's, seen or not. */
        const kueueManaged = initial.metadata?.labels?.[K.KUEUE_QUEUE_LABEL] !== undefined
        /** A pod of the Job was being deleted as this watch began, the Job suspended: it ran before (see `suspensionOf`). */
        let ranBefore = false
        /**
         * The pod of this attempt (the one whose log is followed): a suspended Job's controller deletes its pod and makes
         * a new one once the Job is resumed, each attempt from the start of its own log, with its own result.
         */
        let attempt: string | undefined
        /** The Job was suspended after this attempt's pod was made: its pod is deleted, and the trial waits in the queue again. */
        let requeued = false
        /** The pod whose container is being created (its volumes mounted, its image pulled): its Events are looked at now and then. */
        let creatingPod: string | undefined
        /** Why its container is not created yet, as its Events said last. */
        let creatingWhy: string | undefined
        let noPodChecks = 0
        /** When the Job was last seen or said suspended by hand (see `suspensionOf`), while it is. */
        let byHandNoted: number | undefined
        /**
         * Since when, and why, the job waits in a state it does not leave by itself (see `stuckAfterMs`); `message`: what its
         * exit says once it is taken back, when not that its pod could not start.
         */
        let stuck: { since: number; why: string; message?: string } | undefined
        /** The pod whose container could not start, last seen. */
        let stuckPod: string | undefined
        /**
         * `why`: the job is stuck (see `stuckAfterMs`), at the latest since `since` by the API server's times
         * (so a watch that begins late, a resumed run's, counts the time before it); a pull's back-off keeps
         * the pull's own error (what the registry said; see also `takenBackWhy`).
         */
        const stuckIf = (why: string | undefined, since: number | undefined, message?: string) => {
          stuck = why === undefined
            ? undefined
            : {
              since: stuck?.since ?? Math.min(since ?? Date.now(), Date.now()),
              why: stuck !== undefined && why.startsWith("ImagePullBackOff") ? stuck.why : why,
              ...(message !== undefined ? { message } : {})
            }
        }
        let logState: "none" | "following" | "ended" = "none"
        let ended: { readonly job?: V1Job } | undefined
        /** The newest follow of the log (aborted when it is given up on as silent). */
        let following: AbortController | undefined
        let follows = 0
        let followedAt = 0
        /**
         * A batch queue (Kueue, preempting) suspended the Job after this attempt's pod was made: its controller deletes the
         * pod, not counted failed (its tracking finalizer is taken off first), and makes a new one once the Job is resumed.
         * The trial waits in the queue again (not failed: a retry would run the strategy beside the resumed Job), said
         * with who stopped it; what the pod still prints is read, and its end is not the job's.
         */
        const requeue = Effect.gen(function*() {
          requeued = true
          // why, looked at again now and then as for a Job without a pod (the queue's Event may come after the Job's change)
          podSeen = false
          noPodChecks = 0
          stuckIf(undefined, undefined)
          stuckPod = undefined
          creatingPod = undefined
          creatingWhy = undefined
          const held = yield* suspensionOf(name, jobUid, seenSaid(yield* patiently("listEvents", refusalOf(name))), true, suspendedSince)
          deactivatedWhat = held.deactivated?.what
          if (held.deactivated !== undefined) stuckIf(held.why, held.deactivated.since, held.deactivated.message)
          lastState = `Pending:${held.why}`
          yield* emit({ _tag: "State", state: "Pending", reason: held.why })
        })
        /** Another pod of the Job, once the Job was resumed: a new attempt, its log read from its start and its result its own. */
        const newAttempt = Effect.sync(() => {
          // the taken-back pod held its GPUs while it ran (to its end, or to now when its end was not seen)
          const ran = K.terminated(lastPod)
          takenBackSeconds += seconds(ran?.startedAt ?? lastPod?.status?.containerStatuses?.find((c) => c.name === K.CONTAINER)?.state?.running?.startedAt, ran?.finishedAt ?? new Date())
          if (logState === "following") {
            following?.abort()
            // (what the taken-back pod's follow still holds is not read)
            follows++
          }
          following = undefined
          lines = new JobProtocol.LineSplitter({ whole: K.RESULT_MARKER })
          stamped = new K.StampedLog()
          resultB64 = undefined
          termSeen = false
          endSeen = false
          heldEmpty = false
          logLost = undefined
          logState = "none"
          requeued = false
          lastPod = undefined
          stuck = undefined
          stuckPod = undefined
          creatingPod = undefined
          creatingWhy = undefined
        })
        /** Whether the Job's suspension takes back this attempt: its pod was made and has not succeeded, and the Job has not ended. */
        const takenBack = () => suspended && !requeued && ended === undefined && attempt !== undefined && K.terminated(lastPod)?.exitCode !== 0

        /**
         * A log request that failed without an answer from the node while the API server answers: its pod is being
         * deleted and no kubelet says its container ended (its node is down: the taint manager deleted it), so its
         * log is out of reach for good, not for an outage to wait out: why, as the exit says it. Otherwise the request's failure.
         */
        const outOfReach = (e: Errors.BackendError) =>
          podsOf(name).pipe(
            Effect.flatMap((pod) => {
              // the API server answers: the log's failure is its node's
              if (pod !== undefined && K.terminated(pod) === undefined && pod.spec?.nodeName !== undefined) silentNode = pod.spec.nodeName
              if (pod === undefined || pod.metadata?.deletionTimestamp == null || K.terminated(pod) !== undefined) return Effect.fail(e)
              lastPod = pod
              return Effect.succeed(`the rest of the log of pod ${pod.metadata.name} (which carries ${JobProtocol.RESULT_FILE}) could not be read: its node does not answer (${e.message})`)
            }),
            Effect.catch(() => Effect.fail(e))
          )
        /** Follow the pod's log, from where it was when it was followed or read before (`K.StampedLog`). */
        const follow = (pod: string) =>
          Effect.acquireRelease(
            patiently("followLog", Effect.tryPromise({
              try: () => {
                const which = ++follows
                followedAt = Date.now()
                const sinceTime = stamped.sinceTime()
                stamped.resume()
                const out = logSink()
                // one piece at a time: the log waits (and the HTTP body with it) until the loop has emitted its lines
                out.on("data", (d: Buffer) => {
                  // (a follow since replaced by another is not read on)
                  if (which !== follows) return
                  const data = unstamped(d)
                  if (data.length === 0) return
                  out.pause()
                  Queue.offerUnsafe(mailbox, { _tag: "Chunk", data, next: () => out.resume() })
                })
                let said = false
                const end = (cut: boolean) => () => {
                  if (said) return
                  said = true
                  Queue.offerUnsafe(mailbox, { _tag: "LogEnd", cut, follow: which })
                }
                out.on("end", end(false))
                out.on("error", end(true))
                return logs.log(namespace, pod, K.CONTAINER, out, { follow: true, timestamps: true, ...(sinceTime !== undefined ? { sinceTime } : {}) })
              },
              catch: toError("followLog")
            }).pipe(
              Effect.map((controller): AbortController | string => controller),
              Effect.catchIf((e) => e.retryable, outOfReach)
            )).pipe(
              Effect.map((followed) => {
                silentNode = undefined
                if (typeof followed !== "string") return (following = followed)
                // out of reach (its node is down): the log ends here, and the Job's end (its watch says it) is the exit
                logLost = followed
                Queue.offerUnsafe(mailbox, { _tag: "LogEnd", follow: follows })
                return undefined
              }),
              // The pod went before its log could be followed (the same race as readLog's): the log ends here.
              Effect.catchIf(isNotFound, () =>
                Effect.sync(() => {
                  logLost = GONE
                  Queue.offerUnsafe(mailbox, { _tag: "LogEnd", follow: follows })
                  return undefined
                }))
            ),
            (controller) => Effect.sync(() => controller?.abort())
          )

        while (true) {
          if (ended === undefined && stuck !== undefined && Date.now() - stuck.since >= stuckAfterMs) {
            // taken back as a drain's withdraw takes a job back: only as read, so a pod that started since is let run
            // the same words for every trial of one cause (a run that fails fast compares them)
            const message = stuck.message ?? `its pod could not start within ${Math.round(stuckAfterMs / 1000)} s (stuckAfterMs): ${yield* takenBackWhy(stuck.why, stuckPod)}; its Job was deleted`
            if (yield* takeBack(ref, message)) {
              return yield* finish({ outcome: "Failed", failureKind: "Infra", retryable: false, message, wallSeconds: 0, gpuSeconds: 0 })
            }
            // it moved on since it was read: looked at again in a second, unless an update says where it went
            stuck = { ...stuck, since: Date.now() - stuckAfterMs + 1000 }
          }
          if (ended !== undefined && logState !== "following") {
            if (ended.job === undefined) {
              // a suspended Job deleted by Kueue (a workload it deactivated, past its retention), not cancelled
              const byKueue = suspended ? yield* kueueDeletionOf(name, deactivatedWhat, deactivatedWhat !== undefined || kueueManaged) : undefined
              if (byKueue === undefined) {
                // deleted before its controller recorded an end: one its container came to by itself first is its own
                const own = yield* endedBeforeDeletion
                if (own === undefined) return yield* finish(cancelled)
                // (its log, unless followed to its end: its pod may be gone already, which the exit then says)
                if (logState === "none") yield* readAll(own.metadata!.name!)
                return yield* finish(yield* ownExit(own))
              }
              // (its run and node as its Job said them when this watch began, so that a fresh `list` shows it)
              yield* patiently("createTombstone", tombstoneOf(ref, byKueue, initial))
              return yield* finish({ outcome: "Failed", failureKind: "Infra", retryable: false, message: byKueue, wallSeconds: 0, gpuSeconds: 0 })
            }
            let job = ended.job
            // what came meanwhile is the freshest word: the pod's end (its Job may end at FailureTarget, while
            // the pod terminates), the Job's Failed or Complete after it
            for (const u of yield* Queue.clear(mailbox)) {
              if (u._tag === "Pod") lastPod = u.pod
              else if (u._tag === "Job" && u.type !== "DELETED" && u.job.metadata?.deletionTimestamp == null && K.jobOutcome(u.job) !== undefined) job = u.job
              else if (u._tag === "Chunk") u.next()
            }
            if (logState === "none") {
              const pod = yield* patiently("listPods", podsOf(name))
              if (pod !== undefined && K.terminated(pod) !== undefined) {
                yield* readAll(pod.metadata!.name!)
              }
            }
            return yield* finish(yield* dropStaleStone(job, yield* exitFromJob(job)))
          }
          // until the job is stuck too long, if it is
          const stuckLeft = stuck !== undefined ? Math.max(0, stuck.since + stuckAfterMs - Date.now()) : undefined
          const update: Update = ended !== undefined
            ? (yield* Queue.take(mailbox).pipe(Effect.timeoutOption(logGraceMs))).pipe((o) => (o._tag === "Some" ? o.value : { _tag: "LogEnd" as const }))
            : podSeen
            ? stuckLeft === undefined && creatingPod === undefined
              ? yield* Queue.take(mailbox)
              : (yield* Queue.take(mailbox).pipe(Effect.timeoutOption(Math.min(stuckLeft ?? Infinity, creatingPod !== undefined ? NO_POD_AGAIN_MS : Infinity)))).pipe((o) =>
                o._tag === "Some" ? o.value : { _tag: "Tick" as const }
              )
            // A Job still without a pod: its controller may be refused one (a quota): look why, now and then.
            : (yield* Queue.take(mailbox).pipe(Effect.timeoutOption(Math.min(noPodChecks === 0 ? NO_POD_FIRST_MS : NO_POD_AGAIN_MS, stuckLeft ?? Infinity)))).pipe((o) =>
              o._tag === "Some" ? o.value : { _tag: "NoPod" as const }
            )
          switch (update._tag) {
            case "Job": {
              const job = update.job
              // a withdrawal mark another controller put on the Job meanwhile (see `settleMark`)
              if (update.type !== "DELETED" && K.markOf(job) !== undefined) {
                const withdrawn = yield* settleMark(job)
                if (withdrawn !== undefined) return yield* finish(withdrawn)
              }
              if (update.type === "DELETED" || job.metadata?.deletionTimestamp != null) {
                deletedAt ??= job.metadata?.deletionTimestamp ?? undefined
                ended ??= K.jobOutcome(job) !== undefined ? { job } : {}
              } else if (K.jobOutcome(job) !== undefined) ended = { job }
              suspended = job.spec?.suspend === true
              startSeen ||= !suspended
              suspendedSince = K.suspendedSince(job)
              if (takenBack()) yield* requeue
              else if (!suspended && requeued && lastPod !== undefined && lastPod.metadata?.deletionTimestamp == null) {
                // a suspension read late (the Job's watch behind its pod's): this attempt's pod runs on, and is read again
                requeued = false
                Queue.offerUnsafe(mailbox, { _tag: "Pod", type: "MODIFIED", pod: lastPod })
              }
              break
            }
            case "Tick": {
              // a container still being created: a volume it cannot mount is said, and lasts (see `stuckAfterMs`)
              if (creatingPod === undefined) break
              const trouble = K.mountTrouble(yield* patiently("listEvents", podEvents(creatingPod)))
              if (trouble === undefined || trouble.why === creatingWhy) break
              creatingWhy = trouble.why
              stuckIf(trouble.lasting ? trouble.why : undefined, trouble.since)
              lastState = `Pending:${trouble.why}`
              yield* emit({ _tag: "State", state: "Pending", reason: `ContainerCreating: ${trouble.why}` })
              break
            }
            case "NoPod": {
              noPodChecks++
              const refused = yield* patiently("listEvents", refusalOf(name))
              // a Job held suspended makes no pod: a batch queue (Kueue) admits it when its quota has room; one it
              // stopped (a preemption: its `Stopped` Event) waits to be admitted again; one it deactivated waits for a
              // reactivation, for stuckAfterMs; one suspended by hand waits to be resumed by hand
              const held = suspended ? yield* suspensionOf(name, jobUid, seenSaid(refused), requeued || ranBefore, suspendedSince) : undefined
              const why = held?.why ?? refused.why
              deactivatedWhat = held?.deactivated?.what
              // a suspension by hand is waited for without a bound: said again in the log every stuckAfterMs it lasts
              if (held?.byHand !== true) byHandNoted = undefined
              else if (byHandNoted === undefined) byHandNoted = Date.now()
              else if (Date.now() - byHandNoted >= stuckAfterMs) {
                byHandNoted = Date.now()
                yield* Effect.logWarning(
                  `kubernetes: Job ${name} is still suspended by hand${suspendedSince !== undefined ? ` since ${suspendedSince}` : ""}, ` +
                    `waited for without a bound (not taken back after stuckAfterMs): resume it (\`kubectl patch job -n ${namespace} ${name} --type=merge ` +
                    `-p '{"spec":{"suspend":false}}'\`) or cancel the trial`
                )
              }
              if (!podSeen) {
                if (held?.deactivated !== undefined) stuckIf(why, held.deactivated.since, held.deactivated.message)
                else stuckIf(held === undefined && refused.lasting ? why : undefined, refused.since)
              }
              const key = `Pending:${why ?? ""}`
              if (!podSeen && key !== lastState) {
                lastState = key
                yield* emit(why !== undefined ? { _tag: "State", state: "Pending", reason: why } : { _tag: "State", state: "Pending" })
              }
              break
            }
            case "Pod": {
              const podName = update.pod.metadata!.name!
              const going = update.type === "DELETED" || update.pod.metadata?.deletionTimestamp != null
              if (podName !== attempt) {
                // a pod being deleted that is not this attempt's: an earlier attempt's, taken back with its suspended Job
                // (a watch that begins then finds it terminating)
                if (going && (attempt !== undefined || suspended)) {
                  ranBefore ||= attempt === undefined
                  break
                }
                // another pod once one was made: the Job's controller makes one for a Job of backoffLimit 0 that it did not
                // fail only once the Job was suspended and resumed, so a new attempt begins
                if (attempt !== undefined) yield* newAttempt
                attempt = podName
              }
              // its last state, for the Job's end when the pod is gone by then (a preemption deletes it)
              lastPod = update.pod
              if (going && takenBack()) yield* requeue
              if (update.type === "DELETED") break
              // the attempt the queue took back ends, its end not the job's; the trial is shown waiting
              if (requeued) break
              podSeen = true
              const st = K.podState(update.pod)
              const waitingMessage = K.waitingMessage(update.pod)
              const unplaceable = st?.state === "Pending" ? K.lastingUnschedulable(update.pod) : undefined
              const cannotStart = st?.state === "Pending" && st.reason !== undefined && STUCK.has(st.reason)
              const wasCreating = creatingPod !== undefined
              creatingPod = st?.state === "Pending" && st.reason === "ContainerCreating" ? update.pod.metadata!.name! : undefined
              if (creatingPod === undefined) creatingWhy = undefined
              // its volume trouble (a Tick's finding) holds until the pod moves on
              if (creatingPod !== undefined && wasCreating && creatingWhy !== undefined) break
              // a container that cannot start: since the kubelet first said so (a big image's pull before that is not
              // stuck), else since this watch saw it; a pod no node takes: since it was made
              const failedStart = cannotStart && stuck === undefined ? yield* patiently("listEvents", startFailureOf(update.pod.metadata!.name!)) : undefined
              if (cannotStart) stuckPod = update.pod.metadata!.name!
              stuckIf(
                cannotStart
                  ? `${st.reason}${waitingMessage !== undefined ? `: ${waitingMessage}` : ""}`
                  : unplaceable !== undefined
                  ? `${unplaceable} (backend.k8s.mounts or jobDirClaim names a PersistentVolumeClaim that is not in namespace ${namespace})`
                  : undefined,
                cannotStart ? stuck?.since ?? failedStart?.since ?? Date.now() : K.madeAt(update.pod)
              )
              const key = st === undefined ? "Terminated" : `${st.state}:${st.reason ?? ""}`
              if (st !== undefined && key !== lastState) {
                lastState = key
                yield* emit(st.reason !== undefined ? { _tag: "State", state: st.state, reason: st.reason } : { _tag: "State", state: st.state })
              }
              if (logState === "none" && (st?.state === "Running" || K.terminated(update.pod) !== undefined)) {
                if (lastState !== "Running:" && lastState !== "Terminated") yield* emit({ _tag: "State", state: "Running" })
                lastState = st === undefined ? "Terminated" : lastState
                logState = "following"
                yield* follow(update.pod.metadata!.name!)
              }
              break
            }
            case "Chunk":
              yield* onLines(lines.push(update.data))
              update.next()
              break
            case "LogEnd": {
              // the end of a follow since replaced by another
              if (update.follow !== undefined && update.follow !== follows) break
              // Cut (the API server went away), or ended cleanly before the result marker came: the API server
              // also ends a followed log's answer cleanly, as it ends the container's, when its stream from the
              // kubelet breaks (a kubelet restart) while the container runs on. Or silent for logGraceMs after its
              // Job ended (no `follow`): its connection may have died without a word (a load balancer dropping it
              // idle), and is given up. Followed on from where it was while the container runs, else what is left
              // of its log is read (a log whose marker came is whole).
              if (update.follow === undefined) {
                following?.abort()
                // (what the given-up follow still holds is not read: the log is read on from where it was)
                follows++
              }
              const clean = update.cut !== true && resultB64 === undefined
              if ((update.cut === true || clean) && logLost === undefined) {
                // this attempt's pod (the Job's newest may be the next attempt's, once the Job was suspended and resumed)
                const followed = attempt
                const attemptPod = followed !== undefined ? patiently("readPod", podNamed(followed)) : patiently("listPods", podsOf(name))
                let pod = yield* attemptPod
                // (the kubelet says a container ended a moment after its log ends: looked at again meanwhile)
                for (let i = 0; clean && i < LOG_END_CHECKS && pod !== undefined && K.terminated(pod) === undefined; i++) {
                  yield* Effect.sleep("1 second")
                  pod = yield* attemptPod
                }
                if (pod !== undefined) lastPod = pod
                if (pod !== undefined && K.terminated(pod) === undefined) {
                  if (Date.now() - followedAt < 1000) yield* Effect.sleep("1 second")
                  yield* follow(pod.metadata!.name!)
                  break
                }
                if (pod !== undefined) {
                  // each try goes on from where the log was (a try cut short included)
                  const found = yield* patiently("readLog", Effect.suspend(() => {
                    const sinceTime = stamped.sinceTime()
                    stamped.resume()
                    return readLog(pod.metadata!.name!, sinceTime, (data) => onLines(lines.push(unstamped(data))))
                  }))
                  if (!found) logLost = GONE
                } else if (update.cut === true) logLost = GONE
              }
              yield* onLines(lines.end())
              logState = "ended"
              break
            }
            case "WatchDone":
              if (ended === undefined) {
                // Watches end (server timeouts, restarts): look again, then watch again.
                yield* Effect.sleep("200 millis")
                const job = yield* patiently("readJob", call("readJob", (o) => batch.readNamespacedJob({ name, namespace }, o))).pipe(
                  Effect.catchIf(isNotFound, () => Effect.succeed(undefined))
                )
                if (job === undefined) ended = {}
                else Queue.offerUnsafe(mailbox, { _tag: "Job", type: "MODIFIED", job })
                yield* startWatch(update.which)
              }
              break
          }
        }
      }).pipe(Effect.catch((e) => Queue.fail(queue, e))),
      // bounded: while the consumer is behind, the watch waits instead of reading more of the log
      { bufferSize: WATCH_BUFFER }
    )

  /**
   * A cancelled job's tombstone: once the Job is deleted, any controller that looks for it (a
   * restarted one, or another instance) learns it was cancelled rather than lost — or, with `failed`,
   * that its watch took it back stuck before it started, and why. Its labels are its own (and the
   * run's, when the ref knows it), so deleting tombstones by label touches nothing else. `of`: the Job (or its
   * pod) as read, whose run and node it keeps (as annotations, as the Job does), so that `list` shows the job once
   * its Job is gone.
   */
  const tombstoneOf = (ref: ExperimentNode.JobRef, failed?: string, of?: V1Job | V1Pod) => {
    const at = new Date().toISOString()
    stoned.add(ref.id)
    return writeRecord("createTombstone", tombstone(ref.id), ref, of !== undefined ? K.labelsOf(of) : undefined, failed !== undefined ? { failedAt: at, failed } : { cancelledAt: at })
  }

  /**
   * Write a ConfigMap `name` that records the end of the job `ref` (a tombstone, an end record): labelled with its own
   * label (`K.TOMBSTONE_LABEL`, the job's name) and its run's (`labels`, the job's as read, else the ref's), its run and
   * node as annotations when known (as the Job keeps them), so that `list` shows it and `kubectl delete configmap -l`
   * selects it. One there already (a request whose answer was lost) is it.
   */
  const writeRecord = (operation: string, name: string, ref: ExperimentNode.JobRef, labels: Backend.Labels | undefined, data: Record<string, string>) => {
    const run = labels !== undefined ? K.labelValue(labels.run) : ref.data["run"]
    return call(operation, (o) =>
      core.createNamespacedConfigMap({
        namespace,
        body: {
          metadata: {
            name,
            labels: { [K.TOMBSTONE_LABEL]: ref.id, ...(typeof run === "string" ? { [K.RUN_LABEL]: run } : {}) },
            annotations: { [KEEP_ANNOTATION]: String(name === tombstone(ref.id) ? tombstoneKeepMs : recordKeepMs), ...(labels !== undefined ? { [K.RUN_LABEL]: labels.run, [K.NODE_LABEL]: labels.node } : {}) }
          },
          data
        }
      }, o)).pipe(
        Effect.catchIf(isConflict, () => Effect.void),
        Effect.tap(() => Effect.sync(() => void held?.names.add(ref.id)))
      )
  }

  /** The own end a watch recorded of a job whose Job was deleted before its controller recorded it (see `endedRecord`), if any. */
  const endRecordOf = (name: string) =>
    call("readEndRecord", (o) => core.readNamespacedConfigMap({ name: endedRecord(name), namespace }, o)).pipe(
      Effect.map((c) => {
        const exit = K.recordedExit(c.data?.["exit"])
        return exit !== undefined ? { exit, result: c.data?.["result"] } : undefined
      }),
      Effect.catchIf(isNotFound, () => Effect.succeed(undefined)),
      // (one that may not be read reads as none: the tombstone decides)
      Effect.catchIf((e) => /HTTP 403/.test(e.message), () => Effect.succeed(undefined))
    )

  /**
   * Remove the tombstone a cancel wrote for a Job that then ended by itself: only a cancel's (`cancelledAt`), never a
   * withdrawal's (`failed`: why a stuck job was taken back), and only as read. A user who may not read or delete
   * ConfigMaps keeps it, with a warning (the cancel itself is done).
   */
  const removeCancelTombstone = (id: string) =>
    Effect.gen(function*() {
      const name = tombstone(id)
      const stone = yield* call("readTombstone", (o) => core.readNamespacedConfigMap({ name, namespace }, o))
      if (stone.data?.["cancelledAt"] === undefined || stone.data["failed"] !== undefined) return
      yield* call("deleteTombstone", (o) =>
        core.deleteNamespacedConfigMap({ name, namespace, body: { preconditions: { uid: stone.metadata!.uid!, resourceVersion: stone.metadata!.resourceVersion! } } }, o))
    }).pipe(
      Effect.catchIf((e) => isNotFound(e) || isConflict(e), () => Effect.void),
      Effect.catchIf((e) => /HTTP 403/.test(e.message), (e) =>
        Effect.logWarning(
          e.operation === "deleteTombstone"
            ? `kubernetes: Job ${id} ended by itself as it was cancelled, but its tombstone (ConfigMap ${tombstone(id)}) stays: ` +
              `the kubeconfig's user may not delete configmaps in namespace ${namespace} (${e.message}), so a controller that reads the Job ` +
              `once it is deleted (a resumed run) reads it as Cancelled. Grant delete on configmaps, or \`kubectl delete configmap -n ${namespace} ${tombstone(id)}\``
            : `kubernetes: Job ${id} ended by itself: whether a cancel's tombstone of it (ConfigMap ${tombstone(id)}) is left could not be looked at: ` +
              `the kubeconfig's user may not get configmaps in namespace ${namespace} (${e.message}); one left would make a controller that reads the Job ` +
              `once it is deleted read it as Cancelled. Grant get and delete on configmaps`
        ))
    )

  const deleteJob = (name: string) =>
    call("deleteJob", (o) => batch.deleteNamespacedJob({ name, namespace, propagationPolicy: "Foreground" }, o)).pipe(
      Effect.catchIf(isNotFound, () => Effect.void)
    )

  /**
   * The pods of a Job that is gone, by TREX's own job label: a Job deleted with `--cascade=orphan` leaves its pod
   * running, its owner gone. One that has not ended is cancelled: its tombstone first (a watch then reads the job as
   * cancelled, never as lost), then it is deleted. Ended ones are let be (their end is their own), and so is a job with
   * no pod left: no tombstone.
   */
  const stopOrphans = (ref: ExperimentNode.JobRef) =>
    Effect.gen(function*() {
      const pods = yield* call("listPods", (o) => core.listNamespacedPod({ namespace, labelSelector: `${K.JOB_LABEL}=${ref.id}` }, o))
      const live = pods.items.filter((p) => p.metadata?.labels?.[K.JOB_LABEL] === ref.id && K.podState(p) !== undefined)
      if (live.length === 0) return
      yield* tombstoneOf(ref, undefined, live[0])
      for (const pod of live) {
        yield* call("deletePod", (o) => core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace }, o)).pipe(Effect.catchIf(isNotFound, () => Effect.void))
      }
    })

  /**
   * Drop a queued submission whose Job cannot exist yet (no create of it was sent): its watch then
   * ends `Cancelled` without asking the server. `false` for any other (or one dropped already).
   */
  const dropUnsent = (name: string) => {
    const sub = queued.get(name)
    if (sub === undefined || sub.dropped || sub.sent) return false
    sub.dropped = true
    return true
  }

  /** A Job that ended by itself: its end recorded (`K.jobOutcome`), and not a failure for its deletion (a cancel's). */
  const endedByItself = (job: V1Job) => K.jobOutcome(job) !== undefined && !K.failedByDeletion(job)

  // The API server not answering, both wait for it (a stop ends the wait: the Job then runs on, and a
  // resumed run follows it).
  const cancel = Effect.fn("KubernetesBackend.cancel")(function*(ref: ExperimentNode.JobRef) {
    const patient = <A>(effect: Effect.Effect<A, Errors.BackendError>) => waitForServer(`cancelling Job ${ref.id}`, effect)
    const sub = queued.get(ref.id)
    if (sub !== undefined) {
      // its watch, still making its objects, makes no more of them; none asked for yet, nothing to delete
      sub.dropped = true
      if (!sub.sent) return
      // its create sent, perhaps not yet carried out: the Job may come after any read of it (its watch deletes it then too)
      return yield* patient(Effect.andThen(tombstoneOf(ref), deleteJob(ref.id)))
    }
    // A Job that has ended is let be, with no tombstone: a controller that reads it later (a resumed run) reads its own
    // end, not a cancel (one that is gone: its pods not ended, orphaned by `--cascade=orphan`, are stopped). One that has not gets its tombstone first (a Job that is gone then reads as
    // cancelled, never as lost), then is deleted as read (a precondition on its resourceVersion): one that changed since
    // (it ended, its pod started) is read again, and the tombstone of one that ended meanwhile goes. A container that
    // exits as it is cancelled, before the kubelet and the Job's controller have recorded it on the Job, is deleted with
    // its Job: its watch reads its own end from its pod when it came in an earlier second than the deletion (`ownExit`).
    let stone = false
    for (let attempt = 1; ; attempt++) {
      const job = yield* patient(call("readJob", (o) => batch.readNamespacedJob({ name: ref.id, namespace }, o))).pipe(
        Effect.catchIf(isNotFound, () => Effect.succeed(undefined))
      )
      if (job === undefined) return yield* patient(stopOrphans(ref))
      if (endedByItself(job)) {
        // (being deleted, a TTL's or another controller's cancel: its tombstone, if any, is that one's)
        if (stone && job.metadata?.deletionTimestamp == null) yield* patient(removeCancelTombstone(ref.id))
        return
      }
      yield* patient(tombstoneOf(ref, undefined, job))
      stone = true
      // Being deleted already (another controller's cancel, a TTL, `kubectl delete`): deleted again in the foreground all
      // the same, since a delete with `--cascade=orphan` would leave its pod running (the API server then swaps the
      // garbage collector's `orphan` finalizer for `foregroundDeletion`, which deletes the pod first)
      if (job.metadata?.deletionTimestamp != null) return yield* patient(deleteJob(ref.id))
      // (a Job that keeps changing, its pod's readiness say, is deleted as it is after a few tries)
      const asRead = attempt < CANCEL_AS_READ_TRIES
        ? { body: { preconditions: { resourceVersion: job.metadata!.resourceVersion!, uid: job.metadata!.uid! } } }
        : {}
      const deleted = yield* patient(call("deleteJob", (o) => batch.deleteNamespacedJob({ name: ref.id, namespace, propagationPolicy: "Foreground", ...asRead }, o))).pipe(
        Effect.as(true),
        // a conflict: it changed since it was read (or a delete whose answer was lost went through): read it again
        Effect.catchIf(isConflict, () => Effect.succeed(false)),
        Effect.catchIf(isNotFound, () => Effect.succeed(true))
      )
      if (deleted) return
    }
  })

  /**
   * Withdraw a job whose pod cannot have started: its controller has not created one (a quota
   * refuses it), no node has taken it yet (waiting for GPUs, CPUs, memory: `Unschedulable`), or its
   * container is stuck before it starts (its image cannot be pulled, its configuration is missing).
   * Each is deleted only as it was read (a precondition on its resourceVersion: a pod's binding or
   * start changes it, and so does the Job's count of active pods when its controller creates one),
   * and then the Job's tombstone is written. Any other pod bound to a node may be starting: let run.
   * A job still queued here, its Job not yet asked for, is dropped.
   */
  const withdraw = Effect.fn("KubernetesBackend.withdraw")(function*(ref: ExperimentNode.JobRef) {
    return yield* takeBack(ref)
  })

  /** {@link withdraw}, its tombstone saying `failed` when given (a job its watch found stuck). */
  const takeBack = Effect.fnUntraced(function*(ref: ExperimentNode.JobRef, failed?: string) {
    if (dropUnsent(ref.id)) return true
    if (queued.get(ref.id)?.dropped === true) return false
    const patient = <A>(effect: Effect.Effect<A, Errors.BackendError>) => waitForServer(`withdrawing Job ${ref.id}`, effect)
    /**
     * A delete as read: `false` when it changed since (a conflict) or went. After a delete whose
     * answer was lost, a conflict or "not found" may be that delete's own doing: `deleted` reads
     * whether the object is gone or being deleted.
     */
    const deleteAsRead = (operation: string, del: (o: ConfigurationOptions) => Promise<unknown>, deleted: Effect.Effect<boolean, Errors.BackendError>) => {
      let unanswered = false
      return patient(call(operation, del).pipe(Effect.tapError((e) => Effect.sync(() => void (unanswered ||= mayHaveBeenDone(e)))))).pipe(
        Effect.as(true),
        Effect.catchIf((e) => isConflict(e) || isNotFound(e), () => (unanswered ? patient(deleted) : Effect.succeed(false)))
      )
    }
    const goneOrGoing = (read: (o: ConfigurationOptions) => Promise<{ metadata?: { deletionTimestamp?: Date } }>) =>
      call("read", read).pipe(
        Effect.map((o) => o.metadata?.deletionTimestamp != null),
        Effect.catchIf(isNotFound, () => Effect.succeed(true))
      )
    const job = yield* patient(call("readJob", (o) => batch.readNamespacedJob({ name: ref.id, namespace }, o))).pipe(
      Effect.catchIf(isNotFound, () => Effect.succeed(undefined))
    )
    if (job === undefined || job.metadata?.deletionTimestamp != null || K.jobOutcome(job) !== undefined) return false
    const pod = yield* patient(podsOf(ref.id))
    // a suspended Job (a batch queue took it back) whose pod is being deleted has nothing running, and its controller
    // makes no other pod while it is suspended: it is taken back as one without a pod
    const idle = pod === undefined || (job.spec?.suspend === true && pod.metadata?.deletionTimestamp != null && pod.status?.phase !== "Succeeded")
    if (idle) {
      // No pod yet (read after the Job): the Job as read has none, so deleting it as read takes nothing that runs.
      // Its controller created a pod since (or it went): not now.
      const taken = yield* deleteAsRead("deleteJob", (o) =>
        batch.deleteNamespacedJob({
          name: ref.id,
          namespace,
          propagationPolicy: "Foreground",
          body: { preconditions: { resourceVersion: job.metadata!.resourceVersion!, uid: job.metadata!.uid! } }
        }, o), goneOrGoing((o) => batch.readNamespacedJob({ name: ref.id, namespace }, o)))
      if (taken) yield* patient(tombstoneOf(ref, failed, job))
      return taken
    }
    if (pod.metadata?.deletionTimestamp != null) return false
    const stuck = K.podState(pod)?.reason
    // (one its watch found stuck creating its container, a volume it cannot mount, is taken back as read too)
    const takeable = stuck !== undefined && (STUCK.has(stuck) || (failed !== undefined && stuck === "ContainerCreating"))
    if (pod.spec?.nodeName !== undefined && !takeable) return false
    // bound (or gone) since it was read: not now
    withdrawnPods.add(ref.id)
    // The Job's controller fails the Job for the deleted pod: the Job is marked first, so that another controller
    // (a resumed run) that reads it before it is deleted learns that the failure is the withdrawal's. A user who may
    // not patch Jobs withdraws without the mark.
    const withdrawal: K.Withdrawal = { pod: pod.metadata!.uid!, at: new Date().toISOString(), ...(failed !== undefined ? { failed } : {}) }
    const marked = yield* patient(call("markJob", (o) =>
      batch.patchNamespacedJob({ name: ref.id, namespace, body: [{ op: "add", path: MARK_PATH, value: JSON.stringify(withdrawal) }] }, o))).pipe(
        Effect.as(true),
        Effect.catch(() => Effect.succeed(false))
      )
    const taken = yield* deleteAsRead("deletePod", (o) =>
      core.deleteNamespacedPod({
        name: pod.metadata!.name!,
        namespace,
        gracePeriodSeconds: 0,
        body: { preconditions: { resourceVersion: pod.metadata!.resourceVersion!, uid: pod.metadata!.uid! } }
      }, o), goneOrGoing((o) => core.readNamespacedPod({ name: pod.metadata!.name!, namespace }, o))).pipe(
        Effect.tapError((e) =>
          Effect.andThen(
            Effect.sync(() => void withdrawnPods.delete(ref.id)),
            // refused (RBAC, an admission webhook): nothing was deleted, and the mark goes with the withdraw (one left
            // otherwise is settled by the next watch that begins; see `settleMark`)
            marked && /HTTP 4\d\d/.test(e.message)
              ? Effect.ignore(call("unmarkJob", (o) => batch.patchNamespacedJob({ name: ref.id, namespace, body: [{ op: "remove", path: MARK_PATH }] }, o)))
              : Effect.void
          )
        )
      )
    if (!taken) {
      withdrawnPods.delete(ref.id)
      // it moved on (bound, started) or went: its end is its own
      if (marked) yield* Effect.ignore(patient(call("unmarkJob", (o) => batch.patchNamespacedJob({ name: ref.id, namespace, body: [{ op: "remove", path: MARK_PATH }] }, o))))
    }
    // the Job at once, then the tombstone (its controller fails it for the deleted pod meanwhile)
    if (taken) yield* patient(Effect.andThen(deleteJob(ref.id), tombstoneOf(ref, failed, job)))
    return taken
  })

  const list = Effect.fn("KubernetesBackend.list")(function*(run: string) {
    const selector = `${K.RUN_LABEL}=${K.labelValue(run)}`
    const { jobs, pods, stones } = yield* waitForServer(
      `listing the Jobs of run ${run}`,
      Effect.all({
        jobs: call("listJobs", (o) => batch.listNamespacedJob({ namespace, labelSelector: selector }, o)),
        pods: call("listPods", (o) => core.listNamespacedPod({ namespace, labelSelector: selector }, o)),
        // (a user who may not list ConfigMaps lists the jobs whose Jobs are there)
        stones: call("listTombstones", (o) => core.listNamespacedConfigMap({ namespace, labelSelector: `${selector},${K.TOMBSTONE_LABEL}` }, o)).pipe(
          Effect.map((l) => l.items),
          Effect.catchIf((e) => /HTTP 403/.test(e.message), () => Effect.succeed([]))
        )
      })
    )
    const out = new Map<string, Backend.JobInfo>()
    for (const job of jobs.items) {
      const labels = K.labelsOf(job)
      const name = job.metadata?.name
      if (labels === undefined || labels.run !== run || name === undefined) continue
      const finished = K.jobOutcome(job) !== undefined || job.metadata?.deletionTimestamp != null
      // (a suspended Job's pod being deleted runs no more: the job waits in its queue)
      const running = job.spec?.suspend !== true && pods.items.some((p) => p.metadata?.labels?.[K.JOB_LABEL] === name && K.podState(p)?.state === "Running")
      const gpus = Number(job.spec?.template.spec?.containers[0]?.resources?.limits?.[gpuResource] ?? 0)
      out.set(name, { ref: { backend: NAME, id: name, data: { namespace, gpus, run: K.labelValue(run) } }, labels, state: finished ? "Finished" : running ? "Running" : "Pending" })
    }
    // queued here, their Jobs not made yet
    for (const [name, sub] of queued) {
      if (!sub.dropped && sub.labels.run === run && !out.has(name)) {
        out.set(name, { ref: { backend: NAME, id: name, data: { namespace, gpus: sub.gpus, run: K.labelValue(run), queued: true } }, labels: sub.labels, state: "Pending" })
      }
    }
    for (const [name, k] of known) {
      if (k.labels.run === run && !out.has(name)) out.set(name, { ref: { backend: NAME, id: name, data: { namespace, run: K.labelValue(run) } }, labels: k.labels, state: "Finished" })
    }
    // ended, their Jobs gone: a watch reads each from its record (`endedRecord`: its own end as its cancel came) or a
    // failure's tombstone (taken back stuck, deleted by Kueue), so it is listed finished too (one written before
    // tombstones kept the job's run and node is not). Never by a cancel's or a withdrawal's tombstone: that is no end
    // of the job, and an executor would count it as an attempt used, or adopt its `Cancelled` as the trial's end.
    for (const stone of stones) {
      const name = stone.metadata?.labels?.[K.TOMBSTONE_LABEL]
      const labels = K.labelsOf(stone)
      const ends = stone.data?.["failed"] !== undefined || (name !== undefined && stone.metadata?.name === endedRecord(name))
      if (name !== undefined && ends && labels?.run === run && !out.has(name)) {
        out.set(name, { ref: { backend: NAME, id: name, data: { namespace, run: K.labelValue(run) } }, labels, state: "Finished" })
      }
    }
    return [...out.values()]
  })

  const capacity = Effect.gen(function*() {
    const nodes = yield* call("listNodes", (o) => core.listNode({}, o))
    const selector = Object.entries(config.nodeSelector ?? {})
    const matching = nodes.items.filter((n) => selector.every(([k, v]) => n.metadata?.labels?.[k] === v) && n.spec?.unschedulable !== true)
    const cpus = matching.reduce((a, n) => a + K.parseCpu(n.status?.allocatable?.cpu), 0)
    const gpus = matching.reduce((a, n) => a + Number(n.status?.allocatable?.[gpuResource] ?? 0), 0)
    const pods = yield* call("listPods", (o) => core.listNamespacedPod({ namespace, labelSelector: K.JOB_LABEL }, o))
    const inUse = pods.items.filter((p) => K.podState(p)?.state === "Running").length
    return { slots: config.slots ?? Math.max(1, Math.floor(cpus)), gpus, inUse } satisfies Backend.Capacity
  }).pipe(Effect.withSpan("KubernetesBackend.capacity"))

  /**
   * What would stop a trial's Job here, asked of the API server without making anything (so also with
   * `trex check`): whether the kubeconfig's user may do what the backend does (SelfSubjectAccessReviews,
   * as `kubectl auth can-i`); a server-side dry run of the Job (the namespace, validation, quotas on
   * objects, admission webhooks) and, when the user may create pods, of the pod its controller would
   * make (the service account, quotas on pods and their resources, LimitRanges, Pod Security); the
   * image pull secrets; and whether any node could ever take the pod (its nodeSelector, taints, and
   * the allocatable CPUs, memory and GPUs of each node).
   */
  const preflight = Effect.fn("KubernetesBackend.preflight")(function*(spec: Backend.JobSpec) {
    const concerns: Array<Backend.Concern> = []
    const fail = (message: string) => void concerns.push({ severity: "fail", message })
    const warn = (message: string) => void concerns.push({ severity: "warn", message })
    const made = yield* Effect.result(manifestsOf("preflight", spec, K.jobName(spec.labels.node, "check")))
    if (made._tag === "Failure") return [{ severity: "fail", message: made.failure.message }] satisfies Array<Backend.Concern>
    const m = made.success
    /** A request the server answered with a refusal, as a failure; one it did not answer fails the preflight (`trex check`: the backend does not answer). */
    const answered = <A>(effect: Effect.Effect<A, Errors.BackendError>) =>
      Effect.result(effect).pipe(Effect.flatMap((r) => r._tag === "Failure" && r.failure.retryable ? r.failure : Effect.succeed(r)))
    const refusal = (e: Errors.BackendError) => e.message.replace(/^\w+: (HTTP \d+: )?/, "")
    const where = `namespace ${namespace} of ${server}`

    // may the kubeconfig's user do what trials need?
    const hasSecrets = Object.values(spec.env).some((v) => typeof v !== "string")
    const asked = PERMISSIONS.filter((p) => (p.secrets !== true || hasSecrets) && (p.queue !== true || config.labels?.[K.KUEUE_QUEUE_LABEL] !== undefined))
    const can = (p: Permission) =>
      call("accessReview", (o) =>
        authz.createSelfSubjectAccessReview({
          body: {
            spec: {
              resourceAttributes: {
                ...(p.cluster === true ? {} : { namespace }),
                verb: p.verb,
                group: p.group,
                resource: p.resource,
                ...(p.subresource !== undefined ? { subresource: p.subresource } : {})
              }
            }
          }
        }, o)).pipe(Effect.map((r) => r.status?.allowed === true))
    const reviews = yield* answered(Effect.forEach([...asked, { verb: "create", group: "", resource: "pods" } as const], can, { concurrency: 4 }))
    // not known (the server did not say): every check is tried, and a refusal then says what is missing
    let allowed = (_: Permission) => true
    let podsAllowed = true
    if (reviews._tag === "Failure") {
      warn(`the API server did not say what the kubeconfig's user may do (a SelfSubjectAccessReview: ${refusal(reviews.failure)}); trials need ${asked.map(permissionName).join(", ")} in ${where}`)
    } else {
      const answers = new Map(asked.map((p, i) => [p, reviews.success[i]!]))
      allowed = (p) => answers.get(p) !== false
      // not needed by trials (the Job's controller makes their pods): only whether the pod can be dry-run
      podsAllowed = reviews.success.at(-1) === true
      const missing = asked.filter((p) => !allowed(p))
      const needed = missing.filter((p) => p.without === undefined)
      if (needed.length > 0) {
        fail(`the kubeconfig's user may not ${needed.map(permissionName).join(", ")} in ${where}, which trials need: grant them with a Role and a RoleBinding (docs/backends.md, Kubernetes, RBAC)`)
      }
      for (const p of missing.filter((p) => p.without !== undefined)) warn(`the kubeconfig's user may not ${permissionName(p)}${p.cluster === true ? " (cluster-scoped)" : ` in ${where}`}: ${p.without}`)
    }
    const may = (verb: string, resource: string) => allowed(PERMISSIONS.find((p) => p.verb === verb && p.resource === resource && p.subresource === undefined)!)

    // a dry run of the Job: the namespace, validation, quotas on objects, admission webhooks
    if (may("create", "jobs")) {
      const job = yield* answered(call("createJob", (o) => batch.createNamespacedJob({ namespace, body: m.job, dryRun: "All" }, o)))
      if (job._tag === "Failure") {
        fail(
          /HTTP 404: namespaces "/.test(job.failure.message)
            ? `there is no namespace ${namespace} on ${server} (backend.k8s.namespace): create it (\`kubectl create namespace ${namespace}\`) or name another`
            : `the API server refuses a trial's Job (a dry run): ${refusal(job.failure)}`
        )
      }
    }
    // a dry run of the pod the Job's controller would make: the service account, quotas on pods and their resources
    if (podsAllowed) {
      const template = m.job.spec!.template
      const pod = yield* answered(call("createPod", (o) =>
        core.createNamespacedPod({
          namespace,
          body: { apiVersion: "v1", kind: "Pod", metadata: { ...template.metadata, name: `${m.job.metadata!.name}-pod`, namespace }, spec: template.spec! },
          dryRun: "All"
        }, o)))
      if (pod._tag === "Failure") {
        const why = refusal(pod.failure)
        // read as a run's watch reads its Job controller's refusal (K.refusalLasts)
        const kind = K.refusalKind(why)
        if (/HTTP 404: namespaces "/.test(pod.failure.message) || /cannot create resource "pods"/.test(why)) {
          // said of the Job already; or pods may not be dry-run by this user (its Job's controller makes them)
        } else if (/error looking up service account/.test(why)) {
          fail(`the service account ${config.serviceAccountName ?? "default"} (backend.k8s.serviceAccountName) is not in ${where}: the Job's controller could not make its pod (${why})`)
        } else if (kind.kind === "quotaAlone") {
          fail(`a quota of ${where} is below what one trial's pod asks (${kind.over.join(", ")}): it would never run; lower recipe.resources, or raise the quota (${why})`)
        } else if (kind.kind === "quotaFull") {
          warn(`a quota of ${where} refuses a trial's pod now (${why}): trials wait Pending until what runs there ends`)
        } else {
          fail(`the API server would refuse a trial's pod (a dry run): ${why}`)
        }
      }
    } else if (config.serviceAccountName !== undefined) {
      // no dry run of the pod: its service account looked for, where the user may read it
      const account = yield* answered(call("readServiceAccount", (o) => core.readNamespacedServiceAccount({ name: config.serviceAccountName!, namespace }, o)))
      if (account._tag === "Failure" && isNotFound(account.failure)) {
        fail(`the service account ${config.serviceAccountName} (backend.k8s.serviceAccountName) is not in ${where}: the Job's controller could not make its pod`)
      }
    }
    // image pull secrets
    if (may("get", "secrets")) {
      for (const secret of config.imagePullSecrets ?? []) {
        const found = yield* answered(call("readSecret", (o) => core.readNamespacedSecret({ name: secret, namespace }, o)))
        if (found._tag === "Failure" && isNotFound(found.failure)) {
          warn(`the image pull secret ${secret} (backend.k8s.imagePullSecrets) is not in ${where}: an image of a private registry would not be pulled`)
        }
      }
    }
    // /dev/shm in memory counts toward the container's memory limit
    if (config.shmSizeMb !== undefined && spec.resources.memoryMb !== undefined && config.shmSizeMb >= spec.resources.memoryMb) {
      warn(
        `backend.k8s.shmSizeMb (${config.shmSizeMb} MB) is not below the memory a trial asks (recipe.resources.memoryMb: ${spec.resources.memoryMb} MB): ` +
          `what a job writes to /dev/shm counts toward its memory limit, so it would be OOMKilled before /dev/shm is full; lower shmSizeMb, or ask for more memory`
      )
    }
    // the PersistentVolumeClaims trials mount: there, and able to be mounted by trials at once
    const claims = [
      ...(config.jobDirClaim !== undefined ? [{ name: config.jobDirClaim, field: "backend.k8s.jobDirClaim", readOnly: false }] : []),
      ...(config.mounts ?? []).flatMap((mount, i) => (mount.claim !== undefined ? [{ name: mount.claim, field: `backend.k8s.mounts[${i}].claim`, readOnly: mount.readOnly === true }] : []))
    ]
    for (const claim of claims) {
      const found = yield* answered(call("readPersistentVolumeClaim", (o) => core.readNamespacedPersistentVolumeClaim({ name: claim.name, namespace }, o)))
      if (found._tag === "Failure") {
        if (isNotFound(found.failure)) {
          fail(`the PersistentVolumeClaim ${claim.name} (${claim.field}) is not in ${where}: a trial's pod would wait Pending (Unschedulable) until stuckAfterMs; create it (\`kubectl apply -n ${namespace} -f pvc.yaml\`) or name one that is there (\`kubectl get pvc -n ${namespace}\`)`)
        } else {
          warn(`the PersistentVolumeClaim ${claim.name} (${claim.field}) was not looked at: ${refusal(found.failure)}`)
        }
        continue
      }
      const modes = found.success.status?.accessModes ?? found.success.spec?.accessModes ?? []
      if (modes.length === 0 || modes.includes("ReadWriteMany")) continue
      if (modes.includes("ReadOnlyMany") && !modes.includes("ReadWriteOnce") && !modes.includes("ReadWriteOncePod")) {
        if (!claim.readOnly) warn(`the PersistentVolumeClaim ${claim.name} (${claim.field}) is ReadOnlyMany: a trial cannot write there; mount it readOnly, or use a ReadWriteMany claim`)
      } else if (modes.includes("ReadWriteOncePod")) {
        warn(`the PersistentVolumeClaim ${claim.name} (${claim.field}) is ReadWriteOncePod: one pod at a time may mount it, so trials run one at a time, the others Pending; use a ReadWriteMany claim (NFS, CephFS, a cloud file store) for trials at once`)
      } else if (!modes.includes("ReadOnlyMany") || !claim.readOnly) {
        warn(`the PersistentVolumeClaim ${claim.name} (${claim.field}) is ReadWriteOnce: pods on one node at a time may mount it, so trials placed on other nodes wait (Multi-Attach) until it is free; use a ReadWriteMany claim (NFS, CephFS, a cloud file store), or a nodeSelector that keeps trials on one node`)
      }
    }
    // a node that could ever take the pod
    if (may("list", "nodes")) {
      const nodes = yield* answered(call("listNodes", (o) => core.listNode({}, o)))
      if (nodes._tag === "Success") {
        const why = K.unplaceable(nodes.success.items, m.job.spec!.template.spec!)
        if (why !== undefined) fail(`no node of ${server} could take a trial's pod, which would wait Pending (Unschedulable) for ever: ${why}`)
      }
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
 * The `backend.k8s` section of a task file: {@link Config} plus where the cluster is — a kubeconfig
 * file (`kubeconfig`, default as kubectl finds it) and a `context` in it. Credentials stay in the kubeconfig.
 * @since 0.1.0 @category schemas
 */
export const ConfigJson = Schema.Struct({
  kubeconfig: optional(Str),
  context: optional(Str),
  namespace: optional(Str),
  image: optional(Str),
  gpuResource: optional(Str),
  nodeSelector: optional(Schema.Record(Str, Str)),
  tolerations: optional(Schema.Array(Schema.Struct({
    key: optional(Str),
    operator: optional(Schema.Literals(["Exists", "Equal"])),
    value: optional(Str),
    effect: optional(Schema.Literals(["NoSchedule", "PreferNoSchedule", "NoExecute"])),
    tolerationSeconds: optional(Schema.Int)
  }))),
  serviceAccountName: optional(Str),
  imagePullSecrets: optional(Schema.Array(Str)),
  jobDir: optional(Str),
  ttlSecondsAfterFinished: optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  slots: optional(Schema.Int.check(Schema.isGreaterThan(0))),
  logGraceMs: optional(Schema.Finite.check(Schema.isGreaterThan(0))),
  apiWaitMs: optional(Schema.Finite.check(Schema.isGreaterThan(0))),
  requestTimeoutMs: optional(Schema.Finite.check(Schema.isGreaterThan(0))),
  stuckAfterMs: optional(Schema.Finite.check(Schema.isGreaterThan(0))),
  mounts: optional(Schema.Array(Schema.Struct({
    target: Str,
    claim: optional(Str),
    hostPath: optional(Str),
    nfs: optional(Schema.Struct({ server: Str, path: Str })),
    subPath: optional(Str),
    readOnly: optional(Schema.Boolean)
  }))),
  jobDirClaim: optional(Str),
  shmSizeMb: optional(Schema.Finite.check(Schema.isGreaterThan(0))),
  labels: optional(Schema.Record(Str, Str)),
  annotations: optional(Schema.Record(Str, Str)),
  priorityClassName: optional(Str)
})

/**
 * Decode a task file's `backend.k8s` section into a {@link Config}, loading the kubeconfig.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { KubernetesBackend } from "@trex/executors"
 * const layer = Effect.map(KubernetesBackend.fromJson({ context: "gpu-cluster", namespace: "ml", image: "python:3.12" }), KubernetesBackend.layer)
 * ```
 * @since 0.1.0 @category constructors
 */
export const fromJson = Effect.fn("KubernetesBackend.fromJson")(function*(input: unknown) {
  const invalid = (message: string) => new Errors.InvalidInput({ source: "backend.k8s", message })
  const { kubeconfig, context, ...config } = yield* Schema.decodeUnknownEffect(ConfigJson)(input, { errors: "all", onExcessProperty: "error" }).pipe(
    Effect.mapError((e) => invalid(`invalid backend.k8s settings:\n${TaskFile.formatIssues(e, ConfigJson.ast).replace(/^ {2}/gm, "  backend.k8s.")}`))
  )
  const badSettings = [...K.volumeProblems({ ...config, jobDir: config.jobDir ?? "/trex/job", specDir: SPEC_DIR }), ...K.metadataProblems(config)]
  if (badSettings.length > 0) return yield* invalid(`invalid backend.k8s settings:\n${badSettings.map((p) => `  ${p}`).join("\n")}`)
  const { KubeConfig } = yield* Clients.kubernetes
  const kubeConfig = yield* Effect.try({
    try: () => {
      const kc = new KubeConfig()
      if (kubeconfig !== undefined) kc.loadFromFile(kubeconfig)
      else kc.loadFromDefault()
      if (context !== undefined) kc.setCurrentContext(context)
      return kc
    },
    catch: (e) => invalid(`cannot load the kubeconfig${kubeconfig !== undefined ? ` ${kubeconfig}` : ""}: ${e instanceof Error ? e.message : String(e)}`)
  })
  // the client would throw "No active cluster!" only once the backend starts
  if (context !== undefined && kubeConfig.getContextObject(context) === null) {
    const known = kubeConfig.getContexts().map((c) => c.name)
    return yield* invalid(
      `backend.k8s.context: ${context} is not a context of the kubeconfig${kubeconfig !== undefined ? ` ${kubeconfig}` : " ($KUBECONFIG, else ~/.kube/config)"}` +
        ` (its contexts: ${known.length > 0 ? known.join(", ") : "none"})`
    )
  }
  const out: Config = { ...config, kubeConfig }
  return out
})

