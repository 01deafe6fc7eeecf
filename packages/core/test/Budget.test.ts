import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as Budget from "../src/Budget.ts"
import * as Cost from "../src/Cost.ts"
import * as JournalEvent from "../src/JournalEvent.ts"
import * as Result from "../src/Result.ts"

const small = fc.integer({ min: 0, max: 20 })
const cost: fc.Arbitrary<Cost.Cost> = fc.record({
  gpuSeconds: small.map((x) => x * 360),
  wallSeconds: small,
  dollars: small.map((x) => x / 4),
  inputTokens: small.map((x) => x * 50),
  outputTokens: small.map((x) => x * 25)
})

const budget: fc.Arbitrary<Budget.Budget> = fc.record(
  {
    maxTrials: fc.integer({ min: 1, max: 12 }),
    gpuHours: fc.integer({ min: 1, max: 20 }).map((x) => x / 2),
    wallClockHours: fc.integer({ min: 1, max: 4 }),
    dollars: fc.integer({ min: 1, max: 40 }).map((x) => x / 2),
    tokens: fc.integer({ min: 100, max: 4000 })
  },
  { requiredKeys: [] }
)

type Op =
  | { readonly _tag: "reserve"; readonly estimate: Cost.Cost }
  | { readonly _tag: "charge"; readonly cost: Cost.Cost }
  | { readonly _tag: "release"; readonly pick: number }
  | { readonly _tag: "elapse"; readonly seconds: number }
  | { readonly _tag: "hold"; readonly estimate: Cost.Cost }

const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ _tag: fc.constant("reserve" as const), estimate: cost }), weight: 4 },
  { arbitrary: fc.record({ _tag: fc.constant("charge" as const), cost }), weight: 2 },
  { arbitrary: fc.record({ _tag: fc.constant("release" as const), pick: fc.nat() }), weight: 2 },
  { arbitrary: fc.record({ _tag: fc.constant("elapse" as const), seconds: fc.integer({ min: 0, max: 600 }) }), weight: 1 },
  { arbitrary: fc.record({ _tag: fc.constant("hold" as const), estimate: cost }), weight: 1 }
)

/** `c`, raised field by field to `floor`. */
const atLeast = (c: Cost.Cost, floor: Cost.Cost): Cost.Cost =>
  Object.fromEntries(Object.entries(c).map(([k, v]) => [k, Math.max(v, floor[k as keyof Cost.Cost])])) as unknown as Cost.Cost

/** Every limit of `b` that `total` (with `trials`, `elapsed`, and a trial of `wall` seconds starting now) passes. */
const exceeded = (b: Budget.Budget, total: Cost.Cost, trials: number, elapsed: number, wall = 0): Array<Budget.Limit> => {
  const out: Array<Budget.Limit> = []
  if (b.maxTrials !== undefined && trials > b.maxTrials) out.push("maxTrials")
  if (b.gpuHours !== undefined && total.gpuSeconds > b.gpuHours * 3600 + 1e-9) out.push("gpuHours")
  if (b.dollars !== undefined && total.dollars > b.dollars + 1e-12) out.push("dollars")
  if (b.tokens !== undefined && Cost.tokens(total) > b.tokens) out.push("tokens")
  if (b.wallClockHours !== undefined && elapsed + wall > b.wallClockHours * 3600) out.push("wallClockHours")
  return out
}

