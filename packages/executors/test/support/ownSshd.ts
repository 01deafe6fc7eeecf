/**
 * An sshd of a test's own, configured as the test sshd of scripts/services/start-sshd.sh (its key, the same
 * authorized keys) but on a free port and with settings of the test's (e.g. `MaxSessions 2`), with a known_hosts
 * file for it and its log; stopped when the scope ends. Costs about 0.1 s. Its sessions' HOME is a directory that
 * does not exist, so that root's rc files (`pyenv init`, 2-3 s a session here) are not read. Used by the Docker
 * backend's `ssh://` tests and the CLI's.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { eventually } from "./eventually.ts"

/** The test sshd's port (start-all.sh reports it as TREX_TEST_SSH_PORT), whose configuration is copied. */
export const sshPort = Number(process.env["TREX_TEST_SSH_PORT"] ?? 2222)

/** The test sshd's client key and known_hosts (scripts/services/start-sshd.sh). */
export const sshKeys = "/var/lib/trex-test-ssh"

/**
 * An sshd with `settings` in place of the test sshd's `MaxSessions` line (and of its `Subsystem sftp` line, when
 * `settings` has one); its files in `dir`. `hostKeys` (private key
 * files) in place of the test sshd's host key when given: its known_hosts then knows the first of them.
 */
export const ownSshd = (dir: string, settings: string, hostKeys?: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const port = await new Promise<number>((resolve) => {
        const probe = Net.createServer().listen(0, "127.0.0.1", () => {
          const { port } = probe.address() as Net.AddressInfo
          probe.close(() => resolve(port))
        })
      })
      const conf = Path.join(dir, `sshd_config.${port}`)
      const base = Fs.readFileSync(`/etc/ssh/sdktest/sshd_config.${sshPort}`, "utf8")
      Fs.writeFileSync(
        conf,
        base.replace(/^Port .*$/m, `Port ${port}`).replace(/^PidFile .*$/m, `PidFile ${Path.join(dir, `sshd.${port}.pid`)}`).replace(/^MaxSessions .*$/m, `${settings}\nSetEnv HOME=/nonexistent`)
          .replace(/^Subsystem sftp .*$/m, (line) => (/^Subsystem sftp /m.test(settings) ? "" : line))
          .replace(/^HostKey .*$/m, (line) => hostKeys === undefined ? line : hostKeys.map((k) => `HostKey ${k}`).join("\n"))
      )
      const knownHosts = Path.join(dir, `known_hosts.${port}`)
      Fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${Fs.readFileSync(`${hostKeys?.[0] ?? "/etc/ssh/sdktest/host_ed25519"}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}\n`)
      const log = Path.join(dir, `sshd.${port}.log`)
      const child = spawn("/usr/sbin/sshd", ["-D", "-f", conf, "-E", log], { stdio: "ignore" })
      return { port, knownHosts, child, log }
    }),
    ({ child }) => Effect.sync(() => child.kill())
  ).pipe(
    Effect.tap(({ port }) =>
      eventually(`an sshd listens on 127.0.0.1:${port}`, Effect.promise(() =>
        new Promise<boolean>((resolve) => {
          const s = Net.connect(port, "127.0.0.1", () => resolve(s.end() !== undefined)).once("error", () => resolve(false))
        })), 10)
    )
  )

/** The logins an {@link ownSshd} accepted (its log says each). */
export const logins = (log: string) => (Fs.readFileSync(log, "utf8").match(/Accepted publickey for /g) ?? []).length
