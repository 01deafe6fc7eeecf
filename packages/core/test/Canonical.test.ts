import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import fc from "fast-check"
import * as Cost from "../src/Cost.ts"
import { drifted } from "../src/internal/canonical.ts"
import * as JobProtocol from "../src/JobProtocol.ts"
import * as JournalEvent from "../src/JournalEvent.ts"
import * as Result from "../src/Result.ts"
import * as Strategy from "../src/Strategy.ts"
import { strategyEncoded } from "./support/arbitraries.ts"
import { journal } from "./support/events.ts"

// The reference: the schema's own decoder and encoder, with no fast path.
const slowDecode = Schema.decodeUnknownSync(JournalEvent.JournalEvent)
const slowEncode = Schema.encodeSync(JournalEvent.JournalEvent)

type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false }
const attempt = (f: () => unknown): Outcome => {
  try {
    return { ok: true, value: f() }
  } catch {
    return { ok: false }
  }
}

/** The fast decoder must agree with the schema's: both fail, or both give equal values. */
const agrees = (input: unknown, where: string) => {
  const fast = attempt(() => JournalEvent.decodeSync(input))
  const slow = attempt(() => slowDecode(input))
  assert.strictEqual(fast.ok, slow.ok, `${where}: fast ${fast.ok ? "accepts" : "rejects"}, schema ${slow.ok ? "accepts" : "rejects"}`)
  if (fast.ok && slow.ok) assert.deepStrictEqual(fast.value, slow.value, where)
}

const strategy = (encoded: unknown) => Strategy.decodeSync(encoded)

/** Events with every optional field, on top of the random journals. */
const rich = (s: Strategy.Strategy): Array<JournalEvent.JournalEvent> => [
  JournalEvent.make("RunResumed", { at: 5 }),
  JournalEvent.make("AnalysisCompleted", {
    analysis: { summary: "s", metricNotes: "m", dataNotes: "d", risks: ["r", "q"], notes: { n: { deep: [1, null, "x"] } } },
    at: 5
  }),
  JournalEvent.make("NodeProposed", { node: { id: "n1", parent: "root", strategy: s, fingerprint: "f", proposedAt: 1, prior: 0.25 }, at: 1 }),
  JournalEvent.make("NodeAdmitted", { nodeId: "n1", estimate: Cost.make({ gpuSeconds: 3, dollars: 0.5 }), at: 2 }),
  JournalEvent.make("JobSubmitted", { nodeId: "n1", job: { backend: "local", id: "j1", data: { pid: 4, host: "h", deep: [1, { a: null }] } }, at: 3 }),
  JournalEvent.make("JobState", { nodeId: "n1", state: "Pending", reason: "Priority", at: 3 }),
  JournalEvent.make("JobState", { nodeId: "n1", state: "Running", at: 4 }),
  JournalEvent.make("JobProgress", { nodeId: "n1", fraction: 0.5, message: "half", metrics: [{ step: 3, split: "dev", name: "loss", value: 0.2 }], at: 4 }),
  JournalEvent.make("NodeFinished", {
    nodeId: "n1",
    outcome: "Succeeded",
    result: {
      ...Result.success({ acc: 0.9 }, 0.9, Cost.make({ gpuSeconds: 1 })),
      curves: [{ step: 1, split: "dev", name: "acc", value: 0.5 }],
      artifacts: [{ name: "model", path: "out/model" }],
      summary: "ok",
      reusedFrom: "r/n2"
    },
    at: 6
  }),
  JournalEvent.make("NodeFinished", {
    nodeId: "n2",
    outcome: "Failed",
    result: Result.failure("OOM", "out of memory", { logTail: ["a", "b"], exitCode: 137, retryable: true }),
    reason: "r",
    at: 7
  }),
  JournalEvent.make("NodeExhausted", { nodeId: "root", at: 8 }),
  JournalEvent.make("InsightsDistilled", {
    insights: [{ id: "i", text: "t", evidence: ["n1"], createdAt: 1, data: { path: "x", value: 1 } }],
    at: 9
  }),
  JournalEvent.make("BudgetCharged", { nodeId: "n1", cost: Cost.make({ inputTokens: 5 }), reason: "trial", at: 10 }),
  JournalEvent.make("RunFinished", { reason: "done", bestNode: "n1", at: 11 })
]

