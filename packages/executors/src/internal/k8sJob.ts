/**
 * Pure parts of the Kubernetes backend: the Job, ConfigMap and Secret manifests for a
 * {@link Backend.JobSpec}, the wrapper command that prints `result.json` as a marker line, and
 * the mapping of Job and Pod status onto TREX job events.
 */
import { createHash } from "node:crypto"
import * as os from "node:os"
import type { Backend, Result } from "@trex/core"
import { Redacted } from "effect"
import type { CoreV1Event, V1ConfigMap, V1EnvVar, V1Job, V1Node, V1Pod, V1PodSpec, V1Secret, V1Taint, V1Toleration, V1Volume, V1VolumeMount } from "@kubernetes/client-node"
import { isEnvName, isSafeRelativePath, shellQuote } from "./shell.ts"

/** Label and annotation keys. */
export const RUN_LABEL = "trex.dev/run"
export const NODE_LABEL = "trex.dev/node"
export const JOB_LABEL = "trex.dev/job"
/** The label of a cancelled job's tombstone ConfigMap (its value: the job's name); not on any other object. */
export const TOMBSTONE_LABEL = "trex.dev/cancelled-job"
/** The line the wrapper prints after the job: `TREX_RESULT <base64 of result.json>`. */
export const RESULT_MARKER = "TREX_RESULT "
/**
 * The line the job wrapper prints, on a line of its own, when it gets SIGTERM (or SIGINT), before it passes the signal on
 * to the job: a container whose log holds it was ended by a deletion's signal, whatever its exit code (a job that exits 0
 * on SIGTERM). No clock is needed to tell, as it would be to compare the kubelet's `finishedAt` with a deletion's time.
 */
export const TERM_MARKER = "TREX_TERM"
/**
 * The line the job wrapper prints last, always (after the result's line, if any): a log that holds it was read to the
 * wrapper's end, whether or not the job wrote a result.
 */
export const END_MARKER = "TREX_END"
/**
 * The annotation on a Job (and its pod) that holds its wrapper's per-job mark (hex): its `TERM_MARKER` and `END_MARKER`
 * lines end with ` <mark>`, so that a job's own line `TREX_TERM` is its output, neither hidden nor taken for the signal's.
 */
export const MARKER_ANNOTATION = "trex.dev/marker"

/**
 * The wrapper's marker lines that the log of a Job's container holds: with its per-job mark (`MARKER_ANNOTATION`), the
 * TERM line and the end line; a Job of a wrapper from before the mark: the bare TERM line, and no end line.
 */
export const markersOf = (job: { readonly metadata?: { readonly annotations?: { readonly [key: string]: string } | undefined } | undefined } | undefined): {
  readonly term: string
  readonly end: string | undefined
} => {
  const mark = job?.metadata?.annotations?.[MARKER_ANNOTATION]
  return mark !== undefined && /^[0-9a-f]{8,64}$/.test(mark) ? { term: `${TERM_MARKER} ${mark}`, end: `${END_MARKER} ${mark}` } : { term: TERM_MARKER, end: undefined }
}
/**
 * Which of the wrapper's marker lines (`markersOf`) a log line is, if one: as it is, or with the kubelet's timestamps
 * inside it taken off (`withoutInnerStamps`: a runtime that writes what one read of the container's pipe gave as a
 * partial message, CRI-O's conmon does, may split even a short line, and the kubelet then puts the next piece's
 * timestamp inside it). A job's own line with a timestamp inside cannot be taken for one: it would hold the Job's mark.
 */
export const markerLine = (line: string, markers: { readonly term: string; readonly end: string | undefined }): "term" | "end" | undefined => {
  // (only a short line that starts as a marker does is looked at again: no regex over every line of a long log)
  const whole = line === markers.term || line === markers.end || line.length > 256 || !line.startsWith("T") ? line : withoutInnerStamps(line)
  return whole === markers.term ? "term" : markers.end !== undefined && whole === markers.end ? "end" : undefined
}
export const CONTAINER = "job"

/**
 * A volume mounted into every job's container at `target`, from exactly one source: a
 * PersistentVolumeClaim of the namespace (`claim`), a directory of the node (`hostPath`) or an NFS
 * export (`nfs`); `subPath` mounts a folder of it (made when it is not there), `readOnly` as it says.
 */
export interface Mount {
  readonly target: string
  readonly claim?: string | undefined
  readonly hostPath?: string | undefined
  readonly nfs?: { readonly server: string; readonly path: string } | undefined
  readonly subPath?: string | undefined
  readonly readOnly?: boolean | undefined
}

/** A DNS-1123 subdomain, as object names (a claim's) must be. */
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

/** An absolute path, normalised (no `.`, `..` or empty segment), not `/`. */
const isAbsolutePath = (p: string) => /^(\/[^/]+)+$/.test(p) && !p.split("/").some((s) => s === "." || s === "..")

/** Whether one of two absolute paths is the other or holds it. */
const overlaps = (a: string, b: string) => a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`)

/**
 * What is wrong with the backend's volume settings, each naming its field and the fix (empty when
 * nothing): `mounts` (see {@link Mount}), `jobDirClaim` (a claim to hold the job directories) and
 * `shmSizeMb`, against the job directory and the spec directory they must not hide.
 */
export const volumeProblems = (o: {
  readonly mounts?: ReadonlyArray<Mount> | undefined
  readonly jobDirClaim?: string | undefined
  readonly shmSizeMb?: number | undefined
  readonly jobDir: string
  readonly specDir: string
}): Array<string> => {
  const out: Array<string> = []
  const claimName = (field: string, name: string) => {
    if (name.length > 253 || !SUBDOMAIN.test(name)) out.push(`${field}: ${JSON.stringify(name)} is not a PersistentVolumeClaim's name (lower-case letters, digits, '-' and '.'; \`kubectl get pvc -n <namespace>\` lists them)`)
  }
  if (o.jobDirClaim !== undefined) claimName("backend.k8s.jobDirClaim", o.jobDirClaim)
  if (o.shmSizeMb !== undefined && !(Number.isFinite(o.shmSizeMb) && o.shmSizeMb > 0)) out.push(`backend.k8s.shmSizeMb: ${o.shmSizeMb} is not a size: give the megabytes of /dev/shm (16384 for 16 GB)`)
  const taken: Array<[string, string]> = [[o.jobDir, "the job directory (backend.k8s.jobDir)"], [o.specDir, "the job's files"]]
  if (o.shmSizeMb !== undefined) taken.push(["/dev/shm", "backend.k8s.shmSizeMb"])
  ;(o.mounts ?? []).forEach((m, i) => {
    const field = `backend.k8s.mounts[${i}]`
    const sources = [m.claim !== undefined ? "claim" : undefined, m.hostPath !== undefined ? "hostPath" : undefined, m.nfs !== undefined ? "nfs" : undefined].filter((x) => x !== undefined)
    if (sources.length !== 1) {
      out.push(`${field}: ${sources.length === 0 ? "says not what to mount" : `gives ${sources.join(" and ")}`}: give one of claim (a PersistentVolumeClaim's name), hostPath (a directory of the node) or nfs ({server, path})`)
    }
    if (m.claim !== undefined) claimName(`${field}.claim`, m.claim)
    if (m.hostPath !== undefined && !isAbsolutePath(m.hostPath)) out.push(`${field}.hostPath: ${JSON.stringify(m.hostPath)} is not an absolute path of the node (/mnt/datasets)`)
    if (m.nfs !== undefined) {
      if (m.nfs.server.trim() === "") out.push(`${field}.nfs.server: give the NFS server's host name or address`)
      if (!isAbsolutePath(m.nfs.path)) out.push(`${field}.nfs.path: ${JSON.stringify(m.nfs.path)} is not an absolute path of the export (/export/datasets)`)
    }
    if (m.subPath !== undefined && !isSafeRelativePath(m.subPath)) out.push(`${field}.subPath: ${JSON.stringify(m.subPath)} is not a relative path inside the volume (huggingface, not /huggingface or ../x)`)
    if (!isAbsolutePath(m.target)) {
      out.push(`${field}.target: ${JSON.stringify(m.target)} is not an absolute path in the container (/cache/huggingface)`)
      return
    }
    const clash = taken.find(([t]) => overlaps(t, m.target))
    if (clash !== undefined) out.push(`${field}.target: ${m.target} would ${clash[0] === m.target ? "hide" : "overlap"} ${clash[1]} at ${clash[0]}: mount it elsewhere`)
    else taken.push([m.target, field])
  })
  return out
}

