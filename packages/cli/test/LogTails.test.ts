import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
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
