/**
 * Campaign 5, concurrency: two controllers pointed at the same run directory at nearly the
 * same moment, many rounds. Each round both are SIGKILLed once one runs and the other has
 * refused (at a random moment of the running one's work), so the next round
 * starts over a stale lock, as after a crash. Exactly one may run; the other must refuse with
 * a clear message (exit 2), and the journal must never hold two sessions' events interleaved.
 */
import * as path from "node:path"
import { campaign, type CampaignOptions, chaosTask, rng, runDirOf, sleep, tmpDir, trexAsync, tryReadJournal, waitFor } from "./lib.ts"

/** Run the campaign. */
export const run = (options: CampaignOptions) =>
  campaign("concurrency", options, async (findings) => {
    const random = rng(options.seed ?? 1)
    const rounds = options.quick ? 4 : 40
    const env = { TREX_CHAOS_MS: "60", TREX_CHAOS_LOG: "" }
    const out = tmpDir("concurrency")
    const first = trexAsync(["run", chaosTask, "--max-trials", "1000", "--concurrency", "2", "--out", out], env)
    await waitFor(() => /^done /m.test(first.out.stdout), 60_000)
    first.child.kill("SIGKILL")
    await first.exited
    const runDir = runDirOf(first.out.stdout)
    if (runDir === undefined) throw new Error(`the first run did not start: ${first.out.stderr}`)
    const tally = { rounds: 0, oneRan: 0, bothRan: 0, noneRan: 0, refusedClearly: 0, unclearRefusals: 0, journalFailures: 0 }
    for (let round = 0; round < rounds; round++) {
      const a = trexAsync(["resume", runDir], env)
      await sleep(random() * 30)
      const b = trexAsync(["resume", runDir], env)
      // Kill once each controller has either started running or exited (refused), at a random
      // moment of the running one's work — not after a fixed wait a loaded machine may overrun.
      const settled = (t: typeof a) => /resumed run on task/.test(t.out.stdout) || t.child.exitCode !== null || t.child.signalCode !== null
      if (!(await waitFor(() => settled(a) && settled(b), 60_000))) {
        findings.push(`round ${round}: after 60 s neither controller had started or exited: ${a.out.stderr.slice(-300)} ${b.out.stderr.slice(-300)}`)
      }
      await sleep(random() * 500)
      for (const t of [a, b]) t.child.kill("SIGKILL")
      await Promise.all([a.exited, b.exited])
      tally.rounds++
      // A controller that finished the run released the lock normally; the other may then run
      // after it (one after the other, never at once), so only unfinished sessions count here.
      const finished = [a, b].some((t) => /^finished: /m.test(t.out.stdout))
      const ran = finished ? [a, b].filter((t) => /resumed run on task/.test(t.out.stdout)).slice(0, 1) : [a, b].filter((t) => /resumed run on task/.test(t.out.stdout))
      const refused = [a, b].filter((t) => t.child.exitCode === 2)
      if (ran.length === 2) {
        tally.bothRan++
        findings.push(`round ${round}: both controllers ran on ${runDir}`)
      } else if (ran.length === 1) tally.oneRan++
      else tally.noneRan++
      for (const t of refused) {
        if (/run is in use by (process \d+|another process) \(lock /.test(t.out.stderr) && !/\n\s+at /.test(t.out.stderr)) tally.refusedClearly++
        else {
          tally.unclearRefusals++
          findings.push(`round ${round}: refusal without a clear message: ${t.out.stderr.slice(0, 300)}`)
        }
      }
      const read = await tryReadJournal(runDir)
      if ("error" in read) {
        tally.journalFailures++
        findings.push(`round ${round}: ${read.error}`)
        break
      }
    }
    return {
      figures: {
        "rounds (two controllers each)": tally.rounds,
        "rounds where exactly one ran": tally.oneRan,
        "rounds where neither controller ran": tally.noneRan,
        "refusals with a clear message (exit 2)": tally.refusedClearly,
        "rounds where both controllers ran": tally.bothRan,
        "refusals without a clear message": tally.unclearRefusals,
        "journal files that fail to open": tally.journalFailures,
        "run directory": path.basename(runDir)
      },
      mustBeZero: ["rounds where both controllers ran", "rounds where neither controller ran", "refusals without a clear message", "journal files that fail to open"],
      mustBePositive: ["rounds where exactly one ran", "refusals with a clear message (exit 2)"]
    }
  })