describe("Budget.Ledger", () => {
  it("a trial that ended with another run's result (it waited for that run's trial, no job ran) is no trial, on replay as live", () => {
    const replayed = new Budget.Ledger({ maxTrials: 3 })
    const at = 1
    for (const event of [
      JournalEvent.make("NodeAdmitted", { nodeId: "n1", estimate: Cost.zero, at }),
      JournalEvent.make("NodeAdmitted", { nodeId: "n2", estimate: Cost.zero, at }),
      JournalEvent.make("NodeFinished", { nodeId: "n1", outcome: "Succeeded", result: { ...Result.success({ s: 1 }, 1), reusedFrom: "r1/n4" }, at }),
      JournalEvent.make("NodeFinished", { nodeId: "n2", outcome: "Succeeded", result: Result.success({ s: 1 }, 1), at }),
      // a finish with a reused result and no admission (reused when proposed) was never counted
      JournalEvent.make("NodeFinished", { nodeId: "n3", outcome: "Succeeded", result: { ...Result.success({ s: 1 }, 1), reusedFrom: "r1/n5" }, at })
    ]) replayed.apply(event)
    assert.strictEqual(replayed.trials, 1)
    const live = new Budget.Ledger({ maxTrials: 3 })
    live.reserve("n1", Cost.zero)
    live.reserve("n2", Cost.zero)
    live.release("n1", true)
    live.release("n2")
    live.release("n2", true)
    assert.strictEqual(live.trials, 1)
  })

  it("admission never takes spent + reserved past any limit, for any sequence of reserve/charge/release", () => {
    fc.assert(
      fc.property(budget, fc.array(op, { maxLength: 60 }), (b, ops) => {
        const ledger = new Budget.Ledger(b)
        const live = new Map<string, Cost.Cost>()
        let next = 0
        let elapsed = 0
        let floor = Cost.zero
        for (const o of ops) {
          switch (o._tag) {
            case "reserve": {
              const before = Cost.add(ledger.spent, ledger.reserved)
              const admit = ledger.canAdmit(o.estimate)
              const held = atLeast(o.estimate, floor)
              const would = exceeded(b, Cost.add(before, held), ledger.trials + 1, elapsed, held.wallSeconds)
              // canAdmit says no exactly when some limit would be passed (naming one of them) or a
              // limit is already used up (spending has reached it exactly)
              const used = ledger.exhausted() !== undefined
              assert.strictEqual(admit, would.length === 0 && !used)
              if (would.length > 0) assert.include(would, ledger.wouldExceed(held, 1))
              if (admit) {
                const id = `n${next++}`
                ledger.reserve(id, o.estimate)
                live.set(id, o.estimate)
                assert.deepStrictEqual(exceeded(b, Cost.add(ledger.spent, ledger.reserved), ledger.trials, elapsed), [])
              }
              break
            }
            case "charge":
              ledger.charge(o.cost)
              break
            case "release": {
              const ids = [...live.keys()]
              const id = ids.length === 0 ? "unknown" : ids[o.pick % ids.length]!
              ledger.release(id)
              live.delete(id)
              break
            }
            case "elapse":
              elapsed += o.seconds
              ledger.setElapsed(elapsed)
              break
            case "hold":
              floor = o.estimate
              ledger.holdAtLeast(o.estimate)
              break
          }
          // reserved is the sum of the live reservations, each at least the estimate held; trials count every admission
          const sum = [...live.values()].map((c) => atLeast(c, floor)).reduce(Cost.add, Cost.zero)
          for (const k of Object.keys(sum) as Array<keyof Cost.Cost>) assert.closeTo(ledger.reserved[k], sum[k], 1e-9)
          assert.strictEqual(ledger.trials, next)
          const f = ledger.fractionUsed()
          assert.isAtLeast(f, 0)
          assert.isAtMost(f, 1)
        }
      }),
      { numRuns: 500 }
    )
  })

  it("once exhausted, no trial may start, not even one with a zero estimate", () => {
    fc.assert(
      fc.property(budget, fc.array(cost, { maxLength: 8 }), (b, charges) => {
        const ledger = new Budget.Ledger(b)
        for (const c of charges) {
          ledger.charge(c)
          const limit = ledger.exhausted()
          if (limit !== undefined) assert.isFalse(ledger.canAdmit(Cost.zero), `exhausted (${limit}) yet a zero-estimate trial is admitted`)
        }
      }),
      { numRuns: 500 }
    )
  })

  it("counts trials against maxTrials and reports exhaustion", () => {
    const ledger = new Budget.Ledger({ maxTrials: 2 })
    assert.isUndefined(ledger.exhausted())
    assert.strictEqual(ledger.fractionUsed(), 0)
    ledger.reserve("a", Cost.zero)
    assert.strictEqual(ledger.fractionUsed(), 0.5)
    assert.isTrue(ledger.canAdmit(Cost.zero))
    ledger.reserve("b", Cost.zero)
    assert.isFalse(ledger.canAdmit(Cost.zero))
    assert.strictEqual(ledger.exhausted(), "maxTrials")
    assert.strictEqual(ledger.fractionUsed(), 1)
    // releasing a reservation does not give a trial back
    ledger.release("a")
    assert.strictEqual(ledger.exhausted(), "maxTrials")
  })

  it("reservations hold estimates until released; charges are separate", () => {
    const ledger = new Budget.Ledger({ gpuHours: 1 })
    const half = Cost.make({ gpuSeconds: 1800 })
    ledger.reserve("a", half)
    ledger.reserve("b", half)
    assert.isFalse(ledger.canAdmit(Cost.make({ gpuSeconds: 1 })))
    assert.strictEqual(ledger.wouldExceed(Cost.make({ gpuSeconds: 1 })), "gpuHours")
    assert.strictEqual(ledger.fractionUsed(), 0, "reservations are not spending")
    ledger.release("a")
    ledger.charge(Cost.make({ gpuSeconds: 900 }))
    assert.deepStrictEqual(ledger.reserved, half)
    assert.strictEqual(ledger.spent.gpuSeconds, 900)
    assert.strictEqual(ledger.fractionUsed(), 0.25)
    assert.isTrue(ledger.canAdmit(Cost.make({ gpuSeconds: 900 })))
    assert.isFalse(ledger.canAdmit(Cost.make({ gpuSeconds: 901 })))
    assert.deepStrictEqual(ledger.usage(), { trials: 2, spent: Cost.make({ gpuSeconds: 900 }), reserved: half, elapsedSeconds: 0 })
  })

  it("trials admitted when less was known hold what a trial is now known to cost", () => {
    // four trials start before any has reported a cost (estimate 0); the first costs 20 GPU-minutes
    const ledger = new Budget.Ledger({ gpuHours: 1 })
    for (const id of ["a", "b", "c", "d"]) ledger.reserve(id, Cost.zero)
    ledger.release("a")
    ledger.charge(Cost.make({ gpuSeconds: 1200 }))
    const estimate = Cost.make({ gpuSeconds: 1200 })
    // held at 0, the three still running let a fifth start: 1200 + 0 + 1200 fits in an hour
    assert.isTrue(ledger.canAdmit(estimate))
    ledger.holdAtLeast(estimate)
    assert.deepStrictEqual(ledger.reserved, Cost.make({ gpuSeconds: 3600 }))
    assert.isFalse(ledger.canAdmit(estimate), "1200 spent + 3 x 1200 held + 1200 is past the hour")
    assert.strictEqual(ledger.wouldExceed(estimate, 1), "gpuHours")
    // a trial admitted with a larger estimate keeps it
    ledger.release("b")
    ledger.reserve("e", Cost.make({ gpuSeconds: 2000, dollars: 1 }))
    assert.deepStrictEqual(ledger.reserved, Cost.make({ gpuSeconds: 4400, dollars: 1 }))
  })

  it("reservations stop admissions, not the run: exhausted() counts only what was spent", () => {
    const ledger = new Budget.Ledger({ gpuHours: 1 })
    ledger.reserve("a", Cost.make({ gpuSeconds: 3000 }))
    ledger.charge(Cost.make({ gpuSeconds: 1000 }))
    assert.isUndefined(ledger.exhausted(), "the trial in flight may settle below its reservation")
    assert.isFalse(ledger.canAdmit(Cost.zero))
    assert.strictEqual(ledger.wouldExceed(Cost.zero, 1), "gpuHours")
    ledger.release("a")
    ledger.charge(Cost.make({ gpuSeconds: 600 }))
    assert.isTrue(ledger.canAdmit(Cost.make({ gpuSeconds: 2000 })))
    ledger.charge(Cost.make({ gpuSeconds: 2000 }))
    assert.strictEqual(ledger.exhausted(), "gpuHours")
  })

  it("a trial starts only if its expected wall time ends within the wall clock", () => {
    const ledger = new Budget.Ledger({ wallClockHours: 1 })
    ledger.setElapsed(3000)
    assert.isTrue(ledger.canAdmit(Cost.make({ wallSeconds: 600 })))
    assert.isFalse(ledger.canAdmit(Cost.make({ wallSeconds: 601 })))
    assert.strictEqual(ledger.wouldExceed(Cost.make({ wallSeconds: 601 }), 1), "wallClockHours")
    assert.isUndefined(ledger.exhausted(), "a shorter trial still fits")
    // trials in flight run beside the new one: their expected wall time is not added up
    ledger.reserve("a", Cost.make({ wallSeconds: 500 }))
    ledger.reserve("b", Cost.make({ wallSeconds: 500 }))
    assert.isTrue(ledger.canAdmit(Cost.make({ wallSeconds: 500 })))
  })

  it("exhausted() names the limit whose spending reached it", () => {
    const cases: ReadonlyArray<[Budget.Budget, Cost.Cost, Budget.Limit]> = [
      [{ gpuHours: 1 }, Cost.make({ gpuSeconds: 3600 }), "gpuHours"],
      [{ dollars: 5 }, Cost.make({ dollars: 5 }), "dollars"],
      [{ tokens: 100 }, Cost.make({ inputTokens: 60, outputTokens: 40 }), "tokens"],
      [{ dollars: 5 }, Cost.make({ dollars: 7 }), "dollars"]
    ]
    for (const [b, spend, limit] of cases) {
      const ledger = new Budget.Ledger(b)
      ledger.charge(Cost.make({}))
      assert.isUndefined(ledger.exhausted())
      ledger.charge(spend)
      assert.strictEqual(ledger.exhausted(), limit)
      assert.strictEqual(ledger.fractionUsed(), 1)
    }
    const clock = new Budget.Ledger({ wallClockHours: 1 })
    clock.setElapsed(1800)
    assert.strictEqual(clock.fractionUsed(), 0.5)
    assert.strictEqual(clock.elapsedSeconds, 1800)
    clock.setElapsed(3601)
    assert.strictEqual(clock.exhausted(), "wallClockHours")
  })

  it("fractionUsed is the tightest limit; 0 when unlimited", () => {
    assert.strictEqual(new Budget.Ledger({}).fractionUsed(), 0)
    const ledger = new Budget.Ledger({ maxTrials: 10, dollars: 4 })
    ledger.reserve("a", Cost.zero)
    ledger.charge(Cost.make({ dollars: 1 }))
    assert.strictEqual(ledger.fractionUsed(), 0.25)
    const unlimited = new Budget.Ledger({})
    unlimited.charge(Cost.make({ gpuSeconds: 1e9 }))
    assert.isUndefined(unlimited.exhausted())
    assert.isTrue(unlimited.canAdmit(Cost.make({ dollars: 1e9 })))
  })

  it("apply replays journal events: an admission reserves, a finish releases, a charge spends", () => {
    const ledger = new Budget.Ledger({ maxTrials: 3 })
    ledger.apply(JournalEvent.make("NodeAdmitted", { nodeId: "a", estimate: Cost.make({ dollars: 1 }), at: 0 }))
    assert.strictEqual(ledger.trials, 1)
    assert.strictEqual(ledger.reserved.dollars, 1)
    ledger.apply(JournalEvent.make("BudgetCharged", { nodeId: "a", cost: Cost.make({ dollars: 0.75 }), reason: "trial", at: 1 }))
    ledger.apply(JournalEvent.make("NodeFinished", { nodeId: "a", outcome: "Succeeded", at: 2 }))
    assert.strictEqual(ledger.reserved.dollars, 0)
    assert.strictEqual(ledger.spent.dollars, 0.75)
    ledger.apply(JournalEvent.make("RunResumed", { at: 3 }))
    assert.strictEqual(ledger.trials, 1)
  })
})
