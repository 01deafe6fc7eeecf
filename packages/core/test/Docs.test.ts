import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { JsonSchema, Schema } from "effect"
import fc from "fast-check"
import { parse as parseYaml } from "yaml"
import { generate } from "../../../scripts/gen-schemas.ts"
import * as ExperimentNode from "../src/ExperimentNode.ts"
import * as JournalEvent from "../src/JournalEvent.ts"
import * as Result from "../src/Result.ts"
import * as Strategy from "../src/Strategy.ts"
import { strategyEncoded, taskEncoded } from "./support/arbitraries.ts"
import { journal } from "./support/events.ts"
import { repoRoot } from "./support/journal.ts"

type Node = Record<string, unknown>

const KEYWORDS = new Set([
  "$schema", "title", "description", "$defs", "$ref", "type", "enum", "anyOf", "properties", "required",
  "additionalProperties", "items", "minItems", "minLength", "minimum", "maximum", "exclusiveMinimum"
])

/**
 * A validator for the JSON Schema keywords our generated schemas use (an unknown keyword fails the test,
 * so a schema can never pass by being misunderstood). Returns the first violation, or undefined.
 */
const validate = (root: Node, node: Node, value: unknown, at = "$"): string | undefined => {
  for (const k of Object.keys(node)) if (!KEYWORDS.has(k)) return `unsupported keyword ${k} at ${at}`
  if (typeof node["$ref"] === "string") {
    const target = (root["$defs"] as Record<string, Node>)[(node["$ref"] as string).replace("#/$defs/", "")]
    if (target === undefined) return `dangling $ref ${node["$ref"]}`
    return validate(root, target, value, at)
  }
  if (Array.isArray(node["anyOf"])) {
    return (node["anyOf"] as Array<Node>).some((n) => validate(root, n, value, at) === undefined) ? undefined : `${at}: no anyOf branch matches`
  }
  if (Array.isArray(node["enum"]) && !(node["enum"] as Array<unknown>).includes(value)) return `${at}: not one of ${JSON.stringify(node["enum"])}`
  const type = node["type"]
  const isObject = value !== null && typeof value === "object" && !Array.isArray(value)
  const ok = type === undefined ||
    (type === "string" && typeof value === "string") ||
    (type === "number" && typeof value === "number") ||
    (type === "integer" && Number.isInteger(value)) ||
    (type === "boolean" && typeof value === "boolean") ||
    (type === "null" && value === null) ||
    (type === "array" && Array.isArray(value)) ||
    (type === "object" && isObject)
  if (!ok) return `${at}: expected ${type}, got ${JSON.stringify(value)}`
  if (typeof value === "string" && typeof node["minLength"] === "number" && [...value].length < node["minLength"]) return `${at}: too short`
  if (typeof value === "number") {
    if (typeof node["minimum"] === "number" && value < node["minimum"]) return `${at}: below minimum`
    if (typeof node["maximum"] === "number" && value > node["maximum"]) return `${at}: above maximum`
    if (typeof node["exclusiveMinimum"] === "number" && value <= node["exclusiveMinimum"]) return `${at}: not above exclusiveMinimum`
  }
  if (Array.isArray(value)) {
    if (typeof node["minItems"] === "number" && value.length < node["minItems"]) return `${at}: too few items`
    if (node["items"] !== undefined) {
      for (let i = 0; i < value.length; i++) {
        const e = validate(root, node["items"] as Node, value[i], `${at}[${i}]`)
        if (e !== undefined) return e
      }
    }
  }
  if (isObject) {
    const obj = value as Record<string, unknown>
    const props = (node["properties"] as Record<string, Node> | undefined) ?? {}
    for (const r of (node["required"] as Array<string> | undefined) ?? []) if (!(r in obj)) return `${at}: missing ${r}`
    for (const [k, v] of Object.entries(obj)) {
      const sub: unknown = props[k] ?? node["additionalProperties"]
      if (sub === false) return `${at}.${k}: not allowed`
      if (sub !== undefined && sub !== true) {
        const e = validate(root, sub as Node, v, `${at}.${k}`)
        if (e !== undefined) return e
      }
    }
  }
  return undefined
}

const files = generate()
const schemaOf = (name: string) => JSON.parse(files[`docs/schemas/${name}.schema.json`]!) as Node
const assertValid = (name: string, value: unknown) => {
  const schema = schemaOf(name)
  const error = validate(schema, schema, value)
  assert.isUndefined(error, `${name}: ${JSON.stringify(value)}`)
}
const assertInvalid = (name: string, value: unknown) => {
  const schema = schemaOf(name)
  assert.isDefined(validate(schema, schema, value), `${name} accepted ${JSON.stringify(value)}`)
}

