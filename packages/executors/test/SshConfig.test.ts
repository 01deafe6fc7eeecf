/**
 * `~/.ssh/config` as the SSH backend and the Docker backend's `ssh://` engines read it (src/internal/sshConfig.ts):
 * compared with OpenSSH's own reading (`ssh -G`), then used against the test sshd of scripts/services/start-sshd.sh
 * (`sudo scripts/services/start-all.sh sshd`) with a config file in a HOME of the test's own.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Backend } from "@trex/core"
import { Effect, Logger } from "effect"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as SshConfig from "../src/internal/sshConfig.ts"
import * as SshBackend from "../src/SshBackend.ts"
import { cleanUp, config, host, local, spec, sshdUp } from "./support/sshTest.ts"
import { withEnv } from "./support/withEnv.ts"

afterAll(cleanUp)

let counter = 0
/** A HOME of the test's own: `.ssh/config` of `text`, and these other files of `.ssh` (name: contents). */
const homeWith = (text: string, files: Readonly<Record<string, string | Buffer>> = {}) => {
  const home = Fs.mkdtempSync(Path.join(local, `home${++counter}-`))
  Fs.mkdirSync(Path.join(home, ".ssh"))
  Fs.writeFileSync(Path.join(home, ".ssh", "config"), text, { mode: 0o600 })
  for (const [name, contents] of Object.entries(files)) Fs.writeFileSync(Path.join(home, ".ssh", name), contents, { mode: 0o600 })
  return home
}

/** The warnings an effect logs. */
const warningsOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const seen: Array<string> = []
    const a = yield* effect.pipe(Effect.provide(Logger.layer([Logger.make((o) => void (o.logLevel === "Warn" && seen.push(String(o.message))))])))
    return [a, seen] as const
  })

const user = "sdktest"

