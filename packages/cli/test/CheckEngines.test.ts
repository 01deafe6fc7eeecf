// `trex check` on the real engines scripts/services/ starts: the Slurm and Grid Engine clusters, the sshd and
// Docker Engine. Other test files stop and restart these engines, so this file runs after them, in a group of its
// own (vitest.config.ts); the rest of `trex check`'s tests are in Check.test.ts.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { findings, taskFile } from "./support/checkTask.ts"
import { trex } from "./support/cli.ts"

// Each test starts the CLI three to five times against an engine: 6-17 s on an idle machine, 65 s for the Slurm one in a
// clean-clone CI beside other work (load 12), past vitest's default of 60 s.
describe("trex check on the real engines", { timeout: 240_000 }, () => {
  it("on the real Slurm cluster: sbatch --test-only refuses a partition it lacks, naming the setting; a time limit over the partition's MaxTime fails, a partition DOWN warns; a job it can take passes", () => {
    const workDir = fs.mkdtempSync("/tmp/trex-check-slurm-")
    const recipe = `  command: ["/bin/true"]
  resources: { cpus: 1, timeLimitSeconds: 60 }`
    const bad = taskFile(recipe, `backend:\n  slurm: { workDir: ${workDir}, partition: nosuchpartition }\n`)
    const r = trex(["check", bad.file, "--backend", "slurm", "--json"])
    assert.strictEqual(r.status, 1, r.stderr)
    assert.isTrue(
      findings(r.stdout).some((f) => f.startsWith("fail ") && f.includes("backend.slurm.partition names a partition this cluster does not have")),
      findings(r.stdout).join("\n")
    )
    const good = taskFile(recipe, `backend:\n  slurm: { workDir: ${workDir} }\n`)
    const g = trex(["check", good.file, "--backend", "slurm", "--json"])
    assert.strictEqual(g.status, 0, g.stdout)
    assert.isTrue(findings(g.stdout).some((f) => /^ok backend: slurm answers: \d+ slots?, \d+ GPUs?, \d+ in use$/.test(f)), g.stdout)
    assert.deepStrictEqual(fs.readdirSync(workDir), [], "the test script is removed")
    // a time limit over the partition's MaxTime: sbatch --test-only says when it would start, and Slurm would keep it pending
    execFileSync("scontrol", ["create", "PartitionName=trexcheck", "Nodes=localhost", "MaxTime=1", "State=UP"])
    try {
      const long = taskFile(`  command: ["/bin/true"]
  resources: { cpus: 1, timeLimitSeconds: 600 }`, `backend:\n  slurm: { workDir: ${workDir}, partition: trexcheck }\n`)
      const l = trex(["check", long.file, "--backend", "slurm", "--json"])
      assert.strictEqual(l.status, 1, l.stdout)
      assert.include(findings(l.stdout), "fail job: a trial's time limit (600 s, recipe.resources.timeLimitSeconds) is over partition trexcheck's MaxTime (00:01:00): Slurm would keep its jobs pending (PartitionTimeLimit) and never start them; lower the limit, or name another partition (backend.slurm.partition)")
      const short = taskFile(recipe, `backend:\n  slurm: { workDir: ${workDir}, partition: trexcheck }\n`)
      const s = trex(["check", short.file, "--backend", "slurm", "--json"])
      assert.strictEqual(s.status, 0, s.stdout)
      assert.isFalse(findings(s.stdout).some((f) => f.includes("trexcheck")), s.stdout)
      // a partition that is DOWN takes jobs and starts none
      execFileSync("scontrol", ["update", "PartitionName=trexcheck", "State=DOWN"])
      const down = trex(["check", short.file, "--backend", "slurm", "--json"])
      assert.strictEqual(down.status, 0, down.stdout)
      assert.include(findings(down.stdout), "warn job: partition trexcheck is DOWN: Slurm takes jobs and starts none until it is up again (`scontrol show partition trexcheck`; backend.slurm.partition)")
    } finally {
      execFileSync("scontrol", ["delete", "PartitionName=trexcheck"]) // (no job ever ran in it: trex check submits none)
    }
  })

  it("on the real Grid Engine cluster: qsub -w v refuses a queue it lacks; a job it can take passes", () => {
    const workDir = fs.mkdtempSync("/tmp/trex-check-ge-")
    const recipe = `  command: ["/bin/true"]
  resources: { cpus: 1, timeLimitSeconds: 60 }`
    const bad = taskFile(recipe, `backend:\n  gridengine: { workDir: ${workDir}, queue: nosuch.q }\n`)
    const r = trex(["check", bad.file, "--backend", "gridengine", "--json"])
    assert.strictEqual(r.status, 1, r.stderr)
    assert.isTrue(
      findings(r.stdout).some((f) => f.startsWith("fail job: qsub -w v: ") && f.includes(`unknown queue "nosuch.q"`) && f.includes("backend.gridengine: queue")),
      findings(r.stdout).join("\n")
    )
    const good = taskFile(recipe, `backend:\n  gridengine: { workDir: ${workDir} }\n`)
    const g = trex(["check", good.file, "--backend", "gridengine", "--json"])
    assert.strictEqual(g.status, 0, g.stdout)
    assert.isFalse(findings(g.stdout).some((f) => f.startsWith("fail") || f.startsWith("warn")), g.stdout)
    assert.deepStrictEqual(fs.readdirSync(workDir), [], "the test script is removed")
  })

  it("over SSH to the real sshd: a command the host lacks, and a remoteRoot its user cannot write, named by host; a job it can run passes", () => {
    const env = (k: string, d: string) => process.env[k] ?? d
    const host = `{ host: ${env("TREX_TEST_SSH_HOST", "127.0.0.1")}, port: ${env("TREX_TEST_SSH_PORT", "2222")}, username: ${env("TREX_TEST_SSH_USER", "sdktest")}, ` +
      `privateKeyPath: ${env("TREX_TEST_SSH_KEY", "/var/lib/trex-test-ssh/id_ed25519")}, knownHostsPath: ${env("TREX_TEST_SSH_KNOWN_HOSTS", "/var/lib/trex-test-ssh/known_hosts")} }`
    const ssh = (remoteRoot: string) => `backend:\n  ssh:\n    remoteRoot: ${remoteRoot}\n    hosts: [${host}]\n`
    const bad = taskFile(`  command: ["trainz"]`, ssh("/proc/trex-check"))
    const r = trex(["check", bad.file, "--backend", "ssh", "--json"])
    assert.strictEqual(r.status, 1, r.stderr)
    const found = findings(r.stdout)
    assert.isTrue(found.some((f) => /^fail job: \S+: remoteRoot \/proc\/trex-check cannot be made or written by \w+: name a directory it can write \(backend\.ssh\.remoteRoot\)$/.test(f)), found.join("\n"))
    assert.isTrue(found.some((f) => /^fail job: \S+: the job's command trainz is not on the PATH a job gets there/.test(f)), found.join("\n"))
    const root = fs.mkdtempSync("/tmp/trex-check-ssh-")
    fs.chmodSync(root, 0o777)
    const good = taskFile(`  command: ["sh", "-c", "true"]`, ssh(root))
    const g = trex(["check", good.file, "--backend", "ssh", "--json"])
    assert.strictEqual(g.status, 0, g.stdout)
    assert.isFalse(findings(g.stdout).some((f) => f.startsWith("fail") || f.startsWith("warn")), g.stdout)
  })

  it("on the real Docker Engine: an image the engine lacks is a warning (a trial will pull it); one it has passes", () => {
    const recipe = (image: string) => `  command: ["true"]\n  image: ${image}`
    const missing = taskFile(recipe("trex-check/nosuch:1"))
    const r = trex(["check", missing.file, "--backend", "docker", "--json"])
    assert.strictEqual(r.status, 0, r.stdout)
    assert.isTrue(findings(r.stdout).some((f) => f.startsWith("warn job: image trex-check/nosuch:1 is not on the engine")), r.stdout)
    const present = taskFile(recipe(process.env["TREX_TEST_DOCKER_IMAGE"] ?? "local/busybox:latest"))
    const p = trex(["check", present.file, "--backend", "docker", "--json"])
    assert.strictEqual(p.status, 0, p.stdout)
    assert.isFalse(findings(p.stdout).some((f) => f.startsWith("warn job") || f.startsWith("fail")), p.stdout)
  })
})
