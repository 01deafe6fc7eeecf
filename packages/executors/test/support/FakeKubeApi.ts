// A stand-in for the Kubernetes API server, for the subset the KubernetesBackend uses. No API server can
// run on these machines, so this is a local HTTP server (127.0.0.1, random port, bearer token) that speaks the
// real wire format to the real @kubernetes/client-node: create/get/list/delete of batch/v1 Jobs, ConfigMaps,
// Secrets and Pods, label and field selectors, watch streams (`?watch=true`, newline-delimited JSON events,
// replay from `resourceVersion`; `watchError` ends them with an in-stream ERROR event), pod logs (`follow`, `timestamps`,
// `sinceTime` in whole seconds, as the kubelet serves them: the current log file alone, which it rotates past
// `containerLogMaxBytes`, 10 MiB by default; a line longer than 16 KiB in partial messages, each with its timestamp, or cut
// at each `pipeReadChars` of output as a runtime that writes what each read of the pipe gave does;
// `endLogs` ends followed ones cleanly, as a kubelet restart does), nodes, the eviction API (a `DisruptionTarget`, then
// the pod's deletion), and JSON patches of an object's labels and annotations. It also plays the controllers:
// - job controller (as Kubernetes 1.31 and later): one Pod per attempt (`backoffLimit`); a pod deleted before it
//   succeeded counts as failed (the real one's `isPodFailed`, through the `batch.kubernetes.io/job-tracking` finalizer),
//   so no pod replaces a deleted one past the limit; the end first as an interim condition (`FailureTarget` with
//   BackoffLimitExceeded, or DeadlineExceeded from `activeDeadlineSeconds` counted from its start, not while it is
//   suspended, its pods then deleted; `SuccessCriteriaMet`),
//   then `Failed` / `Complete` once none of its pods is terminating; evaluated while the Job is being deleted too;
//   a suspended Job's active pods deleted, their tracking finalizer taken off first so that they are not counted failed
//   (`manageJob` and `deleteJobPods`), a `Suspended` condition (`JobSuspended`, then `JobResumed`, `startTime` reset) and
//   its `Suspended` / `Resumed` Events, a new pod once it is resumed (a terminating one is not active);
//   `ttlSecondsAfterFinished`;
// - scheduler: node selectors, NoSchedule taints vs tolerations, cpu / memory / extended-resource requests
//   against node allocatable (PodScheduled=False, reason Unschedulable, when nothing fits);
// - kubelet: a Pod waits (ContainerCreating / CreateContainerConfigError) until its ConfigMap volume and
//   secretKeyRef Secrets exist, fails to pull images named in `unpullable` (ErrImagePull -> ImagePullBackOff),
//   then runs the container's command + args as a local process (the image is ignored), with volumes as
//   directories under a per-pod temporary root: a mountPath that starts an env value, an arg or workingDir is
//   rewritten to that directory. stdout and stderr go to the pod log; a memory limit is enforced by polling the
//   process group's RSS (SIGKILL, reason OOMKilled, exit 137); deletion (`deletionTimestamp` when its grace period
//   ends, `deletionGracePeriodSeconds`) sends SIGTERM, then SIGKILL after the grace period;
// - garbage collector: Foreground / Background / Orphan propagation over ownerReferences (`holdOrphan`: a Job held
//   with the `orphan` finalizer, which a Foreground delete swaps for `foregroundDeletion`);
// - a ResourceQuota on the number of pods (`podQuota`, changeable with `setPodQuota`): a Job's pod that would
//   exceed it is not created, and the job controller records a `FailedCreate` Event on the Job (core/v1 Events,
//   list with field selectors on `involvedObject.*`), then tries again every half second, as the real one does
//   (with backoff) until the quota allows it.
// - admission and authorization: namespaces that exist (`namespaces`: a create elsewhere is 404 `namespaces "x"
//   not found`), service accounts (`serviceAccounts`: a pod naming another is refused, its Job's controller records
//   why), RBAC denials (`denied`: `create pods`, `list events`... answered 403 Forbidden in the API server's words,
//   and by SelfSubjectAccessReviews), and server-side dry runs (`?dryRun=All`: a create validated and admitted,
//   quota and service account included, and not stored).
// - PriorityClasses (`priorityClasses`: a pod naming another is refused, as the Priority admission plugin does), and
//   a batch queue's hold (`suspendJobs`: Jobs are made suspended, as Kueue's webhook makes those naming its queue, and
//   get a pod once `admit` lets them go; `suspend` stops a running one as Kueue's preemption does, its `Stopped` Event):
//   with it, Kueue's Workloads (`kueue.x-k8s.io/v1beta1`, one a Job, labelled `kueue.x-k8s.io/job-uid`; 404 without it, as
//   where Kueue is not installed) and their deactivation (`deactivate`: `spec.active` false, `Evicted`, the Job stopped),
//   the Job deleted by Kueue's retention of a workload it deactivated (`afterDeactivatedByKueueMs`, its `Deleted` Event);
//   a Job's `spec.suspend` patched by a person (`kubectl patch job`), its controller deleting or making its pod;
// - volumes: PersistentVolumeClaims (`claims`, in every namespace; `GET .../persistentvolumeclaims/<name>`); a pod
//   that names one that is not there is Unschedulable (`persistentvolumeclaim "x" not found`), as the real scheduler
//   says; an NFS server of `unmountable` leaves a pod `ContainerCreating` with the kubelet's `FailedMount` Event; a claim's mounts are one directory for every pod (`claimDir`), at the mount's `subPath`, which the kubelet
//   makes, so what one pod leaves there the next one reads; a `hostPath` is the path itself; `nfs` a directory per
//   server and path; an `emptyDir` (and a ConfigMap) one per pod.
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { KubeConfig } from "@kubernetes/client-node"

type Obj = {
  apiVersion?: string
  kind?: string
  metadata: {
    name: string
    namespace?: string
    uid?: string
    resourceVersion?: string
    creationTimestamp?: string
    deletionTimestamp?: string
    deletionGracePeriodSeconds?: number
    labels?: Record<string, string>
    annotations?: Record<string, string>
    ownerReferences?: Array<{ apiVersion?: string; uid: string; kind: string; name: string; controller?: boolean }>
    finalizers?: Array<string>
  }
  [k: string]: any
}
type Kind = "jobs" | "pods" | "configmaps" | "secrets" | "events" | "workloads"

/** A node of the fake cluster. */
export interface FakeNode {
  readonly name: string
  readonly labels?: Record<string, string>
  readonly cpu: string
  readonly memoryMi: number
  readonly extended?: Record<string, number>
  readonly taints?: Array<{ key: string; value?: string; effect: string }>
}

export interface FakeKubeOptions {
  readonly nodes?: ReadonlyArray<FakeNode>
  /** Images that cannot be pulled (an `ErrImagePull`, then `ImagePullBackOff`, each with the kubelet's Event on the pod). */
  readonly unpullable?: ReadonlyArray<string>
  /** Images whose pull takes this long (ms, `ContainerCreating` meanwhile), as a big one's does; then pulled, or not (`unpullable`). */
  readonly slowPulls?: Readonly<Record<string, number>>
  /** Grace period between SIGTERM and SIGKILL when a pod is deleted (default 2 s). */
  readonly gracePeriodMs?: number
  /** A ResourceQuota `pods` in every namespace: at most this many pods not yet Succeeded or Failed. */
  readonly podQuota?: number
  /** The namespaces that exist (default: any). A create in another is answered 404 `namespaces "x" not found`. */
  readonly namespaces?: ReadonlyArray<string>
  /** The service accounts of every namespace (default `default`); a pod naming another is refused, as the API server's admission does. */
  readonly serviceAccounts?: ReadonlyArray<string>
  /**
   * What the kubeconfig's user may not do, each `verb resource` (`create pods`, `get pods/log`, `list events`,
   * `list nodes`, `delete jobs`): such requests are answered 403 Forbidden, and SelfSubjectAccessReviews say so.
   */
  readonly denied?: ReadonlyArray<string>
  /** The cluster's PriorityClasses (default: any); a pod naming another is refused, as the API server's admission does. */
  readonly priorityClasses?: ReadonlyArray<string>
  /**
   * Jobs are made suspended (`spec.suspend: true`), as a batch queue's webhook (Kueue's) makes those that name
   * its queue, and get no pod until `admit` lets them go, as the queue does when its quota has room. Kueue is then
   * installed: each Job gets a Workload (`kueue.x-k8s.io/v1beta1`, labelled with the Job's uid), which `deactivate` sets inactive.
   */
  readonly suspendJobs?: boolean
  /**
   * With `suspendJobs`: Kueue admits and starts each Job as it is made, before the Job's controller first syncs it, so
   * that controller never sees it suspended (no `Suspended` condition or Event, and so no `Resumed` either).
   */
  readonly admitAtCreate?: boolean
  /** With `suspendJobs`: how long Kueue takes to undo a person's suspension of a Job whose Workload it admits (default 1 s). */
  readonly kueueResumeMs?: number
  /**
   * Kueue's `objectRetentionPolicies.workloads.afterDeactivatedByKueue` (with `suspendJobs`): this long after a workload
   * Kueue itself deactivated (its `Evicted` reason `DeactivatedDueTo...`, not a user's `spec.active: false`) is still
   * inactive, Kueue deletes its Job (`handleWorkloadAfterDeactivatedPolicy` in its jobframework reconciler: propagation
   * `Background`, a Normal `Deleted` Event on the Job, `Deleted job: deactivation retention period expired`), and the
   * Workload, owned by the Job, goes with it.
   */
  readonly afterDeactivatedByKueueMs?: number
  /** NFS servers that do not answer: a pod mounting one waits `ContainerCreating`, the kubelet recording `FailedMount` on it. */
  readonly unmountable?: ReadonlyArray<string>
  /** The PersistentVolumeClaims of every namespace, and their access modes (default `ReadWriteMany`). */
  readonly claims?: ReadonlyArray<{ readonly name: string; readonly accessModes?: ReadonlyArray<string> }>
  /**
   * The kubelet's `containerLogMaxSize` (default 10 MiB): a container's log file over it is rotated, and a log
   * request then serves the new file alone (a followed log goes on into it).
   */
  readonly containerLogMaxBytes?: number
  /**
   * A runtime that writes what one read of a container's pipe gave as a log message, a partial one when it does not end
   * a line (CRI-O's conmon, whose reads take up to 8 KiB): here as if every read were full, the output backed up in the
   * pipe, so a line is cut at each multiple of this many characters of the container's output. Default: none (a line is
   * cut only past 16 KiB, as containerd does).
   */
  readonly pipeReadChars?: number
  /**
   * The API server's clock (epoch ms; default `Date.now`), which stamps what it and its controllers write: objects'
   * `creationTimestamp`s, conditions' `lastTransitionTime`s, Events' times, containers' `startedAt` and `finishedAt`,
   * deletions' `deletionTimestamp`s. A test that needs two writes stamped in one second holds it (the containers' log
   * lines keep the real clock).
   */
  readonly clock?: () => number
  /**
   * How far the nodes' clocks run from the API server's (`clock`), in ms (negative: behind): the kubelet stamps its
   * containers' `startedAt` and `finishedAt` by its node's clock, everything else by the API server's.
   */
  readonly kubeletClockSkewMs?: number
}