/** A label or annotation key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters. */
const isKey = (key: string): boolean => {
  const slash = key.lastIndexOf("/")
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined
  const name = key.slice(slash + 1)
  return (prefix === undefined || (prefix.length <= 253 && SUBDOMAIN.test(prefix))) && /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(name)
}

/**
 * What is wrong with the backend's own `labels`, `annotations` and `priorityClassName` (see
 * {@link ManifestOptions}), each naming its field and the fix; TREX's own keys (`trex.dev/...`) are not theirs.
 */
export const metadataProblems = (o: {
  readonly labels?: Readonly<Record<string, string>> | undefined
  readonly annotations?: Readonly<Record<string, string>> | undefined
  readonly priorityClassName?: string | undefined
}): Array<string> => {
  const out: Array<string> = []
  for (const [field, record] of [["labels", o.labels], ["annotations", o.annotations]] as const) {
    for (const [key, value] of Object.entries(record ?? {})) {
      const at = `backend.k8s.${field}[${JSON.stringify(key)}]`
      if (key.startsWith("trex.dev/")) out.push(`${at}: trex.dev/ keys are TREX's own (a job's run, node and name): use a key of your own`)
      else if (!isKey(key)) out.push(`${at}: not a ${field === "labels" ? "label" : "annotation"} key (a name of at most 63 letters, digits, '-', '_' and '.', after an optional DNS prefix and '/': kueue.x-k8s.io/queue-name)`)
      if (field === "labels" && !/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/.test(value)) {
        out.push(`${at}: ${JSON.stringify(value)} is not a label value (at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)`)
      }
    }
  }
  if (o.priorityClassName !== undefined && (o.priorityClassName.length > 253 || !SUBDOMAIN.test(o.priorityClassName))) {
    out.push(`backend.k8s.priorityClassName: ${JSON.stringify(o.priorityClassName)} is not a PriorityClass's name (\`kubectl get priorityclasses\` lists them)`)
  }
  return out
}

/**
 * The Kubernetes volumes and their mounts for the backend's settings: the job directory (an
 * `emptyDir`, or with `jobDirClaim` the folder `<run>/<job>` of that claim, which outlives the pod),
 * the job's files (its ConfigMap), `/dev/shm` (memory, `shmSizeMb`), then `mounts`.
 */
export const volumesOf = (o: {
  readonly name: string
  readonly run: string
  readonly jobDir: string
  readonly specDir: string
  readonly mounts?: ReadonlyArray<Mount> | undefined
  readonly jobDirClaim?: string | undefined
  readonly shmSizeMb?: number | undefined
}): { readonly volumes: Array<V1Volume>; readonly volumeMounts: Array<V1VolumeMount> } => {
  const volumes: Array<V1Volume> = [
    o.jobDirClaim !== undefined ? { name: "job", persistentVolumeClaim: { claimName: o.jobDirClaim } } : { name: "job", emptyDir: {} },
    { name: "spec", configMap: { name: o.name } }
  ]
  const volumeMounts: Array<V1VolumeMount> = [
    { name: "job", mountPath: o.jobDir, ...(o.jobDirClaim !== undefined ? { subPath: jobDirSubPath(o.run, o.name) } : {}) },
    { name: "spec", mountPath: o.specDir, readOnly: true }
  ]
  if (o.shmSizeMb !== undefined) {
    volumes.push({ name: "shm", emptyDir: { medium: "Memory", sizeLimit: `${Math.ceil(o.shmSizeMb)}Mi` } })
    volumeMounts.push({ name: "shm", mountPath: "/dev/shm" })
  }
  ;(o.mounts ?? []).forEach((m, i) => {
    const name = `mount-${i}`
    volumes.push(
      m.claim !== undefined
        ? { name, persistentVolumeClaim: { claimName: m.claim, ...(m.readOnly === true ? { readOnly: true } : {}) } }
        : m.hostPath !== undefined
        ? { name, hostPath: { path: m.hostPath } }
        : { name, nfs: { server: m.nfs!.server, path: m.nfs!.path, ...(m.readOnly === true ? { readOnly: true } : {}) } }
    )
    volumeMounts.push({ name, mountPath: m.target, ...(m.subPath !== undefined ? { subPath: m.subPath } : {}), ...(m.readOnly === true ? { readOnly: true } : {}) })
  })
  return { volumes, volumeMounts }
}

/** The folder of a job's directory in `jobDirClaim`: `<run>/<job name>` (the run id made a safe folder name). */
export const jobDirSubPath = (run: string, job: string): string => `${labelValue(run)}/${job}`

/** What the manifests need besides the spec. */
export interface ManifestOptions {
  readonly name: string
  readonly namespace: string
  readonly image: string
  readonly jobDir: string
  readonly specDir: string
  readonly gpuResource: string
  readonly nodeSelector?: Readonly<Record<string, string>> | undefined
  readonly tolerations?: ReadonlyArray<V1Toleration> | undefined
  readonly serviceAccountName?: string | undefined
  readonly imagePullSecrets?: ReadonlyArray<string> | undefined
  readonly ttlSecondsAfterFinished?: number | undefined
  readonly mounts?: ReadonlyArray<Mount> | undefined
  readonly jobDirClaim?: string | undefined
  readonly shmSizeMb?: number | undefined
  readonly labels?: Readonly<Record<string, string>> | undefined
  readonly annotations?: Readonly<Record<string, string>> | undefined
  readonly priorityClassName?: string | undefined
  /** The wrapper's per-job mark (hex; see `MARKER_ANNOTATION`). */
  readonly marker?: string | undefined
}

/**
 * A label value (at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends); a value
 * that had to change gets a short hash so two different labels never collide.
 */
export const labelValue = (value: string): string => {
  if (/^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/.test(value)) return value
  const hash = createHash("sha256").update(value).digest("hex").slice(0, 8)
  const clean = value.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 50).replace(/[^A-Za-z0-9]+$/, "")
  return clean.length > 0 ? `${clean}-${hash}` : hash
}

/** A DNS-1123 name for the Job, its ConfigMap and Secret: `trex-<node>-<random>`. */
export const jobName = (node: string, random: string): string => {
  const base = node.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40)
  return `trex-${base.length > 0 ? `${base}-` : ""}${random}`.slice(0, 63).replace(/-+$/, "")
}

/** A CPU quantity: whole cores as `"2"`, fractions in millicores (`"500m"`). */
export const cpuQuantity = (cpus: number): string => (Number.isInteger(cpus) ? String(cpus) : `${Math.max(1, Math.round(cpus * 1000))}m`)

/** Parse a CPU quantity (`"2"`, `"500m"`) into cores. */
export const parseCpu = (q: string | undefined): number => {
  if (q === undefined) return 0
  return q.endsWith("m") ? Number(q.slice(0, -1)) / 1000 : Number(q)
}

/**
 * The container's command: copy the job files from the read-only ConfigMap into the writable job
 * directory, run argv as a child (forwarding SIGTERM) while echoing new `metrics.jsonl` lines as
 * `TREX_METRIC` lines, then print `result.json` as one base64 marker line, so both can be read
 * back from the pod log, and exit with the job's status.
 */
