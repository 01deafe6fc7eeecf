// The task files and findings the tests of `trex check` (Check.test.ts, CheckEngines.test.ts) read.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type * as Check from "../../src/Check.ts"

/** A task file in a folder of its own: a tiny recipe, with `extra` lines appended (a backend section, say). */
export const taskFile = (recipe: string, extra = "") => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-check-test-"))
  const file = path.join(dir, "task.yaml")
  fs.writeFileSync(file, `name: check-me
objective: a task to check
metric: { name: score, direction: maximize }
budget: { maxTrials: 4 }
recipe:
${recipe}
searchSpace:
  parameters:
    - { path: training.learningRate, kind: log, values: [0.0001, 0.001] }
defaultStrategy:
  data: { sources: [{ name: toy }] }
  training: { learningRate: 0.0001, epochs: 1, batchSize: 8 }
${extra}`)
  return { dir, file }
}

/** The findings of `trex check --json`, as `status what: detail` lines. */
export const findings = (stdout: string) => (JSON.parse(stdout) as Check.Report).findings.map((f) => `${f.status} ${f.what}: ${f.detail}`)