/** How the API server fails during an outage: see `FakeKubeApi.outage`. */
export type OutageMode = "reset" | "refused" | "hang"

export interface FakeKubeApi {
  readonly url: string
  readonly token: string
  readonly kubeConfig: () => KubeConfig
  /** Every request, as `METHOD path?query`. */
  readonly requests: Array<string>
  /** Objects as stored (for assertions): `get("secrets", ns, name)`. */
  readonly get: (kind: Kind, namespace: string, name: string) => Obj | undefined
  /** Objects of a kind in a namespace, in creation order. */
  readonly list: (kind: Kind, namespace: string) => ReadonlyArray<Obj>
  /** While on, every pod log request answers 404, as the API server does for a pod deleted between a
   * client's listing of it and its reading of the log (foreground deletion, the TTL controller). */
  readonly logsGone: (on: boolean) => void
  /**
   * End every followed pod log cleanly (a complete HTTP answer), the pods running on: what the real API server
   * sends when its stream from the kubelet breaks (a kubelet restart, the node's connection lost), as its
   * `StreamObject` copies the kubelet's stream into the answer and ends it however that copy ends. The client
   * cannot tell it from the end of the container's log.
   */
  readonly endLogs: () => void
  /**
   * Every followed pod log gets nothing more and no end, the pods running on: a connection that died without a
   * word (a load balancer before the API server dropping it idle, a NAT's state gone), which the client cannot see.
   */
  readonly stallLogs: () => void
  /**
   * Every open watch gets an `ERROR` event (a Status `410 Expired`, `too old resource version`), then ends: how the real
   * API server tells a watcher in the stream itself that it cannot go on (the watch cache's history passed it by; an
   * internal error is an `ERROR` event too), a watch's answer having begun `200 OK`.
   */
  readonly watchError: () => void
  /** Change (or, with undefined, lift) the pod quota; Jobs refused a pod get one at once if it now allows. */
  readonly setPodQuota: (quota: number | undefined) => void
  /**
   * An outage of the API server (a control-plane upgrade, a restart): every open connection (watches,
   * log streams) is cut, and while it lasts every request's connection is reset (`mode` `reset`, the
   * default), refused (`refused`: nothing listens on the port, as when the server process is stopped),
   * or taken and never answered (`hang`: a server that is frozen or overloaded, or a route that drops
   * the answers; such requests are reset when the outage ends, as a restarted server's would be).
   * Pods run on, as they do under kubelet.
   */
  readonly outage: (on: boolean, mode?: OutageMode) => void
  /**
   * The next create (or, with `method` `DELETE`, delete) of `kind` is carried out but its answer is
   * lost (the connection is cut); with `outage`, an outage (see `outage`) begins right then.
   */
  readonly loseAnswer: (kind: Kind, outage?: boolean, method?: "POST" | "DELETE") => void
  /** The next delete of `kind` is carried out only once `until` resolves (a request that reaches the server late). */
  readonly delayDelete: (kind: Kind, until: () => Promise<void>) => void
  /**
   * The next delete of a Job with the Orphan policy (`kubectl delete --cascade=orphan`) holds the Job, being deleted
   * with the `orphan` finalizer, until `until` resolves: then its pods are orphaned (they run on) and it goes, as the
   * garbage collector does. A Foreground delete meanwhile swaps the finalizer for `foregroundDeletion`, as the API
   * server does, and its pods are deleted first.
   */
  readonly holdOrphan: (until: () => Promise<void>) => void
  /**
   * The kubelet reports the next container's end late: its log ends as it exits, but its pod shows it running until
   * `until` resolves, or until its pod is deleted (the kubelet reports a container's end, with when it ended, before its
   * pod goes). Meanwhile its Job's controller does not know it ended.
   */
  readonly lateExitReport: (until: () => Promise<void>) => void
  /**
   * The cluster stops a running pod, as a preemption, an eviction or a lost node does: the pod gets a
   * `DisruptionTarget` condition with `reason` and is deleted (its Job's controller counts it failed at once),
   * its process SIGTERM then SIGKILL after the grace period, and it goes once it has ended; with `evicted`,
   * the kubelet's `status.reason` `Evicted` instead, and it is stopped and left, Failed. With `nodeDown`, its node is
   * down and not removed (a taint manager's `DeletionByTaintManager`): the pod is deleted but no kubelet ever says its
   * container ended, so it stays terminating (phase `Running`) and its Job keeps `FailureTarget` without `Failed`; its
   * followed log ends, and a request for its log is answered 500 (the API server cannot reach the kubelet).
   */
  /**
   * A running pod's node stops answering (down, or cut off), before anything deletes its pods: its followed log ends
   * (the API server's stream from the kubelet broke), a request for its log is answered 500, its `Ready` condition is
   * False (the node lifecycle controller's `MarkPodsNotReady`), and its process runs on unseen. `disrupt` with
   * `nodeDown` then plays the taint manager's deletion.
   */
  readonly nodeUnreachable: (namespace: string, pod: string) => boolean
  readonly disrupt: (namespace: string, pod: string, reason: string, options?: { readonly message?: string; readonly evicted?: boolean; readonly nodeDown?: boolean }) => boolean
  /** The directory that stands for a PersistentVolumeClaim's volume (every pod that mounts it sees it). */
  readonly claimDir: (claim: string) => string
  /** A suspended Job (see `suspendJobs`, `suspend`) is let go: `spec.suspend` false, and its controller makes its pod. */
  readonly admit: (namespace: string, job: string) => boolean
  /**
   * A batch queue takes back a Job it admitted, as Kueue does to preempt, evict or deactivate its workload (`stopJob` in
   * its jobframework reconciler): `spec.suspend` true, `status.startTime` cleared, and a Normal `Stopped` Event on the Job
   * from `kueue-job-controller` with `message`. The Job's controller then deletes its active pods, not counted failed.
   */
  readonly suspend: (namespace: string, job: string, message?: string) => boolean
  /**
   * Kueue deactivates the Job's Workload (with `suspendJobs`): its `spec.active` false, as a user's `kubectl patch workload`
   * or Kueue itself does once the workload was requeued `backoffLimitCount` times (`waitForPodsReady`); `Evicted` with
   * `reason` (default `DeactivatedDueToRequeuingLimitExceeded`; `InactiveWorkload` before Kueue 0.9) and `message`, and
   * the Job stopped as `suspend` does (when it is not suspended already). It is not admitted again until reactivated
   * (`spec.active` patched true).
   */
  readonly deactivate: (namespace: string, job: string, options?: { readonly reason?: string; readonly message?: string }) => boolean
  readonly close: () => Promise<void>
}

/** One message of a container's log as its runtime writes it: when (nanoseconds since the epoch), and a line with its newline, or a partial one. */
type LogEntry = { readonly at: bigint; readonly text: string }
/** The runtime's longest message (containerd's `max_container_log_line_size`): a longer line is written in partial messages. */
const PARTIAL = 16384
const epochNanos = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint()
const nowNanos = () => epochNanos + process.hrtime.bigint()
/** A log timestamp as the kubelet writes it (`types.RFC3339NanoFixed`, UTC). */
const stampOf = (at: bigint) => `${new Date(Number(at / 1_000_000n)).toISOString().slice(0, 19)}.${String(at % 1_000_000_000n).padStart(9, "0")}Z`
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x))
const DNS1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const KIND_NAME: Record<Kind, [string, string]> = {
  jobs: ["batch/v1", "Job"],
  pods: ["v1", "Pod"],
  configmaps: ["v1", "ConfigMap"],
  secrets: ["v1", "Secret"],
  events: ["v1", "Event"],
  workloads: ["kueue.x-k8s.io/v1beta1", "Workload"]
}
/** The label Kueue puts on a Job's Workload: the Job's uid (`JobUIDLabel`). */
const JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"

const status = (code: number, reason: string, message: string) => ({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code })

/** Equality-based label selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated. */
const matchesLabels = (selector: string | null, labels: Record<string, string> = {}) =>
  selector === null || selector === "" || selector.split(",").every((term) => {
    const t = term.trim()
    let m: RegExpExecArray | null
    if ((m = /^([^=!]+)!=(.*)$/.exec(t)) !== null) return labels[m[1]!] !== m[2]
    if ((m = /^([^=!]+)==?(.*)$/.exec(t)) !== null) return labels[m[1]!] === m[2]
    if (t.startsWith("!")) return !(t.slice(1) in labels)
    return t in labels
  })

/** Field selectors `a.b=c` (`metadata.name`, `involvedObject.kind`...), comma-separated. */
const matchesFields = (selector: string | null, o: Obj) =>
  selector === null || selector === "" || selector.split(",").every((term) => {
    const [k, v] = term.split("=")
    const value = k!.split(".").reduce<any>((x, part) => x?.[part], o)
    return value !== undefined && String(value) === v
  })

