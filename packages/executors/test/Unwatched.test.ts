// The set of jobs a Grid Engine or Slurm backend instance submitted whose output no watch has given yet (ER, ES):
// bounded whatever the instance's life.
import { assert, describe, it } from "@effect/vitest"
import { Unwatched, UNWATCHED_LIMIT } from "../src/internal/unwatched.ts"

describe("Unwatched", () => {
  it("gives each id to one watch, drops a cancelled one, and keeps at most its limit, the oldest leaving first", () => {
    const u = new Unwatched()
    u.add("1")
    u.add("2")
    assert.isTrue(u.take("1"))
    assert.isFalse(u.take("1"), "a later watch of the same job")
    u.drop("2")
    assert.isFalse(u.take("2"), "cancelled before any watch")
    // submitted and never watched, a run's worth of jobs: the set stays at its limit
    for (let i = 0; i < 3 * UNWATCHED_LIMIT; i++) u.add(String(1000 + i))
    assert.strictEqual(u.size, UNWATCHED_LIMIT)
    assert.isFalse(u.take("1000"), "the oldest left")
    assert.isTrue(u.take(String(1000 + 3 * UNWATCHED_LIMIT - 1)), "the newest is kept")
  })
})
