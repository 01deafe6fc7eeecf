/** A real run whose settings a resume changed: for the views of a run's settings (`trex status`, `trex report`, `trex list`). */
import * as path from "node:path"
import { DatabaseSync } from "node:sqlite"
import * as zlib from "node:zlib"
import type { JournalEvent } from "@trex/core"
import { readJournal, root, tmp, trexHere } from "./cli.ts"

/**
 * Makes the model timeout a run's journal recorded at its start `seconds` (3,000,000 s, as an older trex or an edited
 * journal holds one this trex does not take), its checksum made anew: a sound entry. Returns the options it records.
 */
export const recordTimeout = (runDir: string, seconds: number): Record<string, unknown> => {
  const db = new DatabaseSync(path.join(runDir, "journal.sqlite"))
  try {
    const started = JSON.parse((db.prepare("SELECT payload FROM events WHERE seq = 1").get() as { payload: string }).payload)
    started.options.modelTimeoutSeconds = seconds
    const edited = JSON.stringify(started)
    db.prepare("UPDATE events SET payload = ?, crc = ? WHERE seq = 1").run(edited, zlib.crc32(edited))
    return started.options
  } finally {
    db.close()
  }
}

/**
 * A short run of the simulator (`args` added to `trex run`'s: `--policy greedy`) in `out`, its recorded model timeout
 * made one this trex does not take, then resumed once with `--model-timeout 60`, which the run keeps as its own
 * (`RunResumed.settings`). Returns its directory, the options it started with and the resume's event.
 */
export const overriddenRun = async (args: ReadonlyArray<string> = [], out = tmp()) => {
  const run = await trexHere(["run", path.join(root, "examples/recorded-table/task.yaml"), "--max-trials", "2", "--out", out, ...args])
  if (run.status !== 0) throw new Error(`trex run failed: ${run.stderr}`)
  const runDir = /run directory: (\S+)/.exec(run.stdout)![1]!
  const started = recordTimeout(runDir, 3_000_000)
  const resume = await trexHere(["resume", runDir, "--model-timeout", "60", "--max-trials", "3"])
  if (resume.status !== 0) throw new Error(`trex resume failed: ${resume.stderr}`)
  const resumed = (await readJournal(runDir)).flatMap((e) => e.event._tag === "RunResumed" ? [e.event] : [])
  return { runDir, started, resumed: resumed[0] as JournalEvent.Of<"RunResumed"> }
}