export const wrapperScript = (files: ReadonlyArray<{ readonly path: string }>, mark?: string): string => {
  const { term, end } = markersOf(mark !== undefined ? { metadata: { annotations: { [MARKER_ANNOTATION]: mark } } } : undefined)
  return [
    // The trap first: the shell is the container's pid 1, and the kernel drops a SIGTERM sent to pid 1 while no handler
    // is set, so a cancel arriving while the files are copied would be lost and the job run to its own end unmarked. The
    // mark of the signal goes first (it is in the log before the job can end by it); a signal before the child starts is
    // kept in `t` and given to the child as soon as it has a pid.
    `child= t=`,
    `trap 'printf "\\n${term}\\n"; t=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' TERM INT`,
    `mkdir -p "$TREX_JOB_DIR" || exit 97`,
    ...files.map((f, i) => {
      const dir = f.path.includes("/") ? f.path.slice(0, f.path.lastIndexOf("/")) : ""
      const mk = dir !== "" ? `mkdir -p "$TREX_JOB_DIR"/${shellQuote(dir)} && ` : ""
      return `${mk}cat "$TREX_SPEC_DIR/f${i}" > "$TREX_JOB_DIR"/${shellQuote(f.path)} || exit 97`
    }),
    `cd "$TREX_JOB_DIR" || exit 97`,
    `[ -z "$t" ] || exit 143`,
    // metrics.jsonl lives in the pod: a follower prints its new lines as TREX_METRIC lines, and a last pass after the job.
    `(`,
    `  seen=0`,
    `  while :; do`,
    `    d=0; [ -f .trex-done ] && d=1`,
    `    if [ -f metrics.jsonl ]; then`,
    `      total=$(wc -l < metrics.jsonl)`,
    `      if [ "$total" -gt "$seen" ]; then`,
    `        sed -n "$((seen + 1)),\${total}p" metrics.jsonl | while IFS= read -r l; do printf 'TREX_METRIC %s\n' "$l"; done`,
    `        seen=$total`,
    `      fi`,
    `    fi`,
    `    [ "$d" = 1 ] && exit 0`,
    `    sleep 1`,
    `  done`,
    `) &`,
    `follower=$!`,
    `"$@" &`,
    `child=$!`,
    `[ -z "$t" ] || kill -TERM "$child" 2>/dev/null`,
    `while :; do wait "$child"; rc=$?; kill -0 "$child" 2>/dev/null || break; done`,
    `: > .trex-done`,
    `wait "$follower"`,
    `if [ -f result.json ]; then printf '\\n${RESULT_MARKER}%s\\n' "$(base64 < result.json | tr -d '\\n')"; fi`,
    ...(end !== undefined ? [`printf '\\n${end}\\n'`] : []),
    `exit "$rc"`
  ].join("\n")
}

/** The three objects of a job: its ConfigMap (files), Secret (secret env) and Job. */
export const manifests = (spec: Backend.JobSpec, o: ManifestOptions): {
  readonly configMap: V1ConfigMap
  readonly secret: V1Secret
  readonly job: V1Job
} => {
  for (const f of spec.files) {
    if (!isSafeRelativePath(f.path)) throw new Error(`job file ${JSON.stringify(f.path)} must be a relative path inside the job directory`)
  }
  const badEnv = Object.keys(spec.env).find((k) => !isEnvName(k))
  if (badEnv !== undefined) throw new Error(`env name ${JSON.stringify(badEnv)} is not a valid variable name`)
  if (spec.argv.length === 0) throw new Error("argv is empty")
  // the backend's own labels and annotations (a queue's, a team's) first: TREX's cannot be overridden
  const labels = { ...o.labels, [RUN_LABEL]: labelValue(spec.labels.run), [NODE_LABEL]: labelValue(spec.labels.node), [JOB_LABEL]: o.name }
  const annotations = { ...o.annotations, [RUN_LABEL]: spec.labels.run, [NODE_LABEL]: spec.labels.node, ...(o.marker !== undefined ? { [MARKER_ANNOTATION]: o.marker } : {}) }
  const metadata = { name: o.name, namespace: o.namespace, labels, annotations }
  const secretData: Record<string, string> = {}
  const env: Array<V1EnvVar> = [{ name: "TREX_JOB_DIR", value: o.jobDir }, { name: "TREX_SPEC_DIR", value: o.specDir }]
  for (const [k, v] of Object.entries(spec.env)) {
    if (typeof v === "string") env.push({ name: k, value: v })
    else {
      secretData[k] = Buffer.from(Redacted.value(v)).toString("base64")
      env.push({ name: k, valueFrom: { secretKeyRef: { name: o.name, key: k } } })
    }
  }
  const volumes = volumesOf({ ...o, run: spec.labels.run })
  const limits: Record<string, string> = { cpu: cpuQuantity(spec.resources.cpus) }
  const requests: Record<string, string> = { cpu: cpuQuantity(spec.resources.cpus) }
  if (spec.resources.memoryMb !== undefined) limits.memory = requests.memory = `${Math.ceil(spec.resources.memoryMb)}Mi`
  if (spec.resources.gpus > 0) limits[o.gpuResource] = requests[o.gpuResource] = String(spec.resources.gpus)
  const job: V1Job = {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata,
    spec: {
      backoffLimit: 0,
      ...(spec.resources.timeLimitSeconds !== undefined ? { activeDeadlineSeconds: Math.max(1, Math.ceil(spec.resources.timeLimitSeconds)) } : {}),
      ...(o.ttlSecondsAfterFinished !== undefined ? { ttlSecondsAfterFinished: o.ttlSecondsAfterFinished } : {}),
      template: {
        metadata: { labels, annotations },
        spec: {
          restartPolicy: "Never",
          ...(o.nodeSelector !== undefined ? { nodeSelector: { ...o.nodeSelector } } : {}),
          ...(o.tolerations !== undefined ? { tolerations: [...o.tolerations] } : {}),
          ...(o.serviceAccountName !== undefined ? { serviceAccountName: o.serviceAccountName } : {}),
          ...(o.priorityClassName !== undefined ? { priorityClassName: o.priorityClassName } : {}),
          ...(o.imagePullSecrets !== undefined ? { imagePullSecrets: o.imagePullSecrets.map((name) => ({ name })) } : {}),
          containers: [{
            name: CONTAINER,
            image: spec.image ?? o.image,
            command: ["/bin/sh", "-c", wrapperScript(spec.files, o.marker), "trex-job", ...spec.argv],
            workingDir: o.jobDir,
            env,
            resources: { limits, requests },
            volumeMounts: volumes.volumeMounts
          }],
          volumes: volumes.volumes
        }
      }
    }
  }
  const configMap: V1ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata,
    data: Object.fromEntries(spec.files.map((f, i) => [`f${i}`, f.content]))
  }
  const secret: V1Secret = { apiVersion: "v1", kind: "Secret", metadata, type: "Opaque", data: secretData }
  return { configMap, secret, job }
}

/** Labels of a Job (or of its pod, or its tombstone, which carry the same annotations): its annotations hold the exact run and node. */
export const labelsOf = (job: { readonly metadata?: { readonly annotations?: { readonly [key: string]: string } | undefined } | undefined }): Backend.Labels | undefined => {
  const a = job.metadata?.annotations ?? {}
  const run = a[RUN_LABEL]
  const node = a[NODE_LABEL]
  return run !== undefined && node !== undefined ? { run, node } : undefined
}

/**
 * How a Job ended, from its conditions; `undefined` while it has not. Its controller (Kubernetes 1.31
 * and later) first records the end as `FailureTarget` or `SuccessCriteriaMet`, and `Failed` or
 * `Complete` only once none of its pods is terminating — which a pod on a node that is down never
 * stops being: the first says how it ends.
 */
export const jobOutcome = (job: V1Job): { readonly complete: boolean; readonly reason?: string; readonly message?: string } | undefined => {
  for (const c of job.status?.conditions ?? []) {
    if (c.status !== "True") continue
    if (c.type === "Complete" || c.type === "SuccessCriteriaMet") return { complete: true }
    if (c.type === "Failed" || c.type === "FailureTarget") {
      return { complete: false, ...(c.reason !== undefined ? { reason: c.reason } : {}), ...(c.message !== undefined ? { message: c.message } : {}) }
    }
  }
  return undefined
}

/**
 * The annotation a controller puts on a Job before it deletes the Job's pod to take it back before it
 * started (a drain's withdraw, or a job stuck before it started): the Job's controller then fails the Job
 * for that pod, and any controller that reads the Job meanwhile (a resumed run) learns why.
 */
export const WITHDRAWN_ANNOTATION = "trex.dev/withdrawn"

