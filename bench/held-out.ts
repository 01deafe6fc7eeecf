// How predictable is a recorded table's best configuration from the rest of the table?
//
//   node --conditions=@trex/source bench/held-out.ts bench/tasks/nmthpo-zh-en.yaml [more task files]
//
// For each task file naming a simulator table: every configuration of the table (rows that differ
// only in parameters measured to have no effect, as the heuristic researcher measures it, count as
// one) is held out in turn, the heuristic researcher's Gaussian-process surrogate is fitted to all
// the other rows, and it predicts the held-out one. The line printed gives the rank of the best
// configuration among those predictions: 1 when the rest of the table points at it, k when k - 1
// other configurations look better to a model that has seen everything but them. The kernel's
// hyperparameters are searched once, on the table without the best configuration.
//
// A model-based search cannot find a configuration the model ranks low sooner than it runs the
// ones ranked above it; a low rank with the whole table known bounds what any few results can do.
import { Task, TaskFile } from "@trex/core"
import { Simulator } from "@trex/executors"
import { Effect } from "effect"
import { maskedKey, Sensitivity } from "../packages/agents/src/internal/sensitivity.ts"
import * as Surrogate from "../packages/agents/src/internal/surrogate.ts"

const heldOut = (file: string) =>
  Effect.gen(function*() {
    const loaded = yield* TaskFile.load(file)
    const { landscape } = yield* Simulator.fromTask(loaded.task, loaded.dir, file)
    const task = Simulator.completeTask(loaded.task, landscape)
    const space = task.searchSpace!
    const rows: ReadonlyArray<Surrogate.Observation> = landscape.points.map((p) => ({
      x: Surrogate.features(space, Simulator.strategyOf(landscape, p)),
      utility: p.score === undefined ? undefined : Task.utility(task, p.score)
    }))
    const sensitivity = new Sensitivity()
    for (const r of rows) sensitivity.add(r.x, r.utility)
    const inert = sensitivity.inert()
    // configurations: rows grouped up to the inert parameters
    const groups = new Map<string, Array<number>>()
    rows.forEach((r, i) => {
      const key = maskedKey(r.x, inert)
      const g = groups.get(key)
      if (g === undefined) groups.set(key, [i])
      else g.push(i)
    })
    const configs = [...groups.values()]
    const utility = (g: ReadonlyArray<number>) => Math.max(...g.map((i) => rows[i]!.utility ?? -Infinity))
    const best = configs.reduce((a, b) => (utility(b) > utility(a) ? b : a))
    const without = (g: ReadonlyArray<number>) => {
      const held = new Set(g)
      return rows.filter((_, i) => !held.has(i))
    }
    const all = { minObservations: 1, maxObservations: rows.length }
    const hyper = Surrogate.fit(without(best), all)?.hyper
    if (hyper === undefined) return `${task.name}: too few results to fit`
    const predicted = configs.map((g) => Surrogate.fit(without(g), { ...all, hyper })!.predict(rows[g[0]!]!.x).mean)
    const mine = predicted[configs.indexOf(best)]!
    const rank = predicted.filter((p) => p > mine).length + 1
    const names = space.parameters.filter((p) => p.values.length > 1).map((p) => p.path)
    const dropped = [...inert].map((d) => names[d]).join(", ")
    return `${task.name}: ${rows.length} rows, ${configs.length} configurations` +
      (dropped !== "" ? ` (no effect: ${dropped})` : "") +
      `; the best, held out, is predicted ${rank} of ${configs.length} (top ${Math.ceil((100 * rank) / configs.length)} %)`
  })

const files = process.argv.slice(2)
if (files.length === 0) {
  console.error("usage: node --conditions=@trex/source bench/held-out.ts TASK.yaml [TASK.yaml ...]")
  process.exit(2)
}
for (const file of files) console.log(await Effect.runPromise(heldOut(file)))