/** Every path to a value inside a JSON value. */
const paths = (value: unknown, prefix: ReadonlyArray<string | number> = []): Array<ReadonlyArray<string | number>> => {
  const out: Array<ReadonlyArray<string | number>> = [prefix]
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])))
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]))
  }
  return out
}

const DELETE = Symbol("delete")
/** Replacements that break (or sometimes keep) each kind of check: types, signs, integers, emptiness, literals. */
const replacements: ReadonlyArray<unknown> = [DELETE, null, "", "x", "Succeeded", "lora", -1, 0, 0.5, 1.5, 2 ** 60, true, [], {}, [1], { a: 1 }]

const mutate = (value: unknown, path: ReadonlyArray<string | number>, replacement: unknown): unknown => {
  const copy = structuredClone(value)
  if (path.length === 0) return replacement === DELETE ? undefined : replacement
  let cur: any = copy
  for (const key of path.slice(0, -1)) cur = cur[key]
  const last = path[path.length - 1]!
  if (replacement === DELETE) {
    if (Array.isArray(cur)) cur.splice(Number(last), 1)
    else delete cur[last]
  } else cur[last] = replacement
  return copy
}

describe("canonical fast paths", () => {
  it("cover every field of the schemas they stand in for", () => {
    assert.deepStrictEqual(drifted, [])
  })

  it("decode and encode canonical events as the schema does", () => {
    fc.assert(
      fc.property(strategyEncoded, journal, (s, { events }) => {
        for (const event of [...rich(strategy(s)), ...events]) {
          const encoded = slowEncode(event)
          assert.deepStrictEqual(JournalEvent.encode(event), encoded)
          const json = JSON.parse(JSON.stringify(encoded))
          agrees(json, event._tag)
          assert.deepStrictEqual(JournalEvent.decodeSync(json), slowDecode(json))
        }
      }),
      { numRuns: 60 }
    )
  })

  it("take the fast path for every tag but RunStarted: a canonical row decodes and encodes to itself", () => {
    const s = strategy({ data: { sources: [{ name: "a" }] }, training: { learningRate: 1e-3, epochs: 1, batchSize: 8 } })
    const tags = new Set<string>()
    for (const event of rich(s)) {
      const json = JSON.parse(JSON.stringify(slowEncode(event)))
      assert.strictEqual(JournalEvent.decodeSync(json), json, event._tag)
      assert.strictEqual(JournalEvent.encode(json), json, event._tag)
      tags.add(event._tag)
    }
    assert.deepStrictEqual([...tags].sort(), Object.keys(JournalEvent.JournalEvent.cases).filter((t) => t !== "RunStarted").sort())
  })

  it("agree with the schema on rows with a field removed, retyped or out of range", () => {
    fc.assert(
      fc.property(strategyEncoded, fc.nat(), fc.nat(), (s, pick, r) => {
        for (const event of rich(strategy(s))) {
          const json = JSON.parse(JSON.stringify(slowEncode(event)))
          const all = paths(json)
          const path = all[pick % all.length]!
          const replacement = replacements[r % replacements.length]
          agrees(mutate(json, path, replacement), `${event._tag} at ${path.join(".")} := ${String(replacement)}`)
        }
      }),
      { numRuns: 400 }
    )
  })

  it("agree with the schema on every single-field change of a rich event", () => {
    for (const event of rich(strategy({ data: { sources: [{ name: "a", maxExamples: 3 }] }, training: { learningRate: 1e-3, epochs: 1, batchSize: 8, lora: { rank: 4, targetModules: ["q"] } } }))) {
      const json = JSON.parse(JSON.stringify(slowEncode(event)))
      for (const path of paths(json)) {
        for (const replacement of replacements) agrees(mutate(json, path, replacement), `${event._tag} at ${path.join(".")} := ${String(replacement)}`)
      }
    }
  })

  it("Strategy.is answers as the schema's guard, on strategies with every single field changed", () => {
    const schemaIs = Schema.is(Strategy.Strategy)
    const rich = strategy({
      data: { sources: [{ name: "a", maxExamples: 3, split: "train" }], numExamples: 10, synthesis: { method: "m", count: 2, params: {} } },
      training: { learningRate: 1e-3, epochs: 1, batchSize: 8, lora: { rank: 4, alpha: 8, dropout: 0, targetModules: ["q"] }, maxSeqLength: 512 },
      evaluation: { splits: ["dev"], metric: "acc", maxExamples: 5 },
      rationale: "r"
    })
    let rejected = 0
    for (const path of paths(rich)) {
      for (const replacement of replacements) {
        const u = mutate(rich, path, replacement)
        assert.strictEqual(Strategy.is(u), schemaIs(u), `at ${path.join(".")} := ${String(replacement)}`)
        if (!schemaIs(u)) rejected++
      }
    }
    assert.isAbove(rejected, 100, "the changes reach the checks")
    // valid but not canonical (a defaulted key missing, an extra key): the schema's answer
    const { rationale: _, ...bare } = rich
    assert.strictEqual(Strategy.is(bare), schemaIs(bare))
    assert.strictEqual(Strategy.is({ ...rich, extra: 1 }), schemaIs({ ...rich, extra: 1 }))
    assert.isTrue(Strategy.is(rich))
    assert.isFalse(Strategy.is({ ...rich, training: { ...rich.training, learningRate: -1 } }))
  })

  it("send values that are not plain JSON objects to the schema", () => {
    agrees(undefined, "undefined")
    agrees(null, "null")
    agrees([], "array")
    agrees({ _tag: "Nope", at: 1 }, "unknown tag")
    agrees({ _tag: "RunResumed", at: 1, extra: 2 }, "an extra key")
    agrees(Object.assign(Object.create({ inherited: 1 }), { _tag: "RunResumed", at: 1 }), "a class instance")
    agrees(JSON.parse('{"_tag":"RunResumed","at":1,"__proto__":{"x":1}}'), "a __proto__ key")
    // an analysis in an older shape: defaulted keys missing (the schema fills them), an extra key
    agrees({ _tag: "AnalysisCompleted", analysis: { summary: "s" }, at: 1 }, "an analysis without its defaulted keys")
    agrees({ _tag: "AnalysisCompleted", analysis: { summary: "s", metricNotes: "", dataNotes: "", risks: [], notes: {}, more: 1 }, at: 1 }, "an analysis with an extra key")
  })

  it("decode result files and metric lines as the schema does, also mutated ones", () => {
    const slowResult = Schema.decodeUnknownSync(Result.JobResultFile)
    const slowMetric = Schema.decodeUnknownSync(Result.MetricPoint)
    const same = (fast: () => unknown, slow: () => unknown, where: string) => {
      const f = attempt(fast)
      const s = attempt(slow)
      assert.strictEqual(f.ok, s.ok, `${where}: fast ${f.ok ? "accepts" : "rejects"}, schema ${s.ok ? "accepts" : "rejects"}`)
      if (f.ok && s.ok) assert.deepStrictEqual(f.value, s.value, where)
    }
    const viaResult = (u: unknown) => () => {
      const exit = JobProtocol.decodeResultFile(u)
      if (exit._tag === "Failure") throw new Error(String(exit.cause))
      return exit.value
    }
    const viaLine = (u: unknown) => () => {
      const event = JobProtocol.parseLine(`TREX_METRIC ${JSON.stringify(u)}`)
      if (event === undefined) throw new Error("not a metric")
      return event
    }
    const files: ReadonlyArray<unknown> = [
      { metrics: { bleu: 31.5, loss: 0.25 }, primary: 31.5, artifacts: [{ name: "model", path: "out/model" }], summary: "ok" },
      { metrics: {}, artifacts: [] },
      { metrics: { acc: 0.5 } }
    ]
    let checked = 0
    for (const file of files) {
      for (const path of paths(file)) {
        for (const replacement of replacements) {
          const input = mutate(file, path, replacement)
          same(viaResult(input), () => slowResult(input), `result.json at ${path.join(".")} := ${String(replacement)}`)
          checked++
        }
      }
    }
    const point = { step: 3, split: "dev", name: "loss", value: 0.25 }
    for (const path of paths(point)) {
      for (const replacement of replacements) {
        const input = mutate(point, path, replacement)
        same(viaLine(input), () => ({ _tag: "Metric", point: slowMetric(input) }), `metric at ${path.join(".")} := ${String(replacement)}`)
        checked++
      }
    }
    assert.isAbove(checked, 200)
    // the fast path returns the file itself: nothing is copied
    const canonical = files[0]
    const decoded = JobProtocol.decodeResultFile(canonical)
    assert.strictEqual(decoded._tag === "Success" ? decoded.value : undefined, canonical)
  })
})