/** What a {@link WITHDRAWN_ANNOTATION} says: the pod deleted, when, and, for a job stuck before it started, why it failed. */
export interface Withdrawal {
  readonly pod: string
  readonly at: string
  readonly failed?: string
}

/**
 * The withdrawal a Job's annotation records, when the Job's failure is its doing: the Job failed (not
 * completed), and its pod (the one the Job's controller made; `undefined` once it is gone) is the one
 * deleted and never ran. `undefined` otherwise.
 */
export const withdrawalOf = (job: V1Job, pod: V1Pod | undefined): Withdrawal | undefined => {
  const w = markOf(job)
  const outcome = jobOutcome(job)
  if (w === undefined || outcome === undefined || outcome.complete) return undefined
  if (pod !== undefined && (pod.metadata?.uid !== w.pod || terminated(pod)?.startedAt != null)) return undefined
  return w
}

/** The {@link WITHDRAWN_ANNOTATION} on a Job, whatever became of the Job since (`undefined` when there is none, or it is not one). */
export const markOf = (job: V1Job): Withdrawal | undefined => {
  const text = job.metadata?.annotations?.[WITHDRAWN_ANNOTATION]
  if (text === undefined) return undefined
  let w: Partial<Withdrawal>
  try {
    w = JSON.parse(text) as Partial<Withdrawal>
  } catch {
    return undefined
  }
  if (typeof w.pod !== "string" || typeof w.at !== "string") return undefined
  return { pod: w.pod, at: w.at, ...(typeof w.failed === "string" ? { failed: w.failed } : {}) }
}

/**
 * The exit an end record holds (a job's own end, its Job deleted before its controller recorded it: see the backend's
 * `endedRecord`), as JSON; `undefined` when it is not one.
 */
export const recordedExit = (text: string | undefined): Omit<Backend.JobExit, "_tag" | "logTail" | "result" | "resultError"> | undefined => {
  if (text === undefined) return undefined
  let e: Record<string, unknown>
  try {
    e = JSON.parse(text) as Record<string, unknown>
  } catch {
    return undefined
  }
  if ((e["outcome"] !== "Succeeded" && e["outcome"] !== "Failed") || typeof e["message"] !== "string") return undefined
  return e as unknown as Omit<Backend.JobExit, "_tag" | "logTail" | "result" | "resultError">
}

/** The label that names a Job's Kueue queue (Kueue manages the Jobs that have it, and holds them suspended until it admits them). */
export const KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

/** The label Kueue puts on the Workload it makes for a Job: the Job's uid (`JobUIDLabel`), by which a Job's Workload is listed. */
export const KUEUE_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"

/** What the backend reads of a Kueue Workload (`kueue.x-k8s.io` `Workload`). */
export interface KueueWorkload {
  readonly metadata?: { readonly name?: string }
  readonly spec?: { readonly active?: boolean }
  readonly status?: {
    readonly conditions?: ReadonlyArray<{ readonly type?: string; readonly status?: string; readonly reason?: string; readonly message?: string; readonly lastTransitionTime?: string | Date }>
  }
}

/**
 * A Workload Kueue deactivated: `spec.active` false (a user's `kubectl patch workload`, or Kueue's own once the workload was
 * requeued more than `waitForPodsReady.requeuingStrategy.backoffLimitCount` times, or an admission check rejected it), so it
 * is not admitted again and its Job stays suspended until someone reactivates it. `why`: its `Evicted` condition's message
 * (reason `InactiveWorkload` before Kueue 0.9, `Deactivated...` since: `The workload is deactivated due to exceeding the
 * maximum number of re-queuing retries`); `since`: that condition's time (epoch ms). `undefined` for a Workload that is active.
 */
export const deactivationOf = (workload: KueueWorkload): { readonly workload: string; readonly why: string; readonly since: number | undefined } | undefined => {
  if (workload.spec?.active !== false) return undefined
  const evicted = workload.status?.conditions?.find((c) => c.type === "Evicted" && c.status === "True" && /^(InactiveWorkload|Deactivated)/.test(c.reason ?? ""))
  const at = evicted?.lastTransitionTime
  return {
    workload: workload.metadata?.name ?? "(unnamed)",
    why: shortened(evicted?.message) || "spec.active: false",
    since: at === undefined ? undefined : new Date(at).getTime()
  }
}

/**
 * Since when a suspended Job is suspended, as its controller recorded it (its `Suspended` condition, true, whose time
 * moves only when its status changes: `ensureJobConditionStatus` in pkg/controller/job/job_controller.go), in whole
 * seconds (`2026-12-06T02:04:11Z`); `undefined` before its controller saw it, or for a Job that is not suspended.
 */
export const suspendedSince = (job: V1Job): string | undefined => {
  const at = job.status?.conditions?.find((c) => c.type === "Suspended" && c.status === "True")?.lastTransitionTime
  if (job.spec?.suspend !== true || at == null) return undefined
  const ms = new Date(at).getTime()
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString().replace(/\.\d+Z$/, "Z")
}

/** Whether a Job failed because it was being deleted: failed (its first failure condition) at or after its deletion began. */
export const failedByDeletion = (job: V1Job): boolean => {
  const deleted = job.metadata?.deletionTimestamp
  if (deleted == null) return false
  const conditions = job.status?.conditions ?? []
  const failed = conditions.find((c) => c.type === "FailureTarget" && c.status === "True") ?? conditions.find((c) => c.type === "Failed" && c.status === "True")
  if (failed === undefined) return false
  const at = failed.lastTransitionTime
  return at == null || new Date(at).getTime() >= new Date(deleted).getTime()
}

