/**
 * A job that writes a result.json of about 67 MB (valid JSON: a summary of 70,000,000 characters), over
 * `JobProtocol.MAX_RESULT_BYTES`, and the check every backend's exit of it must pass.
 */
import { assert } from "@effect/vitest"
import type { Backend } from "@trex/core"

/** The job's shell script, run in its job directory. */
export const BULKY_RESULT_SCRIPT =
  `{ printf '{"metrics":{"score":0.8},"summary":"'; head -c 70000000 /dev/zero | tr '\\0' z; printf '"}'; } > result.json`

/** The job succeeded, its result.json is not read, and the error says it is too big (`sized`: and how big: the backend knows the file's size). */
export const assertTooBig = (exit: Backend.JobExit, sized: boolean): void => {
  assert.strictEqual(exit.outcome, "Succeeded")
  assert.isUndefined(exit.result)
  assert.strictEqual(
    exit.resultError,
    `result.json is ${sized ? "67 MB, " : ""}more than the 64 MB the controller reads (keep its metrics and a short summary in it; put bulk data in an artifact)`
  )
}
