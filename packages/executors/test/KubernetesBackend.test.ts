// The Kubernetes backend through the real @kubernetes/client-node against test/support/FakeKubeApi.ts, a local
// stand-in for the API server (no API server can run on these machines): it runs each Job's container command
// as a local process, schedules by cpu / memory / nvidia.com/gpu, and garbage-collects by ownerReferences.
// How a Job is made, run, followed and refused (this file); a batch queue (KubernetesQueue.test.ts); outages, a pod the
// cluster stops and a log cut short (KubernetesOutage.test.ts).
import { assert, describe, it, layer } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Backend, Errors, TaskFile } from "@trex/core"
import { BatchV1Api, CoreV1Api } from "@kubernetes/client-node"
import { Context, Deferred, Effect, Fiber, Layer, Logger, Redacted, Stream } from "effect"
import { BackendConformance } from "@trex/core/testing"
import * as KubernetesBackend from "../src/KubernetesBackend.ts"
import * as K from "../src/internal/k8sJob.ts"
import { eventually } from "./support/eventually.ts"
import { checkLoudWatch, loudScript } from "./support/loudLog.ts"
import * as FakeKubeApi from "./support/FakeKubeApi.ts"
import { collect, config, done, exitOf, Fake, fakeWith, pendingThenCancel, podOf, spec, states, watchUntil } from "./support/kubeTest.ts"

class FakeApi extends Context.Service<FakeApi, FakeKubeApi.FakeKubeApi>()("test/FakeApi") {}

// The suite's `fresh` instance must reach the same fake server as the layer's backend.
let current: FakeKubeApi.FakeKubeApi | undefined

const TestLayer = Layer.effect(Backend.Backend, Effect.gen(function*() {
  const fake = yield* FakeApi
  current = fake
  return yield* KubernetesBackend.make(config(fake))
})).pipe(Layer.provideMerge(Layer.effect(FakeApi, Fake)))