describe("~/.ssh/config", () => {
  it("reads Host blocks as OpenSSH does (ssh -G): patterns, negation, case, first value wins, = and quotes, comments, Include, Match", () => {
    const home = homeWith([
      "# before any Host: for every host",
      "Include conf.d/*.conf ~/.ssh/missing.conf",
      "IdentityFile ~/.ssh/id_global",
      "Host=alias1 other",
      "  HostName 127.0.0.1",
      "  Port 2222",
      "  User sdktest",
      "  IdentityFile ~/.ssh/k1",
      `  IdentityFile "~/.ssh/with space"`,
      "  UserKnownHostsFile ~/.ssh/kh1 ~/.ssh/kh2",
      "Host *.lab !bad.lab",
      "  User labuser # a comment",
      "  Port=2200",
      "  HostName should-not-win",
      "Host ALIAS2 ?.single",
      "  HostName %h.Example.com",
      "Match host *.example.com originalhost !a.single",
      "  User matched",
      "Match !user sdktest,matched localuser *",
      "  Port 2400",
      "Match all",
      "  IdentityFile ~/.ssh/k_all",
      "Host *",
      "  User fallback",
      "  Port 2022",
      "  IdentityFile ~/.ssh/kall",
      ""
    ].join("\n"))
    // included in place, sorted; a Host line in one holds within that file only; the first value obtained wins
    Fs.mkdirSync(Path.join(home, ".ssh", "conf.d"))
    Fs.writeFileSync(Path.join(home, ".ssh", "conf.d", "b.conf"), "Host nomatch\n  User wrong\n")
    Fs.writeFileSync(Path.join(home, ".ssh", "conf.d", "a.conf"), "Host inc1 alias1\n  Port 2300\n  HostName Inc.Example\nHost inc1\n  User incuser\n  Include inner/*\n")
    Fs.mkdirSync(Path.join(home, ".ssh", "inner"))
    Fs.writeFileSync(Path.join(home, ".ssh", "inner", "x"), "IdentityFile ~/.ssh/inner_key\n")
    const file = Path.join(home, ".ssh", "config")
    const me = SshConfig.here()
    for (const name of ["alias1", "other", "x.lab", "bad.lab", "alias2", "ALIAS2", "Alias1", "a.single", "ab.single", "inc1", "nomatch"]) {
      const out = execFileSync("ssh", ["-G", "-F", file, name], { env: { ...process.env, HOME: home }, stdio: ["ignore", "pipe", "ignore"] }).toString("utf8")
      const of = (key: string) => out.split("\n").filter((l) => l.startsWith(`${key} `)).map((l) => l.slice(key.length + 1))
      const ours = SshConfig.forHost(name, {}, { home, user: me.user })
      assert.deepStrictEqual(
        [ours.hostName ?? name.toLowerCase(), ours.user ?? me.user, String(ours.port ?? 22), ours.identityFiles.map((f) => f.replace(home, "~"))],
        [of("hostname")[0], of("user")[0], of("port")[0], of("identityfile")],
        name
      )
      // ssh -G expands ~ by the passwd entry's home, not $HOME
      const theirs = of("userknownhostsfile")[0]!.split(" ").map((f) => f.replace(/^\/[^ ]*\/\.ssh\//, "~/.ssh/"))
      assert.deepStrictEqual(ours.knownHostsFiles?.map((f) => f.replace(home, "~")) ?? ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"], theirs, name)
      assert.deepStrictEqual(ours.warnings, [])
    }
  })

  it("says what it cannot honour, naming the file and line: Include, Match, ProxyJump, StrictHostKeyChecking other than yes, a bad Port", () => {
    const file = "/home/u/.ssh/config"
    const lines = SshConfig.parse([
      "Include ~/.ssh/config.d/*",
      "Host gpu1",
      "  ProxyJump bastion",
      "  StrictHostKeyChecking accept-new",
      "  Port twenty-two",
      "Match exec true",
      "  User nobody",
      "Host other",
      "  ProxyCommand ssh -W %h:%p bastion",
      "  Include not-for-gpu1",
      "Host gpu1",
      "  StrictHostKeyChecking yes",
      "  User me"
    ].join("\n"), file)
    const s = SshConfig.settingsFor(lines, "gpu1", { home: "/home/u", user: "u" })
    assert.strictEqual(s.user, "me", "nothing under Match is applied")
    assert.strictEqual(s.port, undefined)
    assert.deepStrictEqual(s.warnings.map((w) => w.split(": ")[0] + ": " + w.split(": ")[1]!.split(" ")[0]), [
      `${file}:1: Include`,
      `${file}:3: ProxyJump`,
      `${file}:4: StrictHostKeyChecking`,
      `${file}:5: Port`,
      `${file}:6: Match`
    ])
    assert.include(s.warnings[1], "the connection goes straight to the host, not through bastion")
    assert.include(s.warnings[2], "host keys are always checked against known_hosts")
    assert.deepStrictEqual(SshConfig.settingsFor(SshConfig.parse("Host *\n  StrictHostKeyChecking yes\n  ProxyJump none\n", file), "gpu1", { home: "/h", user: "u" }).warnings, [])
  })
})

describe("SshBackend with ~/.ssh/config", () => {
  const key = Fs.readFileSync(host.privateKeyPath)
  const known = Fs.readFileSync(host.knownHostsPath)

  it.live("a host named by its Host alias gets HostName, Port, User, IdentityFile (~) and UserKnownHostsFile from it; a job runs", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const home = homeWith(
        [
          "Host trex-alias",
          `  HostName ${host.host}`,
          `  Port ${host.port}`,
          `  User ${user}`,
          "  IdentityFile ~/.ssh/missing_key",
          "  IdentityFile ~/.ssh/test_key",
          "  UserKnownHostsFile ~/.ssh/test_known_hosts",
          "Host *",
          "  HostName 192.0.2.1",
          "  Port 1",
          "  User nobody",
          ""
        ].join("\n"),
        { test_key: key, test_known_hosts: known }
      )
      const backend = yield* withEnv({ HOME: home }, SshBackend.make({ ...config, hosts: [{ host: "trex-alias", slots: 1 }] }))
      const exit = yield* Backend.awaitExit(backend, yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":1}' > result.json`])))
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
    })))

  it.live("explicit settings win over the file; what it cannot honour is a warning naming the line", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const home = homeWith(["Host trex-alias", `  HostName ${host.host}`, "  Port 1", "  User nobody", "  ProxyJump bastion", "  IdentityFile ~/.ssh/no_such_key", ""].join("\n"))
      const [backend, warnings] = yield* warningsOf(withEnv(
        { HOME: home },
        SshBackend.make({ ...config, hosts: [{ host: "trex-alias", port: host.port, username: user, privateKeyPath: host.privateKeyPath, knownHostsPath: host.knownHostsPath }] })
      ))
      assert.deepStrictEqual(warnings.length, 1, warnings.join("\n"))
      assert.include(warnings[0], `trex-alias: ${home}/.ssh/config:5: ProxyJump is not supported: the connection goes straight to the host, not through bastion`)
      const exit = yield* Backend.awaitExit(backend, yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":2}' > result.json`])))
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
    })))

  it.live("an IdentityFile, or the default known_hosts, that cannot be read is refused at make, naming where it came from", () =>
    Effect.scoped(Effect.gen(function*() {
      const noKey = homeWith(["Host trex-alias", `  HostName ${host.host}`, "  IdentityFile ~/.ssh/no_such_key", ""].join("\n"))
      const e1 = yield* withEnv({ HOME: noKey }, SshBackend.make({ ...config, hosts: [{ host: "trex-alias" }] })).pipe(Effect.flip)
      assert.include(e1.message, `IdentityFile (~/.ssh/config) ${noKey}/.ssh/no_such_key: no such file`)
      const noKnown = homeWith(["Host trex-alias", `  HostName ${host.host}`, "  IdentityFile ~/.ssh/k", ""].join("\n"), { k: key })
      const e2 = yield* withEnv({ HOME: noKnown }, SshBackend.make({ ...config, hosts: [{ host: "trex-alias" }] })).pipe(Effect.flip)
      assert.include(e2.message, `knownHostsPath (none given: ~/.ssh/known_hosts) ${noKnown}/.ssh/known_hosts: no such file`)
    })))
})
