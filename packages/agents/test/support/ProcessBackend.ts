/**
 * A small, honest `Backend` for the agents' tests: real child processes (node:child_process),
 * one directory per node label under `root` (reused by later jobs of the same node, as the
 * real local backend does), protocol lines parsed into events, a time limit, result.json
 * read at exit. Agents must not depend on @trex/executors, so their tests bring this one.
 */
import * as Cp from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Backend, Errors, type ExperimentNode, JobProtocol } from "@trex/core"
import { Effect, Layer, Queue, Stream } from "effect"

interface Job {
  readonly events: Array<Backend.JobEvent>
  readonly listeners: Set<(e: Backend.JobEvent) => void>
  readonly child: Cp.ChildProcess
  readonly labels: Backend.Labels
  readonly submittedAt: number
  done: boolean
}

export const make = (root: string): Backend.BackendShape & { readonly submitted: Array<Backend.JobSpec> } => {
  const jobs = new Map<string, Job>()
  const submitted: Array<Backend.JobSpec> = []
  let counter = 0
  const fail = (operation: string, message: string) => new Errors.BackendError({ backend: "process", operation, message, retryable: false })

  const submit = (spec: Backend.JobSpec) =>
    Effect.try({
      try: (): ExperimentNode.JobRef => {
        submitted.push(spec)
        const dir = Path.join(root, spec.labels.node)
        Fs.mkdirSync(dir, { recursive: true })
        for (const f of [JobProtocol.RESULT_FILE, JobProtocol.METRICS_FILE]) Fs.rmSync(Path.join(dir, f), { force: true })
        for (const f of spec.files) {
          Fs.mkdirSync(Path.dirname(Path.join(dir, f.path)), { recursive: true })
          Fs.writeFileSync(Path.join(dir, f.path), f.content)
        }
        const id = `p${++counter}`
        const started = Date.now()
        const child = Cp.spawn(spec.argv[0]!, spec.argv.slice(1), {
          cwd: dir,
          env: { ...process.env, ...Backend.revealEnv(spec.env), [JobProtocol.JOB_DIR_ENV]: dir },
          stdio: ["ignore", "pipe", "pipe"]
        })
        const job: Job = { events: [], listeners: new Set(), child, labels: spec.labels, submittedAt: started, done: false }
        jobs.set(id, job)
        const tail = new JobProtocol.Tail(40)
        const publish = (e: Backend.JobEvent) => {
          job.events.push(e)
          for (const l of job.listeners) l(e)
        }
        publish({ _tag: "State", state: "Running" })
        const lines = (stream: "stdout" | "stderr") => {
          const splitter = new JobProtocol.LineSplitter()
          const onLine = (line: string) => {
            tail.push(line)
            const parsed = stream === "stdout" ? JobProtocol.parseLine(line) : undefined
            publish(parsed ?? { _tag: "Log", stream, line })
          }
          child[stream]!.on("data", (c: Buffer) => splitter.push(c).forEach(onLine))
          child[stream]!.on("end", () => splitter.end().forEach(onLine))
        }
        lines("stdout")
        lines("stderr")
        let timedOut = false
        const limit = spec.resources.timeLimitSeconds
        const timer = limit === undefined ? undefined : setTimeout(() => {
          timedOut = true
          child.kill("SIGKILL")
        }, limit * 1000)
        const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
          if (job.done) return
          job.done = true
          if (timer) clearTimeout(timer)
          let result: unknown
          let resultError: string | undefined
          try {
            result = JSON.parse(Fs.readFileSync(Path.join(dir, JobProtocol.RESULT_FILE), "utf8"))
          } catch (e) {
            resultError = `cannot read result.json: ${(e as Error).message}`
          }
          const ok = code === 0 && spawnError === undefined
          const seconds = (Date.now() - started) / 1000
          publish({
            _tag: "Exit",
            outcome: ok ? "Succeeded" : signal === "SIGTERM" && !timedOut ? "Cancelled" : "Failed",
            ...(ok ? {} : { failureKind: timedOut ? "Timeout" : "Crash" }),
            ...(code !== null ? { exitCode: code } : {}),
            ...(signal !== null ? { signal } : {}),
            ...(spawnError ? { message: spawnError.message } : timedOut ? { message: `time limit ${limit}s exceeded` } : {}),
            ...(result !== undefined ? { result } : {}),
            ...(resultError !== undefined ? { resultError } : {}),
            logTail: tail.get(),
            wallSeconds: seconds,
            gpuSeconds: seconds * spec.resources.gpus
          })
        }
        child.on("error", (e) => finish(null, null, e))
        child.on("close", (code, signal) => finish(code, signal))
        return { backend: "process", id, data: { dir } }
      },
      catch: (e) => fail("submit", String(e))
    })

  const watch = (ref: ExperimentNode.JobRef): Stream.Stream<Backend.JobEvent, Errors.BackendError> => {
    const job = jobs.get(ref.id)
    if (job === undefined) return Stream.fail(fail("watch", `unknown job ${ref.id}`))
    return Stream.callback<Backend.JobEvent>((queue) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const push = (e: Backend.JobEvent) => {
            Queue.offerUnsafe(queue, e)
            if (e._tag === "Exit") Queue.endUnsafe(queue)
          }
          job.events.forEach(push)
          job.listeners.add(push)
          return push
        }),
        (push) => Effect.sync(() => job.listeners.delete(push))
      ), { bufferSize: 100_000 })
  }

  return {
    name: "process",
    submitted,
    submit,
    watch,
    cancel: (ref) =>
      Effect.sync(() => {
        const job = jobs.get(ref.id)
        if (job !== undefined && !job.done) job.child.kill("SIGTERM")
      }),
    list: (run) =>
      Effect.sync(() =>
        [...jobs].filter(([, j]) => j.labels.run === run).map(([id, j]) => ({
          ref: { backend: "process", id, data: {} },
          labels: j.labels,
          submittedAt: j.submittedAt,
          state: j.done ? "Finished" as const : "Running" as const
        }))
      ),
    capacity: Effect.sync(() => ({ slots: 4, gpus: 0, inUse: [...jobs.values()].filter((j) => !j.done).length }))
  }
}

export const layer = (root: string) => Layer.sync(Backend.Backend, () => make(root))
