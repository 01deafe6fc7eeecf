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
export const recordTimeout = (runDir: string, seconds: number): Record<string, unknown> => recordOptions(runDir, { modelTimeoutSeconds: seconds })

/** Lays `options` over those a run's journal recorded at its start (`RunStarted.options`), its checksum made anew. Returns the options it records. */
export const recordOptions = (runDir: string, options: Record<string, unknown>): Record<string, unknown> => {
  const db = new DatabaseSync(path.join(runDir, "journal.sqlite"))
  try {
    const started = JSON.parse((db.prepare("SELECT payload FROM events WHERE seq = 1").get() as { payload: string }).payload)
    Object.assign(started.options, options)
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
  const runDir = await shortRun(args, out)
  const started = recordTimeout(runDir, 3_000_000)
  const resume = await trexHere(["resume", runDir, "--model-timeout", "60", "--max-trials", "3"])
  if (resume.status !== 0) throw new Error(`trex resume failed: ${resume.stderr}`)
  const resumed = (await readJournal(runDir)).flatMap((e) => e.event._tag === "RunResumed" ? [e.event] : [])
  return { runDir, started, resumed: resumed[0] as JournalEvent.Of<"RunResumed"> }
}

/**
 * Settings an edited journal may hold, as hostile as text gets for a report or a list: `markup` (HTML that would run a
 * script) with a table's `|` and a line break in the researcher's name, a policy that is no name but an object of
 * 5,000 characters (a character outside the BMP where `trex list` cuts it), and a key of 5,000 characters, with markup,
 * `|` and a line break, whose value is as bad.
 */
export const hostileSettings = (markup: string): JournalEvent.Of<"RunStarted">["options"] => ({
  researcher: `${markup}|\n# not a line of its own`,
  policy: { a: `${"x".repeat(12)}\u{1F600}${"y".repeat(5000)}` },
  [`<b>key</b>|\n${"k".repeat(5000)}`]: `${markup}|\n${"v".repeat(5000)}`
})

/** A short run of the simulator in `out` whose journal records {@link hostileSettings} among its settings. */
export const hostileRun = async (markup: string, out = tmp()) => {
  const runDir = await shortRun([], out)
  return { runDir, options: recordOptions(runDir, hostileSettings(markup)) }
}

/** A short run of the simulator (2 trials; `args` added to `trex run`'s) in `out`: its directory. */
const shortRun = async (args: ReadonlyArray<string>, out: string): Promise<string> => {
  const run = await trexHere(["run", path.join(root, "examples/recorded-table/task.yaml"), "--max-trials", "2", "--out", out, ...args])
  if (run.status !== 0) throw new Error(`trex run failed: ${run.stderr}`)
  return /run directory: (\S+)/.exec(run.stdout)![1]!
}
