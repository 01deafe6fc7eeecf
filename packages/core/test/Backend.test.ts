import { assert, describe, it } from "@effect/vitest"
import * as Backend from "../src/Backend.ts"
import type * as Result from "../src/Result.ts"

const failed = (failureKind: Result.FailureKind, logTail: ReadonlyArray<string>, extra: Partial<Backend.JobExit> = {}): Backend.JobExit => ({
  _tag: "Exit",
  outcome: "Failed",
  failureKind,
  exitCode: 1,
  message: "exit code 1",
  logTail,
  wallSeconds: 60,
  gpuSeconds: 60,
  ...extra
})

describe("Backend.noSpaceExit (the rule every built-in backend applies to a job's exit)", () => {
  it("a Crash whose log tail says the disk was full is Infra, its message naming the line and the fix", () => {
    for (
      const line of [
        "OSError: [Errno 28] No space left on device",
        "RuntimeError: [enforce fail at inline_container.cc:603] . unexpected pos 123 vs 456 ... No space left on device",
        "Error: ENOSPC: no space left on device, write",
        "OSError: [Errno 122] Disk quota exceeded: '/scratch/ckpt'",
        "write failed: EDQUOT"
      ]
    ) {
      const exit = Backend.noSpaceExit(failed("Crash", ["Traceback (most recent call last):", `  ${line}`, "wandb: finishing"]))
      assert.strictEqual(exit.failureKind, "Infra", line)
      assert.strictEqual(
        exit.message,
        `the job ran out of disk space (exit code 1): ${line}. The machine's failure, not the strategy's: free space where the job writes (checkpoints, outputs, logs)`
      )
      // the rest of the exit is the job's, unchanged
      assert.deepStrictEqual([exit.exitCode, exit.wallSeconds, exit.logTail.length], [1, 60, 3])
    }
  })

  it("a backend that found the disk full itself says which, for a job whose log could not hold the error", () => {
    const exit = Backend.noSpaceExit(failed("Crash", []), "the disk holding /runs/r1/jobs/n3 was full (0 KB free)")
    assert.strictEqual(exit.failureKind, "Infra")
    assert.match(exit.message!, /^the job failed \(exit code 1\) while the disk holding \/runs\/r1\/jobs\/n3 was full \(0 KB free\)\. /)
  })

  it("leaves alone a Crash that says nothing of the disk, every other kind, and a success", () => {
    const crash = failed("Crash", ["ValueError: no space in the tokenizer's vocabulary"])
    assert.strictEqual(Backend.noSpaceExit(crash), crash)
    for (const kind of ["OOM", "Timeout", "Infra", "InvalidOutput"] as const) {
      const exit = failed(kind, ["OSError: [Errno 28] No space left on device"])
      assert.strictEqual(Backend.noSpaceExit(exit, "the disk was full"), exit)
    }
    const ok: Backend.JobExit = { _tag: "Exit", outcome: "Succeeded", logTail: ["No space left on device (a warning)"], wallSeconds: 1, gpuSeconds: 0 }
    assert.strictEqual(Backend.noSpaceExit(ok, "the disk was full"), ok)
  })
})

describe("Backend.unreachable (the outage every built-in backend tells in one form)", () => {
  it("a State in the state last shown, whose reason says who, since when (UTC), why, and what is done meanwhile", () => {
    const since = Date.UTC(2026, 11, 5, 10, 3, 12, 999)
    assert.deepStrictEqual(
      Backend.unreachable({ state: "Pending", who: "Slurm", since, cause: "Unable to contact slurm controller", meanwhile: "polled again every 2 s" }),
      { _tag: "State", state: "Pending", reason: "Slurm does not answer since 10:03:12Z (Unable to contact slurm controller); polled again every 2 s" }
    )
    assert.strictEqual(Backend.unreachable({ state: "Running", who: "host gpu1", since: Date.UTC(2026, 0, 1, 23, 59, 59), cause: "ECONNREFUSED", meanwhile: "m" }).reason, "host gpu1 does not answer since 23:59:59Z (ECONNREFUSED); m")
  })
})