const parseCpu = (q: string | undefined) => (q === undefined ? 0 : q.endsWith("m") ? Number(q.slice(0, -1)) / 1000 : Number(q))
const parseMemMi = (q: string | undefined) => {
  if (q === undefined) return 0
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(q)
  if (m === null) return 0
  const f: Record<string, number> = { Ki: 1 / 1024, Mi: 1, Gi: 1024, K: 1000 / 1048576, M: 1e6 / 1048576, G: 1e9 / 1048576 }
  return Number(m[1]) * (m[2] !== undefined ? f[m[2]]! : 1 / 1048576)
}

/** RSS (bytes) of every process in a process group, from /proc. */
const groupRss = (pgid: number): number => {
  let total = 0
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      if (Number(fields[2]) === pgid) total += Number(fields[21]) * 4096
    } catch {
      // the process ended meanwhile
    }
  }
  return total
}

export const start = async (options: FakeKubeOptions = {}): Promise<FakeKubeApi> => {
  const token = randomUUID()
  const nodes: ReadonlyArray<FakeNode> = options.nodes ?? [{ name: "fake-node-0", cpu: "2", memoryMi: 8192, extended: { "nvidia.com/gpu": 2 } }]
  const unpullable = new Set(options.unpullable ?? [])
  const grace = options.gracePeriodMs ?? 2000
  const now = () => new Date(options.clock?.() ?? Date.now()).toISOString()
  /** The kubelet's clock (see `kubeletClockSkewMs`). */
  const nodeNow = () => new Date((options.clock?.() ?? Date.now()) + (options.kubeletClockSkewMs ?? 0)).toISOString()
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "fake-kube-"))
  const store = new Map<string, Obj>()
  const events: Array<{ kind: Kind; ns: string; type: string; obj: Obj; rv: number }> = []
  const watchers = new Set<{ kind: Kind; ns: string; labels: string | null; fields: string | null; res: http.ServerResponse }>()
  const procs = new Map<string, {
    child: ChildProcess
    oom: boolean
    /** The container's current log file (what a log request serves), its size as the runtime writes it, and a line not ended yet. */
    file: Array<LogEntry>
    fileBytes: number
    pending: string
    /** How many characters of output came before the newest piece (see `pipeReadChars`). */
    streamed: number
    listeners: Set<(e: ReadonlyArray<LogEntry> | null) => void>
    memTimer?: NodeJS.Timeout
  }>()
  const logMaxBytes = options.containerLogMaxBytes ?? 10 * 1048576
  const timers = new Set<NodeJS.Timeout>()
  const requests: Array<string> = []
  let logsGone = false
  /** Pods on a node that is down (`disrupt` with `nodeDown`): nothing the kubelet would report of them comes. */
  const nodeDown = new Set<string>()
  /** Followed logs, each ended cleanly by `endLogs`. */
  const followers = new Set<{ readonly uid: string; readonly end: () => void; readonly stall: () => void }>()
  let podQuota = options.podQuota
  const namespaces = options.namespaces !== undefined ? new Set(options.namespaces) : undefined
  const serviceAccounts = new Set(options.serviceAccounts ?? ["default"])
  const denied = new Set(options.denied ?? [])
  const claims = new Map((options.claims ?? []).map((c) => [c.name, c.accessModes ?? ["ReadWriteMany"]]))
  const claimDir = (claim: string) => path.join(root, "claims", claim)
  const unmountable = new Set(options.unmountable ?? [])
  const slowPulls: Record<string, number> = { ...options.slowPulls }
  /** Pods whose slow image is being pulled (`false`) or was (`true`). */
  const pulling = new Map<string, boolean>()
  const priorityClasses = options.priorityClasses !== undefined ? new Set(options.priorityClasses) : undefined
  /**
   * The pods each Job's controller counted failed (by the Job's uid): Failed ones, and any deleted before it
   * succeeded, whether it runs on for its grace period or is gone at once — as the real one counts them
   * (`isPodFailed` in pkg/controller/job/job_controller.go: "Count deleted Pods as failures") through each pod's
   * `batch.kubernetes.io/job-tracking` finalizer, which holds it until it has been counted.
   */
  const countedFailed = new Map<string, Set<string>>()
  /**
   * Pods a suspended Job's controller deleted: it takes their tracking finalizer off before it deletes them
   * (`deleteJobPods`), so they are never counted, failed or not (`trackJobStatusAndRemoveFinalizers` skips a pod
   * without the finalizer).
   */
  const untracked = new Set<string>()
  const countIfFailed = (pod: Obj) => {
    const owner = pod.metadata.ownerReferences?.find((r) => r.kind === "Job")?.uid
    if (owner === undefined || pod.status.phase === "Succeeded" || untracked.has(pod.metadata.uid!)) return
    if (pod.status.phase !== "Failed" && pod.metadata.deletionTimestamp === undefined) return
    const counted = countedFailed.get(owner) ?? new Set<string>()
    counted.add(pod.metadata.uid!)
    countedFailed.set(owner, counted)
  }
  let retrying = false
  let rv = 1
  const key = (kind: Kind, ns: string, name: string) => `${kind}/${ns}/${name}`
  const later = (ms: number, f: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t)
      f()
    }, ms)
    timers.add(t)
  }

  const emit = (kind: Kind, ns: string, type: string, obj: Obj) => {
    const r = ++rv
    obj.metadata.resourceVersion = String(r)
    const snap = clone(obj)
    events.push({ kind, ns, type, obj: snap, rv: r })
    for (const w of watchers) {
      if (w.kind === kind && w.ns === ns && matchesLabels(w.labels, snap.metadata.labels) && matchesFields(w.fields, snap)) {
        w.res.write(JSON.stringify({ type, object: snap }) + "\n")
      }
    }
  }
  const put = (kind: Kind, obj: Obj, type: "ADDED" | "MODIFIED") => {
    store.set(key(kind, obj.metadata.namespace!, obj.metadata.name), obj)
    emit(kind, obj.metadata.namespace!, type, obj)
    // an Event is a record of what the controllers did, not something for them to act on
    if (kind !== "events") setImmediate(reconcile)
  }
  const remove = (kind: Kind, obj: Obj) => {
    if (kind === "pods") countIfFailed(obj)
    if (!store.delete(key(kind, obj.metadata.namespace!, obj.metadata.name))) return
    emit(kind, obj.metadata.namespace!, "DELETED", obj)
    setImmediate(reconcile)
  }
  const all = (kind: Kind, ns?: string) =>
    [...store.entries()].filter(([k]) => k.startsWith(`${kind}/${ns !== undefined ? `${ns}/` : ""}`)).map(([, v]) => v)
  const dependents = (uid: string) =>
    (["pods", "configmaps", "secrets", "jobs", "events", "workloads"] as Array<Kind>).flatMap((kind) =>
      all(kind).filter((o) => (o.metadata.ownerReferences ?? []).some((r) => r.uid === uid)).map((o) => ({ kind, o }))
    )

  // ---- kubelet --------------------------------------------------------------------------------------
  const container = (pod: Obj) => pod.spec.containers[0]
  const setContainerState = (pod: Obj, state: object, extra: object = {}) => {
    pod.status.containerStatuses = [{ name: container(pod).name, image: container(pod).image, ready: "running" in state, restartCount: 0, state, ...extra }]
  }
  /** See `lateExitReport`: the next end to report late, and the ends not reported yet (by pod uid). */
  let lateUntil: (() => Promise<void>) | undefined
  const unreported = new Map<string, () => void>()
  const reportEnd = (uid: string | undefined) => {
    const report = uid !== undefined ? unreported.get(uid) : undefined
    if (report === undefined) return
    unreported.delete(uid!)
    report()
  }
  const finishPod = (pod: Obj, code: number | null, signal: NodeJS.Signals | null, oom: boolean, finishedAt = now()) => {
    const startedAt = pod.status.containerStatuses?.[0]?.state?.running?.startedAt ?? now()
    const exitCode = code ?? 128 + (signal !== null ? os.constants.signals[signal] : 9)
    const reason = oom ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error"
    setContainerState(pod, { terminated: { exitCode, reason, startedAt, finishedAt, ...(signal !== null ? { signal: os.constants.signals[signal] } : {}) } })
    pod.status.phase = exitCode === 0 ? "Succeeded" : "Failed"
    pod.status.conditions = (pod.status.conditions ?? []).map((c: any) => (c.type === "Ready" ? { ...c, status: "False" } : c))
    if (store.get(key("pods", pod.metadata.namespace!, pod.metadata.name)) === pod) put("pods", pod, "MODIFIED")
  }
  const runPod = (pod: Obj) => {
    const ns = pod.metadata.namespace!
    const c = container(pod)
    const waiting = (reason: string, message?: string) => {
      // (a later retry of a pull, after the pod was deleted, must not bring it back)
      if (store.get(key("pods", ns, pod.metadata.name)) !== pod) return
      if (pod.status.containerStatuses?.[0]?.state?.waiting?.reason === reason) return
      setContainerState(pod, { waiting: { reason, ...(message !== undefined ? { message } : {}) } })
      put("pods", pod, "MODIFIED")
    }
    // a slow image is pulled for a while first (ContainerCreating), as a big one is
    const pullMs = slowPulls[c.image] ?? 0
    if (pullMs > 0 && pulling.get(pod.metadata.uid!) !== true) {
      if (pulling.has(pod.metadata.uid!)) return
      pulling.set(pod.metadata.uid!, false)
      waiting("ContainerCreating")
      return later(pullMs, () => {
        pulling.set(pod.metadata.uid!, true)
        if (!procs.has(pod.metadata.uid!)) runPod(pod)
      })
    }
    if (unpullable.has(c.image)) {
      if (pod.status.containerStatuses?.[0]?.state?.waiting?.reason !== "ErrImagePull" && pod.status.containerStatuses?.[0]?.state?.waiting?.reason !== "ImagePullBackOff") {
        waiting("ErrImagePull", `failed to pull image "${c.image}"`)
        recordEvent(pod, "Warning", "Failed", `Failed to pull image "${c.image}": not found`, "kubelet")
      } else {
        later(300, () => {
          waiting("ImagePullBackOff", `Back-off pulling image "${c.image}"`)
          // Normal, as the kubelet records it (pkg/kubelet/images/image_manager.go); the pull's own failure is the Warning
          recordEvent(pod, "Normal", "BackOff", `Back-off pulling image "${c.image}"`, "kubelet")
        })
      }
      return
    }
    for (const v of pod.spec.volumes ?? []) {
      if (v.configMap !== undefined && !store.has(key("configmaps", ns, v.configMap.name))) return waiting("ContainerCreating")
      if (v.nfs !== undefined && unmountable.has(v.nfs.server)) {
        waiting("ContainerCreating")
        return recordEvent(pod, "Warning", "FailedMount", `MountVolume.SetUp failed for volume "${v.name}" : mount failed: exit status 32\nmount.nfs: Connection timed out`, "kubelet")
      }
    }
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOSTNAME: pod.metadata.name }
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value
      else if (e.valueFrom?.secretKeyRef !== undefined) {
        const s = store.get(key("secrets", ns, e.valueFrom.secretKeyRef.name))
        const data = s?.data?.[e.valueFrom.secretKeyRef.key]
        if (data === undefined) {
          recordEvent(pod, "Warning", "Failed", `Error: secret "${e.valueFrom.secretKeyRef.name}" not found`, "kubelet")
          return waiting("CreateContainerConfigError", `secret "${e.valueFrom.secretKeyRef.name}" not found`)
        }
        env[e.name] = Buffer.from(data, "base64").toString("utf8")
      }
    }
    const podRoot = fs.mkdtempSync(path.join(root, `${pod.metadata.name}-`))
    const mounts: Array<[string, string]> = []
    for (const m of c.volumeMounts ?? []) {
      const v = (pod.spec.volumes ?? []).find((x: any) => x.name === m.name)
      const source = v?.persistentVolumeClaim !== undefined
        ? claimDir(v.persistentVolumeClaim.claimName)
        : v?.hostPath !== undefined
        ? v.hostPath.path
        : v?.nfs !== undefined
        ? path.join(root, "nfs", v.nfs.server, v.nfs.path)
        : path.join(podRoot, m.name)
      // the kubelet makes a mount's subPath in its volume when it is not there
      const dir = m.subPath !== undefined && m.subPath !== "" ? path.join(source, m.subPath) : source
      fs.mkdirSync(dir, { recursive: true })
      if (v?.configMap !== undefined) {
        const cm = store.get(key("configmaps", ns, v.configMap.name))!
        for (const [k, val] of Object.entries(cm.data ?? {})) fs.writeFileSync(path.join(dir, k), String(val), { mode: 0o444 })
      }
      mounts.push([m.mountPath, dir])
    }
    mounts.sort((a, b) => b[0].length - a[0].length)
    const rewrite = (s: string) => {
      for (const [mp, dir] of mounts) if (s === mp || s.startsWith(`${mp}/`)) return dir + s.slice(mp.length)
      return s
    }
    for (const k of Object.keys(env)) env[k] = rewrite(env[k]!)
    const argv = [...(c.command ?? []), ...(c.args ?? [])].map(rewrite)
    const child = spawn(argv[0]!, argv.slice(1), { cwd: c.workingDir !== undefined ? rewrite(c.workingDir) : podRoot, env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
    const proc = { child, oom: false, file: [], fileBytes: 0, pending: "", streamed: 0, listeners: new Set() } as NonNullable<ReturnType<typeof procs.get>>
    procs.set(pod.metadata.uid!, proc)
    // as the runtime writes a container's log (CRI): a message per line, a line longer than 16 KiB in partial
    // messages, each with its timestamp (here one for what came at once); the kubelet rotates the file once it is
    // over containerLogMaxSize, and a log request then serves the new file alone (pkg/kubelet/logs, kuberuntime/logs)
    const append = (entries: ReadonlyArray<LogEntry>) => {
      for (const entry of entries) {
        proc.file.push(entry)
        proc.fileBytes += Buffer.byteLength(entry.text) + 40
        if (proc.fileBytes > logMaxBytes) {
          proc.file = []
          proc.fileBytes = 0
        }
      }
      for (const l of proc.listeners) l(entries)
    }
    const onData = (d: Buffer) => {
      const at = nowNanos()
      const piece = d.toString("utf8")
      const text = proc.pending + piece
      // (where `text` begins in the container's output)
      const from = proc.streamed - proc.pending.length
      proc.streamed += piece.length
      const entries: Array<LogEntry> = []
      let i = 0
      while (true) {
        const nl = text.indexOf("\n", i)
        let end = nl >= 0 && nl - i < PARTIAL ? nl + 1 : text.length - i > PARTIAL ? i + PARTIAL : -1
        if (options.pipeReadChars !== undefined) {
          const read = (Math.floor((from + i) / options.pipeReadChars) + 1) * options.pipeReadChars - from
          if (read <= text.length && (end < 0 || read < end)) end = read
        }
        if (end < 0) break
        entries.push({ at, text: text.slice(i, end) })
        i = end
      }
      proc.pending = text.slice(i)
      if (entries.length > 0) append(entries)
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    const limitMi = parseMemMi(c.resources?.limits?.memory)
    if (limitMi > 0) {
      proc.memTimer = setInterval(() => {
        if (child.pid !== undefined && groupRss(child.pid) > limitMi * 1048576) {
          proc.oom = true
          try {
            process.kill(-child.pid, "SIGKILL")
          } catch {
            // already gone
          }
        }
      }, 100)
    }
    let spawnError = false
    child.on("error", (e) => {
      spawnError = true
      onData(Buffer.from(`exec failed: ${e.message}\n`))
    })
    child.on("close", (code, signal) => {
      clearInterval(proc.memTimer)
      if (proc.pending !== "") append([{ at: nowNanos(), text: proc.pending }])
      proc.pending = ""
      if (!nodeDown.has(pod.metadata.uid!)) {
        const finishedAt = nodeNow()
        const until = lateUntil
        lateUntil = undefined
        if (until === undefined) finishPod(pod, spawnError ? 128 : code, signal, proc.oom, finishedAt)
        else {
          unreported.set(pod.metadata.uid!, () => finishPod(pod, spawnError ? 128 : code, signal, proc.oom, finishedAt))
          void until().then(() => reportEnd(pod.metadata.uid))
        }
      }
      for (const l of proc.listeners) l(null)
    })
    setContainerState(pod, { running: { startedAt: nodeNow() } }, { started: true })
    pod.status.phase = "Running"
    pod.status.startTime ??= now()
    pod.status.conditions = [...(pod.status.conditions ?? []).filter((x: any) => x.type !== "Ready"), { type: "Ready", status: "True" }]
    put("pods", pod, "MODIFIED")
  }
  const killPod = (pod: Obj) => {
    const proc = procs.get(pod.metadata.uid!)
    if (proc === undefined || proc.child.exitCode !== null || proc.child.signalCode !== null || proc.child.pid === undefined) return false
    const pid = proc.child.pid
    try {
      process.kill(-pid, "SIGTERM")
    } catch {
      return false
    }
    later(grace, () => {
      try {
        process.kill(-pid, "SIGKILL")
      } catch {
        // ended within the grace period
      }
    })
    return true
  }
  const deletePod = (pod: Obj, then?: () => void) => {
    if (pod.metadata.deletionTimestamp === undefined) {
      // as the API server sets them: when the grace period ends, and how long it is
      const seconds = Math.ceil(grace / 1000)
      pod.metadata.deletionTimestamp = new Date((options.clock?.() ?? Date.now()) + seconds * 1000).toISOString()
      pod.metadata.deletionGracePeriodSeconds = seconds
    }
    put("pods", pod, "MODIFIED")
    // an end the kubelet had not reported yet (`lateExitReport`) is, before the pod goes
    reportEnd(pod.metadata.uid)
    countIfFailed(pod)
    const proc = procs.get(pod.metadata.uid!)
    const done = () => {
      remove("pods", pod)
      then?.()
    }
    if (killPod(pod)) proc!.child.once("close", () => setImmediate(done))
    else done()
  }

  // ---- scheduler --------------------------------------------------------------------------------------
  const requestsOf = (pod: Obj) => {
    const r = { ...(container(pod).resources?.limits ?? {}), ...(container(pod).resources?.requests ?? {}) }
    return r as Record<string, string>
  }
  const fits = (node: FakeNode, pod: Obj): string | undefined => {
    if (!Object.entries(pod.spec.nodeSelector ?? {}).every(([k, v]) => node.labels?.[k] === v)) return "node(s) didn't match Pod's node affinity/selector"
    for (const t of node.taints ?? []) {
      if (t.effect !== "NoSchedule") continue
      const tolerated = (pod.spec.tolerations ?? []).some((tol: any) =>
        (tol.key === undefined || tol.key === t.key) && (tol.operator === "Exists" || tol.value === t.value) && (tol.effect === undefined || tol.effect === t.effect)
      )
      if (!tolerated) return `node(s) had untolerated taint {${t.key}: ${t.value ?? ""}}`
    }
    const bound = all("pods").filter((p) => p.spec.nodeName === node.name && p.status.phase !== "Succeeded" && p.status.phase !== "Failed")
    const used = (f: (r: Record<string, string>) => number) => bound.reduce((a, p) => a + f(requestsOf(p)), 0)
    const want = requestsOf(pod)
    if (used((r) => parseCpu(r.cpu)) + parseCpu(want.cpu) > parseCpu(node.cpu) + 1e-9) return "Insufficient cpu"
    if (used((r) => parseMemMi(r.memory)) + parseMemMi(want.memory) > node.memoryMi) return "Insufficient memory"
    for (const [res, q] of Object.entries(want)) {
      if (res === "cpu" || res === "memory") continue
      if (used((r) => Number(r[res] ?? 0)) + Number(q) > (node.extended?.[res] ?? 0)) return `Insufficient ${res}`
    }
    return undefined
  }
  const schedule = (pod: Obj) => {
    const missing = (pod.spec.volumes ?? []).find((v: any) => v.persistentVolumeClaim !== undefined && !claims.has(v.persistentVolumeClaim.claimName))
    const reasons = nodes.map((n) => [n, missing !== undefined ? `persistentvolumeclaim "${missing.persistentVolumeClaim.claimName}" not found` : fits(n, pod)] as const)
    const ok = reasons.find(([, r]) => r === undefined)
    if (ok === undefined) {
      const message = `0/${nodes.length} nodes are available: ${[...new Set(reasons.map(([, r]) => `${reasons.filter(([, x]) => x === r).length} ${r}`))].join(", ")}.`
      const cond = pod.status.conditions?.find((c: any) => c.type === "PodScheduled")
      if (cond?.message !== message) {
        pod.status.conditions = [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message, lastTransitionTime: now() }]
        put("pods", pod, "MODIFIED")
      }
      return
    }
    pod.spec.nodeName = ok[0].name
    pod.status.conditions = [{ type: "PodScheduled", status: "True", lastTransitionTime: now() }]
    put("pods", pod, "MODIFIED")
  }

  // ---- job controller ---------------------------------------------------------------------------------
  /** Record (or count again, as the API server aggregates them) an Event about an object. */
  const recordEvent = (about: Obj, type: "Normal" | "Warning", reason: string, message: string, component = "job-controller") => {
    const ns = about.metadata.namespace!
    const name = `${about.metadata.name}.${reason.toLowerCase()}`
    const existing = store.get(key("events", ns, name))
    if (existing !== undefined) {
      Object.assign(existing, { message, count: existing.count + 1, lastTimestamp: now() })
      return put("events", existing, "MODIFIED")
    }
    put("events", {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name, namespace: ns, uid: randomUUID(), creationTimestamp: now() },
      involvedObject: { apiVersion: about.apiVersion, kind: about.kind, name: about.metadata.name, namespace: ns, uid: about.metadata.uid },
      type,
      reason,
      message,
      count: 1,
      firstTimestamp: now(),
      lastTimestamp: now(),
      source: { component }
    }, "ADDED")
  }
  // ---- Kueue (with `suspendJobs`) ------------------------------------------------------------------------
  /** Kueue's Workload of a Job (`GetWorkloadNameForOwnerWithGVK`: `job-<name>-<hash>`), labelled with the Job's uid, owned by it. */
  const makeWorkload = (job: Obj) =>
    put("workloads", {
      apiVersion: "kueue.x-k8s.io/v1beta1",
      kind: "Workload",
      metadata: {
        name: `job-${job.metadata.name}-${job.metadata.uid!.slice(0, 5)}`,
        namespace: job.metadata.namespace!,
        uid: randomUUID(),
        creationTimestamp: now(),
        labels: { [JOB_UID_LABEL]: job.metadata.uid! },
        ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: job.metadata.name, uid: job.metadata.uid!, controller: true }]
      },
      spec: { active: true, queueName: job.metadata.labels?.["kueue.x-k8s.io/queue-name"] ?? "", podSets: [{ name: "main", count: 1, template: job.spec.template }] },
      status: { conditions: [{ type: "QuotaReserved", status: "False", reason: "Pending", message: "the stand-in's queue has no room until `admit`", lastTransitionTime: now() }] }
    }, "ADDED")
  const workloadOf = (job: Obj) => all("workloads", job.metadata.namespace).find((w) => w.metadata.labels?.[JOB_UID_LABEL] === job.metadata.uid)
  /** An active Workload Kueue admits (`Admitted`, not `Evicted`). */
  const admittedNow = (wl: Obj | undefined) =>
    wl !== undefined && wl.spec.active !== false && condition(wl, "Admitted") !== undefined && condition(wl, "Evicted") === undefined
  /**
   * Kueue evicts a Job's workload (`Evicted` with `reason`, its quota released) and stops the Job as its jobframework
   * reconciler does (`stopJob`): `spec.suspend` true, `status.startTime` cleared, a Normal `Stopped` Event with the eviction's
   * message. A Job already suspended is left as it is, with no Event (`stopJob` returns when `IsSuspended`).
   */
  const evict = (namespace: string, name: string, reason: string, message: string) => {
    const job = store.get(key("jobs", namespace, name))
    if (job === undefined || condition(job, "Complete") !== undefined || condition(job, "Failed") !== undefined) return false
    const wl = workloadOf(job)
    if (wl !== undefined) {
      wl.status.conditions = [
        ...wl.status.conditions.filter((c: any) => c.type !== "Evicted" && c.type !== "Admitted" && c.type !== "QuotaReserved"),
        { type: "Evicted", status: "True", reason, message, lastTransitionTime: now() },
        { type: "QuotaReserved", status: "False", reason: "Pending", message, lastTransitionTime: now() }
      ]
      put("workloads", wl, "MODIFIED")
    }
    if (job.spec.suspend === true) return wl !== undefined
    job.spec.suspend = true
    delete job.status.startTime
    put("jobs", job, "MODIFIED")
    recordEvent(job, "Normal", "Stopped", message, "kueue-job-controller")
    return true
  }
  /** Kueue's Event once it let a Job go (its jobframework's `startJob`: `spec.suspend` false, then `Started`). */
  const startedByKueue = (job: Obj) => recordEvent(job, "Normal", "Started", "Admitted by clusterQueue cluster-queue", "kueue-job-controller")
  /**
   * A suspended Job let go (`spec.suspend` now false): its controller resets `startTime`, says `JobResumed`, and makes its
   * pod. One it never saw suspended (`admitAtCreate`) has no `Suspended` condition to turn false, so no `Resumed` Event
   * (`ensureJobConditionStatus` adds no condition that is false).
   */
  const resumeJob = (job: Obj) => {
    job.status.startTime = now()
    const seen = condition(job, "Suspended") !== undefined
    if (seen) job.status.conditions = [...(job.status.conditions ?? []).filter((c: any) => c.type !== "Suspended"), { type: "Suspended", status: "False", reason: "JobResumed", message: "Job resumed", lastTransitionTime: now(), lastProbeTime: now() }]
    armDeadline(job)
    put("jobs", job, "MODIFIED")
    if (seen) recordEvent(job, "Normal", "Resumed", "Job resumed")
  }

  /** Kueue admits a suspended Job's Workload and starts the Job (see `admit`). */
  const admit = (namespace: string, name: string) => {
    const job = store.get(key("jobs", namespace, name))
    if (job === undefined || job.spec.suspend !== true) return false
    const wl = workloadOf(job)
    if (wl !== undefined && wl.spec.active === false) return false
    if (wl !== undefined) {
      wl.status.conditions = [
        ...wl.status.conditions.filter((c: any) => c.type !== "QuotaReserved" && c.type !== "Admitted" && c.type !== "Evicted"),
        { type: "QuotaReserved", status: "True", reason: "QuotaReserved", message: "Quota reserved in ClusterQueue cluster-queue", lastTransitionTime: now() },
        { type: "Admitted", status: "True", reason: "Admitted", message: "The workload is admitted", lastTransitionTime: now() }
      ]
      put("workloads", wl, "MODIFIED")
    }
    job.spec.suspend = false
    put("jobs", job, "MODIFIED")
    startedByKueue(job)
    resumeJob(job)
    return true
  }

  /** Why the API server's admission refuses a pod (its service account, the pod quota), in its words; none when it admits it. */
  const podRefusal = (ns: string, name: string, spec: any): string | undefined => {
    const account = spec?.serviceAccountName ?? "default"
    if (!serviceAccounts.has(account)) return `pods "${name}" is forbidden: error looking up service account ${ns}/${account}: serviceaccount "${account}" not found`
    if (spec?.priorityClassName !== undefined && priorityClasses !== undefined && !priorityClasses.has(spec.priorityClassName)) {
      return `pods "${name}" is forbidden: no PriorityClass with name ${spec.priorityClassName} was found`
    }
    const used = all("pods", ns).filter((p) => p.status.phase !== "Succeeded" && p.status.phase !== "Failed").length
    if (podQuota !== undefined && used + 1 > podQuota) return `pods "${name}" is forbidden: exceeded quota: pod-quota, requested: pods=1, used: pods=${used}, limited: pods=${podQuota}`
    return undefined
  }
  const newPod = (job: Obj) => {
    const name = `${job.metadata.name}-${Math.random().toString(36).slice(2, 7)}`
    const refused = podRefusal(job.metadata.namespace!, name, job.spec.template.spec)
    if (refused !== undefined) {
      recordEvent(job, "Warning", "FailedCreate", `Error creating: ${refused}`)
      if (!retrying) {
        retrying = true
        later(500, () => {
          retrying = false
          reconcile()
        })
      }
      return
    }
    const tmpl = clone(job.spec.template)
    const pod: Obj = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        ...tmpl.metadata,
        name,
        namespace: job.metadata.namespace!,
        uid: randomUUID(),
        creationTimestamp: now(),
        labels: { ...tmpl.metadata?.labels, "job-name": job.metadata.name, "batch.kubernetes.io/job-name": job.metadata.name, "controller-uid": job.metadata.uid! },
        ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: job.metadata.name, uid: job.metadata.uid!, controller: true }]
      },
      spec: tmpl.spec,
      status: { phase: "Pending", conditions: [] }
    }
    put("pods", pod, "ADDED")
  }
  const condition = (job: Obj, type: string) => (job.status.conditions ?? []).find((c: any) => c.type === type && c.status === "True")
  /**
   * The Job's end as its controller (Kubernetes 1.31 and later) records it: first the interim condition
   * (`FailureTarget`, or `SuccessCriteriaMet`) while its pods are deleted, then — once none of its pods is still
   * terminating — `Failed` (or `Complete`) after it, with the same reason and message.
   */
  const targetJob = (job: Obj, target: { type: "SuccessCriteriaMet" | "FailureTarget"; reason: string; message: string }) => {
    job.status.conditions = [...(job.status.conditions ?? []), { ...target, status: "True", lastTransitionTime: now(), lastProbeTime: now() }]
    put("jobs", job, "MODIFIED")
    if (target.type === "FailureTarget") {
      for (const { kind: k, o } of dependents(job.metadata.uid!)) if (k === "pods" && o.metadata.deletionTimestamp === undefined && o.status.phase !== "Succeeded" && o.status.phase !== "Failed") deletePod(o)
    }
  }
  const finishJob = (job: Obj, target: { type: string; reason?: string; message?: string }) => {
    const type = target.type === "SuccessCriteriaMet" ? "Complete" : "Failed"
    job.status.conditions = [...(job.status.conditions ?? []), { type, status: "True", reason: target.reason, message: target.message, lastTransitionTime: now(), lastProbeTime: now() }]
    job.status.active = 0
    if (type === "Complete") job.status.completionTime = now()
    put("jobs", job, "MODIFIED")
    if (job.spec.ttlSecondsAfterFinished !== undefined) later(job.spec.ttlSecondsAfterFinished * 1000, () => deleteObject("jobs", job, "Foreground"))
  }
  /**
   * `activeDeadlineSeconds`, counted from the Job's `startTime`: from its creation, or once it is let go if it was
   * made suspended (its controller sets `startTime` then, so no deadline passes while a queue holds it).
   */
  const armDeadline = (job: Obj) => {
    if (job.spec.activeDeadlineSeconds === undefined) return
    const startTime = job.status.startTime
    later(job.spec.activeDeadlineSeconds * 1000, () => {
      if (store.get(key("jobs", job.metadata.namespace!, job.metadata.name)) !== job || job.status.startTime !== startTime) return
      if (["Complete", "Failed", "FailureTarget", "SuccessCriteriaMet"].some((t) => condition(job, t) !== undefined)) return
      targetJob(job, { type: "FailureTarget", reason: "DeadlineExceeded", message: "Job was active longer than specified deadline" })
    })
  }
  const reconcileJob = (job: Obj) => {
    if (condition(job, "Complete") !== undefined || condition(job, "Failed") !== undefined) return
    const pods = all("pods", job.metadata.namespace).filter((p) => p.metadata.ownerReferences?.some((r) => r.uid === job.metadata.uid))
    for (const p of pods) countIfFailed(p)
    const counted = countedFailed.get(job.metadata.uid!) ?? new Set<string>()
    const succeeded = pods.filter((p) => p.status.phase === "Succeeded").length
    const failed = counted.size
    // (a terminating pod is not active: `controller.FilterActivePods`)
    const active = pods.filter((p) => p.status.phase !== "Succeeded" && p.status.phase !== "Failed" && p.metadata.deletionTimestamp === undefined).length
    if (job.status.succeeded !== succeeded || job.status.failed !== failed || job.status.active !== active) {
      Object.assign(job.status, { succeeded, failed, active })
      put("jobs", job, "MODIFIED")
    }
    // (evaluated while the Job is being deleted too, as the real controller does; only new pods are not made then)
    if (condition(job, "FailureTarget") === undefined && condition(job, "SuccessCriteriaMet") === undefined) {
      if (failed > (job.spec.backoffLimit ?? 6)) targetJob(job, { type: "FailureTarget", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" })
      else if (succeeded > 0 && active === 0) targetJob(job, { type: "SuccessCriteriaMet", reason: "CompletionsReached", message: "Reached expected number of succeeded pods" })
    }
    const target = condition(job, "FailureTarget") ?? condition(job, "SuccessCriteriaMet")
    if (target !== undefined) {
      if (pods.every((p) => p.status.phase === "Succeeded" || p.status.phase === "Failed")) finishJob(job, target)
      return
    }
    if (job.spec.suspend === true) {
      // its active pods deleted, their tracking finalizer off first: not counted failed (`manageJob`, `deleteJobPods`)
      for (const p of pods) {
        if (p.metadata.deletionTimestamp !== undefined || p.status.phase === "Succeeded" || p.status.phase === "Failed") continue
        untracked.add(p.metadata.uid!)
        deletePod(p)
      }
      if (active > 0) {
        job.status.active = 0
        put("jobs", job, "MODIFIED")
      }
      if (condition(job, "Suspended") === undefined) {
        job.status.conditions = [...(job.status.conditions ?? []).filter((c: any) => c.type !== "Suspended"), { type: "Suspended", status: "True", reason: "JobSuspended", message: "Job suspended", lastTransitionTime: now(), lastProbeTime: now() }]
        put("jobs", job, "MODIFIED")
        recordEvent(job, "Normal", "Suspended", "Job suspended")
      }
      return
    }
    if (job.metadata.deletionTimestamp === undefined && active === 0) newPod(job)
  }
  let reconciling = false
  const reconcile = () => {
    if (reconciling) return
    reconciling = true
    try {
      for (const job of all("jobs")) reconcileJob(job)
      for (const pod of all("pods")) {
        if (pod.metadata.deletionTimestamp !== undefined || pod.status.phase === "Succeeded" || pod.status.phase === "Failed") continue
        if (pod.spec.nodeName === undefined) schedule(pod)
        if (pod.spec.nodeName !== undefined && !procs.has(pod.metadata.uid!)) runPod(pod)
      }
    } finally {
      reconciling = false
    }
  }

  // ---- deletion and garbage collection ----------------------------------------------------------------
  /** `holdOrphan`'s wait, for the next Orphan delete of a Job. */
  let orphanHold: (() => Promise<void>) | undefined
  const deleteObject = (kind: Kind, obj: Obj, policy: string) => {
    if (!store.has(key(kind, obj.metadata.namespace!, obj.metadata.name))) return
    const deps = dependents(obj.metadata.uid!)
    const deleteDep = ({ kind: k, o }: { kind: Kind; o: Obj }, then: () => void) => {
      if (k === "pods") deletePod(o, then)
      else {
        deleteObject(k, o, "Background")
        then()
      }
    }
    if (policy === "Orphan") {
      const orphan = () => {
        for (const { kind: k, o } of dependents(obj.metadata.uid!)) {
          o.metadata.ownerReferences = o.metadata.ownerReferences!.filter((r) => r.uid !== obj.metadata.uid)
          put(k, o, "MODIFIED")
        }
        if (kind === "pods") deletePod(obj)
        else remove(kind, obj)
      }
      const hold = kind === "jobs" ? orphanHold : undefined
      if (hold === undefined) return orphan()
      orphanHold = undefined
      obj.metadata.deletionTimestamp ??= now()
      obj.metadata.finalizers = ["orphan"]
      put(kind, obj, "MODIFIED")
      void hold().then(() => {
        if (obj.metadata.finalizers?.includes("orphan") === true) orphan()
      })
    } else if (policy === "Foreground") {
      // (a Job deleted in the foreground already: nothing more to do)
      if (obj.metadata.finalizers?.includes("foregroundDeletion") === true) return
      obj.metadata.deletionTimestamp ??= now()
      obj.metadata.finalizers = ["foregroundDeletion"]
      put(kind, obj, "MODIFIED")
      let left = deps.length
      const one = () => {
        if (--left <= 0) (kind === "pods" ? deletePod(obj) : remove(kind, obj))
      }
      if (deps.length === 0) one()
      for (const d of deps) deleteDep(d, one)
    } else {
      if (kind === "pods") deletePod(obj)
      else remove(kind, obj)
      for (const d of deps) deleteDep(d, () => undefined)
    }
  }

  // ---- HTTP -----------------------------------------------------------------------------------------------
  const send = (res: http.ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { "content-type": "application/json" })
    res.end(JSON.stringify(body))
  }
  const readBody = (req: http.IncomingMessage) =>
    new Promise<string>((resolve) => {
      const chunks: Array<Buffer> = []
      req.on("data", (d: Buffer) => chunks.push(d))
      req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    })

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x")
    requests.push(`${req.method} ${url.pathname}${url.search}`)
    const delayed = req.method === "DELETE" ? [...delaying.keys()].find((k) => url.pathname.includes(`/${k}/`)) : undefined
    if (delayed !== undefined) {
      const until = delaying.get(delayed)!
      delaying.delete(delayed)
      await until()
    }
    if (req.headers.authorization !== `Bearer ${token}`) return send(res, 401, status(401, "Unauthorized", "Unauthorized"))
    const q = url.searchParams
    /** `denied` access, answered as the API server's RBAC authorizer does. */
    const refuse = (verb: string, resource: string, group: string, ns: string | undefined, name?: string) => {
      if (!denied.has(`${verb} ${resource}`)) return false
      const base = resource.split("/")[0]!
      send(res, 403, status(403, "Forbidden",
        `${group === "" ? base : `${base}.${group}`}${name !== undefined ? ` "${name}"` : ""} is forbidden: User "fake" cannot ${verb} resource "${resource}" in API group "${group}" ` +
          (ns !== undefined ? `in the namespace "${ns}"` : "at the cluster scope")))
      return true
    }
    if (url.pathname === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" && req.method === "POST") {
      const review = JSON.parse(await readBody(req)) as { spec?: { resourceAttributes?: { verb?: string; resource?: string; subresource?: string } } }
      const a = review.spec?.resourceAttributes ?? {}
      const allowed = !denied.has(`${a.verb} ${a.resource}${a.subresource ? `/${a.subresource}` : ""}`)
      return send(res, 201, { kind: "SelfSubjectAccessReview", apiVersion: "authorization.k8s.io/v1", metadata: {}, spec: review.spec, status: { allowed, ...(allowed ? { reason: "RBAC: allowed by RoleBinding \"trex/fake\"" } : {}) } })
    }
    const sa = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)$/.exec(url.pathname)
    if (sa !== null && req.method === "GET") {
      if (refuse("get", "serviceaccounts", "", sa[1], sa[2])) return
      return serviceAccounts.has(sa[2]!) && (namespaces === undefined || namespaces.has(sa[1]!))
        ? send(res, 200, { kind: "ServiceAccount", apiVersion: "v1", metadata: { name: sa[2], namespace: sa[1] } })
        : send(res, 404, status(404, "NotFound", `serviceaccounts "${sa[2]}" not found`))
    }
    const pvc = /^\/api\/v1\/namespaces\/([^/]+)\/persistentvolumeclaims\/([^/]+)$/.exec(url.pathname)
    if (pvc !== null && req.method === "GET") {
      if (refuse("get", "persistentvolumeclaims", "", pvc[1], pvc[2])) return
      const modes = claims.get(pvc[2]!)
      return modes !== undefined && (namespaces === undefined || namespaces.has(pvc[1]!))
        ? send(res, 200, {
          kind: "PersistentVolumeClaim",
          apiVersion: "v1",
          metadata: { name: pvc[2], namespace: pvc[1] },
          spec: { accessModes: modes, resources: { requests: { storage: "100Gi" } } },
          status: { phase: "Bound", accessModes: modes }
        })
        : send(res, 404, status(404, "NotFound", `persistentvolumeclaims "${pvc[2]}" not found`))
    }
    if (url.pathname === "/api/v1/nodes" && req.method === "GET") {
      if (refuse("list", "nodes", "", undefined)) return
      return send(res, 200, {
        kind: "NodeList",
        apiVersion: "v1",
        metadata: { resourceVersion: String(rv) },
        items: nodes.map((n) => ({
          apiVersion: "v1",
          kind: "Node",
          metadata: { name: n.name, labels: n.labels ?? {} },
          spec: { taints: n.taints ?? [] },
          status: { allocatable: { cpu: n.cpu, memory: `${n.memoryMi}Mi`, ...Object.fromEntries(Object.entries(n.extended ?? {}).map(([k, v]) => [k, String(v)])) } }
        }))
      })
    }
    // the eviction API (pkg/registry/core/pod/storage/eviction.go, no PodDisruptionBudgets here): the pod gets a
    // DisruptionTarget condition (addConditionAndDeletePod), then is deleted, its grace period first
    const eviction = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/eviction$/.exec(url.pathname)
    if (eviction !== null && req.method === "POST") {
      if (refuse("create", "pods/eviction", "", eviction[1], eviction[2])) return
      const pod = store.get(key("pods", eviction[1]!, eviction[2]!))
      if (pod === undefined) return send(res, 404, status(404, "NotFound", `pods "${eviction[2]}" not found`))
      if (pod.metadata.deletionTimestamp === undefined) {
        pod.status.conditions = [...(pod.status.conditions ?? []), { type: "DisruptionTarget", status: "True", reason: "EvictionByEvictionAPI", message: "Eviction API: evicting", lastTransitionTime: now() }]
        put("pods", pod, "MODIFIED")
        deletePod(pod)
      }
      return send(res, 201, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", code: 201 })
    }
    const m = /^\/(?:api\/v1|apis\/batch\/v1|apis\/kueue\.x-k8s\.io\/v1beta1)\/namespaces\/([^/]+)\/(jobs|pods|configmaps|secrets|events|workloads)(?:\/([^/]+))?(\/log)?$/.exec(url.pathname)
    // (Kueue's resources are served only where it is installed, as its CRD's are)
    if (m === null || (m[2] === "workloads" && options.suspendJobs !== true)) {
      return send(res, 404, status(404, "NotFound", `the server could not find the requested resource ${url.pathname}`))
    }
    const [, ns, kind, name, log] = m as unknown as [string, string, Kind, string | undefined, string | undefined]
    if (!url.pathname.startsWith(`/${KIND_NAME[kind][0] === "v1" ? "api/v1" : `apis/${KIND_NAME[kind][0]}`}/`)) return send(res, 404, status(404, "NotFound", "wrong API group"))
    const [apiVersion, kindName] = KIND_NAME[kind]
    const existing = name !== undefined ? store.get(key(kind, ns, name)) : undefined
    const notFound = () => send(res, 404, status(404, "NotFound", `${kind.replace(/s$/, "")}s "${name}" not found`))
    const verb = log !== undefined || (req.method === "GET" && name !== undefined)
      ? "get"
      : req.method === "GET"
      ? q.get("watch") === "true" ? "watch" : "list"
      : req.method === "POST"
      ? "create"
      : req.method === "DELETE"
      ? "delete"
      : req.method!.toLowerCase()
    if (refuse(verb, `${kind}${log !== undefined ? "/log" : ""}`, kind === "jobs" ? "batch" : kind === "workloads" ? "kueue.x-k8s.io" : "", ns, req.method === "POST" ? undefined : name)) return

    if (log !== undefined) {
      if (kind !== "pods" || existing === undefined || logsGone) return notFound()
      if (nodeDown.has(existing.metadata.uid!)) {
        return send(res, 500, status(500, "InternalError", `the stand-in: the kubelet of pod "${name}"'s node ${existing.spec.nodeName} does not answer`))
      }
      const proc = procs.get(existing.metadata.uid!)
      if (proc === undefined) {
        const reason = existing.status.containerStatuses?.[0]?.state?.waiting?.reason ?? "ContainerCreating"
        return send(res, 400, status(400, "BadRequest", `container "job" in pod "${name}" is waiting to start: ${reason}`))
      }
      // as the kubelet serves it (pkg/kubelet/kuberuntime/logs/logs.go): the current file's messages from sinceTime
      // on, each after its timestamp (RFC3339NanoFixed) with timestamps=true; the API server passes sinceTime on
      // in whole seconds (LogLocation in pkg/registry/core/pod/strategy.go)
      const stamps = q.get("timestamps") === "true"
      const sinceParam = q.get("sinceTime")
      const since = sinceParam === null ? undefined : BigInt(Math.floor(Date.parse(sinceParam) / 1000)) * 1_000_000_000n
      const shown = (e: LogEntry) => (stamps ? `${stampOf(e.at)} ${e.text}` : e.text)
      res.writeHead(200, { "content-type": "text/plain" })
      res.write(proc.file.filter((e) => since === undefined || e.at >= since).map(shown).join(""))
      const running = proc.child.exitCode === null && proc.child.signalCode === null && existing.status.phase === "Running"
      if (q.get("follow") !== "true" || !running) return res.end()
      const listener = (es: ReadonlyArray<LogEntry> | null) => (es === null ? (proc.listeners.delete(listener), res.end()) : res.write(es.map(shown).join("")))
      proc.listeners.add(listener)
      const follower = {
        uid: existing.metadata.uid!,
        end: () => {
          proc.listeners.delete(listener)
          res.end()
        },
        stall: () => void proc.listeners.delete(listener)
      }
      followers.add(follower)
      res.on("close", () => {
        proc.listeners.delete(listener)
        followers.delete(follower)
      })
      return
    }

    if (req.method === "GET" && name === undefined && q.get("watch") === "true") {
      res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" })
      // at once, as the API server does: a watch with nothing to replay is open before its first event
      res.flushHeaders()
      const w = { kind, ns, labels: q.get("labelSelector"), fields: q.get("fieldSelector"), res }
      const from = q.get("resourceVersion")
      const initial = from !== null && from !== "" && from !== "0"
        ? events.filter((e) => e.kind === kind && e.ns === ns && e.rv > Number(from)).map((e) => ({ type: e.type, object: e.obj }))
        : all(kind, ns).map((o) => ({ type: "ADDED", object: clone(o) }))
      for (const e of initial) {
        if (matchesLabels(w.labels, e.object.metadata.labels) && matchesFields(w.fields, e.object)) res.write(JSON.stringify(e) + "\n")
      }
      watchers.add(w)
      const timeout = Number(q.get("timeoutSeconds") ?? 0)
      if (timeout > 0) later(timeout * 1000, () => res.end())
      res.on("close", () => watchers.delete(w))
      return
    }
    if (req.method === "GET" && name === undefined) {
      const items = all(kind, ns).filter((o) => matchesLabels(q.get("labelSelector"), o.metadata.labels) && matchesFields(q.get("fieldSelector"), o))
      return send(res, 200, { kind: `${kindName}List`, apiVersion, metadata: { resourceVersion: String(rv) }, items })
    }
    if (req.method === "GET") return existing !== undefined ? send(res, 200, existing) : notFound()
    if (req.method === "POST" && name === undefined) {
      const obj = JSON.parse(await readBody(req)) as Obj
      const n = obj.metadata?.name
      if (n === undefined || !DNS1123.test(n) || n.length > 253) return send(res, 422, status(422, "Invalid", `${kindName} "${n}" is invalid: metadata.name`))
      for (const [k, v] of Object.entries(obj.metadata.labels ?? {})) {
        if (!/^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/.test(v)) return send(res, 422, status(422, "Invalid", `metadata.labels: Invalid value: "${v}" (${k})`))
      }
      if (namespaces !== undefined && !namespaces.has(ns)) return send(res, 404, status(404, "NotFound", `namespaces "${ns}" not found`))
      if (store.has(key(kind, ns, n))) return send(res, 409, status(409, "AlreadyExists", `${kind} "${n}" already exists`))
      if (kind === "pods") {
        const refused = podRefusal(ns, n, obj.spec)
        if (refused !== undefined) return send(res, 403, status(403, "Forbidden", refused))
      }
      Object.assign(obj, { apiVersion, kind: kindName })
      obj.metadata = { ...obj.metadata, namespace: ns, uid: randomUUID(), creationTimestamp: now() }
      // a server-side dry run: validated and admitted as above, answered as made, and not stored
      if (q.get("dryRun") === "All") return send(res, 201, obj)
      if (kind === "secrets" && obj.stringData !== undefined) {
        obj.data = { ...obj.data, ...Object.fromEntries(Object.entries(obj.stringData as Record<string, string>).map(([k, v]) => [k, Buffer.from(v).toString("base64")])) }
        delete obj.stringData
      }
      // (defaulted as the API server does: a JSON patch may replace it)
      if (kind === "jobs") obj.spec.suspend = options.suspendJobs === true || obj.spec.suspend === true
      if (kind === "jobs") obj.status = { ...(obj.spec.suspend === true ? {} : { startTime: now() }), active: 0 }
      if (kind === "jobs" && obj.spec.suspend !== true) armDeadline(obj)
      put(kind, obj, "ADDED")
      if (kind === "jobs" && options.suspendJobs === true) makeWorkload(obj)
      if (kind === "jobs" && options.suspendJobs === true && options.admitAtCreate === true) admit(ns, obj.metadata.name)
      if (lost("POST", kind, req)) return
      return send(res, 201, obj)
    }
    if (req.method === "DELETE" && existing !== undefined) {
      const body = await readBody(req)
      const options = (body !== "" ? JSON.parse(body) : {}) as { propagationPolicy?: string; preconditions?: { resourceVersion?: string; uid?: string } }
      // as the API server: an object that changed since the caller read it is not deleted
      const pre = options.preconditions
      if (pre?.uid !== undefined && pre.uid !== existing.metadata.uid) {
        return send(res, 409, status(409, "Conflict", `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${existing.metadata.uid}`))
      }
      if (pre?.resourceVersion !== undefined && pre.resourceVersion !== existing.metadata.resourceVersion) {
        return send(res, 409, status(409, "Conflict", `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${existing.metadata.resourceVersion}`))
      }
      const policy = q.get("propagationPolicy") ?? options.propagationPolicy
      deleteObject(kind, existing, policy ?? (kind === "jobs" ? "Orphan" : "Background"))
      if (lost("DELETE", kind, req)) return
      return send(res, 200, existing)
    }
    if (req.method === "DELETE") return notFound()
    if (req.method === "PATCH" && existing !== undefined) {
      // a JSON patch (RFC 6902: add, replace, remove, test), as the client sends by default
      if (req.headers["content-type"] !== "application/json-patch+json") {
        return send(res, 415, status(415, "UnsupportedMediaType", `the stand-in takes application/json-patch+json, not ${req.headers["content-type"]}`))
      }
      const ops = JSON.parse(await readBody(req)) as Array<{ op: string; path: string; value?: unknown }>
      const patched = clone(existing)
      for (const op of ops) {
        const parts = op.path.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
        const last = parts.pop()!
        const parent = parts.reduce<any>((o, p) => o?.[p], patched)
        if (parent === undefined || typeof parent !== "object" || (op.op !== "add" && !(last in parent))) {
          return send(res, 422, status(422, "Invalid", `the server rejected our request due to an error in our request: ${op.op} ${op.path}: no such path`))
        }
        if (op.op === "test") {
          // as the API server answers a patch whose test fails: 422, nothing changed
          if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) {
            return send(res, 422, status(422, "Invalid", `the server rejected our request due to an error in our request: testing value ${op.path} failed`))
          }
        } else if (op.op === "remove") delete parent[last]
        else if (op.op === "add" || op.op === "replace") parent[last] = op.value
        else return send(res, 422, status(422, "Invalid", `the stand-in does not carry out ${op.op}`))
      }
      // the object itself changes (its controllers hold it): its metadata's labels and annotations, a Job's
      // `spec.suspend` (a person's `kubectl patch job`), a Workload's `spec.active` (Kueue's deactivation, a reactivation)
      existing.metadata.labels = patched.metadata.labels ?? {}
      existing.metadata.annotations = patched.metadata.annotations ?? {}
      const resumed = kind === "jobs" && existing.spec.suspend === true && patched.spec?.suspend !== true
      const suspended = kind === "jobs" && existing.spec.suspend !== true && patched.spec?.suspend === true
      if (kind === "jobs") existing.spec.suspend = patched.spec?.suspend === true
      if (kind === "workloads") existing.spec.active = patched.spec?.active
      put(kind, existing, "MODIFIED")
      if (resumed) resumeJob(existing)
      // Kueue starts a suspended Job whose workload it admits (`ReconcileGenericJob`, step 7): a person's suspension
      // of such a Job is undone by its next reconcile (here a moment later)
      if (suspended && options.suspendJobs === true && admittedNow(workloadOf(existing))) {
        later(options.kueueResumeMs ?? 1000, () => {
          const job = store.get(key("jobs", ns, existing.metadata.name))
          if (job === undefined || job.spec.suspend !== true || !admittedNow(workloadOf(job))) return
          job.spec.suspend = false
          put("jobs", job, "MODIFIED")
          startedByKueue(job)
          resumeJob(job)
        })
      }
      return send(res, 200, existing)
    }
    return send(res, 405, status(405, "MethodNotAllowed", `${req.method} is not supported by the fake`))
  }

  let down = false
  let downMode: OutageMode = "reset"
  /** Requests taken and not answered during a `hang` outage. */
  const held = new Set<http.IncomingMessage>()
  const losing = new Map<string, { outage: boolean }>()
  const delaying = new Map<Kind, () => Promise<void>>()
  /** Whether this request's answer is to be lost (see `loseAnswer`): its connection is then cut. */
  const lost = (method: string, kind: Kind, req: http.IncomingMessage) => {
    const lose = losing.get(`${method} ${kind}`)
    if (lose === undefined) return false
    losing.delete(`${method} ${kind}`)
    req.socket.destroy()
    if (lose.outage) {
      down = true
      downMode = "reset"
      server.closeAllConnections()
    }
    return true
  }
  const server = http.createServer((req, res) => {
    if (down && downMode === "hang") {
      held.add(req)
      req.socket.on("close", () => held.delete(req))
      return
    }
    if (down) return void req.socket.destroy()
    handle(req, res).catch((e) => send(res, 500, status(500, "InternalError", String(e))))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address() as { port: number }
  /** Stop listening (`refused`), or listen again on the same port. */
  const listening = (on: boolean) =>
    on ? server.listen(address.port, "127.0.0.1") : server.close()
  const url = `http://127.0.0.1:${address.port}`
  return {
    url,
    token,
    requests,
    logsGone: (on) => {
      logsGone = on
    },
    endLogs: () => {
      for (const f of [...followers]) f.end()
    },
    stallLogs: () => {
      for (const f of [...followers]) f.stall()
    },
    watchError: () => {
      for (const w of [...watchers]) {
        watchers.delete(w)
        w.res.end(JSON.stringify({ type: "ERROR", object: status(410, "Expired", `too old resource version: 1 (${rv})`) }) + "\n")
      }
    },
    loseAnswer: (kind, outage = false, method = "POST") => {
      losing.set(`${method} ${kind}`, { outage })
    },
    delayDelete: (kind, until) => {
      delaying.set(kind, until)
    },
    lateExitReport: (until) => {
      lateUntil = until
    },
    holdOrphan: (until) => {
      orphanHold = until
    },
    outage: (on, mode = "reset") => {
      if (on === down) return
      if (on) {
        down = true
        downMode = mode
        server.closeAllConnections()
        if (mode === "refused") listening(false)
      } else {
        down = false
        if (downMode === "refused") listening(true)
        for (const req of held) req.socket.destroy()
        held.clear()
      }
    },
    setPodQuota: (quota) => {
      podQuota = quota
      setImmediate(reconcile)
    },
    admit: (namespace, name) => admit(namespace, name),
    suspend: (namespace, name, message = "Preempted to accommodate a workload (UID: 0c0ffee0-the-stand-in) due to prioritization in the ClusterQueue") =>
      evict(namespace, name, "Preempted", message),
    deactivate: (namespace, name, o = {}) => {
      const job = store.get(key("jobs", namespace, name))
      const wl = job !== undefined ? workloadOf(job) : undefined
      if (job === undefined || wl === undefined || wl.spec.active === false) return false
      // the user's `spec.active: false`, or Kueue's own once the requeuing limit is reached (`backoffLimitCount`)
      wl.spec.active = false
      put("workloads", wl, "MODIFIED")
      const reason = o.reason ?? "DeactivatedDueToRequeuingLimitExceeded"
      evict(namespace, name, reason, o.message ?? "The workload is deactivated due to exceeding the maximum number of re-queuing retries")
      const retention = options.afterDeactivatedByKueueMs
      // (only a deactivation of Kueue's own: `IsEvictedDueToDeactivationByKueue`)
      if (retention !== undefined && reason.startsWith("DeactivatedDueTo")) {
        later(retention, () => {
          const still = store.get(key("jobs", namespace, name))
          if (still === undefined || still.metadata.uid !== job.metadata.uid || workloadOf(still)?.spec.active !== false) return
          deleteObject("jobs", still, "Background")
          // its Event after the delete, as Kueue records it (client-go's recorder sends it a little later)
          later(500, () => recordEvent(still, "Normal", "Deleted", "Deleted job: deactivation retention period expired", "kueue-job-controller"))
        })
      }
      return true
    },
    nodeUnreachable: (namespace, name) => {
      const pod = store.get(key("pods", namespace, name))
      if (pod === undefined) return false
      nodeDown.add(pod.metadata.uid!)
      pod.status.conditions = (pod.status.conditions ?? []).map((c: any) => (c.type === "Ready" ? { ...c, status: "False", lastTransitionTime: now() } : c))
      put("pods", pod, "MODIFIED")
      for (const f of [...followers]) if (f.uid === pod.metadata.uid) f.end()
      return true
    },
    disrupt: (namespace, name, reason, o = {}) => {
      const pod = store.get(key("pods", namespace, name))
      if (pod === undefined) return false
      const message = o.message ?? `${reason} (the stand-in)`
      pod.status.conditions = [...(pod.status.conditions ?? []), { type: "DisruptionTarget", status: "True", reason, message, lastTransitionTime: now() }]
      const proc = procs.get(pod.metadata.uid!)
      const running = proc !== undefined && proc.child.exitCode === null && proc.child.signalCode === null
      // the kubelet stops an evicted pod and leaves it; a preemption (the scheduler), a drain (the eviction API), the
      // taint manager or the pod garbage collector delete it, its grace period first
      if (o.nodeDown === true) {
        nodeDown.add(pod.metadata.uid!)
        pod.metadata.deletionTimestamp = now()
        countIfFailed(pod)
        put("pods", pod, "MODIFIED")
        if (running) process.kill(-proc!.child.pid!, "SIGKILL")
        return running
      }
      if (o.evicted === true) {
        Object.assign(pod.status, { reason: "Evicted", message })
        put("pods", pod, "MODIFIED")
        return killPod(pod)
      }
      put("pods", pod, "MODIFIED")
      deletePod(pod)
      return running
    },
    get: (kind, namespace, name) => store.get(key(kind, namespace, name)),
    list: (kind, namespace) => all(kind, namespace),
    claimDir,
    kubeConfig: () => {
      const kc = new KubeConfig()
      kc.loadFromOptions({
        clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
        users: [{ name: "fake", token }],
        contexts: [{ name: "fake", cluster: "fake", user: "fake", namespace: "default" }],
        currentContext: "fake"
      })
      return kc
    },
    close: async () => {
      for (const t of timers) clearTimeout(t)
      for (const p of procs.values()) {
        clearInterval(p.memTimer)
        if (p.child.pid !== undefined && p.child.exitCode === null && p.child.signalCode === null) {
          try {
            process.kill(-p.child.pid, "SIGKILL")
          } catch {
            // already gone
          }
        }
      }
      for (const w of watchers) w.res.end()
      for (const req of held) req.socket.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      fs.rmSync(root, { recursive: true, force: true })
    }
  }
}
