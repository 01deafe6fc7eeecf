// A recorded table of 3 x 3 runs (learning rate x layers) and a simulator task file over it, written
// into `dir`, for the tests of trex bench and of ASHA: each test gives the rows and names the columns.
import * as fs from "node:fs"
import * as path from "node:path"

export const lrs = [1e-4, 3e-4, 1e-3] as const
export const layerCounts = [1, 2, 4] as const

export interface Spec {
  readonly name: string
  readonly metric: { readonly name: string; readonly direction: "maximize" | "minimize" }
  /** The CSV's header line after `lr,layers`, and one row's fields after `lr,layers` for each (lr index, layers). */
  readonly columns: string
  readonly row: (lrIndex: number, layers: number) => string
  readonly metricColumn: string
  readonly cost: { readonly column: string; readonly scale: number }
  /** The curve column, if the table has one. */
  readonly curveColumn?: string
  /** A recipe line (the bench's task has one; a run's default executor needs none with the simulator). */
  readonly recipe?: boolean
}

/** Write `runs.csv` and `task.yaml` into `dir`; the task file's path. */
export const write = (dir: string, spec: Spec): string => {
  const rows = [`lr,layers,${spec.columns}`]
  for (const [i, lr] of lrs.entries()) {
    for (const layers of layerCounts) rows.push(`${lr},${layers},${spec.row(i, layers)}`)
  }
  fs.writeFileSync(path.join(dir, "runs.csv"), rows.join("\n") + "\n")
  const task = path.join(dir, "task.yaml")
  fs.writeFileSync(task, [
    `name: ${spec.name}`,
    "objective: pick the learning rate and depth",
    `metric: { name: ${spec.metric.name}, direction: ${spec.metric.direction} }`,
    "budget: { maxTrials: 9 }",
    ...(spec.recipe === true ? ["recipe: { command: [simulated] }"] : []),
    "backend:",
    "  kind: simulator",
    "  table: runs.csv",
    "  parameters:",
    "    - { column: lr, path: training.learningRate, kind: log }",
    "    - { column: layers, path: training.extra.layers, kind: ordinal }",
    `  metric: { column: ${spec.metricColumn} }`,
    `  cost: { column: ${spec.cost.column}, scale: ${spec.cost.scale} }`,
    ...(spec.curveColumn !== undefined ? [`  curve: { column: ${spec.curveColumn}, split: dev }`] : []),
    ""
  ].join("\n"))
  return task
}