describe("Docs", () => {
  it("the committed schemas and task-file reference equal the generator's output", () => {
    const names = Object.keys(files).sort()
    assert.includeMembers(names, [
      "docs/task-file.md",
      ...["Task", "Strategy", "Result", "Cost", "Budget", "Insight", "NodeSpec", "JournalEvent"].map((n) => `docs/schemas/${n}.schema.json`)
    ])
    for (const file of names) {
      const committed = fs.readFileSync(path.join(repoRoot, file), "utf8")
      assert.strictEqual(committed, files[file], `${file} is stale: run node --conditions=@trex/source scripts/gen-schemas.ts`)
    }
  })

  it("every schema is valid JSON, draft 2020-12, titled, with resolvable references and known keywords", () => {
    for (const [file, text] of Object.entries(files)) {
      if (!file.endsWith(".schema.json")) continue
      const schema = JSON.parse(text) as Node
      assert.strictEqual(schema["$schema"], JsonSchema.META_SCHEMA_URI_DRAFT_2020_12, file)
      assert.strictEqual(schema["title"], path.basename(file, ".schema.json"))
      assert.isString(schema["description"])
      assert.isTrue(text.endsWith("}\n"), "stable formatting: a final newline")
      assert.strictEqual(text, `${JSON.stringify(schema, null, 2)}\n`)
      // walking any value exercises every keyword of the root; unknown keywords are reported
      assert.notMatch(validate(schema, schema, {}) ?? "", /unsupported keyword|dangling/)
    }
  })

  it("the Task schema accepts every task the decoder accepts, and refuses unknown keys", () => {
    fc.assert(fc.property(taskEncoded, (t) => assertValid("Task", t)), { numRuns: 200 })
    const quickstart = parseYaml(fs.readFileSync(path.join(repoRoot, "examples/quickstart/task.yaml"), "utf8"))
    assertValid("Task", quickstart)
    assertInvalid("Task", { ...quickstart, budgets: {} })
    assertInvalid("Task", { ...quickstart, metric: { name: "x", direction: "up" } })
    assertInvalid("Task", { ...quickstart, budget: { maxTrials: 0 } })
    assertInvalid("Task", { name: "t", objective: "o" })
  })

  it("the other schemas accept what the decoders produce", () => {
    fc.assert(fc.property(strategyEncoded, (s) => assertValid("Strategy", Strategy.encode(Strategy.decodeSync(s)))), { numRuns: 100 })
    assertInvalid("Strategy", { data: { sources: [] }, training: { learningRate: 0, epochs: 1, batchSize: 1 } })
    assertValid("Result", Result.failure("OOM", "oom", { exitCode: 137 }))
    assertValid("Result", Result.success({ a: 1 }, 1))
    fc.assert(
      fc.property(journal, ({ events }) => {
        for (const e of events) assertValid("JournalEvent", JournalEvent.encode(e))
        for (const e of events) if (e._tag === "NodeProposed") assertValid("NodeSpec", Schema.encodeSync(ExperimentNode.NodeSpec)(e.node))
        for (const e of events) if (e._tag === "InsightsDistilled") for (const i of e.insights) assertValid("Insight", i)
        for (const e of events) if (e._tag === "BudgetCharged") assertValid("Cost", e.cost)
      }),
      { numRuns: 30 }
    )
    assertValid("Budget", { maxTrials: 3, gpuHours: 0.5 })
    assertInvalid("Budget", { maxTrials: 1.5 })
    assertInvalid("Cost", { dollars: -1 })
    assertInvalid("JournalEvent", { _tag: "Nope", at: 0 })
  })

  it("the task-file reference documents every field with a description, and embeds the example", () => {
    const doc = files["docs/task-file.md"]!
    const rows = doc.split("\n").filter((l) => l.startsWith("| `"))
    assert.isAbove(rows.length, 80)
    for (const row of rows) {
      const cells = row.split(/(?<!\\)\|/).map((c) => c.trim())
      assert.isAbove(cells[4]!.length, 5, `no description in ${row}`)
    }
    for (const key of Object.keys(schemaOf("Task")["properties"] as Node)) assert.include(doc, `| \`${key}\` |`)
    assert.include(doc, fs.readFileSync(path.join(repoRoot, "examples/quickstart/task.yaml"), "utf8").trimEnd())
    assert.include(doc, "| `defaultStrategy.training.schedule` | `\"constant\"` \\| `\"linear\"` \\| `\"cosine\"` | default `\"cosine\"` |")
    assert.include(doc, "| `recipe.resources.cpus` | number > 0 | default `1` |")
  })
})
