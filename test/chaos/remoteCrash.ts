/**
 * The crash-and-resume campaign in its `--quick` mode on one of the real remote backends that
 * scripts/services/start-all.sh starts (Docker Engine, Podman, Slurm through slurmrestd, Grid
 * Engine, sshd on 127.0.0.1:2222; facts in scripts/services/.env): the controller SIGKILLed after
 * a trial finished, after one started and inside `submit`, then `trex resume`, until the run
 * finishes. Each job logs its start where it ran, so a job run twice is counted on the engine's
 * side. test/chaos-backends/ holds one file per backend, so that vitest runs them side by side
 * (each campaign uses its own engine and its own folders); test/chaos.test.ts runs it on the local
 * and simulator backends.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as Crash from "./crash.ts"
import { print, violations } from "./lib.ts"

const files = path.join(import.meta.dirname, "../chaos-backends")

/** Declares the campaign's test on `backend`, and that no remote backend is left without its file. */
export const crashAndResumeOn = (backend: Crash.Remote) =>
  describe("chaos campaigns (quick) on the remote backends", () => {
    it("test/chaos-backends/ has one file for each remote backend", () => {
      const backends = fs.readdirSync(files).filter((n) => n.endsWith(".test.ts")).map((n) => n.slice(0, -".test.ts".length))
      assert.deepStrictEqual(backends.sort(), [...Crash.remotes].sort())
    })

    it(`crash and resume on ${backend}: no finished trial lost, no job run twice, trees as uninterrupted`, async () => {
      const result = await Crash.run({ quick: true, seed: 1, backends: [backend] })
      print(result)
      assert.isAtLeast(result.figures[`${backend}: kills`] as number, 1)
      assert.deepStrictEqual(violations(result), [], result.findings.join("\n"))
    }, 180_000)
  })
