// What every Kubernetes backend test file uses: the stand-in API server (FakeKubeApi.ts) each test starts, the backend's
// config for it, a job spec, and ways to watch a job. Each file starts its own stand-ins: they share nothing.
import { assert } from "@effect/vitest"
import { Backend } from "@trex/core"
import { Deferred, Effect, Stream } from "effect"
import * as KubernetesBackend from "../../src/KubernetesBackend.ts"
import * as K from "../../src/internal/k8sJob.ts"
import { eventually } from "./eventually.ts"
import * as FakeKubeApi from "./FakeKubeApi.ts"


export const fakeWith = (extra: FakeKubeApi.FakeKubeOptions = {}) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      FakeKubeApi.start({
        nodes: [
          { name: "gpu-node", labels: { "nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB" }, cpu: "2", memoryMi: 8192, extended: { "nvidia.com/gpu": 2 }, taints: [{ key: "nvidia.com/gpu", effect: "NoSchedule" }] }
        ],
        unpullable: ["registry.invalid/nope:1"],
        gracePeriodMs: 1000,
        ...extra
      })
    ),
    (fake) => Effect.promise(() => fake.close())
  )
export const Fake = fakeWith()

export const config = (fake: FakeKubeApi.FakeKubeApi, extra: Partial<KubernetesBackend.Config> = {}): KubernetesBackend.Config => ({
  kubeConfig: fake.kubeConfig(),
  namespace: "trex",
  image: "busybox:1.36",
  nodeSelector: { "nvidia.com/gpu.present": "true" },
  tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
  logGraceMs: 3000,
  ...extra
})


export const spec = (node: string, script: string, extra: Partial<Backend.JobSpec> = {}): Backend.JobSpec => ({
  name: `trex ${node}`,
  argv: ["sh", "-c", script],
  env: {},
  files: [{ path: "strategy.json", content: JSON.stringify({ lr: 0.1 }) }],
  resources: { gpus: 0, cpus: 1 },
  labels: { run: "k8s-run/1", node },
  ...extra
})

export const collect = (backend: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0]) =>
  Stream.runCollect(backend.watch(ref)).pipe(Effect.map((c) => Array.from(c)))

/** The newest pod of a Job, as the fake stores it. */
export const podOf = (fake: FakeKubeApi.FakeKubeApi, job: string) =>
  fake.list("pods", "trex").filter((p) => p.metadata.labels?.[K.JOB_LABEL] === job).at(-1)

/** The newest pod of a Job runs. */
export const podRuns = (fake: FakeKubeApi.FakeKubeApi, job: string) => podOf(fake, job)?.status.phase === "Running"

/** The newest pod of a Job waits for a node that fits it (`PodScheduled` false, `Unschedulable`). */
export const podUnschedulable = (fake: FakeKubeApi.FakeKubeApi, job: string) =>
  podOf(fake, job)?.status.conditions?.some((c: { reason?: string }) => c.reason === "Unschedulable") === true

/** A stand-in of its own, a backend on it (with `extra` config), and a job of `script` submitted to it, once its pod runs. */
export const runningJob = (node: string, script: string, extra: Partial<KubernetesBackend.Config> = {}) =>
  Effect.gen(function*() {
    const fake = yield* fakeWith()
    const backend = yield* KubernetesBackend.make(config(fake, extra))
    const ref = yield* backend.submit(spec(node, script))
    yield* eventually(`the pod of ${node} runs`, () => podRuns(fake, ref.id))
    return { fake, backend, ref }
  })

export const exitOf = (events: ReadonlyArray<Backend.JobEvent>): Backend.JobExit => {
  const last = events.at(-1)
  assert.strictEqual(last?._tag, "Exit")
  assert.strictEqual(events.filter((e) => e._tag === "Exit").length, 1)
  return last as Backend.JobExit
}

/** A job that prints a line and writes its result. */
export const done = `echo ran; echo '{"metrics":{},"primary":1}' > result.json`
/** The State events of a watch, as `Pending Unschedulable`. */
export const states = (events: ReadonlyArray<Backend.JobEvent>) => events.flatMap((e) => (e._tag === "State" ? [e.reason === undefined ? e.state : `${e.state} ${e.reason}`] : []))

/** A watch of `ref` forked in the test's fiber, its events collected, returned once an event meets `until`. */
export const watchUntil = (backend: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0], until: (e: Backend.JobEvent) => boolean) =>
  Effect.gen(function*() {
    const met = yield* Deferred.make<void>()
    const watching = yield* Effect.forkChild(
      backend.watch(ref).pipe(
        Stream.tap((e) => (until(e) ? Deferred.succeed(met, undefined) : Effect.void)),
        Stream.runCollect,
        Effect.map((c) => Array.from(c))
      )
    )
    yield* Deferred.await(met)
    return watching
  })

/** {@link watchUntil} its job printed `started`. */
export const watchStarted = (backend: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0]) =>
  watchUntil(backend, ref, (e) => e._tag === "Log" && e.line === "started")

/** Watch until a Pending state with a reason shows, then cancel; return the events. */
export const pendingThenCancel = (backend: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0], reason: (r: string) => boolean) =>
  backend.watch(ref).pipe(
    Stream.tap((e) => (e._tag === "State" && e.state === "Pending" && e.reason !== undefined && reason(e.reason) ? backend.cancel(ref) : Effect.void)),
    Stream.runCollect,
    Effect.map((c) => Array.from(c))
  )


/** Why the stand-in's Kueue deactivates a Workload (it was requeued past its backoffLimitCount), as Kueue says it. */
export const KUEUE_DEACTIVATED = "The workload is deactivated due to exceeding the maximum number of re-queuing retries"

/**
 * The end of a watch of a Job whose Workload `workload` Kueue deactivated: Failed / Infra, not to be retried, its message
 * beginning `Kueue deactivated its Workload <workload> (<why>), and <how>`. Returns that exit.
 */
export const assertDeactivated = (events: ReadonlyArray<Backend.JobEvent>, workload: string, how: string): Backend.JobExit => {
  const exit = exitOf(events)
  assert.deepStrictEqual([exit.outcome, exit.failureKind, exit.retryable], ["Failed", "Infra", false], exit.message)
  assert.isTrue((exit.message ?? "").startsWith(`Kueue deactivated its Workload ${workload} (${KUEUE_DEACTIVATED}), and ${how}`), exit.message)
  return exit
}