describe("k8s manifests", () => {
  /** What every manifest needs besides the spec. */
  const base = { name: "trex-n-1-abcde", namespace: "ml", image: "img", jobDir: "/trex/job", specDir: "/trex/spec", gpuResource: "nvidia.com/gpu" }
  it("names why a Job's controller could not create its pod, from its newest FailedCreate event", () => {
    const event = (message: string, at: string, reason = "FailedCreate") => ({ reason, message, lastTimestamp: new Date(at), involvedObject: {}, metadata: {} })
    assert.strictEqual(
      K.creationRefusal([
        event(`Error creating: pods "trex-a-1" is forbidden: exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=2, limited: requests.nvidia.com/gpu=2`, "2026-01-01T00:00:02Z"),
        event(`Error creating: pods "trex-a-0" is forbidden: error looking up service account ml/trainer: serviceaccount "trainer" not found`, "2026-01-01T00:00:01Z"),
        event("Created pod: trex-a-2", "2026-01-01T00:00:03Z", "SuccessfulCreate")
      ]),
      "FailedCreate: exceeded quota: gpu-quota"
    )
    assert.strictEqual(
      K.creationRefusal([event(`Error creating: pods "trex-a-0" is forbidden: error looking up service account ml/trainer: serviceaccount "trainer" not found`, "2026-01-01T00:00:01Z")]),
      `FailedCreate: error looking up service account ml/trainer: serviceaccount "trainer" not found`
    )
    assert.isUndefined(K.creationRefusal([event("Created pod: trex-a-2", "2026-01-01T00:00:03Z", "SuccessfulCreate")]))
  })

  it("builds a Job with GPU limits, selectors, tolerations, labels, a ConfigMap and secretKeyRef env", () => {
    const m = K.manifests(
      spec("n/1", "true", {
        env: { PLAIN: "x", TOKEN: Redacted.make("s3cr3t") },
        files: [{ path: "strategy.json", content: "{}" }, { path: "sub/dir/data.txt", content: "d" }],
        resources: { gpus: 2, cpus: 0.5, memoryMb: 2048, timeLimitSeconds: 90.5 }
      }),
      {
        ...base,
        nodeSelector: { pool: "a100" },
        tolerations: [{ key: "nvidia.com/gpu", operator: "Exists" }],
        ttlSecondsAfterFinished: 60
      }
    )
    const pod = m.job.spec!.template.spec!
    const c = pod.containers[0]!
    assert.deepStrictEqual(c.resources!.limits, { cpu: "500m", memory: "2048Mi", "nvidia.com/gpu": "2" })
    assert.strictEqual(m.job.spec!.activeDeadlineSeconds, 91)
    assert.strictEqual(m.job.spec!.backoffLimit, 0)
    assert.strictEqual(m.job.spec!.ttlSecondsAfterFinished, 60)
    assert.deepStrictEqual(pod.nodeSelector, { pool: "a100" })
    assert.strictEqual(pod.restartPolicy, "Never")
    assert.strictEqual(m.job.metadata!.labels![K.RUN_LABEL], K.labelValue("k8s-run/1"))
    assert.strictEqual(m.job.metadata!.annotations![K.RUN_LABEL], "k8s-run/1")
    assert.deepStrictEqual(c.env!.find((e) => e.name === "TOKEN"), { name: "TOKEN", valueFrom: { secretKeyRef: { name: "trex-n-1-abcde", key: "TOKEN" } } })
    assert.notInclude(JSON.stringify(m.job), "s3cr3t")
    assert.notInclude(JSON.stringify(m.configMap), "s3cr3t")
    assert.strictEqual(Buffer.from(m.secret.data!.TOKEN!, "base64").toString(), "s3cr3t")
    assert.deepStrictEqual(m.configMap.data, { f0: "{}", f1: "d" })
    assert.deepStrictEqual(c.command!.slice(3), ["trex-job", "sh", "-c", "true"])
    assert.throws(() => K.manifests(spec("x", "true", { files: [{ path: "../x", content: "" }] }), { name: "a", namespace: "n", image: "i", jobDir: "/j", specDir: "/s", gpuResource: "g" }))
  })

  it("mounts volumes: claims, a node's directory, NFS, /dev/shm in memory, the job directory on a claim at <run>/<Job name>; bad settings name their field and the fix", () => {
    const mounts: ReadonlyArray<K.Mount> = [
      { target: "/cache/huggingface", claim: "hf-cache" },
      { target: "/data", hostPath: "/mnt/datasets", readOnly: true },
      { target: "/corpora", nfs: { server: "nfs.lab", path: "/export/corpora" }, subPath: "en", readOnly: true }
    ]
    const pod = K.manifests(spec("n/1", "true"), { ...base, mounts, jobDirClaim: "trex-jobs", shmSizeMb: 16384 }).job.spec!.template.spec!
    assert.deepStrictEqual(pod.volumes, [
      { name: "job", persistentVolumeClaim: { claimName: "trex-jobs" } },
      { name: "spec", configMap: { name: "trex-n-1-abcde" } },
      { name: "shm", emptyDir: { medium: "Memory", sizeLimit: "16384Mi" } },
      { name: "mount-0", persistentVolumeClaim: { claimName: "hf-cache" } },
      { name: "mount-1", hostPath: { path: "/mnt/datasets" } },
      { name: "mount-2", nfs: { server: "nfs.lab", path: "/export/corpora", readOnly: true } }
    ])
    assert.deepStrictEqual(pod.containers[0]!.volumeMounts, [
      { name: "job", mountPath: "/trex/job", subPath: `${K.labelValue("k8s-run/1")}/trex-n-1-abcde` },
      { name: "spec", mountPath: "/trex/spec", readOnly: true },
      { name: "shm", mountPath: "/dev/shm" },
      { name: "mount-0", mountPath: "/cache/huggingface" },
      { name: "mount-1", mountPath: "/data", readOnly: true },
      { name: "mount-2", mountPath: "/corpora", subPath: "en", readOnly: true }
    ])
    // without them, as before: the job directory an emptyDir, gone with its pod
    assert.deepStrictEqual(K.manifests(spec("n/1", "true"), base).job.spec!.template.spec!.volumes, [
      { name: "job", emptyDir: {} },
      { name: "spec", configMap: { name: "trex-n-1-abcde" } }
    ])
    assert.deepStrictEqual(K.volumeProblems({ mounts, jobDirClaim: "trex-jobs", shmSizeMb: 1, jobDir: "/trex/job", specDir: "/trex/spec" }), [])
    assert.deepStrictEqual(
      K.volumeProblems({
        mounts: [
          { target: "/cache", claim: "hf-cache", hostPath: "/mnt/hf" },
          { target: "relative", claim: "Bad_Name" },
          { target: "/trex", hostPath: "mnt/x" },
          { target: "/dev/shm/x", nfs: { server: "", path: "/e" } },
          { target: "/cache", claim: "c", subPath: "../up" },
          { target: "/d" }
        ],
        jobDirClaim: "Jobs!",
        shmSizeMb: 64,
        jobDir: "/trex/job",
        specDir: "/trex/spec"
      }),
      [
        `backend.k8s.jobDirClaim: "Jobs!" is not a PersistentVolumeClaim's name (lower-case letters, digits, '-' and '.'; \`kubectl get pvc -n <namespace>\` lists them)`,
        "backend.k8s.mounts[0]: gives claim and hostPath: give one of claim (a PersistentVolumeClaim's name), hostPath (a directory of the node) or nfs ({server, path})",
        `backend.k8s.mounts[1].claim: "Bad_Name" is not a PersistentVolumeClaim's name (lower-case letters, digits, '-' and '.'; \`kubectl get pvc -n <namespace>\` lists them)`,
        `backend.k8s.mounts[1].target: "relative" is not an absolute path in the container (/cache/huggingface)`,
        `backend.k8s.mounts[2].hostPath: "mnt/x" is not an absolute path of the node (/mnt/datasets)`,
        "backend.k8s.mounts[2].target: /trex would overlap the job directory (backend.k8s.jobDir) at /trex/job: mount it elsewhere",
        "backend.k8s.mounts[3].nfs.server: give the NFS server's host name or address",
        "backend.k8s.mounts[3].target: /dev/shm/x would overlap backend.k8s.shmSizeMb at /dev/shm: mount it elsewhere",
        `backend.k8s.mounts[4].subPath: "../up" is not a relative path inside the volume (huggingface, not /huggingface or ../x)`,
        "backend.k8s.mounts[4].target: /cache would hide backend.k8s.mounts[0] at /cache: mount it elsewhere",
        "backend.k8s.mounts[5]: says not what to mount: give one of claim (a PersistentVolumeClaim's name), hostPath (a directory of the node) or nfs ({server, path})"
      ]
    )
  })

  it("a Job's end: a pod the cluster stopped is Infra whatever its exit code (OOMKilled stays OOM); a pod gone before it was read says so", () => {
    const failedJob = { status: { conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" }] } }
    const pod = (conditions: Array<object>, terminated: object, extra: object = {}) =>
      ({ status: { phase: "Failed", conditions, containerStatuses: [{ name: K.CONTAINER, state: { terminated } }], ...extra } }) as never
    const preempted = { type: "DisruptionTarget", status: "True", reason: "DeletionByTaintManager", message: "Taint manager: deleting due to NoExecute taint" }
    assert.deepStrictEqual(K.mapExit(failedJob, pod([preempted], { exitCode: 137, reason: "Error" })), {
      outcome: "Failed",
      failureKind: "Infra",
      exitCode: 137,
      message: "its pod was deleted as its node was tainted NoExecute (not ready, unreachable) (DeletionByTaintManager: Taint manager: deleting due to NoExecute taint), not ended by the job"
    })
    assert.strictEqual(K.mapExit(failedJob, pod([preempted], { exitCode: 137, reason: "OOMKilled" })).failureKind, "OOM")
    assert.strictEqual(K.mapExit(failedJob, pod([], { exitCode: 137, reason: "Error" })).failureKind, "OOM", "no disruption: the job protocol's code")
    assert.strictEqual(K.mapExit(failedJob, pod([{ ...preempted, status: "False" }], { exitCode: 143, reason: "Error" })).failureKind, "Crash")
    assert.deepStrictEqual(K.mapExit(failedJob, undefined), {
      outcome: "Failed",
      failureKind: "Infra",
      message: "its pod failed and is gone, so how it ended is not known (a preemption, an eviction or a lost node deletes a pod): BackoffLimitExceeded Job has reached the specified backoff limit"
    })
  })

  it("who suspended a Job, by the API's whole-second times: a Kueue stop a later Resumed lifted is not the cause; a Workload admitted before the suspension (in its second, by the Job's Events' resourceVersions, a first Suspended written late not counting) is not holding it", () => {
    const event = (reason: string, at: string, resourceVersion?: string) => ({ reason, message: reason, lastTimestamp: new Date(at), metadata: { resourceVersion } }) as never
    // a stop, then a resume a second later: lifted; in the stop's own second the two are not ordered by their times, and
    // without resourceVersions that compare the stop is kept
    assert.isTrue(K.stopLifted([event("Stopped", "2026-12-06T10:00:05.900Z"), event("Resumed", "2026-12-06T10:00:06.100Z")]))
    assert.isFalse(K.stopLifted([event("Stopped", "2026-12-06T10:00:05.100Z"), event("Resumed", "2026-12-06T10:00:05.900Z")]))
    assert.isFalse(K.stopLifted([event("Stopped", "2026-12-06T10:00:05Z", "abc"), event("Resumed", "2026-12-06T10:00:05Z", "0912")]))
    // in one second, by their Events' resourceVersions (integers of any length: "10000" after "9999"); an order of times
    // in other seconds is not overruled by them
    assert.isTrue(K.stopLifted([event("Stopped", "2026-12-06T10:00:05Z", "9999"), event("Resumed", "2026-12-06T10:00:05Z", "10000")]))
    assert.isFalse(K.stopLifted([event("Resumed", "2026-12-06T10:00:05Z", "9999"), event("Stopped", "2026-12-06T10:00:05Z", "10000")]))
    assert.isTrue(K.stopLifted([event("Stopped", "2026-12-06T10:00:05Z", "12345678901234567891"), event("Resumed", "2026-12-06T10:00:05Z", "12345678901234567892")]))
    assert.isFalse(K.stopLifted([event("Stopped", "2026-12-06T10:00:05Z", "20"), event("Resumed", "2026-12-06T10:00:04Z", "30")]))
    // a stop after the resume (Kueue's preemption of a Job it had admitted): current
    assert.isFalse(K.stopLifted([event("Resumed", "2026-12-06T10:00:01Z"), event("Stopped", "2026-12-06T10:00:05Z")]))
    const workload = (admitted: string, evicted = false): K.KueueWorkload => ({
      status: {
        conditions: [
          { type: "Admitted", status: "True", lastTransitionTime: admitted },
          ...(evicted ? [{ type: "Evicted", status: "True", reason: "Preempted", lastTransitionTime: admitted }] : [])
        ]
      }
    })
    // admitted, then suspended by hand a second later or more: not Kueue's hold
    assert.isTrue(K.admittedBefore(workload("2026-12-06T10:00:05Z"), "2026-12-06T10:00:09Z"))
    // a Job made suspended (10:00:00) that Kueue admits (10:00:05) and is about to start: Kueue's, not by hand
    assert.isFalse(K.admittedBefore(workload("2026-12-06T10:00:05Z"), "2026-12-06T10:00:00Z"))
    // evicted since: not told as by hand
    assert.isFalse(K.admittedBefore(workload("2026-12-06T10:00:05Z", true), "2026-12-06T10:00:09Z"))
    // in the suspension's own second: by hand only where the Job's controller said it suspended after Kueue started it
    // (Kueue's `Started`, then its controller's `Suspended` repeated: each Event's last write; "10000" after "9999")
    const at = "2026-12-06T10:00:05Z"
    const started = [event("Suspended", at, "9990"), event("Started", at, "9998"), event("Resumed", at, "9999")]
    const byHand = [...started.slice(1), event("Suspended", at, "10000")]
    assert.isTrue(K.suspendedAfterStart(byHand))
    assert.isTrue(K.admittedBefore(workload(at), at, K.suspendedAfterStart(byHand)))
    // made suspended, admitted, not started yet (no `Started`), or started before and not suspended since; or versions
    // that do not compare: Kueue's, as before
    for (const events of [[event("Suspended", at, "9990")], started, [event("Started", at, "9998"), event("Suspended", at, "0999")]]) {
      assert.notStrictEqual(K.suspendedAfterStart(events), true, JSON.stringify(events))
      assert.isFalse(K.admittedBefore(workload(at), at, K.suspendedAfterStart(events)))
    }
    // each component's recorder writes its Events on its own: the controller's first `Suspended` (the Job made suspended,
    // before Kueue admitted it) written after Kueue's `Started` of the same second, or after it and before the controller's
    // `Resumed` (one recorder: its writes in order), is not of a suspension after the start
    const once = (reason: string, resourceVersion: string, count = 1, first = at) =>
      ({ reason, message: reason, count, firstTimestamp: new Date(first), lastTimestamp: new Date(at), metadata: { resourceVersion } }) as never
    for (const events of [[once("Started", "9998"), once("Suspended", "9999")], [once("Started", "9997"), once("Suspended", "9998"), once("Resumed", "9999")]]) {
      assert.isFalse(K.suspendedAfterStart(events), JSON.stringify(events))
      assert.isFalse(K.admittedBefore(workload(at), at, K.suspendedAfterStart(events)))
    }
    // a repeat of it (the recorder patches its Event: `count` 2, or a `lastTimestamp` past its `firstTimestamp`), though
    // the `Resumed` is gone (Events expire), or a new one written after the controller's `Resumed` (its cache lost the
    // first): after the start, by hand
    for (
      const events of [
        [once("Started", "9998"), once("Suspended", "9999", 2)],
        [once("Started", "9998"), once("Suspended", "9999", undefined, "2026-12-06T10:00:01Z")],
        [once("Suspended", "9000"), once("Started", "9997"), once("Resumed", "9998"), once("Suspended", "9999")]
      ]
    ) {
      assert.isTrue(K.suspendedAfterStart(events), JSON.stringify(events))
      assert.isTrue(K.admittedBefore(workload(at), at, K.suspendedAfterStart(events)))
    }
    // a repeat written before Kueue's newest `Started`: not after it
    assert.isFalse(K.suspendedAfterStart([once("Suspended", "9997", 2), once("Started", "9998", 2)]))
    // a suspension in an earlier second than the admission is not by hand, whatever the Events say
    assert.isFalse(K.admittedBefore(workload(at), "2026-12-06T10:00:04Z", true))
  })

  it("a pod deleted as its job crashed, in the same second: the crash is the job's unless its exit is the deletion's signal (the API server's times are whole seconds)", () => {
    const failedJob = { status: { conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" }] } }
    // as the API server gives them: `deletionTimestamp` when the grace period (30 s) ends, `finishedAt`, in whole seconds
    const deleted = (exitCode: number, finishedAt: string) =>
      ({
        metadata: { deletionTimestamp: new Date("2026-12-05T10:00:35Z"), deletionGracePeriodSeconds: 30 },
        status: { phase: "Failed", containerStatuses: [{ name: K.CONTAINER, state: { terminated: { exitCode, reason: "Error", startedAt: new Date("2026-12-05T09:58:00Z"), finishedAt: new Date(finishedAt) } } }] }
      }) as never
    const kindOf = (exitCode: number, finishedAt: string) => K.mapExit(failedJob, deleted(exitCode, finishedAt)).failureKind
    // crashed (exit 3) at 10:00:05.2, its pod deleted at 10:00:05.7: both read 10:00:05
    assert.strictEqual(kindOf(3, "2026-12-05T10:00:05Z"), "Crash")
    assert.strictEqual(K.mapExit(failedJob, deleted(3, "2026-12-05T10:00:05Z")).message, "container exited with code 3 (Error)")
    // ended by the deletion's SIGTERM in that second, or by anything a second later (a job that handled the SIGTERM)
    assert.strictEqual(kindOf(143, "2026-12-05T10:00:05Z"), "Infra")
    assert.strictEqual(kindOf(3, "2026-12-05T10:00:06Z"), "Infra")
    // a crash a second before the deletion began is the job's, whatever its code
    assert.strictEqual(kindOf(143, "2026-12-05T10:00:04Z"), "Crash")
  })

  it("a container's own end before its Job's deletion, in whole seconds: an earlier second is its own; the deletion's second, or a pod deleted before its Job, is the deletion's", () => {
    const pod = (finishedAt: string | undefined, deletedAt?: string) =>
      ({
        metadata: deletedAt !== undefined ? { deletionTimestamp: new Date(deletedAt), deletionGracePeriodSeconds: 30 } : {},
        status: { containerStatuses: [{ name: K.CONTAINER, state: finishedAt !== undefined ? { terminated: { exitCode: 0, finishedAt: new Date(finishedAt) } } : { running: {} } }] }
      }) as never
    const job = "2026-12-05T10:00:05Z"
    assert.isTrue(K.endedBeforeDeletion(pod("2026-12-05T10:00:04Z"), job))
    // deleted by the Job's foreground deletion: its pod's deletion began with or after the Job's
    assert.isTrue(K.endedBeforeDeletion(pod("2026-12-05T10:00:04Z", "2026-12-05T10:00:35Z"), job))
    assert.isFalse(K.endedBeforeDeletion(pod("2026-12-05T10:00:05Z"), job), "in the deletion's second")
    assert.isFalse(K.endedBeforeDeletion(pod(undefined), job), "not ended")
    // a pod deleted before its Job was (a suspended Job's, a preemption's): its end is that deletion's
    assert.isFalse(K.endedBeforeDeletion(pod("2026-12-05T10:00:02Z", "2026-12-05T10:00:31Z"), job))
    assert.deepStrictEqual([K.mapExit(K.endedAs(pod("2026-12-05T10:00:04Z")), pod("2026-12-05T10:00:04Z")).outcome], ["Succeeded"])
  })

  it("the backend's own labels and annotations go on the Job and its pod beside TREX's, which they cannot replace; a PriorityClass on the pod; bad ones name their field", () => {
    const m = K.manifests(spec("n/1", "true"), {
      ...base,
      labels: { "kueue.x-k8s.io/queue-name": "gpu-queue", team: "nlp" },
      annotations: { "cost-centre": "research / 42" },
      priorityClassName: "low-priority"
    })
    for (const meta of [m.job.metadata!, m.job.spec!.template.metadata!]) {
      assert.deepStrictEqual(meta.labels, { "kueue.x-k8s.io/queue-name": "gpu-queue", team: "nlp", [K.RUN_LABEL]: K.labelValue("k8s-run/1"), [K.NODE_LABEL]: K.labelValue("n/1"), [K.JOB_LABEL]: "trex-n-1-abcde" })
      assert.deepStrictEqual(meta.annotations, { "cost-centre": "research / 42", [K.RUN_LABEL]: "k8s-run/1", [K.NODE_LABEL]: "n/1" })
    }
    assert.strictEqual(m.job.spec!.template.spec!.priorityClassName, "low-priority")
    assert.deepStrictEqual(K.metadataProblems({ labels: { "kueue.x-k8s.io/queue-name": "gpu-queue" }, annotations: { "a/b": "any thing" }, priorityClassName: "low" }), [])
    assert.deepStrictEqual(K.metadataProblems({ labels: { "trex.dev/run": "x", "bad key": "v", team: "n l p" }, annotations: { "-a": "x" }, priorityClassName: "Low" }), [
      `backend.k8s.labels["trex.dev/run"]: trex.dev/ keys are TREX's own (a job's run, node and name): use a key of your own`,
      `backend.k8s.labels["bad key"]: not a label key (a name of at most 63 letters, digits, '-', '_' and '.', after an optional DNS prefix and '/': kueue.x-k8s.io/queue-name)`,
      `backend.k8s.labels["team"]: "n l p" is not a label value (at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)`,
      `backend.k8s.annotations["-a"]: not a annotation key (a name of at most 63 letters, digits, '-', '_' and '.', after an optional DNS prefix and '/': kueue.x-k8s.io/queue-name)`,
      "backend.k8s.priorityClassName: \"Low\" is not a PriorityClass's name (`kubectl get priorityclasses` lists them)"
    ])
  })

  it("finds why no node could ever take a pod, and a quota that one pod alone exceeds", () => {
    const node = (name: string, allocatable: Record<string, string>, extra: { labels?: Record<string, string>; taints?: Array<{ key: string; value?: string; effect: string }>; unschedulable?: boolean } = {}) => ({
      metadata: { name, labels: extra.labels ?? {} },
      spec: { taints: extra.taints ?? [], unschedulable: extra.unschedulable ?? false },
      status: { allocatable }
    })
    const pod = (requests: Record<string, string>, more: object = {}) => ({ containers: [{ name: "job", resources: { requests, limits: requests } }], ...more })
    const big = node("big", { cpu: "64", memory: "512Gi", "nvidia.com/gpu": "8" }, { labels: { pool: "a100" }, taints: [{ key: "nvidia.com/gpu", effect: "NoSchedule" }] })
    const small = node("small", { cpu: "3500m", memory: "16Gi" }, { labels: { pool: "cpu" } })
    const gpuPod = pod({ cpu: "4", memory: "64Gi", "nvidia.com/gpu": "4" }, { nodeSelector: { pool: "a100" }, tolerations: [{ key: "nvidia.com/gpu", operator: "Exists" }] })
    assert.isUndefined(K.unplaceable([big, small], gpuPod))
    assert.strictEqual(K.unplaceable([big, small], { ...gpuPod, tolerations: [{ key: "nvidia.com/gpu", operator: "Equal", value: "x", effect: "NoSchedule" }] }),
      "1 node: a taint the pod does not tolerate (nvidia.com/gpu:NoSchedule); 1 node: not matching the nodeSelector (pool=a100)")
    // any key with Exists tolerates every taint; PreferNoSchedule keeps no pod out
    assert.isUndefined(K.unplaceable([big], { ...gpuPod, tolerations: [{ operator: "Exists" }] }))
    assert.isUndefined(K.unplaceable([node("soft", { cpu: "8", memory: "64Gi" }, { taints: [{ key: "x", effect: "PreferNoSchedule" }] })], pod({ cpu: "2", memory: "1Gi" })))
    assert.strictEqual(K.unplaceable([big], { ...gpuPod, containers: pod({ cpu: "4", memory: "600Gi" }).containers, nodeSelector: {} }), "1 node: memory 512Gi allocatable, 600Gi asked")
    assert.strictEqual(K.unplaceable([small, node("small2", { cpu: "3", memory: "16Gi" })], pod({ cpu: "4" })), "1 node: cpu 3500m allocatable, 4 asked; 1 node: cpu 3 allocatable, 4 asked")
    assert.strictEqual(K.unplaceable([{ ...small, spec: { unschedulable: true } }], pod({ cpu: "1" })), "1 node: cordoned (unschedulable)")
    assert.strictEqual(K.unplaceable([], pod({ cpu: "1" })), "the cluster lists no node")
    assert.deepStrictEqual(
      K.overQuotaAlone(`pods "p" is forbidden: exceeded quota: compute, requested: limits.cpu=3,limits.memory=3Gi,requests.nvidia.com/gpu=4, used: limits.cpu=0,limits.memory=0,requests.nvidia.com/gpu=0, limited: limits.cpu=2,limits.memory=4Gi,requests.nvidia.com/gpu=2`),
      ["limits.cpu=3 (limited: 2)", "requests.nvidia.com/gpu=4 (limited: 2)"]
    )
    assert.deepStrictEqual(K.overQuotaAlone(`exceeded quota: pod-quota, requested: pods=1, used: pods=3, limited: pods=3`), [])
    assert.deepStrictEqual(K.refusalKind(`exceeded quota: pod-quota, requested: pods=1, used: pods=3, limited: pods=3`), { kind: "quotaFull" })
    // what a failed pull met: the newest Failed Event that tells of a pull, not the kubelet's bare `Error: ErrImagePull`
    const kubelet = (reason: string, message: string, at: string, type = "Warning") => ({ metadata: {}, involvedObject: {}, type, reason, message, lastTimestamp: new Date(at) })
    assert.strictEqual(
      K.pullFailure([
        kubelet("Failed", `Failed to pull image "r/x:1": rpc error: code = NotFound desc = not found`, "2026-01-01T00:00:01Z"),
        kubelet("Failed", "Error: ErrImagePull", "2026-01-01T00:00:02Z"),
        kubelet("BackOff", `Back-off pulling image "r/x:1"`, "2026-01-01T00:00:03Z", "Normal"),
        kubelet("Failed", "Error: ImagePullBackOff", "2026-01-01T00:00:04Z")
      ]),
      `Failed to pull image "r/x:1": rpc error: code = NotFound desc = not found`
    )
    assert.isUndefined(K.pullFailure([kubelet("Failed", "Error: ImagePullBackOff", "2026-01-01T00:00:04Z")]))
    assert.deepStrictEqual(K.refusalKind(`exceeded quota: gpu, requested: requests.nvidia.com/gpu=4, used: requests.nvidia.com/gpu=0, limited: requests.nvidia.com/gpu=2`), { kind: "quotaAlone", over: ["requests.nvidia.com/gpu=4 (limited: 2)"] })
    assert.deepStrictEqual(K.refusalKind(`admission webhook "policy.example.com" denied the request: no GPUs on weekends`), { kind: "other" })
    // a refusal that lasts (until someone changes the cluster), from the newest FailedCreate
    const failed = (message: string, at: string) => ({ metadata: {}, involvedObject: {}, reason: "FailedCreate", message, lastTimestamp: new Date(at) })
    const full = `Error creating: pods "p" is forbidden: exceeded quota: pod-quota, requested: pods=1, used: pods=3, limited: pods=3`
    const account = `Error creating: pods "p" is forbidden: error looking up service account ml/trainer: serviceaccount "trainer" not found`
    assert.isFalse(K.refusalLasts([failed(full, "2026-01-01T00:00:01Z")]), "a quota other pods fill frees")
    assert.isTrue(K.refusalLasts([failed(full, "2026-01-01T00:00:01Z"), failed(account, "2026-01-01T00:00:02Z")]))
    assert.isFalse(K.refusalLasts([failed(account, "2026-01-01T00:00:01Z"), failed(full, "2026-01-01T00:00:02Z")]), "the newest counts")
    assert.isTrue(K.refusalLasts([failed(`Error creating: pods "p" is forbidden: exceeded quota: gpu, requested: requests.nvidia.com/gpu=4, used: requests.nvidia.com/gpu=0, limited: requests.nvidia.com/gpu=2`, "2026-01-01T00:00:01Z")]))
    assert.isFalse(K.refusalLasts([]))
    assert.strictEqual(K.parseBytes("1500m"), 1.5)
    assert.strictEqual(K.parseBytes("8G"), 8e9)
    assert.strictEqual(K.parseBytes("1Ki"), 1024)
    assert.isNaN(K.parseBytes("lots"))
  })

  it("reads a timestamped log on from where it was: lines at the boundary's timestamp taken once, a cut line's rest, a cut line rotated away ended", () => {
    const [a, b, c] = ["2026-12-05T10:00:00.000000001Z", "2026-12-05T10:00:00.000000002Z", "2026-12-05T11:00:01.5+01:00"]
    const read = (log: K.StampedLog, text: string, byteByByte = false) => {
      const bytes = Buffer.from(text)
      const chunks = byteByByte ? Array.from(bytes, (x) => Buffer.from([x])) : [bytes]
      return chunks.map((ch) => Buffer.concat(log.push(ch)).toString()).join("")
    }
    const log = new K.StampedLog()
    assert.isUndefined(log.sinceTime())
    assert.strictEqual(read(log, `${a} one\n${a} two\n${b} thr`, true), "one\ntwo\nthr")
    assert.strictEqual(log.sinceTime(), "2026-12-05T10:00:00Z", "whole seconds, as the API server passes it on")
    log.resume()
    assert.strictEqual(read(log, `${a} one\n${a} two\n${b} three\n${c} four\n`), "ee\nfour\n")
    log.resume()
    assert.strictEqual(read(log, `${a} one\n${a} two\n${b} three\n${c} four\n${c} five\n`), "five\n")
    const rotated = new K.StampedLog()
    assert.strictEqual(read(rotated, `${a} one\n${b} tw`), "one\ntw")
    rotated.resume()
    assert.strictEqual(read(rotated, `${c} four\n`), "\nfour\n", "the cut line's rest is gone: it ends where it was cut")
    assert.strictEqual(K.logStampNanos(c), 1796464801500000000n)
    assert.strictEqual(read(new K.StampedLog(), "no stamp here\nnone\n\n", true), "no stamp here\nnone\n\n", "a log without timestamps comes as it is")
    assert.strictEqual(K.withoutInnerStamps(`QUJD${a} REVG`), "QUJDREVG", "a marker the runtime split in partial messages")
    // the wrapper's TERM and end lines, split by a runtime at a read of its pipe: still the marks
    const marks = K.markersOf({ metadata: { annotations: { [K.MARKER_ANNOTATION]: "0123456789abcdef" } } })
    assert.deepStrictEqual(
      [`TREX_TE${a} RM 0123456789abcdef`, `TREX_END 01234${b} 56789abcdef`, "TREX_END 0123456789abcdef", "TREX_TERM", `TREX_TE${a} RM`].map((l) => K.markerLine(l, marks)),
      ["term", "end", "end", undefined, undefined]
    )
  })

  it("makes valid label values and DNS-1123 names from any run or node id", () => {
    assert.strictEqual(K.labelValue("run-1"), "run-1")
    const odd = K.labelValue("k8s-run/1 with spaces and a very long tail ............................................")
    assert.match(odd, /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/)
    assert.notStrictEqual(K.labelValue("a/b"), K.labelValue("a_b"))
    assert.match(K.jobName("Node_7/Trial", "abcde"), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
    assert.isAtMost(K.jobName("x".repeat(200), "abcde").length, 63)
  })
})

layer(TestLayer, { timeout: 120_000, excludeTestServices: true })("KubernetesBackend: the Backend conformance suite", (it) => {
  // SIGKILL is an `Error` exit 137 on Kubernetes; only the kernel's OOM killer yields OOMKilled (tested below).
  const cases = BackendConformance.cases({
    command: (_, script) => ({ argv: ["sh", script], image: "busybox:1.36" }),
    supportsOom: false,
    fresh: Effect.suspend(() => KubernetesBackend.make(config(current!)))
  })
  for (const c of cases) it.effect(c.name, () => c.run, { timeout: 60_000 })
})

layer(TestLayer, { timeout: 120_000, excludeTestServices: true })("KubernetesBackend on the fake API server", (it) => {
  it.effect("runs a GPU job: secrets through a Secret only, files from the ConfigMap, result.json through the log marker", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      const ref = yield* backend.submit(spec("gpu", [
        "echo \"token=${#TOKEN} plain=$PLAIN dir=$(basename \"$PWD\")\"",
        "cat strategy.json; echo",
        "printf '{\"metrics\":{\"acc\":0.5},\n \"primary\":0.5}' > result.json"
      ].join("\n"), { env: { PLAIN: "p", TOKEN: Redacted.make("s3cr3t-token") }, resources: { gpus: 2, cpus: 1 } }))
      const job = fake.get("jobs", "trex", ref.id)!
      assert.deepStrictEqual(job.spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"], "2")
      assert.notInclude(JSON.stringify(job), "s3cr3t")
      assert.strictEqual(fake.get("secrets", "trex", ref.id)!.metadata.ownerReferences![0]!.uid, job.metadata.uid)
      const events = yield* collect(backend, ref)
      const exit = exitOf(events)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.deepStrictEqual(exit.result, { metrics: { acc: 0.5 }, primary: 0.5 })
      const lines = events.flatMap((e) => (e._tag === "Log" ? [e.line] : []))
      assert.include(lines, "token=12 plain=p dir=job")
      assert.include(lines, "{\"lr\":0.1}")
      assert.isFalse(lines.some((l) => l.startsWith("TREX_RESULT")), "the result marker is not a log line")
      assert.deepStrictEqual(lines, ["token=12 plain=p dir=job", "{\"lr\":0.1}"])
      assert.isAbove(exit.wallSeconds, 0)
      assert.strictEqual(exit.gpuSeconds, exit.wallSeconds * 2)
    }))

  it.effect("a log of tens of megabytes reaches a slow consumer in bounded chunks: every line in order, \\r as shown, the right tail and result; so does a resumed controller's", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      const ref = yield* backend.submit(spec("loud", [...loudScript, "echo '{\"metrics\":{\"acc\":0.5},\"primary\":0.5}' > result.json"].join("\n")))
      const { exit } = yield* checkLoudWatch(backend.watch(ref))
      assert.deepStrictEqual(exit.result, { metrics: { acc: 0.5 }, primary: 0.5 })
      // a fresh instance (a restarted controller) reads the finished pod's log for its tail and result
      const again = yield* Backend.awaitExit(yield* KubernetesBackend.make(config(fake)), ref)
      assert.deepStrictEqual(again.result, exit.result)
      assert.deepStrictEqual(again.logTail, exit.logTail)
    }))

  it.effect("an API server that goes away mid-run (a control-plane restart) is waited for: the watch says so, then follows each job's log on from where it was (every line once, and the result), whether the job ran on or ended meanwhile", () =>
    Effect.gen(function*() {
      const fake = yield* FakeApi
      const backend = yield* KubernetesBackend.make(config(fake))
      const impatient = yield* KubernetesBackend.make(config(fake, { apiWaitMs: 1000 }))
      const ticks = (n: number) => [`i=0; while [ $i -lt ${n} ]; do echo tick $i; i=$((i+1)); sleep 0.1; done`, `echo '{"metrics":{"acc":${n}},"primary":${n}}' > result.json`].join("\n")
      // one job runs on past the outage; the other ends during it
      const long = yield* backend.submit(spec("outage-long", ticks(60)))
      const short = yield* backend.submit(spec("outage-short", ticks(15)))
      const watchUntilTick = (ref: Parameters<Backend.BackendShape["watch"]>[0]) =>
        Effect.gen(function*() {
          const up = yield* Deferred.make<void>()
          const fiber = yield* backend.watch(ref).pipe(
            Stream.tap((e) => (e._tag === "Log" && e.line === "tick 3" ? Deferred.succeed(up, undefined) : Effect.void)),
            Stream.runCollect,
            Effect.map((c) => Array.from(c)),
            Effect.forkChild
          )
          yield* Deferred.await(up)
          return fiber
        })
      const longWatch = yield* watchUntilTick(long)
      const shortWatch = yield* watchUntilTick(short)
      const gaveUp = yield* Stream.runCollect(impatient.watch(long)).pipe(Effect.flip, Effect.forkChild)
      // (the server answers again whatever happens meanwhile)
      yield* Effect.acquireUseRelease(Effect.sync(() => fake.outage(true)), () => Effect.sleep("3 seconds"), () => Effect.sync(() => fake.outage(false)))
      for (const [fiber, n] of [[longWatch, 60], [shortWatch, 15]] as const) {
        const events = yield* Fiber.join(fiber)
        const exit = exitOf(events)
        assert.strictEqual(exit.outcome, "Succeeded", exit.message)
        assert.deepStrictEqual(exit.result, { metrics: { acc: n }, primary: n })
        assert.deepStrictEqual(events.flatMap((e) => (e._tag === "Log" ? [e.line] : [])), Array.from({ length: n }, (_, i) => `tick ${i}`))
        const states = events.flatMap((e) => (e._tag === "State" ? [e] : []))
        const told = states.findIndex((e) => /^the Kubernetes API server at http:\/\/127\.0\.0\.1:\d+ does not answer since \d\d:\d\d:\d\dZ .*\(apiWaitMs\)$/.test(e.reason ?? ""))
        assert.isAtLeast(told, 0, JSON.stringify(states))
        assert.isTrue(states.slice(told + 1).some((e) => e.reason === undefined), `the end of the outage is told: ${JSON.stringify(states)}`)
      }
      // a watch whose apiWaitMs ran out says what to check and what to do
      const error = yield* Fiber.join(gaveUp)
      assert.isFalse(error.retryable)
      assert.include(error.message, "did not answer for")
      assert.include(error.message, "(apiWaitMs)")
      assert.include(error.message, "kubectl cluster-info")
      assert.include(error.message, "trex resume")
    }), 60_000)

  it.effect("a create whose answer was lost made its Job: it is not made twice (asked for again by its name, at once or by its watch once the server answers after an outage), and runs", () =>
    Effect.gen(function*() {
      const fake = yield* FakeApi
      const backend = yield* KubernetesBackend.make(config(fake))
      const jobsOf = (node: string) => fake.list("jobs", "trex").filter((j) => j.metadata.labels?.[K.NODE_LABEL] === K.labelValue(node))
      const done = `echo '{"metrics":{},"primary":1}' > result.json`
      // the answer is lost, the server still up: the same Job is asked for again, and is there
      fake.loseAnswer("jobs")
      const first = yield* backend.submit(spec("lost-answer", done))
      assert.deepStrictEqual(jobsOf("lost-answer").map((j) => j.metadata.name), [first.id])
      assert.strictEqual((yield* Backend.awaitExit(backend, first)).outcome, "Succeeded")
      // the answer is lost and the server goes away: the submit hands back the Job's ref, and its watch
      // asks for the Job (and makes its ConfigMap and Secret) once the server answers
      fake.loseAnswer("jobs", true)
      const second = yield* backend.submit(spec("lost-outage", done, { env: { S: Redacted.make("x") } }))
      assert.deepStrictEqual(jobsOf("lost-outage").map((j) => j.metadata.name), [second.id], "the lost create made it")
      const exit = yield* Effect.acquireUseRelease(
        Effect.void,
        () => Effect.flatMap(Effect.forkChild(Backend.awaitExit(backend, second)), (f) => Effect.andThen(Effect.sleep("2 seconds"), Effect.sync(() => fake.outage(false))).pipe(Effect.andThen(Fiber.join(f)))),
        () => Effect.sync(() => fake.outage(false))
      )
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.strictEqual(jobsOf("lost-outage").length, 1, "no second Job")
      assert.isDefined(fake.get("configmaps", "trex", second.id))
      assert.isDefined(fake.get("secrets", "trex", second.id))
    }), 60_000)

  it.effect("reports Unschedulable as a Pending reason, and cancel deletes in the foreground with the ConfigMap and Secret", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      const ref = yield* backend.submit(spec("too-big", "sleep 60", { env: { S: Redacted.make("x") }, resources: { gpus: 3, cpus: 1 } }))
      const events = yield* pendingThenCancel(backend, ref, (r) => r === "Unschedulable")
      assert.strictEqual(exitOf(events).outcome, "Cancelled")
      // its tombstone is kept a week at least (a run stopped over a weekend before it journaled the cancel reads it)
      assert.strictEqual(fake.get("configmaps", "trex", `${ref.id}-cancelled`)?.metadata.annotations?.["trex.dev/keep-ms"], String(7 * 24 * 3_600_000))
      assert.isTrue(fake.requests.some((r) => r.startsWith(`DELETE /apis/batch/v1/namespaces/trex/jobs/${ref.id}`) && r.includes("propagationPolicy=Foreground")))
      yield* eventually("the ConfigMap and the Secret are collected with the Job", () =>
        fake.get("configmaps", "trex", ref.id) === undefined && fake.get("secrets", "trex", ref.id) === undefined)
    }))

  it.effect("withdraws a job whose pod no node has taken (Unschedulable), not one whose pod is bound to a node", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      const running = yield* backend.submit(spec("holds-gpus", "echo up; sleep 60", { resources: { gpus: 2, cpus: 1 } }))
      const waiting = yield* backend.submit(spec("waits-gpus", "echo ran", { resources: { gpus: 2, cpus: 1 } }))
      const answers: Array<boolean> = []
      const events = yield* backend.watch(waiting).pipe(
        Stream.tap((e) => (e._tag === "State" && e.reason === "Unschedulable" && answers.length === 0
          ? Effect.flatMap(backend.withdraw!(waiting), (w) => Effect.sync(() => answers.push(w)))
          : Effect.void)),
        Stream.runCollect
      )
      assert.deepStrictEqual(answers, [true], "an unscheduled pod is withdrawn")
      assert.isFalse(yield* backend.withdraw!(waiting), "once")
      const exit = exitOf(Array.from(events))
      assert.strictEqual(exit.outcome, "Cancelled")
      assert.notInclude(Array.from(events).flatMap((e) => (e._tag === "Log" ? [e.line] : [])), "ran")
      assert.isTrue(fake.requests.some((r) => r.startsWith("DELETE /api/v1/namespaces/trex/pods/")), fake.requests.filter((r) => r.startsWith("DELETE")).join("\n"))
      yield* eventually("the withdrawn Job is gone", () => fake.get("jobs", "trex", waiting.id) === undefined)
      // bound to a node: it may be starting, so it is let run
      yield* eventually("the first pod is bound", () => podOf(fake, running.id)?.spec.nodeName !== undefined)
      assert.isFalse(yield* backend.withdraw!(running))
      yield* backend.cancel(running)
      assert.strictEqual(exitOf(yield* collect(backend, running)).outcome, "Cancelled")
    }))

  it.effect("the fake API server refuses a delete whose preconditions no longer hold, as the real one does", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      const ref = yield* backend.submit(spec("precondition", "sleep 60", { resources: { gpus: 3, cpus: 1 } }))
      yield* eventually("its pod exists", () => podOf(fake, ref.id) !== undefined)
      const pod = podOf(fake, ref.id)!
      const api = fake.kubeConfig().makeApiClient(CoreV1Api)
      const stale = yield* Effect.promise(() =>
        api.deleteNamespacedPod({ name: pod.metadata.name, namespace: "trex", body: { preconditions: { resourceVersion: "1" } } }).then(() => "deleted", (e: { code?: number }) => e.code)
      )
      assert.strictEqual(stale, 409)
      assert.isDefined(podOf(fake, ref.id))
      yield* backend.cancel(ref)
    }))

  type Ref = Parameters<Backend.BackendShape["cancel"]>[0]
  /**
   * A job of `node` cancelled as it completes: the cancel reads its Job running (after `before`), and its delete reaches
   * the server once the Job has completed. Its ref, and whether its Job is there, completed.
   */
  const cancelAsItCompletes = (
    backend: Backend.BackendShape,
    fake: FakeKubeApi.FakeKubeApi,
    node: string,
    before: (ref: Ref) => Effect.Effect<void> = () => Effect.void,
    around: (cancel: Effect.Effect<void, Errors.BackendError>) => Effect.Effect<void, Errors.BackendError> = (c) => c
  ) =>
    Effect.gen(function*() {
      const ref = yield* backend.submit(spec(node, `sleep 1; ${done}`))
      yield* eventually("its pod runs", () => podOf(fake, ref.id)?.status.phase === "Running")
      yield* before(ref)
      const completed = () => fake.get("jobs", "trex", ref.id)?.status.conditions?.some((c: { type: string }) => c.type === "Complete") === true
      fake.delayDelete("jobs", () => Effect.runPromise(eventually("the Job completes", completed)))
      yield* around(backend.cancel(ref))
      return { ref, completed }
    })

  it.effect("a cancel whose delete reaches the API server once the Job has completed leaves the Job be: no tombstone, and a resumed controller reads its own exit", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      const { completed, ref } = yield* cancelAsItCompletes(backend, fake, "ends-as-cancelled")
      assert.isTrue(completed(), "the Job is there, completed")
      assert.isUndefined(fake.get("configmaps", "trex", `${ref.id}-cancelled`), "no tombstone is left")
      const exit = yield* Backend.awaitExit(yield* KubernetesBackend.make(config(fake)), ref)
      assert.deepStrictEqual([exit.outcome, exit.exitCode, exit.result], ["Succeeded", 0, { metrics: {}, primary: 1 }], exit.message)
    }))

  /**
   * A job of `script` whose container exits as its cancel's delete arrives, before the kubelet has said so (the API
   * server's clock moved a second on once it has exited: the delete comes in a later second), watched by a resumed
   * controller's backend (which knows the job by its ref alone): the exits of that watch and of a fresh one; its Job gone.
   */
  const exitsAsDeleted = (node: string, script: string) =>
    Effect.gen(function*() {
      let ahead = 0
      const fake = yield* fakeWith({ clock: () => Date.now() + ahead })
      const backend = yield* KubernetesBackend.make(config(fake))
      const exited = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      // its container's end is not reported (its pod shows it running, its Job's controller does not know) until its pod is deleted
      fake.lateExitReport(() => Effect.runPromise(Effect.andThen(Deferred.succeed(exited, undefined), Deferred.await(release))))
      const ref = yield* backend.submit(spec(node, script))
      const watching = yield* watchUntil(yield* KubernetesBackend.make(config(fake)), ref, (e) => e._tag === "State" && e.state === "Running")
      yield* Deferred.await(exited)
      assert.strictEqual(podOf(fake, ref.id)?.status.phase, "Running", "its pod does not say yet that it ended")
      ahead = 1_000
      yield* backend.cancel(ref)
      const exits = [exitOf(yield* Fiber.join(watching)), yield* Backend.awaitExit(yield* KubernetesBackend.make(config(fake)), ref)]
      assert.isUndefined(fake.get("jobs", "trex", ref.id), "its Job is gone")
      yield* Deferred.succeed(release, undefined)
      return { fake, ref, exits }
    })

  it.effect("a container that exits as the cancel's delete arrives, before the kubelet has said so, keeps its own end: its watch, a fresh watch and a fresh list read it", () =>
    Effect.gen(function*() {
      const { exits, fake, ref } = yield* exitsAsDeleted("ends-as-deleted", `sleep 1; ${done}`)
      // (its record keeps the job's run and node, though the watch that wrote it knew the job by its ref alone)
      for (const exit of exits) assert.deepStrictEqual([exit.outcome, exit.exitCode, exit.result], ["Succeeded", 0, { metrics: {}, primary: 1 }], exit.message)
      const listed = (yield* (yield* KubernetesBackend.make(config(fake))).list("k8s-run/1")).find((j) => j.ref.id === ref.id)
      assert.deepStrictEqual([listed?.state, listed?.labels], ["Finished", { run: "k8s-run/1", node: "ends-as-deleted" }])
    }).pipe(Effect.scoped))

  it.effect("a job that fails by itself without a result as the cancel's delete arrives keeps its own failure (the wrapper's end line says its log was read to its end)", () =>
    Effect.gen(function*() {
      const { exits } = yield* exitsAsDeleted("fails-as-deleted", "sleep 1; echo ran; exit 3")
      for (const exit of exits) assert.deepStrictEqual([exit.outcome, exit.failureKind, exit.exitCode, exit.result], ["Failed", "Crash", 3, undefined], exit.message)
    }).pipe(Effect.scoped))

  it.effect("the wrapper's end line split by the runtime at a read of its pipe (a timestamp inside it) is still its mark, not a log line", () =>
    Effect.gen(function*() {
      // 56 characters of output and the wrapper's newline: a read of 64 ends 7 characters into `TREX_END <mark>`
      const fake = yield* fakeWith({ pipeReadChars: 64 })
      const backend = yield* KubernetesBackend.make(config(fake))
      const events = yield* collect(backend, yield* backend.submit(spec("split-end", `echo ${"x".repeat(55)}`)))
      assert.deepStrictEqual(events.flatMap((e) => (e._tag === "Log" ? [e.line] : [])), ["x".repeat(55)])
      assert.strictEqual(exitOf(events).outcome, "Succeeded")
    }).pipe(Effect.scoped))

  it.effect("a job's own output line TREX_TERM is its output: shown, and not taken for the wrapper's mark of a SIGTERM", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const events = yield* collect(backend, yield* backend.submit(spec("own-term", `echo TREX_TERM; echo TREX_END; ${done}`)))
      assert.deepStrictEqual(events.flatMap((e) => (e._tag === "Log" ? [e.line] : [])), ["TREX_TERM", "TREX_END", "ran"])
      assert.strictEqual(exitOf(events).outcome, "Succeeded")
    }))

  it.effect("a job that exits 0 on its cancel's SIGTERM, its node's clock 1.5 s behind the API server's, reads Cancelled: its watch and a fresh one, and no record of an own end", () =>
    Effect.gen(function*() {
      // the container's finishedAt (the node's clock) falls in an earlier second than the Job's deletionTimestamp
      const fake = yield* fakeWith({ kubeletClockSkewMs: -1_500 })
      const backend = yield* KubernetesBackend.make(config(fake))
      const ref = yield* backend.submit(spec("term-zero", `trap 'echo {\\"metrics\\":{},\\"primary\\":1} > result.json; exit 0' TERM; echo started; sleep 30 & wait`))
      const watching = yield* watchUntil(backend, ref, (e) => e._tag === "Log" && e.line === "started")
      // (the wrapper sets its TERM trap just after it starts the job)
      yield* Effect.sleep("300 millis")
      yield* backend.cancel(ref)
      const exits = [exitOf(yield* Fiber.join(watching)), yield* Backend.awaitExit(yield* KubernetesBackend.make(config(fake)), ref)]
      for (const exit of exits) assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Cancelled", "Cancelled"], exit.message)
      assert.isUndefined(fake.get("configmaps", "trex", `${ref.id}-ended`), "no record of an own end")
    }).pipe(Effect.scoped))

  it.effect("a cancel whose delete comes once the Job has completed, by a user who may not delete ConfigMaps: the cancel is done, and its tombstone left says so in a warning", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ denied: ["delete configmaps"] })
      const backend = yield* KubernetesBackend.make(config(fake))
      const warned: Array<string> = []
      const { completed, ref } = yield* cancelAsItCompletes(backend, fake, "ends-undeletable", undefined, (cancel) =>
        cancel.pipe(Effect.provide(Logger.layer([Logger.make((o) => void (o.logLevel === "Warn" && warned.push(String(o.message))))]))))
      assert.isTrue(completed(), "the Job is there, completed")
      assert.isDefined(fake.get("configmaps", "trex", `${ref.id}-cancelled`), "the tombstone stays")
      assert.lengthOf(warned, 1, warned.join("\n"))
      assert.match(
        warned[0]!,
        new RegExp(`^kubernetes: Job ${ref.id} ended by itself as it was cancelled, but its tombstone \\(ConfigMap ${ref.id}-cancelled\\) stays: the kubeconfig's user may not delete configmaps in namespace trex \\(.*forbidden.*\\), so a controller .* reads it as Cancelled\\. Grant delete on configmaps, or \`kubectl delete configmap -n trex ${ref.id}-cancelled\`$`)
      )
    }).pipe(Effect.scoped))

  it.effect("a cancel whose delete comes once the Job has completed leaves a tombstone it did not write: a withdrawal's, saying why", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      // another controller's withdrawal wrote the Job's tombstone, with why it took it back
      const core = fake.kubeConfig().makeApiClient(CoreV1Api)
      const failed = { failedAt: "2026-12-06T10:00:00.000Z", failed: "ImagePullBackOff: stuck for 600 s" }
      const { completed, ref } = yield* cancelAsItCompletes(backend, fake, "ends-withdrawn", (ref) =>
        Effect.promise(() =>
          core.createNamespacedConfigMap({ namespace: "trex", body: { metadata: { name: `${ref.id}-cancelled`, labels: { [K.TOMBSTONE_LABEL]: ref.id } }, data: failed } })))
      assert.isTrue(completed(), "the Job is there, completed")
      assert.deepStrictEqual(fake.get("configmaps", "trex", `${ref.id}-cancelled`)?.data, failed, "the withdrawal's tombstone stays")
    }))

  it.effect("a cancel of a Job being deleted with --cascade=orphan deletes it in the foreground all the same: its pod does not run on", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      const ref = yield* backend.submit(spec("orphaned", "sleep 60"))
      yield* eventually("its pod runs", () => podOf(fake, ref.id)?.status.phase === "Running")
      const release = yield* Deferred.make<void>()
      fake.holdOrphan(() => Effect.runPromise(Deferred.await(release)))
      const batch = fake.kubeConfig().makeApiClient(BatchV1Api)
      yield* Effect.promise(() => batch.deleteNamespacedJob({ name: ref.id, namespace: "trex", propagationPolicy: "Orphan" }))
      assert.deepStrictEqual(fake.get("jobs", "trex", ref.id)?.metadata.finalizers, ["orphan"], "the Job is being deleted, its pods to be orphaned")
      yield* backend.cancel(ref)
      yield* Deferred.succeed(release, undefined)
      yield* eventually("its pod is gone, and its Job", () => podOf(fake, ref.id) === undefined && fake.get("jobs", "trex", ref.id) === undefined)
    }))

  it.effect("a cancel's tombstone left by a controller stopped before its delete goes once the Job completes: a resumed controller reads the Job's exit and leaves no tombstone", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      const ref = yield* backend.submit(spec("stale-stone", `sleep 0.5; ${done}`))
      // the earlier controller's cancel wrote the tombstone, and was stopped before it deleted the Job
      const core = fake.kubeConfig().makeApiClient(CoreV1Api)
      yield* Effect.promise(() =>
        core.createNamespacedConfigMap({
          namespace: "trex",
          body: { metadata: { name: `${ref.id}-cancelled`, labels: { [K.TOMBSTONE_LABEL]: ref.id, [K.RUN_LABEL]: K.labelValue("k8s-run/1") } }, data: { cancelledAt: "2026-12-06T10:00:00.000Z" } }
        }))
      const exit = yield* Backend.awaitExit(yield* KubernetesBackend.make(config(fake)), ref)
      assert.deepStrictEqual([exit.outcome, exit.exitCode, exit.result], ["Succeeded", 0, { metrics: {}, primary: 1 }], exit.message)
      // (else a controller that reads the job once its TTL deletes the Job reads it as cancelled)
      assert.isUndefined(fake.get("configmaps", "trex", `${ref.id}-cancelled`), "the stale tombstone is gone")
    }))

  it.effect("a job is not given the name of an earlier job (node ids repeat across runs) whose end record is left: its own exit, not the earlier one's", () =>
    Effect.gen(function*() {
      const fake = yield* FakeApi
      // (a backend of its own: the suite's listed the names records hold within the minute, before this one was written)
      const backend = yield* KubernetesBackend.make(config(fake))
      // the first name drawn is one an earlier job of the node had, its Job gone and its record of an own end left
      const taken = K.jobName("collide", (0.5).toString(36).slice(2, 7))
      const core = fake.kubeConfig().makeApiClient(CoreV1Api)
      yield* Effect.promise(() =>
        core.createNamespacedConfigMap({
          namespace: "trex",
          body: {
            metadata: { name: `${taken}-ended`, labels: { [K.TOMBSTONE_LABEL]: taken, [K.RUN_LABEL]: K.labelValue("k8s-run/0") } },
            data: { exit: JSON.stringify({ outcome: "Succeeded", exitCode: 0, message: "job completed", wallSeconds: 1, gpuSeconds: 0 }), result: Buffer.from(JSON.stringify({ metrics: {}, primary: 9 })).toString("base64") }
          }
        }))
      const random = Math.random
      let first = true
      const ref = yield* Effect.acquireUseRelease(
        Effect.sync(() => (Math.random = () => (first ? ((first = false), 0.5) : random()))),
        () => backend.submit(spec("collide", `sleep 0.2; ${done}`)),
        () => Effect.sync(() => (Math.random = random))
      )
      assert.isFalse(first, "the name drawn first was the earlier job's")
      assert.notStrictEqual(ref.id, taken)
      const exit = yield* Backend.awaitExit(backend, ref)
      assert.deepStrictEqual([exit.outcome, exit.result], ["Succeeded", { metrics: {}, primary: 1 }], exit.message)
    }))

  it.effect("tombstones and end records older than their keep, their Jobs gone, are removed as a submit begins (a young one, or one whose Job is there, is kept); a resume after the removal reads the job failed, not to be run again", () =>
    Effect.gen(function*() {
      // the stand-in's clock eight days, then two hours, behind while the old ones are written (their creationTimestamp), then on time
      let behind = 8 * 24 * 3_600_000
      const fake = yield* fakeWith({ clock: () => Date.now() - behind })
      const core = fake.kubeConfig().makeApiClient(CoreV1Api)
      const record = (job: string, kind: "ended" | "cancelled", keepMs?: number) =>
        Effect.promise(() =>
          core.createNamespacedConfigMap({
            namespace: "trex",
            body: {
              metadata: {
                name: `${job}-${kind}`,
                labels: { [K.TOMBSTONE_LABEL]: job, [K.RUN_LABEL]: K.labelValue("k8s-run/1") },
                // (written by a controller that keeps its records longer than this one, or by this one; none: before records said it)
                ...(keepMs !== undefined ? { annotations: { "trex.dev/keep-ms": String(keepMs) } } : {})
              },
              data: kind === "cancelled"
                ? { cancelledAt: new Date().toISOString() }
                : { exit: JSON.stringify({ outcome: "Succeeded", exitCode: 0, message: "job completed", wallSeconds: 1, gpuSeconds: 0 }), result: Buffer.from(JSON.stringify({ metrics: {}, primary: 7 })).toString("base64") }
            }
          }))
      // a Job still there (running) whose tombstone a controller stopped before its delete left, eight days ago
      const running = yield* (yield* KubernetesBackend.make(config(fake))).submit(spec("sweep-running", "sleep 30"))
      yield* record(running.id, "cancelled")
      // a tombstone goes after a week at least
      yield* record("trex-sweep-old-bbbbb", "cancelled")
      behind = 2 * 3_600_000
      yield* record("trex-sweep-old-aaaaa", "ended", 3_600_000)
      yield* record("trex-sweep-kept-ddddd", "cancelled", 3 * 3_600_000)
      // written before records said their keep (by a version whose refs have no submittedAt): kept a week too
      yield* record("trex-sweep-prior-eeeee", "ended")
      behind = 0
      yield* record("trex-sweep-young-ccccc", "ended")
      const fresh = yield* KubernetesBackend.make(config(fake))
      yield* fresh.submit(spec("sweeper", done))
      const left = fake.list("configmaps", "trex").filter((c) => c.metadata.labels?.[K.TOMBSTONE_LABEL] !== undefined).map((c) => c.metadata.name).sort()
      assert.deepStrictEqual(left, ["trex-sweep-kept-ddddd-cancelled", "trex-sweep-prior-eeeee-ended", `${running.id}-cancelled`, "trex-sweep-young-ccccc-ended"])
      // a resumed run (a fresh backend) that had not read the removed record's job: Failed, not to be run again
      const ref = (id: string) => ({ backend: "kubernetes", id, data: { namespace: "trex", gpus: 0, run: K.labelValue("k8s-run/1"), submittedAt: Date.now() - 3 * 3_600_000 } })
      const resumed = yield* KubernetesBackend.make(config(fake))
      const gone = yield* Backend.awaitExit(resumed, ref("trex-sweep-old-aaaaa"))
      assert.deepStrictEqual([gone.outcome, gone.failureKind, gone.retryable], ["Failed", "Infra", false], gone.message)
      assert.include(gone.message, "it is not run again; to keep ends for a run resumed later, raise ttlSecondsAfterFinished")
      assert.isUndefined(fake.get("jobs", "trex", "trex-sweep-old-aaaaa"), "no Job made for it")
      // the young record's job still reads its own end
      const young = yield* Backend.awaitExit(resumed, ref("trex-sweep-young-ccccc"))
      assert.deepStrictEqual([young.outcome, young.result], ["Succeeded", { metrics: {}, primary: 7 }], young.message)
      // and so does the job of the record written before records said their keep, by a ref of that version (no submittedAt)
      const prior = yield* Backend.awaitExit(resumed, { backend: "kubernetes", id: "trex-sweep-prior-eeeee", data: { namespace: "trex", gpus: 0, run: K.labelValue("k8s-run/1") } })
      assert.deepStrictEqual([prior.outcome, prior.result], ["Succeeded", { metrics: {}, primary: 7 }], prior.message)
      yield* resumed.cancel(running)
    }).pipe(Effect.scoped))

  it.effect("a job submitted while the API server did not answer, its controller stopped before it made the Job, reads lost and is run again when resumed after records' keep (it never existed)", () =>
    Effect.gen(function*() {
      const resumed = yield* KubernetesBackend.make(config(yield* FakeApi))
      const ref = { backend: "kubernetes", id: "trex-queued-aaaaa", data: { namespace: "trex", gpus: 0, run: K.labelValue("k8s-run/1"), submittedAt: Date.now() - 2 * 3_600_000, queued: true } }
      const exit = yield* Backend.awaitExit(resumed, ref)
      assert.deepStrictEqual([exit.outcome, exit.failureKind, exit.retryable], ["Failed", "Infra", undefined], exit.message)
      assert.include(exit.message, "it may never have been created")
    }))

  it.effect("submits list the names records hold once, not once each, and the ends of jobs submitted and not cancelled here ask for no tombstone", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const backend = yield* KubernetesBackend.make(config(fake))
      const refs = yield* Effect.forEach(["few-a", "few-b", "few-c"], (node) => backend.submit(spec(node, done)))
      const exits = yield* Effect.forEach(refs, (ref) => Backend.awaitExit(backend, ref), { concurrency: "unbounded" })
      assert.deepStrictEqual(exits.map((e) => e.outcome), ["Succeeded", "Succeeded", "Succeeded"])
      const asked = fake.requests.filter((r) => r.startsWith("GET /api/v1/namespaces/trex/configmaps"))
      assert.deepStrictEqual(asked, [`GET /api/v1/namespaces/trex/configmaps?labelSelector=${encodeURIComponent(K.TOMBSTONE_LABEL)}`])
    }).pipe(Effect.scoped))

  it.effect("a cancel of this controller's own job stopped between its tombstone and its delete: the Job's own end, read by the same backend, removes the tombstone", () =>
    Effect.gen(function*() {
      // (the delete refused: the cancel stops after its tombstone, as one whose controller was stopped there)
      const fake = yield* fakeWith({ denied: ["delete jobs"] })
      const backend = yield* KubernetesBackend.make(config(fake))
      const ref = yield* backend.submit(spec("own-stale", `sleep 1; ${done}`))
      const cancelled = yield* Effect.exit(backend.cancel(ref))
      assert.strictEqual(cancelled._tag, "Failure")
      assert.isDefined(fake.get("configmaps", "trex", `${ref.id}-cancelled`), "its tombstone written")
      const exit = yield* Backend.awaitExit(backend, ref)
      assert.deepStrictEqual([exit.outcome, exit.result], ["Succeeded", { metrics: {}, primary: 1 }], exit.message)
      assert.isUndefined(fake.get("configmaps", "trex", `${ref.id}-cancelled`), "the stale tombstone is gone")
    }).pipe(Effect.scoped))

  it.effect("a Job deleted with --cascade=orphan as its container exits, the kubelet not saying so, by a user who may not get pods: the wait for the kubelet's word ends, and the job reads Cancelled", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ denied: ["get pods"] })
      const backend = yield* KubernetesBackend.make(config(fake))
      const exited = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      // its container's end is not reported while its pod is there (orphaned, it is not deleted)
      fake.lateExitReport(() => Effect.runPromise(Effect.andThen(Deferred.succeed(exited, undefined), Deferred.await(release))))
      const ref = yield* backend.submit(spec("no-get-pod", `sleep 0.5; ${done}`))
      const watching = yield* watchUntil(backend, ref, (e) => e._tag === "State" && e.state === "Running")
      yield* Deferred.await(exited)
      // (held a moment with its orphan finalizer, so that its watch sees its deletion begin)
      fake.holdOrphan(() => new Promise((resolve) => setTimeout(resolve, 500)))
      const batch = fake.kubeConfig().makeApiClient(BatchV1Api)
      yield* Effect.promise(() => batch.deleteNamespacedJob({ name: ref.id, namespace: "trex", propagationPolicy: "Orphan" }))
      // (the kubelet's word, asked of the pod by name, is refused: as none, so the Job's deletion is the job's end)
      const exit = exitOf(yield* Fiber.join(watching))
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Cancelled", "Cancelled"], exit.message)
      yield* Deferred.succeed(release, undefined)
    }).pipe(Effect.scoped))

  it.effect("a job that succeeds, by a user who may not get ConfigMaps: its exit and result all the same (the look for a stale tombstone is best-effort)", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ denied: ["get configmaps"] })
      const backend = yield* KubernetesBackend.make(config(fake))
      const ref = yield* backend.submit(spec("no-get", `sleep 0.3; ${done}`))
      const exit = yield* Backend.awaitExit(backend, ref)
      assert.deepStrictEqual([exit.outcome, exit.exitCode, exit.result], ["Succeeded", 0, { metrics: {}, primary: 1 }], exit.message)
    }).pipe(Effect.scoped))

  it.effect("a cancel of a job whose Job is gone with --cascade=orphan, its pod left running, deletes the pod: a fresh watch reads Cancelled, and a fresh list leaves it out (a cancel is no end an executor counts or adopts)", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      // (a duration of its own, to find its process by)
      const ref = yield* backend.submit(spec("orphan-done", "sleep 61.7"))
      yield* eventually("its pod runs", () => podOf(fake, ref.id)?.status.phase === "Running")
      const sleeping = () => execFileSync("ps", ["-eo", "args"], { encoding: "utf8" }).split("\n").some((l) => l.trim() === "sleep 61.7")
      // (the pod runs from its wrapper's start: the job's process comes a moment later, on a loaded machine)
      yield* eventually("its process runs", sleeping)
      const batch = fake.kubeConfig().makeApiClient(BatchV1Api)
      yield* Effect.promise(() => batch.deleteNamespacedJob({ name: ref.id, namespace: "trex", propagationPolicy: "Orphan" }))
      assert.isUndefined(fake.get("jobs", "trex", ref.id), "the Job is gone")
      assert.strictEqual(podOf(fake, ref.id)?.status.phase, "Running", "its pod runs on, orphaned")
      yield* backend.cancel(ref)
      // (its process may take a moment to go once its pod is gone, on a loaded machine)
      yield* eventually("its pod is gone, and its process", () => podOf(fake, ref.id) === undefined && !sleeping())
      const fresh = yield* KubernetesBackend.make(config(fake))
      const exit = yield* Backend.awaitExit(fresh, ref)
      assert.strictEqual(exit.outcome, "Cancelled", exit.message)
      // its tombstone keeps its run and node, yet is not listed: a cancelled job's trial is run again if it is to be
      assert.strictEqual(fake.get("configmaps", "trex", `${ref.id}-cancelled`)?.metadata.annotations?.[K.NODE_LABEL], "orphan-done")
      assert.isUndefined((yield* fresh.list("k8s-run/1")).find((j) => j.ref.id === ref.id))
    }))

  it.effect("reports an image that cannot be pulled as Pending ErrImagePull / ImagePullBackOff", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const ref = yield* backend.submit(spec("bad-image", "true", { image: "registry.invalid/nope:1" }))
      const events = yield* pendingThenCancel(backend, ref, (r) => r === "ImagePullBackOff")
      const reasons = events.flatMap((e) => (e._tag === "State" && e.reason !== undefined ? [e.reason] : []))
      assert.includeMembers(reasons, ["ErrImagePull", "ImagePullBackOff"])
      assert.strictEqual(exitOf(events).outcome, "Cancelled")
    }))

  it.effect("withdraws a job whose pod is bound but cannot start (its image cannot be pulled)", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const fake = yield* FakeApi
      const ref = yield* backend.submit(spec("bad-image-withdrawn", "true", { image: "registry.invalid/nope:1" }))
      const answers: Array<boolean> = []
      let boundTo: string | undefined
      const events = yield* backend.watch(ref).pipe(
        Stream.tap((e) => {
          if (e._tag !== "State" || e.reason !== "ImagePullBackOff" || answers.length > 0) return Effect.void
          boundTo = podOf(fake, ref.id)?.spec.nodeName
          return Effect.flatMap(backend.withdraw!(ref), (w) => Effect.sync(() => answers.push(w)))
        }),
        Stream.runCollect
      )
      assert.strictEqual(boundTo, "gpu-node", "the pod was bound to a node")
      assert.deepStrictEqual(answers, [true])
      assert.strictEqual(exitOf(Array.from(events)).outcome, "Cancelled")
      yield* eventually("the Job is gone, its tombstone written", () =>
        fake.get("jobs", "trex", ref.id) === undefined && fake.get("configmaps", "trex", `${ref.id}-cancelled`) !== undefined)
    }))

  it.effect("maps OOMKilled (over the memory limit) to Failed/OOM", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const exit = yield* Backend.run(backend, spec("hog", "echo allocating; x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo ${#x}", { resources: { gpus: 0, cpus: 1, memoryMb: 64 } }))
      assert.strictEqual(exit.outcome, "Failed")
      assert.strictEqual(exit.failureKind, "OOM")
      assert.strictEqual(exit.exitCode, 137)
      assert.include(exit.logTail, "allocating")
    }))

  it.effect("capacity counts the matching nodes' CPUs and GPUs", () =>
    Effect.gen(function*() {
      const backend = yield* Backend.Backend
      const cap = yield* backend.capacity
      assert.deepStrictEqual({ slots: cap.slots, gpus: cap.gpus }, { slots: 2, gpus: 2 })
    }))
})

