import { assert, describe, it } from "@effect/vitest"
import { Result } from "@trex/core"

const lineOf = (logTail: ReadonlyArray<string>) => Result.errorLine(Result.failure("Crash", "exited with code 1", { logTail }).failure!)

describe("Result.errorLine", () => {
  it("is a traceback's last line", () => {
    assert.strictEqual(
      lineOf(["Traceback (most recent call last):", '  File "train.py", line 2, in <module>', "ModuleNotFoundError: No module named 'transformerz'", ""]),
      "ModuleNotFoundError: No module named 'transformerz'"
    )
  })

  it("is a JavaScript error's line, not its stack, its fields or the runtime's version after it", () => {
    // as a trainer that prints its error's stack writes it
    assert.strictEqual(
      lineOf([
        "[quickstart] loading base model",
        "quickstart trial failed: Error: EEXIST: file already exists, mkdir '/models/cache'",
        "    at mkdirSync (node:fs:1372:26)",
        "    at async main (file:///task/train.ts:37:20)"
      ]),
      "quickstart trial failed: Error: EEXIST: file already exists, mkdir '/models/cache'"
    )
    // as Node prints an error nothing caught
    assert.strictEqual(
      lineOf([
        "Error: ENOENT: no such file or directory, open '/data/train.jsonl'",
        "    at Object.openSync (node:fs:573:18) {",
        "  errno: -2,",
        "  code: 'ENOENT',",
        "}",
        "",
        "Node.js v24.21.0"
      ]),
      "Error: ENOENT: no such file or directory, open '/data/train.jsonl'"
    )
    assert.strictEqual(lineOf(["Error: no GPU found {", "  code: 'NO_GPU'", "}"]), "Error: no GPU found")
  })

  it("is undefined for an empty log, and a log's last line when it holds frames alone", () => {
    assert.strictEqual(lineOf([]), undefined)
    assert.strictEqual(lineOf(["", "  "]), undefined)
    assert.strictEqual(lineOf(["    at a (x.js:1:1)", "    at b (x.js:2:1)"]), "at b (x.js:2:1)")
  })
})