/** Parse a quantity of bytes (`"16Gi"`, `"512Mi"`, `"8G"`, `"1e9"`, `"1000"`) into bytes; NaN when it is none. */
export const parseBytes = (q: string | undefined): number => {
  if (q === undefined) return 0
  const m = /^(\d+(?:\.\d+)?(?:[eE]\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$/.exec(q.trim())
  if (m === null) return Number.NaN
  const unit: Record<string, number> = {
    Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
    k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, m: 1e-3
  }
  return Number(m[1]) * (m[2] !== undefined ? unit[m[2]]! : 1)
}

/** Whether a pod's tolerations let it on a node with `taint` (a taint's key, value and effect, as the scheduler matches them). */
const tolerates = (tolerations: ReadonlyArray<V1Toleration>, taint: V1Taint): boolean =>
  tolerations.some((t) =>
    (t.effect === undefined || t.effect === "" || t.effect === taint.effect) &&
    ((t.key === undefined || t.key === "") ? t.operator === "Exists" : t.key === taint.key && (t.operator === "Exists" || (t.value ?? "") === (taint.value ?? "")))
  )

/**
 * Why no node of `nodes` could ever take a pod of `pod` (its `nodeSelector`, taints it does not
 * tolerate, a cordoned node, allocatable CPU, memory or an extended resource such as GPUs below what
 * it asks — allocatable, not what is free now), as `3 nodes: not matching the nodeSelector; 1 node:
 * nvidia.com/gpu 2 allocatable, 4 asked`; `undefined` when one could.
 */
export const unplaceable = (nodes: ReadonlyArray<V1Node>, pod: V1PodSpec): string | undefined => {
  if (nodes.length === 0) return "the cluster lists no node"
  const asked = { ...pod.containers[0]?.resources?.limits, ...pod.containers[0]?.resources?.requests } as Record<string, string>
  const why = (node: V1Node): string | undefined => {
    if (node.spec?.unschedulable === true) return "cordoned (unschedulable)"
    const labels = node.metadata?.labels ?? {}
    const off = Object.entries(pod.nodeSelector ?? {}).filter(([k, v]) => labels[k] !== v).map(([k, v]) => `${k}=${v}`)
    if (off.length > 0) return `not matching the nodeSelector (${off.join(", ")})`
    const taint = (node.spec?.taints ?? []).find((t) => (t.effect === "NoSchedule" || t.effect === "NoExecute") && !tolerates(pod.tolerations ?? [], t))
    if (taint !== undefined) return `a taint the pod does not tolerate (${taint.key}${taint.value !== undefined ? `=${taint.value}` : ""}:${taint.effect})`
    const has = node.status?.allocatable ?? {}
    for (const [resource, q] of Object.entries(asked)) {
      const [want, have] = resource === "cpu"
        ? [parseCpu(q), parseCpu(has.cpu)]
        : resource === "memory"
        ? [parseBytes(q), parseBytes(has.memory)]
        : [Number(q), Number(has[resource] ?? 0)]
      if (want > have + 1e-9) return `${resource} ${has[resource] ?? 0} allocatable, ${q} asked`
    }
    return undefined
  }
  const reasons = nodes.map(why)
  if (reasons.some((r) => r === undefined)) return undefined
  const counts = new Map<string, number>()
  for (const r of reasons) counts.set(r!, (counts.get(r!) ?? 0) + 1)
  return [...counts].map(([r, n]) => `${n} node${n === 1 ? "" : "s"}: ${r}`).join("; ")
}

/**
 * From a quota's refusal (`exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=4, used:
 * requests.nvidia.com/gpu=0, limited: requests.nvidia.com/gpu=2`), the resources whose request alone
 * is over the limit: such a pod is refused whatever else runs, not only until others end.
 */
export const overQuotaAlone = (message: string): ReadonlyArray<string> => {
  // sections are separated by ", ", the pairs within one by ","
  const section = (name: string) =>
    new Map(
      (message.split(", ").find((p) => p.startsWith(`${name}: `))?.slice(name.length + 2) ?? "").split(",").flatMap((pair) => {
        const at = pair.indexOf("=")
        return at > 0 ? [[pair.slice(0, at), pair.slice(at + 1)] as const] : []
      })
    )
  const requested = section("requested")
  const limited = section("limited")
  const size = (resource: string, q: string) => (/cpu$/.test(resource) ? parseCpu(q) : /memory$|storage$/.test(resource) ? parseBytes(q) : Number(q))
  return [...requested].flatMap(([r, q]) => {
    const limit = limited.get(r)
    return limit !== undefined && size(r, q) > size(r, limit) ? [`${r}=${q} (limited: ${limit})`] : []
  })
}

/** The newest of the Events that `which` picks, by when each was last recorded. */
const newestOf = (events: ReadonlyArray<CoreV1Event>, which: (e: CoreV1Event) => boolean): CoreV1Event | undefined => {
  const when = (e: CoreV1Event) => new Date(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? 0).getTime()
  return events.filter(which).sort((a, b) => when(a) - when(b)).at(-1)
}

/** An Event's words, trimmed and cut at 300 characters. */
const shortened = (message: string | undefined): string => {
  const m = (message ?? "").trim()
  return m.length > 300 ? `${m.slice(0, 299)}…` : m
}

/** The newest `FailedCreate` of a Job's Events: its controller's latest refusal of a pod. */
const newestRefusal = (events: ReadonlyArray<CoreV1Event>): CoreV1Event | undefined => newestOf(events, (e) => e.reason === "FailedCreate")

/**
 * Why a Job's controller could not create its pod, from the Job's Events: the newest `FailedCreate`
 * (a ResourceQuota, a LimitRange, an admission webhook, a missing service account), as
 * `FailedCreate: exceeded quota: gpu-quota` — the API server's words without the pod's name and the
 * quota's changing counts. `undefined` when there is none.
 */
export const creationRefusal = (events: ReadonlyArray<CoreV1Event>): string | undefined => {
  const newest = newestRefusal(events)
  if (newest === undefined) return undefined
  const why = (newest.message ?? "")
    .replace(/^Error creating: /, "")
    .replace(/^pods? "[^"]*" is forbidden: /, "")
    .replace(/, requested: .*$/, "")
    .trim()
  return why === "" ? "FailedCreate" : `FailedCreate: ${why.length > 200 ? `${why.slice(0, 199)}…` : why}`
}

/**
 * Whether the newest `FailedCreate` of a Job's Events is one that lasts until someone changes the
 * cluster (a missing service account, an admission policy, a quota that one pod alone exceeds),
 * rather than a quota full of other pods now, which frees as they end.
 */
export const refusalLasts = (events: ReadonlyArray<CoreV1Event>): boolean => {
  const newest = newestRefusal(events)
  return newest !== undefined && refusalKind(newest.message ?? "").kind !== "quotaFull"
}

/**
 * How the API server's refusal of a pod reads (a dry run's, or a Job controller's `FailedCreate`):
 * a quota that this one pod exceeds alone (`quotaAlone`, with the resources over it), a quota full of
 * other pods now (`quotaFull`, which frees as they end), or any other refusal (`other`: a missing
 * service account, an admission policy), which lasts until someone changes the cluster.
 */
export const refusalKind = (message: string): { readonly kind: "quotaAlone"; readonly over: ReadonlyArray<string> } | { readonly kind: "quotaFull" | "other" } => {
  if (!/exceeded quota/.test(message)) return { kind: "other" }
  const over = overQuotaAlone(message)
  return over.length > 0 ? { kind: "quotaAlone", over } : { kind: "quotaFull" }
}

/** When a pod was made (epoch ms): since when one that no node can take has waited. */
export const madeAt = (pod: V1Pod): number | undefined => {
  const at = pod.metadata?.creationTimestamp
  return at === undefined ? undefined : new Date(at).getTime()
}

/**
 * Why a pod no node takes can never be taken until someone changes the cluster: a
 * PersistentVolumeClaim it mounts that is not in the namespace (`persistentvolumeclaim "x" not
 * found`, the scheduler's words), rather than nodes that are full now. `undefined` otherwise.
 */
export const lastingUnschedulable = (pod: V1Pod): string | undefined => {
  const cond = pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False")
  const missing = /persistentvolumeclaim "[^"]+" not found/.exec(cond?.message ?? "")
  return missing === null ? undefined : `Unschedulable: ${missing[0]}`
}

/** The kubelet's Event reasons for a container that cannot start: a pull that failed, its back-off, a configuration missing. */
const START_FAILURES: ReadonlySet<string> = new Set(["Failed", "BackOff", "InspectFailed", "ErrImageNeverPull"])

/**
 * When the kubelet first said a pod's container could not start (the earliest of its `Failed`,
 * `BackOff`... Events; epoch ms): the time a pull failed, not when it began, so a big image's long
 * pull does not count as being stuck. `undefined` when there is none.
 */
export const startFailedSince = (events: ReadonlyArray<CoreV1Event>): number | undefined => {
  const times = events
    .filter((e) => e.type === "Warning" && e.reason !== undefined && START_FAILURES.has(e.reason))
    .map((e) => new Date(e.firstTimestamp ?? e.eventTime ?? e.lastTimestamp ?? 0).getTime())
    .filter((t) => t > 0)
  return times.length === 0 ? undefined : Math.min(...times)
}

/**
 * What the kubelet said of a pod's image pull that failed: the words of its newest `Failed` Event that
 * tells of a pull (`Failed to pull image "x": <the registry's or runtime's answer>`; the kubelet's other
 * `Failed` Events say only `Error: ErrImagePull`). `undefined` when there is none.
 */
export const pullFailure = (events: ReadonlyArray<CoreV1Event>): string | undefined => {
  const newest = newestOf(events, (e) => e.type === "Warning" && e.reason === "Failed" && /^Failed to pull image /.test(e.message ?? ""))
  return newest === undefined ? undefined : shortened(newest.message)
}

/**
 * Why a pod's container is not created yet, from the kubelet's Events on the pod: a volume it
 * cannot mount (`FailedMount`: an NFS server that does not answer, a claim's volume that will not
 * mount), which lasts until someone mends it, or one another pod holds (`FailedAttachVolume`,
 * `Multi-Attach error`: a ReadWriteOnce claim in use on another node), which frees when that pod
 * ends. The newest of them, as `FailedMount: <the kubelet's words>`, with since when (epoch ms).
 */
export const mountTrouble = (events: ReadonlyArray<CoreV1Event>): { readonly why: string; readonly lasting: boolean; readonly since: number } | undefined => {
  const newest = newestOf(events, (e) => e.type === "Warning" && (e.reason === "FailedMount" || e.reason === "FailedAttachVolume"))
  if (newest === undefined) return undefined
  const message = shortened(newest.message)
  const why = `${newest.reason}${message === "" ? "" : `: ${message}`}`
  return { why, lasting: !/Multi-Attach error/.test(message), since: new Date(newest.firstTimestamp ?? newest.eventTime ?? 0).getTime() }
}

/**
 * Who took a Job back that a batch queue had admitted, and why, from the Job's Events: the newest `Stopped` Event, which
 * Kueue records as it suspends the Job of a workload it preempts, evicts or deactivates (`stopJob` in its jobframework
 * reconciler), as `kueue-job-controller: Preempted to accommodate a workload due to prioritization in the ClusterQueue`
 * (the workloads' UIDs and the cohort's paths left out: `kubectl describe workload` has them). `undefined` when there
 * is none (a Job suspended by hand: `kubectl patch job ... suspend`).
 */
export const stoppedBy = (events: ReadonlyArray<CoreV1Event>): string | undefined => {
  const newest = newestOf(events, (e) => e.reason === "Stopped")
  if (newest === undefined) return undefined
  const who = newest.source?.component ?? newest.reportingComponent
  const message = shortened(newest.message?.replace(/ \(UID: [^)]*\)/, "").replace(/; preemptor path: .*$/s, ""))
  return `${who !== undefined && who !== "" ? `${who}: ` : ""}${message === "" ? "Stopped" : message}`
}