describe("KubernetesBackend.preflight", () => {
  const gpuJob = spec("check", "python train.py", { env: { HF_TOKEN: Redacted.make("hf_x") }, resources: { gpus: 1, cpus: 1, memoryMb: 1024 } })
  /** The preflight's concerns for `job` on a fake with `options`, the backend's config changed by `extra`; and the fake's requests. */
  const concerns = (options: FakeKubeApi.FakeKubeOptions, extra: Partial<KubernetesBackend.Config> = {}, job = gpuJob) =>
    Effect.gen(function*() {
      const fake = yield* fakeWith(options)
      const backend = yield* KubernetesBackend.make(config(fake, extra))
      const found = yield* backend.preflight!(job)
      return { found: found.map((c) => `${c.severity}: ${c.message}`), fake }
    })

  it.live("finds nothing wrong on a cluster where a trial would run, and makes nothing (dry runs only)", () =>
    Effect.gen(function*() {
      const { fake, found } = yield* concerns({ namespaces: ["trex"] })
      assert.deepStrictEqual(found, [])
      assert.include(fake.requests, "POST /apis/batch/v1/namespaces/trex/jobs?dryRun=All")
      assert.include(fake.requests, "POST /api/v1/namespaces/trex/pods?dryRun=All")
      for (const kind of ["jobs", "pods", "configmaps", "secrets"] as const) assert.deepStrictEqual(fake.list(kind, "trex"), [], kind)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("a namespace that does not exist, and a job with no image", () =>
    Effect.gen(function*() {
      const { found } = yield* concerns({ namespaces: ["default"] })
      assert.lengthOf(found, 1, found.join("\n"))
      assert.match(found[0]!, /^fail: there is no namespace trex on http:\/\/127\.0\.0\.1:\d+ \(backend\.k8s\.namespace\): create it \(`kubectl create namespace trex`\)/)
      const fake = yield* fakeWith()
      const { image: _, ...imageless } = config(fake)
      const noImage = (yield* (yield* KubernetesBackend.make(imageless)).preflight!(gpuJob)).map((c) => `${c.severity}: ${c.message}`)
      assert.deepStrictEqual(noImage, ["fail: no image for the job: set the recipe's `image`, or the backend's (backend.k8s.image)"])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("what the kubeconfig's user may not do (RBAC): what trials need fails, what they can do without warns", () =>
    Effect.gen(function*() {
      const { fake, found } = yield* concerns({ denied: ["delete pods", "get pods/log", "create secrets", "list events", "create pods", "get serviceaccounts"] })
      assert.lengthOf(found, 2, found.join("\n"))
      assert.match(found[0]!, /^fail: the kubeconfig's user may not delete pods, get pods\/log, create secrets in namespace trex of http:\/\/127[^ ]+, which trials need: grant them with a Role/)
      assert.match(found[1]!, /^warn: the kubeconfig's user may not list events in namespace trex of .*: a Job whose pod its controller refuses .* shows Pending with no reason$/)
      // a user who may not create pods: no dry run of the pod (its Job's controller makes them)
      assert.notInclude(fake.requests, "POST /api/v1/namespaces/trex/pods?dryRun=All")
      // secrets only for a job that has secret env
      const { fake: plainFake, found: plain } = yield* concerns({ denied: ["create secrets", "list nodes", "patch jobs", "list configmaps", "delete configmaps"] }, {}, spec("check", "true"))
      assert.lengthOf(plain, 4, plain.join("\n"))
      assert.match(plain.shift()!, /^warn: the kubeconfig's user may not list configmaps in namespace trex of http:\/\/127[^ ]+: a fresh controller's list \(a resumed run's reconciliation\) leaves out the jobs whose Jobs are gone that ended as they were cancelled or were taken back stuck, and a job may be given the name of an earlier one whose records are left$/)
      // (its list lists the Jobs all the same)
      assert.deepStrictEqual(yield* (yield* KubernetesBackend.make(config(plainFake))).list("k8s-run/1"), [])
      assert.match(plain.shift()!, /^warn: the kubeconfig's user may not delete configmaps in namespace trex of http:\/\/127[^ ]+: a job cancelled as it ended keeps its tombstone, so a resumed run reads it as Cancelled once its Job is deleted \(the cancel warns\), and old tombstones and end records are left for `kubectl delete configmap` by hand$/)
      assert.match(plain[0]!, /^warn: the kubeconfig's user may not patch jobs\.batch in namespace trex of http:\/\/127[^ ]+: a job a drain took back before it started reads as Failed \/ Infra, not Cancelled, to another controller \(a resumed run\) that finds its Job before it is deleted$/)
      assert.strictEqual(plain[1], "warn: the kubeconfig's user may not list nodes (cluster-scoped): `trex check` cannot count the cluster's CPUs and GPUs, nor find a node that fits a trial's pod")
      // Kueue's Workloads only for trials that name a Kueue queue
      assert.deepStrictEqual((yield* concerns({ denied: ["list workloads"] }, {}, spec("check", "true"))).found, [])
      const { found: queued } = yield* concerns({ denied: ["list workloads"] }, { labels: { "kueue.x-k8s.io/queue-name": "gpu-queue" } }, spec("check", "true"))
      assert.lengthOf(queued, 1, queued.join("\n"))
      assert.match(
        queued[0]!,
        /^warn: the kubeconfig's user may not list workloads\.kueue\.x-k8s\.io in namespace trex of http:\/\/127[^ ]+: a trial whose Workload Kueue deactivated waits until the run is stopped, and a Job suspended by hand shows as one a batch queue holds$/
      )
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("the pod its Job's controller would make: a missing service account, a quota below one pod, a quota full now", () =>
    Effect.gen(function*() {
      const { found: account } = yield* concerns({}, { serviceAccountName: "trainer" })
      assert.lengthOf(account, 1, account.join("\n"))
      assert.match(account[0]!, /^fail: the service account trainer \(backend\.k8s\.serviceAccountName\) is not in namespace trex of .*: the Job's controller could not make its pod \(pods ".*" is forbidden: error looking up service account trex\/trainer: serviceaccount "trainer" not found\)$/)
      // a user who may not create pods (no dry run of one): the service account is looked for itself
      const { found: unread } = yield* concerns({ denied: ["create pods"] }, { serviceAccountName: "trainer" })
      assert.lengthOf(unread, 1, unread.join("\n"))
      assert.match(unread[0]!, /^fail: the service account trainer \(backend\.k8s\.serviceAccountName\) is not in namespace trex of .*: the Job's controller could not make its pod$/)
      const { found: there } = yield* concerns({ denied: ["create pods"], serviceAccounts: ["default", "trainer"] }, { serviceAccountName: "trainer" })
      assert.deepStrictEqual(there, [])
      // what a run would meet: its Job is made, and its controller can make no pod for it
      const run = yield* fakeWith()
      const backend0 = yield* KubernetesBackend.make(config(run, { serviceAccountName: "trainer" }))
      const ref = yield* backend0.submit(spec("no-account", "true"))
      const seen = yield* pendingThenCancel(backend0, ref, (r) => r.startsWith("FailedCreate"))
      assert.include(seen.flatMap((e) => (e._tag === "State" && e.reason !== undefined ? [e.reason] : [])), `FailedCreate: error looking up service account trex/trainer: serviceaccount "trainer" not found`)
      const { found: never } = yield* concerns({ podQuota: 0 })
      assert.lengthOf(never, 1, never.join("\n"))
      assert.match(never[0]!, /^fail: a quota of namespace trex of .* is below what one trial's pod asks \(pods=1 \(limited: 0\)\): it would never run/)
      // a quota that one running pod fills: trials would wait, not fail
      const fake = yield* fakeWith({ podQuota: 1 })
      const backend = yield* KubernetesBackend.make(config(fake))
      const holder = yield* backend.submit(spec("quota-holder", "sleep 60"))
      yield* eventually("the first job has its pod", () => podOf(fake, holder.id) !== undefined)
      const full = (yield* backend.preflight!(gpuJob)).map((c) => `${c.severity}: ${c.message}`)
      assert.lengthOf(full, 1, full.join("\n"))
      assert.match(full[0]!, /^warn: a quota of namespace trex of .* refuses a trial's pod now \(.*exceeded quota: pod-quota.*\): trials wait Pending until what runs there ends$/)
      yield* backend.cancel(holder)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("no node that could ever take the pod: too few GPUs on every node, a nodeSelector no node matches, a taint not tolerated; a missing image pull secret", () =>
    Effect.gen(function*() {
      const { found: gpus } = yield* concerns({}, {}, { ...gpuJob, resources: { ...gpuJob.resources, gpus: 4 } })
      assert.lengthOf(gpus, 1, gpus.join("\n"))
      assert.match(gpus[0]!, /^fail: no node of .* could take a trial's pod, which would wait Pending \(Unschedulable\) for ever: 1 node: nvidia\.com\/gpu 2 allocatable, 4 asked$/)
      const { found: selector } = yield* concerns({}, { nodeSelector: { "nvidia.com/gpu.product": "H100" } })
      assert.deepStrictEqual(selector.map((f) => f.replace(/^.*: (?=1 node)/, "")), ["1 node: not matching the nodeSelector (nvidia.com/gpu.product=H100)"])
      const { found: taint } = yield* concerns({}, { tolerations: [] })
      assert.deepStrictEqual(taint.map((f) => f.replace(/^.*: (?=1 node)/, "")), ["1 node: a taint the pod does not tolerate (nvidia.com/gpu:NoSchedule)"])
      const { found: pull } = yield* concerns({}, { imagePullSecrets: ["regcred"] })
      assert.deepStrictEqual(pull.map((f) => f.replace(/ of http:\/\/127\.0\.0\.1:\d+/, "")), [
        "warn: the image pull secret regcred (backend.k8s.imagePullSecrets) is not in namespace trex: an image of a private registry would not be pulled"
      ])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("the PersistentVolumeClaims trials mount: one that is not there fails; one pods on one node at a time may mount warns; one the user may not read warns; a /dev/shm as big as the memory asked warns", () =>
    Effect.gen(function*() {
      const volumes = { mounts: [{ target: "/cache/huggingface", claim: "hf-cache" }, { target: "/data", claim: "datasets", readOnly: true }], jobDirClaim: "trex-jobs" }
      const shown = (found: ReadonlyArray<string>) => found.map((f) => f.replace(/ of http:\/\/127\.0\.0\.1:\d+/, ""))
      const { found: fine } = yield* concerns({ claims: [{ name: "hf-cache" }, { name: "trex-jobs" }, { name: "datasets", accessModes: ["ReadOnlyMany"] }] }, volumes)
      assert.deepStrictEqual(fine, [])
      const { found } = yield* concerns({ claims: [{ name: "hf-cache", accessModes: ["ReadWriteOnce"] }, { name: "datasets", accessModes: ["ReadWriteOncePod"] }] }, volumes)
      assert.deepStrictEqual(shown(found), [
        "fail: the PersistentVolumeClaim trex-jobs (backend.k8s.jobDirClaim) is not in namespace trex: a trial's pod would wait Pending (Unschedulable) until stuckAfterMs; create it (`kubectl apply -n trex -f pvc.yaml`) or name one that is there (`kubectl get pvc -n trex`)",
        "warn: the PersistentVolumeClaim hf-cache (backend.k8s.mounts[0].claim) is ReadWriteOnce: pods on one node at a time may mount it, so trials placed on other nodes wait (Multi-Attach) until it is free; use a ReadWriteMany claim (NFS, CephFS, a cloud file store), or a nodeSelector that keeps trials on one node",
        "warn: the PersistentVolumeClaim datasets (backend.k8s.mounts[1].claim) is ReadWriteOncePod: one pod at a time may mount it, so trials run one at a time, the others Pending; use a ReadWriteMany claim (NFS, CephFS, a cloud file store) for trials at once"
      ])
      // (the job asks 1024 MB: a /dev/shm as big as that cannot be filled)
      const { found: shm } = yield* concerns({}, { shmSizeMb: 1024 })
      assert.deepStrictEqual(shm, [
        "warn: backend.k8s.shmSizeMb (1024 MB) is not below the memory a trial asks (recipe.resources.memoryMb: 1024 MB): what a job writes to /dev/shm counts toward its memory limit, so it would be OOMKilled before /dev/shm is full; lower shmSizeMb, or ask for more memory"
      ])
      assert.deepStrictEqual((yield* concerns({}, { shmSizeMb: 512 })).found, [])
      const { found: denied } = yield* concerns({ claims: [{ name: "hf-cache" }], denied: ["get persistentvolumeclaims"] }, { mounts: volumes.mounts.slice(0, 1) })
      assert.deepStrictEqual(denied, [
        `warn: the PersistentVolumeClaim hf-cache (backend.k8s.mounts[0].claim) was not looked at: persistentvolumeclaims "hf-cache" is forbidden: User "fake" cannot get resource "persistentvolumeclaims" in API group "" in the namespace "trex"`
      ])
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("an API server that does not answer fails the preflight (`trex check`: the backend does not answer)", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const backend = yield* KubernetesBackend.make(config(fake, { requestTimeoutMs: 2_000 }))
      fake.outage(true, "refused")
      const failed = yield* Effect.flip(backend.preflight!(gpuJob))
      assert.match(failed.message, /^accessReview: .*ECONNREFUSED/)
      fake.outage(false)
    }).pipe(Effect.scoped), { timeout: 30_000 })
})

describe("KubernetesBackend when a quota refuses a Job its pod", () => {
  /** Submit a job that takes the namespace's one pod, and one that its controller cannot create a pod for. */
  const blocked = Effect.gen(function*() {
    const fake = yield* fakeWith({ podQuota: 1 })
    const backend = yield* KubernetesBackend.make(config(fake))
    const holder = yield* backend.submit(spec("quota-holder", "echo up; sleep 60"))
    yield* eventually("the first job has its pod", () => podOf(fake, holder.id) !== undefined)
    const refused = yield* backend.submit(spec("quota-refused", "echo ran; echo '{\"metrics\":{},\"primary\":1}' > result.json"))
    return { fake, backend, holder, refused }
  })
  const refusal = (e: Backend.JobEvent) => e._tag === "State" && e.state === "Pending" && e.reason !== undefined && e.reason.startsWith("FailedCreate")

  it.live("reports Pending with the controller's reason, and runs once the quota allows", () =>
    Effect.gen(function*() {
      const { backend, fake, holder, refused } = yield* blocked
      const events = Array.from(yield* backend.watch(refused).pipe(
        Stream.tap((e) => (refusal(e) ? Effect.sync(() => fake.setPodQuota(undefined)) : Effect.void)),
        Stream.runCollect
      ))
      const shown = states(events)
      assert.strictEqual(shown[0], "Pending FailedCreate: exceeded quota: pod-quota", shown.join("\n"))
      assert.include(shown, "Running")
      assert.strictEqual(exitOf(events).outcome, "Succeeded")
      assert.include(events.flatMap((e) => (e._tag === "Log" ? [e.line] : [])), "ran")
      yield* backend.cancel(holder)
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("withdraws it: the Job is deleted before any pod of it exists, and reads as cancelled", () =>
    Effect.gen(function*() {
      const { backend, fake, holder, refused } = yield* blocked
      const answers: Array<boolean> = []
      const events = Array.from(yield* backend.watch(refused).pipe(
        Stream.tap((e) => (refusal(e) && answers.length === 0 ? Effect.flatMap(backend.withdraw!(refused), (w) => Effect.sync(() => answers.push(w))) : Effect.void)),
        Stream.runCollect
      ))
      assert.deepStrictEqual(answers, [true])
      assert.strictEqual(exitOf(events).outcome, "Cancelled")
      assert.isFalse(yield* backend.withdraw!(refused), "once")
      fake.setPodQuota(undefined)
      yield* eventually("the Job is gone, its tombstone written", () =>
        fake.get("jobs", "trex", refused.id) === undefined && fake.get("configmaps", "trex", `${refused.id}-cancelled`) !== undefined)
      assert.isUndefined(podOf(fake, refused.id), "no pod of it was ever created")
      const fresh = yield* KubernetesBackend.make(config(fake))
      assert.strictEqual((yield* Backend.awaitExit(fresh, refused)).outcome, "Cancelled", "another controller reads the tombstone")
      // (which is no end: a fresh list leaves the withdrawn job out, and its trial is submitted afresh)
      assert.isUndefined((yield* (yield* KubernetesBackend.make(config(fake))).list("k8s-run/1")).find((j) => j.ref.id === refused.id))
      // the job that has its pod: bound to a node, running — not withdrawn
      yield* eventually("the first job runs", () => podOf(fake, holder.id)?.status.phase === "Running")
      assert.isFalse(yield* backend.withdraw!(holder))
      yield* backend.cancel(holder)
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("KubernetesBackend when a job cannot start", () => {

  it.live("a pod whose image cannot be pulled, or whose Job's controller is refused it for a reason that lasts (a missing service account), is taken back after stuckAfterMs: Failed/Infra with the reason, also for a controller that looks later", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const backend = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 2_000 }))
      const image = yield* backend.submit(spec("stuck-image", done, { image: "registry.invalid/nope:1", resources: { gpus: 0, cpus: 1, timeLimitSeconds: 20 } }))
      const account = yield* (yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 2_000, serviceAccountName: "trainer" }))).submit(spec("stuck-account", done))
      for (const [ref, why] of [[image, /^its pod could not start within 2 s \(stuckAfterMs\): ErrImagePull: Failed to pull image "registry\.invalid\/nope:1": not found; its Job was deleted$/], [account, /^its pod could not start within 2 s \(stuckAfterMs\): FailedCreate: error looking up service account trex\/trainer: serviceaccount "trainer" not found; its Job was deleted$/]] as const) {
        const events = yield* collect(backend, ref)
        const exit = exitOf(events)
        assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], exit.message)
        assert.match(exit.message ?? "", why)
        assert.notInclude(states(events), "Running")
        yield* eventually("its Job is gone", () => fake.get("jobs", "trex", ref.id) === undefined)
        assert.isUndefined(podOf(fake, ref.id)?.status.containerStatuses?.[0]?.state?.running, "never ran")
        // a controller that looks for it later (a resumed run) reads the same end from its tombstone
        const later = yield* Backend.awaitExit(yield* KubernetesBackend.make(config(fake)), ref)
        assert.deepStrictEqual([later.outcome, later.failureKind, later.message], ["Failed", "Infra", exit.message])
        // and a fresh list shows it finished (its tombstone is its end)
        assert.strictEqual((yield* (yield* KubernetesBackend.make(config(fake))).list("k8s-run/1")).find((j) => j.ref.id === ref.id)?.state, "Finished")
      }
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a pod that mounts a PersistentVolumeClaim that is not there (Unschedulable) is taken back after stuckAfterMs, naming the claim; one that is there runs", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ claims: [{ name: "hf-cache" }] })
      const backend = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 2_000, mounts: [{ target: "/cache", claim: "hf-cach" }] }))
      const ref = yield* backend.submit(spec("no-claim", done))
      const events = yield* collect(backend, ref)
      const exit = exitOf(events)
      assert.deepStrictEqual([exit.outcome, exit.failureKind, exit.retryable], ["Failed", "Infra", false], exit.message)
      assert.strictEqual(
        exit.message,
        `its pod could not start within 2 s (stuckAfterMs): Unschedulable: persistentvolumeclaim "hf-cach" not found (backend.k8s.mounts or jobDirClaim names a PersistentVolumeClaim that is not in namespace trex); its Job was deleted`
      )
      assert.include(states(events), "Pending Unschedulable")
      yield* eventually("its Job is gone", () => fake.get("jobs", "trex", ref.id) === undefined)
      const fixed = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 2_000, mounts: [{ target: "/cache", claim: "hf-cache" }] }))
      assert.strictEqual((yield* Backend.run(fixed, spec("claim", done))).outcome, "Succeeded")
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a big image's long pull is not counted as stuck: the window starts when the kubelet first says the pull failed, so a pull that fails late gets stuckAfterMs to recover", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ slowPulls: { "registry.invalid/nope:1": 3_000 } })
      const backend = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 2_000 }))
      const ref = yield* backend.submit(spec("slow-pull", done, { image: "registry.invalid/nope:1" }))
      const seen: Array<{ readonly state: string; readonly at: number }> = []
      const events = yield* backend.watch(ref).pipe(
        Stream.tap((e) => Effect.sync(() => seen.push({ state: e._tag === "State" ? `${e.state} ${e.reason ?? ""}`.trim() : e._tag, at: Date.now() }))),
        Stream.runCollect,
        Effect.map((c) => Array.from(c))
      )
      const exit = exitOf(events)
      assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], exit.message)
      assert.include(states(events), "Pending ContainerCreating", "it pulled for a while first")
      const failedAt = seen.find((e) => e.state === "Pending ErrImagePull")!.at
      const endedAt = seen.find((e) => e.state === "Exit")!.at
      // bound 3 s before its pull failed: counted from the binding, it would be taken back at its first ErrImagePull
      assert.isAtLeast(endedAt - failedAt, 1_500, JSON.stringify(seen))
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a volume its node cannot mount (an NFS server that does not answer) is said while the pod waits ContainerCreating, and taken back after stuckAfterMs from the kubelet's first FailedMount", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ unmountable: ["nfs.unreachable"] })
      const backend = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 2_000, mounts: [{ target: "/corpora", nfs: { server: "nfs.unreachable", path: "/export" } }] }))
      const ref = yield* backend.submit(spec("no-mount", done))
      const events = yield* collect(backend, ref)
      const exit = exitOf(events)
      assert.deepStrictEqual([exit.outcome, exit.failureKind, exit.retryable], ["Failed", "Infra", false], exit.message)
      const mountFailed = `FailedMount: MountVolume.SetUp failed for volume "mount-0" : mount failed: exit status 32\nmount.nfs: Connection timed out`
      assert.strictEqual(exit.message, `its pod could not start within 2 s (stuckAfterMs): ${mountFailed}; its Job was deleted`)
      assert.includeMembers(states(events), ["Pending ContainerCreating", `Pending ContainerCreating: ${mountFailed}`])
      yield* eventually("its Job is gone", () => fake.get("jobs", "trex", ref.id) === undefined)
      // a volume another pod holds (a ReadWriteOnce claim on another node) is a wait, not a stuck job
      const event = (reason: string, message: string) => ({ metadata: {}, involvedObject: {}, type: "Warning", reason, message, firstTimestamp: new Date("2026-01-01T00:00:00Z"), lastTimestamp: new Date("2026-01-01T00:00:05Z") })
      assert.deepStrictEqual(K.mountTrouble([event("FailedAttachVolume", `Multi-Attach error for volume "pvc-1" Volume is already used by pod(s) trex-n1-abc`)]), {
        why: `FailedAttachVolume: Multi-Attach error for volume "pvc-1" Volume is already used by pod(s) trex-n1-abc`,
        lasting: false,
        since: Date.parse("2026-01-01T00:00:00Z")
      })
      assert.isUndefined(K.mountTrouble([event("BackOff", "Back-off pulling image")]))
    }).pipe(Effect.scoped), { timeout: 60_000 })

  it.live("a watch that begins late (a resumed run's) counts the time the job was stuck before it, by the API server's times: the kubelet's first report that its pod cannot start, the controller's first refusal", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith()
      const first = yield* KubernetesBackend.make(config(fake))
      const image = yield* first.submit(spec("late-image", done, { image: "registry.invalid/nope:1" }))
      const account = yield* (yield* KubernetesBackend.make(config(fake, { serviceAccountName: "trainer" }))).submit(spec("late-account", done))
      yield* eventually("the pod cannot pull its image", () => fake.get("events", "trex", `${podOf(fake, image.id)?.metadata.name}.failed`) !== undefined)
      yield* eventually("the Job is refused its pod", () => fake.get("events", "trex", `${account.id}.failedcreate`) !== undefined)
      yield* eventually("its pull backs off", () => podOf(fake, image.id)?.status.containerStatuses?.[0]?.state?.waiting?.reason === "ImagePullBackOff")
      // as if the controller that submitted them had been gone an hour
      const hourAgo = new Date(Date.now() - 3_600_000).toISOString()
      fake.get("events", "trex", `${podOf(fake, image.id)!.metadata.name}.failed`)!.firstTimestamp = hourAgo
      fake.get("events", "trex", `${account.id}.failedcreate`)!.firstTimestamp = hourAgo
      // a new controller with the default window (10 minutes) takes them back at once
      const later = yield* KubernetesBackend.make(config(fake))
      for (const ref of [image, account]) {
        const exit = yield* Backend.awaitExit(later, ref)
        assert.deepStrictEqual([exit.outcome, exit.failureKind], ["Failed", "Infra"], exit.message)
        assert.match(exit.message ?? "", /^its pod could not start within 600 s \(stuckAfterMs\): /)
        // a pull that the late watch saw only backing off: what the pull met, from the kubelet's Event, as an early watch says it
        if (ref === image) assert.strictEqual(exit.message, `its pod could not start within 600 s (stuckAfterMs): ErrImagePull: Failed to pull image "registry.invalid/nope:1": not found; its Job was deleted`)
      }
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("a job that waits for room (GPUs no node has free, a quota other pods fill) waits on past stuckAfterMs, and runs once there is room", () =>
    Effect.gen(function*() {
      const fake = yield* fakeWith({ podQuota: 1 })
      const backend = yield* KubernetesBackend.make(config(fake, { stuckAfterMs: 1_000 }))
      const holder = yield* backend.submit(spec("room-holder", "echo up; sleep 60", { resources: { gpus: 2, cpus: 1 } }))
      yield* eventually("the holder runs", () => podOf(fake, holder.id)?.status.phase === "Running")
      const quota = yield* backend.submit(spec("room-quota", done, { resources: { gpus: 2, cpus: 1 } }))
      // each wait once its watch has said it, then on past stuckAfterMs (before: 4 s, then 3 s, however long the watch
      // took to say it; on a busy machine it had not yet said the first)
      const seen: Array<Backend.JobEvent> = []
      const waited = yield* Effect.forkChild(Stream.runCollect(backend.watch(quota).pipe(Stream.tap((e) => Effect.sync(() => void seen.push(e))))).pipe(Effect.map((c) => Array.from(c))))
      const said = (state: string) => eventually(`its watch says ${state}`, () => states(seen).includes(state), 30)
      yield* said("Pending FailedCreate: exceeded quota: pod-quota")
      yield* Effect.sleep("1500 millis")
      // room for its pod, then for its GPUs
      fake.setPodQuota(2)
      yield* said("Pending Unschedulable")
      yield* Effect.sleep("1500 millis")
      yield* backend.cancel(holder)
      const events = yield* Fiber.join(waited)
      assert.strictEqual(exitOf(events).outcome, "Succeeded", states(events).join("\n"))
      assert.includeMembers(states(events), ["Pending FailedCreate: exceeded quota: pod-quota", "Pending Unschedulable", "Running"])
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

describe("examples/backends/k8s.task.yaml", () => {
  it.live("decodes through fromJson (kubeconfig file and context) and runs jobs with its selectors, tolerations and volumes: the cache one job leaves the next reads, and each job's folder outlives its pod", () =>
    Effect.gen(function*() {
      const file = fileURLToPath(new URL("../../../examples/backends/k8s.task.yaml", import.meta.url))
      const { task } = yield* TaskFile.load(file)
      const section = (task.backend as { k8s: Record<string, unknown> }).k8s
      assert.strictEqual(section.namespace, "ml")
      const fake = yield* fakeWith({ claims: [{ name: "hf-cache" }, { name: "trex-jobs" }] })
      const kubeconfig = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "trex-kubeconfig-")), "config")
      fs.writeFileSync(kubeconfig, fake.kubeConfig().exportConfig())
      const config = yield* KubernetesBackend.fromJson({ ...section, kubeconfig, context: "fake" })
      assert.deepStrictEqual(config.tolerations, [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }])
      const backend = yield* KubernetesBackend.make(config)
      const job = (node: string, script: string) =>
        spec(node, `${script}; echo '{"metrics":{},"primary":1,"artifacts":[{"name":"adapter","path":"adapter.bin"}]}' > result.json`, {
          image: task.recipe!.image!,
          env: { ...task.recipe!.env },
          resources: { ...task.recipe!.resources, cpus: 1, memoryMb: 512 }
        })
      // the first job downloads into HF_HOME (the hf-cache claim), the second finds it there; each leaves its adapter
      const first = yield* backend.submit(job("example-1", `test ! -e "$HF_HOME/model.safetensors" && echo weights > "$HF_HOME/model.safetensors" && echo adapter-1 > adapter.bin`))
      const exit = yield* Backend.awaitExit(backend, first)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      assert.strictEqual(exit.gpuSeconds, exit.wallSeconds * 1)
      const second = yield* backend.submit(job("example-2", `grep -q weights "$HF_HOME/model.safetensors" && echo adapter-2 > adapter.bin`))
      assert.strictEqual((yield* Backend.awaitExit(backend, second)).outcome, "Succeeded")
      assert.strictEqual(fs.readFileSync(path.join(fake.claimDir("hf-cache"), "model.safetensors"), "utf8"), "weights\n")
      // each job's folder is <run>/<Job name> of the trex-jobs claim, not a folder of its pod
      for (const [ref, adapter] of [[first, "adapter-1"], [second, "adapter-2"]] as const) {
        assert.strictEqual(fs.readFileSync(path.join(fake.claimDir("trex-jobs"), K.jobDirSubPath("k8s-run/1", ref.id), "adapter.bin"), "utf8"), `${adapter}\n`)
      }
      const pod = fake.list("pods", "ml").find((p) => p.metadata.labels?.[K.JOB_LABEL] === second.id)
      assert.deepStrictEqual(pod?.spec.volumes.find((v: { name: string }) => v.name === "shm"), { name: "shm", emptyDir: { medium: "Memory", sizeLimit: "16384Mi" } })
      const bad = yield* Effect.flip(KubernetesBackend.fromJson({ ...section, kubeconfig, context: "fake", tolerations: [{ operator: "Sometimes" }] }))
      assert.strictEqual(bad._tag, "InvalidInput")
      const badMounts = yield* Effect.flip(KubernetesBackend.fromJson({ ...section, kubeconfig, context: "fake", mounts: [{ target: "/cache", claim: "hf-cache", nfs: { server: "nfs", path: "/e" } }] }))
      assert.strictEqual(badMounts._tag, "InvalidInput")
      assert.include(badMounts.message, "backend.k8s.mounts[0]: gives claim and nfs: give one of claim")
      const typo = yield* Effect.flip(KubernetesBackend.fromJson({ ...section, kubeconfig, context: "fake", mounts: [{ target: "/cache", pvc: "hf-cache" }] }))
      assert.include(typo.message, "backend.k8s.mounts[0].pvc")
      const made = yield* Effect.flip(KubernetesBackend.make({ ...config, jobDirClaim: "Trex Jobs" }))
      assert.include(made.message, `invalid settings: backend.k8s.jobDirClaim: "Trex Jobs" is not a PersistentVolumeClaim's name`)
      const badTimeout = yield* Effect.flip(KubernetesBackend.fromJson({ ...section, kubeconfig, context: "fake", requestTimeoutMs: 0, apiWaitMs: "1h" }))
      assert.include(badTimeout.message, "backend.k8s.requestTimeoutMs")
      assert.include(badTimeout.message, "backend.k8s.apiWaitMs")
      const missing = yield* Effect.flip(KubernetesBackend.fromJson({ kubeconfig: "/nonexistent/kubeconfig" }))
      assert.include(missing.message, "/nonexistent/kubeconfig")
    }).pipe(Effect.scoped))

  it.effect("a context its kubeconfig does not have is bad input naming it, not a crash when the backend starts", () =>
    Effect.gen(function*() {
      const kubeconfig = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "trex-kubeconfig-")), "config")
      fs.writeFileSync(kubeconfig, [
        "apiVersion: v1",
        "kind: Config",
        "clusters: [{ name: lab, cluster: { server: \"https://127.0.0.1:6443\" } }]",
        "users: [{ name: me, user: { token: t } }]",
        "contexts: [{ name: lab, context: { cluster: lab, user: me } }]",
        "current-context: lab"
      ].join("\n"))
      const e = yield* Effect.flip(KubernetesBackend.fromJson({ kubeconfig, context: "gpu-cluster" }))
      assert.strictEqual(e._tag, "InvalidInput")
      assert.include(e.message, "gpu-cluster")
      assert.include(e.message, "lab")
      const ok = yield* KubernetesBackend.fromJson({ kubeconfig, context: "lab" })
      assert.strictEqual(ok.kubeConfig?.getCurrentCluster()?.server, "https://127.0.0.1:6443")
    }))
})
