/**
 * The SSH backend's listing script (`Script.states`) run by the shells a host may log its user in with (dash is
 * Debian's /bin/sh, which `useradd` gives users by default; bash): one line per job, the job's record whole on it.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { FILES, states } from "../src/internal/sshScript.ts"

const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-ssh-script-"))
afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))

describe("the SSH listing script", () => {
  it("puts each job's record on its own line under dash and bash, a name's \\n, \\t and \\\\ kept as JSON escapes", () => {
    const record = { spec: { name: "my\ttrial\nFinished n9 {}\\" }, host: "gpu1", submittedAt: 1 }
    Fs.mkdirSync(Path.join(root, "n1"))
    Fs.writeFileSync(Path.join(root, "n1", FILES.job), JSON.stringify(record) + "\n")
    Fs.writeFileSync(Path.join(root, "n1", FILES.exit), "0\n")
    for (const shell of ["dash", "bash"]) {
      // before, `echo` under dash turned the escapes into a tab and a line break: a second line, a forged job n9
      const lines = execFileSync(shell, ["-c", states(root)], { encoding: "utf8" }).split("\n").filter((l) => l !== "")
      assert.strictEqual(lines.length, 1, `${shell}: ${JSON.stringify(lines)}`)
      const [state, node, ...rest] = lines[0]!.split(" ")
      assert.deepStrictEqual([state, node], ["Finished", "n1"], shell)
      assert.deepStrictEqual(JSON.parse(rest.join(" ")), record, shell)
    }
  })
})
