/**
 * What the tests of the batch-scheduler backends (Slurm, Grid Engine) share: a job spec of a shell
 * script in one run, a watch collected whole, and its one Exit.
 */
import { assert } from "@effect/vitest"
import type { Backend } from "@trex/core"
import { Effect, Stream } from "effect"

/** A job of run `run` that runs `script` with `/bin/sh -c`, with a strategy file and one CPU. */
export const specIn = (run: string) => (node: string, script: string, extra: Partial<Backend.JobSpec> = {}): Backend.JobSpec => ({
  name: `trex-${node}`,
  argv: ["/bin/sh", "-c", script, "job"],
  env: {},
  files: [{ path: "strategy.json", content: JSON.stringify({ lr: 0.1 }) }],
  resources: { gpus: 0, cpus: 1 },
  labels: { run, node },
  ...extra
})

/** Every event of a job's watch, to its end. */
export const collect = (backend: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0]) =>
  Stream.runCollect(backend.watch(ref)).pipe(Effect.map((c) => Array.from(c)))

/** The one Exit of a watch's events, which is their last. */
export const exitOf = (events: ReadonlyArray<Backend.JobEvent>): Backend.JobExit => {
  const exits = events.filter((e): e is Backend.JobExit => e._tag === "Exit")
  assert.strictEqual(exits.length, 1)
  assert.strictEqual(events.at(-1), exits[0])
  return exits[0]!
}

/** The script of a job that prints `token line` to stdout and `oops` to stderr, and writes a result. */
export const ENDED_FIRST_SCRIPT = `echo "token line"; echo oops >&2; echo '{"metrics":{"score":1}}' > result.json`

/**
 * A job that ended before its first watch began (a busy controller), looked at by the instance that
 * submitted it: that watch replays its output as Log events; a later watch, and one of a `fresh`
 * instance (a resumed run's), yield its Exit alone (its output in the Exit's tail).
 */
export const checkEndedBeforeFirstWatch = (backend: Backend.BackendShape, fresh: Backend.BackendShape, ref: Parameters<Backend.BackendShape["watch"]>[0]) =>
  Effect.gen(function*() {
    const logs = (events: ReadonlyArray<Backend.JobEvent>) => events.flatMap((e) => (e._tag === "Log" ? [`${e.stream}:${e.line}`] : []))
    const events = yield* collect(backend, ref)
    assert.strictEqual(exitOf(events).outcome, "Succeeded")
    // before the fix: no Log event (the lines only in the Exit's tail), so a trial's log lacked them on a busy machine
    assert.sameMembers(logs(events), ["stdout:token line", "stderr:oops"])
    const again = yield* collect(backend, ref)
    assert.deepStrictEqual(logs(again), [])
    assert.include(exitOf(again).logTail, "token line")
    assert.deepStrictEqual(logs(yield* collect(fresh, ref)), [])
  })
