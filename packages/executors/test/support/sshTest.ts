/**
 * What the SSH backend's test files share (SshBackend.test.ts, SshPool.test.ts): the test sshd of
 * scripts/services/start-sshd.sh as a host, a remote root per test file (the test host is this machine), specs,
 * and watches that wait for a job's state. Neither file stops the shared sshd (a host that goes down is a relay or
 * an sshd of the pool file's own), so the two run side by side.
 */
import type { Backend } from "@trex/core"
import { Deferred, Effect, Stream } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import type * as SshBackend from "../../src/SshBackend.ts"

const env = (k: string, d: string) => process.env[k] ?? d
const keyDir = "/var/lib/trex-test-ssh"
export const host = {
  host: env("TREX_TEST_SSH_HOST", "127.0.0.1"),
  port: Number(env("TREX_TEST_SSH_PORT", "2222")),
  username: env("TREX_TEST_SSH_USER", "sdktest"),
  privateKeyPath: env("TREX_TEST_SSH_KEY", `${keyDir}/id_ed25519`),
  knownHostsPath: env("TREX_TEST_SSH_KNOWN_HOSTS", `${keyDir}/known_hosts`),
  gpus: ["0", "1"],
  slots: 2
} satisfies SshBackend.Host
export const remoteRoot = `/tmp/trex-ssh-test-${process.pid}`
export const local = Fs.mkdtempSync(Path.join(Os.tmpdir(), "trex-ssh-"))
/** For `afterAll`: this file's local files and its jobs' directories removed. */
export const cleanUp = () => {
  Fs.rmSync(local, { recursive: true, force: true })
  Fs.rmSync(remoteRoot, { recursive: true, force: true }) // the test host is this machine
}
export const config: SshBackend.Config = { hosts: [host], remoteRoot, pollInterval: "150 millis", killGraceSeconds: 2 }

/** Fail loudly, with the way out, when the test sshd is not there. */
export const sshdUp = Effect.callback<void>((resume) => {
  const socket = Net.connect(host.port!, host.host, () => {
    socket.destroy()
    resume(Effect.void)
  })
  socket.once("error", (e) =>
    resume(Effect.die(new Error(`no sshd on ${host.host}:${host.port} (${e.message}): run \`sudo scripts/services/start-all.sh sshd\` first`)))
  )
})

let counter = 0
export const spec = (argv: ReadonlyArray<string>, extra: Partial<Backend.JobSpec> = {}): Backend.JobSpec => ({
  name: "t",
  argv,
  env: {},
  files: [],
  resources: { gpus: 0, cpus: 1 },
  labels: { run: "ssh-test", node: `n${++counter}` },
  ...extra
})

export { untilRunning } from "./queued.ts"

export const exitOf = (events: ReadonlyArray<Backend.JobEvent>) => events.at(-1) as Backend.JobExit

/** A job that runs until a file `go` appears in its directory (at most a minute), then reports 1. */
export const untilGo = ["sh", "-c", `i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo '{"metrics":{},"primary":1}' > result.json`]
