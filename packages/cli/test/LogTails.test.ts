import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Task } from "@trex/core"
import { Schema } from "effect"
import * as LogTails from "../src/internal/logTails.ts"

describe("the report's log tails, of a job that printed at volume", () => {
  it("a tqdm bar rewritten with \\r for 20 KB shows its last state; an enormous line its end; invalid bytes are replaced", () => {
    const jobs = fs.mkdtempSync(path.join(os.tmpdir(), "trex-tails-"))
    try {
      fs.mkdirSync(path.join(jobs, "n1"))
      let bar = "loading\n"
      for (let i = 1; i <= 400; i++) bar += `\rTraining: ${i}/400 [00:10<00:00, loss=0.${i}]`
      fs.writeFileSync(path.join(jobs, "n1", "stderr.log"), bar)
      fs.mkdirSync(path.join(jobs, "n2"))
      fs.writeFileSync(path.join(jobs, "n2", "stdout.log"), Buffer.concat([Buffer.from("x".repeat(100_000) + "END"), Buffer.from([0xff, 0x0a])]))
      const tails = LogTails.read(jobs, ["n1", "n2", "n3"])
      assert.deepStrictEqual(tails["n1"], ["Training: 400/400 [00:10<00:00, loss=0.400]"])
      assert.deepStrictEqual(tails["n2"], [`…${"x".repeat(1996)}END\uFFFD`])
      assert.isUndefined(tails["n3"])
    } finally {
      fs.rmSync(jobs, { recursive: true, force: true })
    }
  })
})

describe("the log tails shown from a shell without the task's secrets", () => {
  it("a local job's own logs are left out, saying why; the log the controller kept of another backend's job (secrets taken out as it was written) is shown", () => {
    const jobs = fs.mkdtempSync(path.join(os.tmpdir(), "trex-tails-"))
    const name = `TREX_TEST_TOKEN_${process.pid}`
    const task = Schema.decodeUnknownSync(Task.Task)({ name: "t", objective: "o", metric: { name: "acc", direction: "maximize" }, recipe: { command: ["train"], secretEnv: [name] } })
    try {
      fs.mkdirSync(path.join(jobs, "n1"))
      fs.writeFileSync(path.join(jobs, "n1", "trex-job.log"), `epoch 1\nlogin <secret ${name}>\n`)
      assert.deepStrictEqual(LogTails.shown(jobs, ["n1"], task), { tails: { n1: ["epoch 1", `login <secret ${name}>`] } })
      fs.mkdirSync(path.join(jobs, "n2"))
      fs.writeFileSync(path.join(jobs, "n2", "stdout.log"), "login tok_4bcdefgh\n")
      const both = LogTails.shown(jobs, ["n1", "n2"], task)
      assert.deepStrictEqual(both.tails, { n1: ["epoch 1", `login <secret ${name}>`] })
      assert.include(both.withheld ?? "", `the task's recipe.secretEnv names ${name}, not set in this shell`)
    } finally {
      fs.rmSync(jobs, { recursive: true, force: true })
    }
  })
})