/**
 * Whether Kueue deleted the Job, and its words, from the Job's Events (they outlive it): once a workload Kueue itself
 * deactivated has been inactive for its `objectRetentionPolicies.workloads.afterDeactivatedByKueue`, its jobframework
 * reconciler deletes the Job (`handleWorkloadAfterDeactivatedPolicy`) and records a Normal `Deleted` Event on it,
 * `Deleted job: deactivation retention period expired`; the Workload, which the Job owns, goes with it. `undefined`
 * when there is none (the Job was deleted by someone else).
 */
export const deletedByKueue = (events: ReadonlyArray<CoreV1Event>): string | undefined => {
  const newest = newestOf(events, (e) => e.reason === "Deleted" && /deactivation retention/i.test(e.message ?? ""))
  if (newest === undefined) return undefined
  const who = newest.source?.component ?? newest.reportingComponent
  return `${who !== undefined && who !== "" ? `${who}: ` : ""}${shortened(newest.message)}`
}

/**
 * The order of two objects of one resource by their `resourceVersion`s: negative, 0 or positive; `undefined` when either
 * is not a positive integer without leading zeros. The API server gives every write of a resource a larger one (etcd's
 * revision); since Kubernetes 1.35 clients may compare them within one resource (KEP-5504, client-go's
 * `CompareResourceVersion`), of any length: by length, then digit by digit.
 */
export const resourceVersionOrder = (a: string | undefined, b: string | undefined): number | undefined => {
  const valid = (v: string | undefined): v is string => v !== undefined && /^[1-9]\d*$/.test(v)
  if (!valid(a) || !valid(b)) return undefined
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0
}

/**
 * Whether the Job was resumed since the newest `Stopped` Event of its Events: its controller records `Resumed` (`Job
 * resumed`) each time `spec.suspend` goes false (`syncJob` in pkg/controller/job/job_controller.go), so a `Resumed`
 * after the stop lifted it, and a suspension since is not its (a person's `kubectl patch job`). Their times are whole
 * seconds (`lastTimestamp`, which a repeat moves on; the recorders of the Job controller and of Kueue set no `eventTime`):
 * in one second the two are ordered by their Events' `resourceVersion`s (each Event's last write, its first or a repeat,
 * as `resourceVersionOrder`), and where those do not compare the stop is kept as the cause.
 */
export const stopLifted = (events: ReadonlyArray<CoreV1Event>): boolean => {
  const stop = newestOf(events, (e) => e.reason === "Stopped")
  const resume = newestOf(events, (e) => e.reason === "Resumed")
  if (stop === undefined || resume === undefined) return false
  const second = (e: CoreV1Event) => Math.floor(new Date(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? 0).getTime() / 1000)
  if (second(resume) !== second(stop)) return second(resume) > second(stop)
  return (resourceVersionOrder(resume.metadata?.resourceVersion, stop.metadata?.resourceVersion) ?? 0) > 0
}

/**
 * Whether Kueue admitted the Workload before its Job was suspended (`suspended`: the Job's `Suspended` condition's time,
 * `suspendedSince`) and admits it still (`Admitted` true, not `Evicted`): Kueue does not hold the Job, which someone else
 * suspended, and Kueue resumes it (`ReconcileGenericJob` in its jobframework reconciler starts a suspended Job whose
 * workload is admitted). Whole seconds, as the API server gives both: an admission after the suspension's second is not
 * this; one in its second is when the Job's Events say the suspension came after Kueue started the Job
 * (`suspendedAfterStart`, from {@link suspendedAfterStart}), and else is not told from Kueue's own start of the Job (it
 * admits the workload, then resumes the Job): not this.
 */
export const admittedBefore = (workload: KueueWorkload, suspended: string | undefined, afterStart?: boolean): boolean => {
  const conditions = workload.status?.conditions ?? []
  const admitted = conditions.find((c) => c.type === "Admitted" && c.status === "True")?.lastTransitionTime
  if (suspended === undefined || admitted === undefined || conditions.some((c) => c.type === "Evicted" && c.status === "True")) return false
  const [admittedSecond, suspendedSecond] = [admitted, suspended].map((t) => Math.floor(new Date(t).getTime() / 1000))
  return admittedSecond! < suspendedSecond! || (admittedSecond === suspendedSecond && afterStart === true)
}

/**
 * Whether the Job's controller recorded its suspension (its `Suspended` Event, `Job suspended`) after Kueue last started
 * it (`Started`, `Admitted by clusterQueue ...`: its jobframework's `startJob`, which resumes the Job), by the newest
 * write of each (the larger `resourceVersion`: both are of the `events` resource, as `resourceVersionOrder`);
 * `undefined` when either Event is missing or a version does not compare.
 *
 * Each component's recorder writes its Events on its own, later than it records them, so two components' writes are
 * not in the order of what they did: the controller's first `Suspended` (a Job made suspended, as Kueue's webhook makes
 * it, before Kueue admitted it) can be written after Kueue's `Started` of the same second. So a `Suspended` write counts
 * as after the start only when it is of a suspension after the controller saw the Job resumed: a repeat (the recorder
 * patches the same Event, `count` 2 or more and `lastTimestamp` past `firstTimestamp`; client-go's `eventObserve`), or
 * written after the controller's newest `Resumed` (`Job resumed`, recorded as the `Suspended` condition goes false:
 * one recorder, whose writes are in order; a new Event once its cache lost the first). The controller records
 * `Suspended` each time the condition goes true and `Resumed` each time it goes false (`syncJob` in
 * pkg/controller/job/job_controller.go), so its first `Suspended` is neither. A Job it never saw suspended before
 * Kueue started it, whose first `Suspended` is a person's, is not told: Kueue's hold, as where nothing compares.
 */
export const suspendedAfterStart = (events: ReadonlyArray<CoreV1Event>): boolean | undefined => {
  const newest = (reason: string): CoreV1Event | undefined | null => {
    let top: CoreV1Event | undefined
    for (const e of events) {
      if (e.reason !== reason) continue
      const order = resourceVersionOrder(e.metadata?.resourceVersion, (top ?? e).metadata?.resourceVersion)
      if (order === undefined) return null
      if (top === undefined || order > 0) top = e
    }
    return top
  }
  const [suspension, start, resume] = [newest("Suspended"), newest("Started"), newest("Resumed")]
  if (suspension === undefined || suspension === null || start === undefined || start === null) return undefined
  const version = suspension.metadata?.resourceVersion
  if ((resourceVersionOrder(version, start.metadata?.resourceVersion) ?? 0) <= 0) return false
  const second = (t: Date | string | undefined) => t === undefined ? undefined : Math.floor(new Date(t).getTime() / 1000)
  const first = second(suspension.firstTimestamp)
  const last = second(suspension.lastTimestamp)
  const repeat = (suspension.count ?? 1) >= 2 || (first !== undefined && last !== undefined && last > first)
  const afterResume = resume !== undefined && resume !== null && (resourceVersionOrder(version, resume.metadata?.resourceVersion) ?? 0) > 0
  return repeat || afterResume
}

/** When the newest `FailedCreate` of a Job's Events was first recorded (epoch ms). */
export const refusedSince = (events: ReadonlyArray<CoreV1Event>): number | undefined => {
  const newest = newestRefusal(events)
  const first = newest?.firstTimestamp ?? newest?.eventTime
  return first === undefined ? undefined : new Date(first).getTime()
}

/** What the kubelet says of the job's container while it waits (`Back-off pulling image "x"`), if anything. */
export const waitingMessage = (pod: V1Pod): string | undefined => {
  const message = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.waiting?.message
  return message === undefined || message === "" ? undefined : message.length > 300 ? `${message.slice(0, 299)}…` : message
}

/** The state of a pod as a TREX State event (or `undefined` when it has terminated). */
export const podState = (pod: V1Pod): { readonly state: "Pending" | "Running"; readonly reason?: string } | undefined => {
  const status = pod.status
  const cs = status?.containerStatuses?.find((c) => c.name === CONTAINER)
  if (cs?.state?.terminated !== undefined || status?.phase === "Succeeded" || status?.phase === "Failed") return undefined
  if (cs?.state?.running !== undefined || status?.phase === "Running") return { state: "Running" }
  const waiting = cs?.state?.waiting?.reason
  if (waiting !== undefined) return { state: "Pending", reason: waiting }
  const scheduled = status?.conditions?.find((c) => c.type === "PodScheduled")
  if (scheduled?.status === "False") return { state: "Pending", reason: scheduled.reason ?? "Unschedulable" }
  return { state: "Pending" }
}

/** What each reason of a pod's `DisruptionTarget` condition means, as a message tells it. */
const DISRUPTIONS: Readonly<Record<string, string>> = {
  PreemptionByScheduler: "preempted by a pod of higher priority",
  EvictionByEvictionAPI: "evicted (a node drain, or the eviction API)",
  DeletionByTaintManager: "deleted as its node was tainted NoExecute (not ready, unreachable)",
  DeletionByPodGC: "deleted by the pod garbage collector (its node is gone)",
  TerminationByKubelet: "stopped by the kubelet (node pressure, or the node shutting down)"
}

/**
 * Why the cluster stopped a pod, when it did and not its job: a `DisruptionTarget` condition
 * (preemption, eviction, a node lost or tainted, the kubelet under node pressure; Kubernetes 1.26 and
 * later), or a kubelet's eviction (`status.reason` `Evicted`). `undefined` otherwise.
 */
export const disruptionOf = (pod: V1Pod | undefined): string | undefined => {
  const cond = pod?.status?.conditions?.find((c) => c.type === "DisruptionTarget" && c.status === "True")
  const detail = (reason: string, message: string | undefined) => `${reason}${message !== undefined && message !== "" ? `: ${message.length > 300 ? `${message.slice(0, 299)}…` : message}` : ""}`
  if (pod?.status?.reason === "Evicted") return `evicted by the kubelet (${detail("Evicted", pod.status.message)})`
  if (cond === undefined) return undefined
  const reason = cond.reason ?? "DisruptionTarget"
  return `${DISRUPTIONS[reason] ?? "stopped by the cluster"} (${detail(reason, cond.message)})`
}

/**
 * Whether a pod was deleted while its container ran, by someone other than its Job's controller and without
 * a `DisruptionTarget` (`kubectl delete pod`, a script, another controller): its container ended after
 * the deletion began. The API server sets `deletionTimestamp` to when the grace period ends, so the
 * deletion began `deletionGracePeriodSeconds` before it. Both times are in whole seconds (`metav1.Time`): a
 * container that ended in the second the deletion began ended by it when its exit is the deletion's signal
 * (SIGTERM's 143, or 137 from the SIGKILL of a grace period of 0), else on its own before it (a crash someone
 * deleted the pod of at once).
 */
export const deletedWhileRunning = (pod: V1Pod | undefined): boolean => {
  const deletion = pod?.metadata?.deletionTimestamp
  const t = terminated(pod)
  if (deletion == null || t === undefined) return false
  if (t.finishedAt == null) return true
  const began = Math.floor(new Date(deletion).getTime() / 1000) - (pod?.metadata?.deletionGracePeriodSeconds ?? 0)
  const finished = Math.floor(new Date(t.finishedAt).getTime() / 1000)
  return finished > began || (finished === began && (t.exitCode === 143 || t.exitCode === 137 || (t.signal ?? 0) > 0))
}

/**
 * Whether a pod's container ended by itself before its Job's deletion began (`deletedAt`, the Job's `deletionTimestamp`):
 * its end is of an earlier second. Both are whole seconds (`metav1.Time`), so an end in the deletion's second is not told
 * from one the deletion caused (a job that exits 0 on the SIGTERM of a cancel): the deletion's, as the cancel meant. A pod
 * whose own deletion began before the Job's (a suspended Job's, a preemption's, `kubectl delete pod`) did not end by itself.
 */
export const endedBeforeDeletion = (pod: V1Pod | undefined, deletedAt: Date | string | undefined): boolean => {
  const finished = terminated(pod)?.finishedAt
  if (finished == null || deletedAt === undefined) return false
  const second = (t: Date | string) => Math.floor(new Date(t).getTime() / 1000)
  const podDeleted = pod?.metadata?.deletionTimestamp
  if (podDeleted != null && second(podDeleted) - (pod?.metadata?.deletionGracePeriodSeconds ?? 0) < second(deletedAt)) return false
  return second(finished) < second(deletedAt)
}

/**
 * The Job a pod's own end makes of it, for `mapExit`, when the Job was deleted before its controller recorded it:
 * `Complete` for an exit of 0, else `Failed` (`BackoffLimitExceeded`, as a Job of `backoffLimit` 0 fails).
 */
export const endedAs = (pod: V1Pod | undefined): V1Job => ({
  status: {
    conditions: [
      terminated(pod)?.exitCode === 0
        ? { type: "Complete", status: "True" }
        : { type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" }
    ]
  }
})

/** What ended a pod's container: exit code, signal and reason (`OOMKilled`, `Error`, `Completed`...). */
export const terminated = (pod: V1Pod | undefined) => pod?.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.terminated

/** The exit of a finished Job, from its conditions and its pod's container status. */
export const mapExit = (job: V1Job, pod: V1Pod | undefined): {
  readonly outcome: "Succeeded" | "Failed"
  readonly failureKind?: Result.FailureKind
  readonly exitCode?: number
  readonly signal?: string
  readonly message: string
} => {
  const outcome = jobOutcome(job)
  const t = terminated(pod)
  const exit = t?.exitCode !== undefined ? { exitCode: t.exitCode } : {}
  const signal = t?.signal !== undefined && t.signal > 0
    ? { signal: Object.entries(os.constants.signals).find(([, v]) => v === t.signal)?.[0] ?? `signal ${t.signal}` }
    : {}
  if (outcome?.complete === true) return { outcome: "Succeeded", exitCode: t?.exitCode ?? 0, message: "job completed" }
  if (outcome?.reason === "DeadlineExceeded") {
    return { outcome: "Failed", failureKind: "Timeout", ...exit, message: outcome.message ?? "job exceeded activeDeadlineSeconds" }
  }
  // stopped by the cluster (preempted, evicted, its node lost), not by the job: not the strategy's doing, and it may run again
  const disruption = disruptionOf(pod)
  if (disruption !== undefined && t?.reason !== "OOMKilled") {
    return { outcome: "Failed", failureKind: "Infra", ...exit, ...signal, message: `its pod was ${disruption}, not ended by the job` }
  }
  if (t?.reason === "OOMKilled") return { outcome: "Failed", failureKind: "OOM", ...exit, ...signal, message: "container OOMKilled (memory limit)" }
  // deleted from outside while it ran (its SIGTERM's 143, or the SIGKILL's 137 after the grace period): not the job's doing either
  if (deletedWhileRunning(pod)) {
    return { outcome: "Failed", failureKind: "Infra", ...exit, ...signal, message: "its pod was deleted while it ran (`kubectl delete pod`, or a controller other than its Job's), not ended by the job" }
  }
  // 137: the job protocol's out-of-memory code (a trainer that caught CUDA out of memory), or a SIGKILL
  if (t?.exitCode === 137) return { outcome: "Failed", failureKind: "OOM", ...exit, ...signal, message: "container exited with code 137: out of memory (the job's own report, or a SIGKILL)" }
  if (t !== undefined) {
    return { outcome: "Failed", failureKind: "Crash", ...exit, ...signal, message: `container exited with code ${t.exitCode}${t.reason !== undefined ? ` (${t.reason})` : ""}` }
  }
  if (pod === undefined && outcome?.reason === "BackoffLimitExceeded") {
    // its one pod failed and went before it was read (a preemption, an eviction or a lost node deletes it)
    return { outcome: "Failed", failureKind: "Infra", message: `its pod failed and is gone, so how it ended is not known (a preemption, an eviction or a lost node deletes a pod): BackoffLimitExceeded ${outcome.message ?? ""}`.trim() }
  }
  return { outcome: "Failed", failureKind: "Infra", message: `job failed without running: ${outcome?.reason ?? "unknown"} ${outcome?.message ?? ""}`.trim() }
}

/**
 * A log line's timestamp as the kubelet writes it with `timestamps=true` (`2026-12-05T10:03:12.123456789Z`,
 * `types.RFC3339NanoFixed`; an offset in place of `Z` on a node whose runtime writes local time), in
 * nanoseconds since the epoch; `undefined` when it is not one.
 */
export const logStampNanos = (stamp: string): bigint | undefined => {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(stamp)
  if (m === null) return undefined
  const ms = Date.parse(`${m[1]}${m[3]}`)
  return Number.isNaN(ms) ? undefined : BigInt(ms) * 1_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"))
}

/** A timestamp the kubelet may insert inside a line, where the runtime split it into partial messages (16 KiB each for containerd). */
const INNER_STAMP = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d) /g

/**
 * The result marker's base64 without the kubelet's timestamps inside it: a marker longer than the
 * runtime's partial message (containerd's 16 KiB) comes in pieces, each after its own timestamp, and
 * base64 has no space or colon, so a timestamp in it is never its own (nor in a TERM or end line:
 * a word and hex digits; see `markerLine`).
 */
export const withoutInnerStamps = (base64: string): string => base64.replace(INNER_STAMP, "")

/**
 * A container log read with `timestamps=true`, from a followed log and the reads that go on from it
 * after a cut: each line's timestamp is taken off, and where it was is kept (the newest whole line's
 * timestamp, how many whole lines had it, and the bytes of a line cut short), so that a read that goes
 * on (`resume`) asks for the log `sinceTime` (which the API server passes to the kubelet in whole
 * seconds) and drops what came already: lines before that timestamp, the lines at it already taken,
 * and the part of a cut line already taken. A byte count would not do: the kubelet serves only the
 * container's current log file, and once it rotated it (`containerLogMaxSize`, 10 MiB by default) the
 * bytes read before are no longer at its start.
 */
export class StampedLog {
  /** The newest whole line taken: its timestamp, and how many whole lines taken had it. */
  private last: { readonly at: bigint; readonly n: number } | undefined
  /** The line being taken (its end not come): its timestamp, and its bytes taken. */
  private open: { readonly at: bigint; bytes: number } | undefined
  /** The timestamp being read at a line's start; `undefined` within a line. */
  private stamp: Array<Uint8Array> | undefined = []
  private stampLength = 0
  /** Within a line that came already (`resume`): dropped to its end. */
  private dropping = false
  /** Bytes of the line now read still to skip (the part of a cut line taken before). */
  private skip = 0
  /** After `resume`, until the first line not taken before: what was taken, and the lines at its timestamp seen again. */
  private going: { readonly last: { readonly at: bigint; readonly n: number } | undefined; seen: number; readonly open: { readonly at: bigint; readonly bytes: number } | undefined } | undefined

  /** Whether anything was taken (a read that goes on then asks `sinceTime`). */
  get started(): boolean {
    return this.last !== undefined || this.open !== undefined
  }

  /** The `sinceTime` for a read that goes on: the whole second of the newest line taken (the API server passes seconds on). */
  sinceTime(): string | undefined {
    const at = this.last?.at ?? this.open?.at
    return at === undefined ? undefined : new Date(Number(at / 1_000_000_000n) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z")
  }

  /** A new read begins (after a cut, or a clean end while the container runs): it goes on from what was taken. */
  resume(): void {
    this.stamp = []
    this.stampLength = 0
    this.dropping = false
    this.skip = 0
    this.going = this.started ? { last: this.last, seen: 0, open: this.open === undefined ? undefined : { ...this.open } } : undefined
  }

  /** The log's bytes without timestamps, and without what was taken before a `resume`. */
  push(chunk: Uint8Array): Array<Uint8Array> {
    const out: Array<Uint8Array> = []
    let i = 0
    while (i < chunk.length) {
      if (this.stamp !== undefined) {
        // a line's start: its timestamp, up to the space after it
        const space = chunk.indexOf(32, i)
        const nl = chunk.indexOf(10, i)
        const stop = space < 0 ? nl : nl < 0 ? space : Math.min(space, nl)
        const end = stop < 0 ? chunk.length : stop
        this.stamp.push(chunk.subarray(i, end))
        this.stampLength += end - i
        if (stop < 0 && this.stampLength <= 64) return out
        const text = Buffer.concat(this.stamp).toString("latin1")
        this.stamp = undefined
        this.stampLength = 0
        const at = stop >= 0 && stop === space ? logStampNanos(text) : undefined
        if (at === undefined) {
          // not a timestamp (a server that did not add them): the line as it is
          this.startLine(this.last?.at ?? 0n, out)
          if (!this.dropping) this.take(Buffer.from(text, "latin1"), out)
          i = end
          continue
        }
        this.startLine(at, out)
        i = space + 1
        continue
      }
      const nl = chunk.indexOf(10, i)
      const end = nl < 0 ? chunk.length : nl + 1
      let piece = chunk.subarray(i, end)
      i = end
      if (!this.dropping) {
        if (this.skip > 0) {
          const skipped = Math.min(this.skip, piece.length)
          this.skip -= skipped
          piece = piece.subarray(skipped)
        }
        if (piece.length > 0) this.take(piece, out)
      }
      if (nl >= 0) {
        if (!this.dropping && this.skip === 0) {
          const at = this.open!.at
          this.last = this.last?.at === at ? { at, n: this.last.n + 1 } : { at, n: 1 }
          this.open = undefined
        }
        this.dropping = false
        this.skip = 0
        this.stamp = []
      }
    }
    return out
  }

  private take(piece: Uint8Array, out: Array<Uint8Array>) {
    this.open!.bytes += piece.length
    out.push(piece)
  }

  /** A line stamped `at` begins: dropped when it came before a `resume`, the rest of a cut line, or new. */
  private startLine(at: bigint, out: Array<Uint8Array>) {
    const going = this.going
    if (going !== undefined) {
      const last = going.last
      if (last !== undefined && (at < last.at || (at === last.at && going.seen < last.n))) {
        if (at === last.at) going.seen++
        this.dropping = true
        return
      }
      this.going = undefined
      if (going.open !== undefined) {
        if (at === going.open.at) {
          // the line cut short, from its start again: the part taken is skipped
          this.skip = going.open.bytes
          return
        }
        // the rest of the cut line is not there any more (rotated away): it ends where it was cut
        const cut = this.open!
        this.last = this.last?.at === cut.at ? { at: cut.at, n: this.last.n + 1 } : { at: cut.at, n: 1 }
        out.push(Buffer.from("\n"))
      }
    }
    this.open = { at, bytes: 0 }
  }
}
