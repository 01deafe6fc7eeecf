/**
 * `~/.ssh/config` as the SSH backend and the Docker backend's `ssh://` engines read it (src/internal/sshConfig.ts):
 * compared with OpenSSH's own reading (`ssh -G`), then used against the test sshd of scripts/services/start-sshd.sh
 * (`sudo scripts/services/start-all.sh sshd`) with a config file in a HOME of the test's own.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Backend } from "@trex/core"
import { Effect, Logger } from "effect"
import { execFileSync, spawn, spawnSync } from "node:child_process"
import { createHmac } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as SshConfig from "../src/internal/sshConfig.ts"
import * as KnownHosts from "../src/internal/sshKnownHosts.ts"
import * as SshBackend from "../src/SshBackend.ts"
import * as Clients from "../src/internal/clients.ts"
import { Connection, prepare, SshFailure } from "../src/internal/sshConnection.ts"
import { engineOptions } from "../src/internal/dockerEngine.ts"
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

/** The test sshd's line of its known_hosts (`[127.0.0.1]:2222 type key`). */
const hostKeyLine = () => Fs.readFileSync(host.knownHostsPath, "utf8").split("\n").find((l) => l.startsWith(`[${host.host}]:${host.port} `))!

/** A HOME whose config is `blocks`, then a `Host *` block for the test sshd: its port, user and key, `known` as UserKnownHostsFile, no system file. */
const sshdHome = (blocks: ReadonlyArray<string>, known: string, files: Readonly<Record<string, string | Buffer>>) =>
  homeWith(
    [...blocks, "Host *", `  Port ${host.port}`, `  User ${user}`, `  IdentityFile ${host.privateKeyPath}`, `  UserKnownHostsFile ${known}`, "  GlobalKnownHostsFile none", ""].join("\n"),
    files
  )

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
      // Match host compares HostName with %h expanded, as OpenSSH does
      "Host gpu1",
      "  HostName %h.lab",
      "Match host gpu1.lab",
      "  UserKnownHostsFile ~/.ssh/kh_lab",
      "  User labuser",
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
    for (const name of ["alias1", "other", "x.lab", "bad.lab", "alias2", "ALIAS2", "Alias1", "a.single", "ab.single", "inc1", "nomatch", "gpu1"]) {
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
      // the files read: ssh -G's user and system files alike (known_hosts2 and ssh_known_hosts2 by default)
      const read = SshConfig.resolve(name, {}, ours, { home, user: me.user })
      assert.deepStrictEqual([read.userKnownHosts.map((f) => f.replace(home, "~")), read.globalKnownHosts], [theirs, of("globalknownhostsfile")[0]!.split(" ")], name)
      assert.deepStrictEqual(ours.warnings, [])
    }
  })

  it("a file is parsed once per contents: one changed since is read afresh, an included one too", () => {
    const home = homeWith("Include extra\nHost x\n  Port 2201\n", { extra: "Host y\n  Port 2301\n" })
    const local = { home, user: "u" }
    assert.deepStrictEqual([SshConfig.forHost("x", {}, local).port, SshConfig.forHost("y", {}, local).port], [2201, 2301])
    // the same length, other contents: a cache by name (or size) would give the old port
    Fs.writeFileSync(`${home}/.ssh/config`, "Include extra\nHost x\n  Port 2202\n")
    Fs.writeFileSync(`${home}/.ssh/extra`, "Host y\n  Port 2302\n")
    assert.deepStrictEqual([SshConfig.forHost("x", {}, local).port, SshConfig.forHost("y", {}, local).port], [2202, 2302])
  })

  it("says what it cannot honour, naming the file and line: Include, Match, StrictHostKeyChecking other than yes, an unknown keyword; a ProxyCommand is kept, with its line", () => {
    const file = "/home/u/.ssh/config"
    const lines = SshConfig.parse([
      "Include ~/.ssh/config.d/*",
      "Host gpu1",
      "  ProxyCommand ssh -W %h:%p bastion",
      "  StrictHostKeyChecking accept-new",
      "  Hots gpu2",
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
    assert.deepStrictEqual(s.warnings.map((w) => w.split(": ")[0] + ": " + w.split(": ")[1]!.split(" ")[0]), [
      `${file}:1: Include`,
      `${file}:4: StrictHostKeyChecking`,
      `${file}:5: unknown`,
      `${file}:6: Match`
    ])
    // ProxyCommand is followed (by the SSH backend): its line as written, its tokens expanded
    assert.deepStrictEqual(s.proxyCommand, { value: "ssh -W %h:%p bastion", where: `${file}:3`, command: "ssh -W gpu1:22 bastion" })
    // ProxyJump too: no warning, its value and line kept; the first of the two wins, as in OpenSSH
    const jumped = SshConfig.settingsFor(SshConfig.parse("Host gpu1\n  ProxyJump me@bastion:2022,gw\n  ProxyCommand nc %h %p\n", file), "gpu1", { home: "/h", user: "u" })
    assert.deepStrictEqual([jumped.proxyJump, jumped.proxyCommand, jumped.warnings], [{ value: "me@bastion:2022,gw", where: `${file}:2` }, undefined, []])
    const commanded = SshConfig.settingsFor(SshConfig.parse("Host gpu1\n  ProxyCommand nc %h %p\n  ProxyJump gw\n", file), "gpu1", { home: "/h", user: "u" })
    assert.deepStrictEqual([commanded.proxyJump, commanded.proxyCommand?.command], [undefined, "nc gpu1 22"])
    assert.include(s.warnings[1], "host keys are always checked against known_hosts")
    assert.include(s.warnings[2], "unknown keyword hots: ignored (OpenSSH refuses the file for it: check its spelling)")
    // IgnoreUnknown is honoured, as OpenSSH honours it
    assert.deepStrictEqual(SshConfig.settingsFor(SshConfig.parse("IgnoreUnknown usekeychainx,other\nUseKeychainX yes\n", file), "gpu1", { home: "/h", user: "u" }).warnings, [])
    assert.deepStrictEqual(SshConfig.settingsFor(SshConfig.parse("Host *\n  StrictHostKeyChecking yes\n  ProxyJump none\n", file), "gpu1", { home: "/h", user: "u" }).warnings, [])
  })
})

describe("known_hosts", () => {
  it("host patterns as OpenSSH matches them: hashed names, globs in any case, ! negation, [host]:port, @revoked in any line", () => {
    const blob = Buffer.from("a key")
    const other = Buffer.from("another key").toString("base64")
    const salt = Buffer.from("0123456789abcdef0123")
    const hashed = `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update("[gpu1.lab]:2222").digest("base64")}`
    const known = KnownHosts.parse([
      `${hashed} ssh-ed25519 ${blob.toString("base64")}`,
      `*.LAB,!bad.lab ssh-ed25519 ${blob.toString("base64")}`,
      `gpu?.lab ssh-ed25519 ${other}`,
      `@revoked * ssh-ed25519 ${other}`,
      ""
    ].join("\n"))
    const v = (host: string, port: number, key = blob) => { const r = KnownHosts.verify(known, host, port, key); return r.ok ? "ok" : r.reason }
    assert.deepStrictEqual(
      [v("GPU1.lab", 2222), v("gpu1.lab", 2223), v("node.lab", 22), v("bad.lab", 22), v("gpu1.lab", 22), v("x.lab", 22, Buffer.from("another key"))],
      ["ok", "unknown", "ok", "unknown", "ok", "revoked"]
    )
    // a hashed name is a field of its own, never part of a list (as OpenSSH: ssh refuses both)
    const decoy = (hosts: string) => KnownHosts.verify(KnownHosts.parse(`${hosts} ssh-ed25519 ${blob.toString("base64")}\n`), "gpu1.lab", 2222, blob)
    assert.deepStrictEqual([decoy(`${hashed},decoy`), decoy(`decoy,${hashed}`), decoy(hashed)], [{ ok: false, reason: "unknown" }, { ok: false, reason: "unknown" }, { ok: true }])
  })
})

describe("~/.ssh/config as OpenSSH refuses it", () => {
  const me = SshConfig.here()
  /** ssh -G's reading of `text` for `name`: its exit and what it says (OpenSSH's own verdict). */
  const sshG = (text: string, name: string) => {
    const home = homeWith(text)
    const file = Path.join(home, ".ssh", "config")
    const r = spawnSync("ssh", ["-G", "-F", file, name], { env: { ...process.env, HOME: home }, encoding: "utf8" })
    return { home, file, status: r.status, out: r.stdout, err: r.stderr }
  }
  const refusal = (f: () => unknown) => {
    try {
      f()
    } catch (e) {
      assert.instanceOf(e, SshConfig.SshConfigError)
      return (e as Error).message
    }
    return assert.fail("not refused")
  }

  it("splits words as OpenSSH does (single quotes, backslash escapes, %%, %k), and refuses what it refuses, naming the file and line", () => {
    const good = sshG(
      ["Host x", "  HostName 'y.example'", "  IdentityFile ~/.ssh/a\\ b", `  IdentityFile "x"'y'z`, "  IdentityFile ~/.ssh/%%k-%k", "  UserKnownHostsFile ~/.ssh/kh.d/%k", ""].join("\n"),
      "x"
    )
    assert.strictEqual(good.status, 0, good.err)
    const ours = SshConfig.forHost("x", {}, { home: good.home, user: me.user })
    assert.strictEqual(ours.hostName, "y.example")
    assert.include(good.out, "hostname y.example\n")
    assert.deepStrictEqual(ours.identityFiles.slice(0, 2), [`${good.home}/.ssh/a b`, "xyz"])
    assert.include(good.out, "identityfile ~/.ssh/a b\nidentityfile xyz\n")
    assert.strictEqual(ours.identityFiles[2], `${good.home}/.ssh/%k-x`)
    assert.deepStrictEqual(ours.knownHostsFiles, [`${good.home}/.ssh/kh.d/x`])
    assert.match(good.out, /\nuserknownhostsfile \S*\/\.ssh\/kh\.d\/x\n/)
    // a Port may be a TCP service's name, as OpenSSH's a2port takes it
    const service = sshG("Host x\n  Port ssh\n", "x")
    assert.include(service.out, "\nport 22\n")
    assert.strictEqual(SshConfig.forHost("x", {}, { home: service.home, user: me.user }).port, 22)
    // and a number as strtonum(3) reads it: leading zeros, a `+`
    for (const port of ["000022", "+22"]) {
      const theirs = sshG(`Host x\n  Port ${port}\n`, "x")
      assert.include(theirs.out, "\nport 22\n", port)
      assert.strictEqual(SshConfig.forHost("x", {}, { home: theirs.home, user: me.user }).port, 22, port)
    }
    // HostName takes %h and %% only
    assert.strictEqual(SshConfig.settingsFor(SshConfig.parse("HostName a%%hb\n", "f"), "x", me).hostName, "a%hb")
    for (
      const [text, line, says] of [
        [`Host x\n  HostName "y.example\n`, 2, "invalid quotes"],
        ["Host x\n  Port 0x16\n", 2, "Bad port"],
        ["Host other\n  Port 0\n", 2, "Bad port"],
        ["Host x\n  HostName\n", 2, "no argument after keyword"],
        ["Host x\n  HostName a%xb\n", 2, "HostName a%xb: the token %x is not one of %h %%"],
        ["Host x\n  Port nosuchservice\n", 2, "Bad port"],
        // one value where OpenSSH takes one, in any block; no empty one; none alone
        ["Host x\n  HostName a b\n", 2, "keyword hostname extra arguments at end of line (b)"],
        ["Host other\n  User alice bob\n", 2, "keyword user extra arguments at end of line (bob)"],
        ["Host x\n  IdentityFile ~/.ssh/my key\n", 2, "keyword identityfile extra arguments at end of line (key)"],
        ["Host x\n  HostName = = a\n", 2, "keyword hostname extra arguments at end of line (a)"],
        [`Host x\n  HostName ""\n`, 2, "keyword hostname has an empty argument"],
        [`Host x\n  UserKnownHostsFile ~/.ssh/a ""\n`, 2, "keyword userknownhostsfile empty argument"],
        ["Host other\n  UserKnownHostsFile none ~/.ssh/kh\n", 2, `keyword userknownhostsfile "none" argument must appear alone`],
        ["Host other\n  GlobalKnownHostsFile /etc/kh none\n", 2, `keyword globalknownhostsfile "none" argument must appear alone`],
        ["Host x\n  Port +0\n", 2, "Bad port"]
      ] as const
    ) {
      const theirs = sshG(text, "x")
      assert.notStrictEqual(theirs.status, 0, `ssh -G takes ${text}`)
      const message = refusal(() => SshConfig.forHost("x", {}, { home: theirs.home, user: me.user }))
      assert.include(message, `${theirs.file}:${line}: ${says}`, message)
    }
  })

  it("GlobalKnownHostsFile is read as OpenSSH reads it (first wins, ~, no % token, none); an alias without HostName is %h and %C in lower case", () => {
    const theirs = sshG(
      ["Host UPPER", "  IdentityFile /tmp/x/id_%h_%C", "  ControlPath /tmp/cp_%C", "  GlobalKnownHostsFile ~/.ssh/g_%h /etc/ssh/strict_kh", "Host *", "  GlobalKnownHostsFile /etc/ssh/later", ""].join("\n"),
      "UPPER"
    )
    assert.strictEqual(theirs.status, 0, theirs.err)
    const of = (key: string) => theirs.out.split("\n").find((l) => l.startsWith(`${key} `))!.slice(key.length + 1)
    const ours = SshConfig.forHost("UPPER", {}, { home: theirs.home, user: me.user })
    // ssh's %h is the hostname it prints, its %C the hash in its ControlPath
    assert.deepStrictEqual(ours.identityFiles, [`/tmp/x/id_${of("hostname")}_${of("controlpath").slice("/tmp/cp_".length)}`])
    assert.strictEqual(of("globalknownhostsfile"), "~/.ssh/g_%h /etc/ssh/strict_kh")
    assert.deepStrictEqual(ours.globalKnownHostsFiles, [`${theirs.home}/.ssh/g_%h`, "/etc/ssh/strict_kh"])
    const none = sshG("Host x\n  GlobalKnownHostsFile none\n", "x")
    assert.include(none.out, "\nglobalknownhostsfile none\n")
    assert.deepStrictEqual(SshConfig.forHost("x", {}, { home: none.home, user: me.user }).globalKnownHostsFiles, [])
    assert.strictEqual(SshConfig.forHost("y", {}, { home: none.home, user: me.user }).globalKnownHostsFiles, undefined)
  })

  it("a UserKnownHostsFile or IdentityFile with a token it cannot expand is refused, naming the line; none is kept apart from not given", () => {
    const home = homeWith("Host a\n  UserKnownHostsFile ~/.ssh/%T\nHost b\n  IdentityFile ~/.ssh/%Z\nHost c\n  UserKnownHostsFile none\n")
    const file = Path.join(home, ".ssh", "config")
    assert.include(refusal(() => SshConfig.forHost("a", {}, { home, user: me.user })), `${file}:2: UserKnownHostsFile ~/.ssh/%T: the token %T cannot be expanded`)
    assert.include(refusal(() => SshConfig.forHost("b", {}, { home, user: me.user })), `${file}:4: IdentityFile ~/.ssh/%Z: the token %Z cannot be expanded`)
    assert.deepStrictEqual(SshConfig.forHost("c", {}, { home, user: me.user }).knownHostsFiles, [])
    assert.strictEqual(SshConfig.forHost("d", {}, { home, user: me.user }).knownHostsFiles, undefined)
  })

  it("what an explicit setting overrides is not expanded nor checked; %j is the ProxyJump", () => {
    const lines = SshConfig.parse("Host *\n  IdentityFile ~/.ssh/id_%Z\n  UserKnownHostsFile ~/.ssh/kh_%Z\n  ProxyJump u@bastion\n", "f")
    const local = { home: "/h", user: "u" }
    assert.include(refusal(() => SshConfig.settingsFor(lines, "x", local, { knownHostsPath: "/kh" })), "f:2: IdentityFile ~/.ssh/id_%Z: the token %Z cannot be expanded")
    assert.include(refusal(() => SshConfig.settingsFor(lines, "x", local, { privateKeyPath: "/k" })), "f:3: UserKnownHostsFile ~/.ssh/kh_%Z: the token %Z cannot be expanded")
    const explicit = SshConfig.settingsFor(lines, "x", local, { privateKeyPath: "/k", knownHostsPath: "/kh" })
    assert.deepStrictEqual([explicit.identityFiles, explicit.knownHostsFiles], [[], undefined])
    assert.deepStrictEqual(SshConfig.settingsFor(SshConfig.parse("Host *\n  IdentityFile ~/%j-%%j\n  ProxyJump u@bastion\n", "f"), "x", local).identityFiles, ["/h/u@bastion-%j"])
    assert.deepStrictEqual(SshConfig.settingsFor(SshConfig.parse("IdentityFile ~/%j.\n", "f"), "x", local).identityFiles, ["/h/."])
  })

  it("an Include under a Host that does not apply is read and checked as OpenSSH reads it; none of its blocks applies", () => {
    const home = homeWith("Host other\n  Include extra\n")
    const extra = Path.join(home, ".ssh", "extra")
    Fs.writeFileSync(extra, "Host *\n  User evil\n  HostName evil.example\n")
    Fs.chmodSync(extra, 0o600)
    const file = Path.join(home, ".ssh", "config")
    const theirs = spawnSync("ssh", ["-G", "-F", file, "x"], { env: { ...process.env, HOME: home }, encoding: "utf8" })
    assert.include(theirs.stdout, "\nhostname x\n")
    const ours = SshConfig.forHost("x", {}, { home, user: me.user })
    assert.deepStrictEqual([ours.user, ours.hostName], [undefined, undefined])
    Fs.writeFileSync(extra, "Host *\n  Port 0\n")
    assert.notStrictEqual(spawnSync("ssh", ["-G", "-F", file, "x"], { env: { ...process.env, HOME: home } }).status, 0)
    assert.include(refusal(() => SshConfig.forHost("x", {}, { home, user: me.user })), `${extra}:2: Bad port`)
    Fs.chmodSync(extra, 0o666)
    assert.include(refusal(() => SshConfig.forHost("x", {}, { home, user: me.user })), `${extra}: Bad owner or permissions`)
  })

  it("a config file or included file writable by others, or another user's, is refused (Bad owner or permissions), naming the file and the fix", () => {
    // an included file anyone can write, that would send the host elsewhere and trust another known_hosts
    const home = homeWith("Include extra\nHost gpu1\n  HostName gpu1.lab\n")
    const extra = Path.join(home, ".ssh", "extra")
    Fs.writeFileSync(extra, "Host gpu1\n  HostName evil.example\n  UserKnownHostsFile /tmp/evil_known_hosts\n")
    Fs.chmodSync(extra, 0o666)
    const local = { home, user: me.user }
    assert.include(refusal(() => SshConfig.forHost("gpu1", {}, local)), `${extra}: Bad owner or permissions: writable by its group (mode 666), so OpenSSH refuses it too: \`chmod go-w ${extra}\``)
    Fs.chmodSync(extra, 0o644)
    assert.strictEqual(SshConfig.forHost("gpu1", {}, local).hostName, "evil.example")
    Fs.chownSync(extra, 65534, 65534)
    assert.include(refusal(() => SshConfig.forHost("gpu1", {}, local)), `${extra}: Bad owner or permissions: owned by uid 65534`)
    Fs.chownSync(extra, process.getuid!(), process.getgid!())
    const config = Path.join(home, ".ssh", "config")
    Fs.chmodSync(config, 0o602)
    assert.include(refusal(() => SshConfig.forHost("gpu1", {}, local)), `${config}: Bad owner or permissions: writable by others (mode 602)`)
  })

  it("ProxyJump hops are read as OpenSSH reads them (ssh -G): a port by service name, no path, IPv6 in [ ]; a bad one in any block refuses the file", () => {
    const cases = ["bastion:ssh", "bastion/2200", "fe80::1", "[fe80::1]:22", "ssh://h/path", "ssh://h/", "ssh://u;x@h:ssh", "a@b@h", "ssh://a@b@h", "bastion:", "h:99999", "[::1]x", "@h", "me@bastion:2022,gw"]
    const show = (h: ReturnType<typeof SshConfig.hops>) =>
      typeof h === "string" ? "invalid" : h.map((x) => `${x.user === undefined ? "" : `${x.user}@`}${x.host.includes(":") ? `[${x.host}]` : x.host}${x.port === undefined ? "" : `:${x.port}`}`).join(",")
    const theirs = (value: string) => {
      const r = spawnSync("ssh", ["-F", "/dev/null", "-G", "-o", `ProxyJump=${value}`, "x"], { encoding: "utf8" })
      return /Invalid ProxyJump/.test(r.stderr) ? "invalid" : /^proxyjump (.*)$/m.exec(r.stdout)?.[1]
    }
    assert.deepStrictEqual(cases.map((c) => show(SshConfig.hops(c))), cases.map(theirs))
    // a bad ProxyJump in a block that does not apply refuses the file, as OpenSSH refuses it
    const home = homeWith("Host other\n  ProxyJump bastion/2200\nHost trex-x\n  HostName localhost\n")
    assert.throws(() => SshConfig.forHost("trex-x", {}, { home, user }), `${home}/.ssh/config:2: ProxyJump bastion/2200: the hop "bastion/2200" is not [user@]host[:port]`)
  })

  it("an Include loop stops at OpenSSH's depth with an error naming the file", () => {
    const home = homeWith("Host *\n  Include config\n")
    const message = refusal(() => SshConfig.forHost("gpu1", {}, { home, user: me.user }))
    assert.include(message, `${home}/.ssh/config:2: Too many recursive configuration includes`)
  })
})

describe("ProxyCommand", () => {
  it("its tokens are expanded as OpenSSH expands them (ssh runs the same command); others, and a name the shell would read as more, are refused", () => {
    const dir = Fs.mkdtempSync(Path.join(local, "proxy-tokens-"))
    // (written by a shell that holds its standard output open until then: ssh stops the command once that output ends)
    const config = (out: string) => ["Host Trex-PC", "  HostName Real.Example", "  Port 2200", "  User bob", `  ProxyCommand sh -c 'echo "%h %p %r %n %k %%" > ${out}'`, ""].join("\n")
    // OpenSSH's: ssh runs the command (its shell, `exec`), which writes what it was given and ends; ssh then fails
    Fs.writeFileSync(Path.join(dir, "config"), config(Path.join(dir, "theirs")), { mode: 0o600 })
    const ssh = spawnSync("ssh", ["-F", Path.join(dir, "config"), "Trex-PC", "true"], { encoding: "utf8", timeout: 20_000 })
    const ours = SshConfig.settingsFor(SshConfig.parse(config(Path.join(dir, "ours")), "cfg"), "Trex-PC", { home: "/h", user: "u" }).proxyCommand
    assert.strictEqual(ours?.command, `sh -c 'echo "real.example 2200 bob Trex-PC Trex-PC %" > ${Path.join(dir, "ours")}'`)
    execFileSync("sh", ["-c", `exec ${ours!.command!}`])
    assert.strictEqual(Fs.readFileSync(Path.join(dir, "ours"), "utf8"), Fs.readFileSync(Path.join(dir, "theirs"), "utf8"), ssh.stderr)
    // a token OpenSSH does not expand there (ssh: "percent_expand: failed")
    const other = SshConfig.settingsFor(SshConfig.parse("Host x\n  ProxyCommand nc %h %C\n", "cfg"), "x", { home: "/h", user: "u" }).proxyCommand
    assert.deepStrictEqual(other, { value: "nc %h %C", where: "cfg:2", refusal: "the token %C cannot be expanded there (only %h %k %n %p %r %%, as OpenSSH): write it out" })
    // a name given, a HostName or a user that the shell would run (CVE-2023-51385): refused, never run
    for (const [token, name, block] of [["%n", "gpu1;touch x", ""], ["%n", "$(id)", ""], ["%n", "-oProxy", ""], ["%h", "a b", "  HostName 'a b'\n"], ["%r", "`id`", "  User `id`\n"]]) {
      const unsafe = SshConfig.settingsFor(SshConfig.parse(`Host *\n${block}  ProxyCommand nc %n %h %r\n`, "cfg"), token === "%n" ? name! : "gpu1", { home: "/h", user: "u" }).proxyCommand
      assert.include(unsafe?.refusal, `the value of ${token} (${JSON.stringify(name)}) is not a plain host or user name`, name)
      assert.isUndefined(unsafe?.command)
    }
    // the line as OpenSSH takes it: after every space and = that follow the keyword; `none` alone is none, anything
    // more a command (ssh runs `none # direct`); `-` (ssh's own input and output) has no meaning here
    const of = (line: string) => SshConfig.settingsFor(SshConfig.parse(`Host x\n  ${line}\n`, "cfg"), "x", { home: "/h", user: "u" }).proxyCommand
    assert.deepStrictEqual(
      [of("ProxyCommand==nc %h 22")?.command, of("ProxyCommand\t nc %h 22")?.command, of("ProxyCommand NONE"), of("ProxyCommand none # direct")?.command, of(`ProxyCommand "none"`)?.command],
      ["nc x 22", "nc x 22", undefined, "none # direct", `"none"`]
    )
    assert.include(of("ProxyCommand -")?.refusal, "`-` (OpenSSH's own standard input and output) is not a connection here")
    // %k is the HostKeyAlias when one is given
    assert.strictEqual(of("HostKeyAlias kalias\n  ProxyCommand nc %k %n")?.command, "nc kalias x")
  })

  it.live("the connection runs over the command, whose host need not be reachable from here; a command that ends before the login says its exit and what it wrote; an unknown key is not advised to ssh-keyscan", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const ssh2 = yield* Effect.promise(Clients.ssh2)
      const keyOnly = hostKeyLine().split(" ").slice(1, 3).join(" ")
      const pidFile = Path.join(local, `proxy-${process.pid}-${Date.now()}.pid`)
      const home = sshdHome(
        [
          // a name this machine cannot resolve: only the command reaches the sshd (at the address it names); it says its pid,
          // and outlives the connection unless it is stopped (as a proxy that keeps a tunnel up may)
          "Host trex-proxied trex-stranger",
          "  HostName trex-proxied.invalid",
          `  ProxyCommand sh -c 'echo $$ > ${pidFile}; socat - TCP:${host.host}:%p; exec sleep 600'`,
          "Host trex-broken",
          "  HostName trex-broken.invalid",
          "  ProxyCommand sh -c 'echo no route to %h >&2; exit 3'",
          "Host trex-missing",
          "  ProxyCommand trex-no-such-command %h %p",
          // its key known under the alias alone (no [ ]:port), as OpenSSH looks it up
          "Host trex-aliased",
          "  HostName trex-aliased.invalid",
          "  HostKeyAlias trex-key",
          `  ProxyCommand socat - TCP:${host.host}:%p`
        ],
        "~/.ssh/known",
        { known: `[trex-proxied.invalid]:${host.port} ${keyOnly}\ntrex-key ${keyOnly}\n` }
      )
      const connect = (name: string, extra: Partial<Parameters<typeof prepare>[0]> = {}) => {
        const p = prepare({ host: name, ...extra }, ssh2, {}, { home, user })
        return "ok" in p ? new Connection(p.ok) : assert.fail(p.refusal)
      }
      // first, before any connection of this test: a command that ends before the login, said with its exit and what it
      // wrote, retried as a host that is down; one the shell cannot run, not retried
      const failed = (name: string) =>
        Effect.promise(async () => {
          const broken = connect(name)
          const e = await broken.exec("true").then(() => undefined, (e: unknown) => e)
          broken.close()
          return e instanceof SshFailure ? e : assert.fail(`over a command that exits: ${String(e)}`)
        })
      const e = yield* failed("trex-broken")
      assert.strictEqual(
        e.message,
        `${user}@trex-broken.invalid:${host.port}: ProxyCommand sh -c 'echo no route to %h >&2; exit 3', ${home}/.ssh/config:6: the command exited 3 before the login: ` +
          "no route to trex-broken.invalid: is the host up, and does the command reach it?"
      )
      assert.deepStrictEqual([e.retryable, e.unreachable], [true, true])
      const missing = yield* failed("trex-missing")
      assert.include(missing.message, `ProxyCommand trex-no-such-command %h %p, ${home}/.ssh/config:8: the command exited 127 before the login: `)
      assert.include(missing.message, "fix the command (or set SHELL to a shell that runs it)")
      assert.deepStrictEqual([missing.retryable, missing.unreachable], [false, false])
      const aliased = connect("trex-aliased")
      const viaAlias = yield* Effect.promise(() => aliased.exec("echo aliased"))
      aliased.close()
      assert.strictEqual(viaAlias.stdout, "aliased\n")
      const c = connect("trex-proxied")
      const out = yield* Effect.promise(() => c.exec("echo through"))
      const proxyPid = Number(Fs.readFileSync(pidFile, "utf8"))
      assert.isTrue(Fs.existsSync(`/proc/${proxyPid}`), "the command runs while the connection does")
      c.close()
      assert.strictEqual(out.stdout, "through\n")
      // the command ends with the connection (a zombie, not yet reaped, has ended too)
      const ended = (pid: number) => !Fs.existsSync(`/proc/${pid}`) || / Z /.test(Fs.readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\)/, ") "))
      for (let i = 0; i < 100 && !ended(proxyPid); i++) yield* Effect.sleep("50 millis")
      assert.isTrue(ended(proxyPid), "the proxy command is left running")
      // its key unknown (another known_hosts): ssh-keyscan cannot go through the command, ssh can, told the file; the
      // command is stopped with the refused connection
      const stranger = connect("trex-stranger", { knownHostsPath: host.knownHostsPath })
      const why = yield* Effect.promise(() => stranger.exec("true").then(() => "connected", (e: unknown) => (e as Error).message))
      stranger.close()
      assert.strictEqual(
        why,
        `${user}@trex-proxied.invalid:${host.port}: host key not in ${host.knownHostsPath} (add it with ssh -o UserKnownHostsFile=${host.knownHostsPath} ` +
          `-p ${host.port} ${user}@trex-stranger true, which runs the same ProxyCommand sh -c 'echo $$ > ${pidFile}; socat - TCP:${host.host}:%p; exec sleep 600', ` +
          `${home}/.ssh/config:3, after checking the fingerprint it shows: ssh-keyscan does not go through a ProxyCommand)`
      )
      const refusedPid = Number(Fs.readFileSync(pidFile, "utf8"))
      assert.notStrictEqual(refusedPid, proxyPid)
      for (let i = 0; i < 100 && !ended(refusedPid); i++) yield* Effect.sleep("50 millis")
      assert.isTrue(ended(refusedPid), "the proxy command of a refused connection is left running")
      // the backend runs a job over it; a refused command is refused at make, naming the line
      const backend = yield* withEnv({ HOME: home }, SshBackend.make({ ...config, hosts: [{ host: "trex-proxied", username: user }] }))
      const exit = yield* Backend.awaitExit(backend, yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":8}' > result.json`])))
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
      Fs.appendFileSync(`${home}/.ssh/config`, "Host trex-hashed\n  ProxyCommand nc %h %C\n")
      const refused = yield* withEnv({ HOME: home }, SshBackend.make({ ...config, hosts: [{ host: "trex-hashed", username: user }] })).pipe(Effect.flip)
      assert.include(refused.message, `ProxyCommand nc %h %C (${home}/.ssh/config:`)
      assert.include(refused.message, "the token %C cannot be expanded there")
    })))
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
      const ref = yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":1}' > result.json`]))
      // named by the local user (no username given), not the file's User: editing it does not rename a run's jobs
      assert.strictEqual(ref.data["host"], `${SshConfig.here().user}@trex-alias:22`)
      const exit = yield* Backend.awaitExit(backend, ref)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
    })))

  it.live("explicit settings win over the file; what it cannot honour is a warning naming the line", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      // a UserKnownHostsFile holding another key for the host: the knownHostsPath given must win, or the host is refused
      const home = homeWith(
        ["Host trex-alias", `  HostName ${host.host}`, "  Port 1", "  User nobody", "  StrictHostKeyChecking accept-new", "  IdentityFile ~/.ssh/no_such_key", "  UserKnownHostsFile ~/.ssh/wrong_known_hosts", ""].join("\n"),
        { wrong_known_hosts: `[${host.host}]:${host.port} ${Fs.readFileSync(`${host.privateKeyPath}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}\n` }
      )
      const [backend, warnings] = yield* warningsOf(withEnv(
        { HOME: home },
        SshBackend.make({ ...config, hosts: [{ host: "trex-alias", port: host.port, username: user, privateKeyPath: host.privateKeyPath, knownHostsPath: host.knownHostsPath }] })
      ))
      assert.deepStrictEqual(warnings.length, 1, warnings.join("\n"))
      assert.include(warnings[0], `trex-alias: ${home}/.ssh/config:5: StrictHostKeyChecking accept-new is not followed: host keys are always checked against known_hosts`)
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

  it.live("a fully explicit host the file moves elsewhere: logged once at make; its jobs keep the name the task file gives, and a resumed controller finds them", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const home = homeWith(["Host trex-moved", `  HostName ${host.host}`, `  Port ${host.port}`, ""].join("\n"))
      const file = `${home}/.ssh/config`
      const settings = { ...config, hosts: [{ host: "trex-moved", username: user, privateKeyPath: host.privateKeyPath, knownHostsPath: host.knownHostsPath }] }
      const seen: Array<string> = []
      const backend = yield* withEnv({ HOME: home }, SshBackend.make(settings)).pipe(Effect.provide(Logger.layer([Logger.make((o) => void seen.push(String(o.message)))])))
      assert.deepStrictEqual(seen.filter((m) => m.includes("->")), [
        `ssh backend: ~/.ssh/config connects trex-moved -> ${host.host}:${host.port} (${file}:2, ${file}:3); its jobs are still named ${user}@trex-moved:22`
      ])
      // the name the same task file gave before ~/.ssh/config was read (port 22, none given): a run started then resumes
      const ref = yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":5}' > result.json`]))
      assert.strictEqual(ref.data["host"], `${user}@trex-moved:22`)
      const resumed = yield* withEnv({ HOME: home }, SshBackend.make(settings))
      const exit = yield* Backend.awaitExit(resumed, ref)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
    })))

  it.live("UserKnownHostsFile none reads only the system's file (refused at make when there is none); %k is the alias", () =>
    Effect.gen(function*() {
      const ssh2 = yield* Effect.promise(Clients.ssh2)
      const home = homeWith(
        ["Host trex-none", `  HostName ${host.host}`, "  UserKnownHostsFile none", "Host trex-k", `  HostName ${host.host}`, "  UserKnownHostsFile ~/.ssh/kh.d/%k", ""].join("\n"),
        { known_hosts: known }
      )
      const given = { username: user, privateKeyPath: host.privateKeyPath }
      const withSystem = prepare({ host: "trex-none", ...given }, ssh2, {}, { home, user, globalKnownHosts: host.knownHostsPath })
      assert.deepStrictEqual("ok" in withSystem && withSystem.ok.knownHostsFiles, [host.knownHostsPath, `${host.knownHostsPath}2`])
      const without = prepare({ host: "trex-none", ...given }, ssh2, {}, { home, user, globalKnownHosts: `${home}/no_system_file` })
      assert.include("refusal" in without && without.refusal, `UserKnownHostsFile none (${home}/.ssh/config:3) leaves only the system's ${home}/no_system_file`)
      const alias = prepare({ host: "trex-k", ...given }, ssh2, {}, { home, user })
      assert.include("refusal" in alias && alias.refusal, `UserKnownHostsFile (${home}/.ssh/config:6) ${home}/.ssh/kh.d/trex-k: no such file`)
    }))

  it.live("GlobalKnownHostsFile takes the system file's place: none with UserKnownHostsFile none is refused at make (SSH backend, ssh:// engine)", () =>
    Effect.gen(function*() {
      const ssh2 = yield* Effect.promise(Clients.ssh2)
      const home = homeWith(
        [
          "Host trex-g trex-gnone",
          `  HostName ${host.host}`,
          `  Port ${host.port}`,
          `  IdentityFile ${host.privateKeyPath}`,
          "  UserKnownHostsFile none",
          "Host trex-gnone",
          "  GlobalKnownHostsFile none",
          "Host trex-g",
          `  GlobalKnownHostsFile ~/.ssh/missing ${host.knownHostsPath}`,
          ""
        ].join("\n")
      )
      // the system's file here holds the host's key: a GlobalKnownHostsFile that narrows trust must win over it
      const local = { home, user, globalKnownHosts: host.knownHostsPath }
      const given = { username: user, privateKeyPath: host.privateKeyPath }
      const none = prepare({ host: "trex-gnone", ...given }, ssh2, {}, local)
      assert.include("refusal" in none && none.refusal, `UserKnownHostsFile none (${home}/.ssh/config:5) and GlobalKnownHostsFile none (${home}/.ssh/config:7) leave no known hosts`)
      const named = prepare({ host: "trex-g", ...given }, ssh2, {}, { ...local, globalKnownHosts: `${home}/no_system_file` })
      assert.deepStrictEqual("ok" in named && named.ok.knownHostsFiles, [`${home}/.ssh/missing`, host.knownHostsPath], "refusal" in named ? named.refusal : "")
      const engine = (name: string, system: string) =>
        withEnv({ HOME: home }, Effect.try(() => engineOptions({}, ssh2, { DOCKER_HOST: `ssh://${name}`, SSH_AUTH_SOCK: "" }, { user, globalKnownHosts: system })))
      const refused = yield* Effect.flip(engine("trex-gnone", host.knownHostsPath))
      assert.include(String((refused as { cause?: unknown }).cause), `UserKnownHostsFile none (${home}/.ssh/config:5) leaves only the system's none (GlobalKnownHostsFile none, ${home}/.ssh/config:7)`)
      yield* engine("trex-g", `${home}/no_system_file`)
    }))

  it.live("every file of UserKnownHostsFile and GlobalKnownHostsFile counts, as OpenSSH reads them: a key found in any, a key @revoked in any refused", () =>
    Effect.gen(function*() {
      yield* sshdUp
      const ssh2 = yield* Effect.promise(Clients.ssh2)
      // another host's key first (the host is unknown there), the host's key in a later file
      const other = `other.example ${Fs.readFileSync(`${host.privateKeyPath}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}\n`
      const hostKey = Fs.readFileSync(host.knownHostsPath, "utf8").split("\n").find((l) => l.startsWith(`[${host.host}]:${host.port} `))!
      const revoked = `@revoked * ${hostKey.split(" ").slice(1, 3).join(" ")}\n`
      const block = (name: string, ...lines: ReadonlyArray<string>) => [`Host ${name}`, `  HostName ${host.host}`, `  Port ${host.port}`, `  User ${user}`, `  IdentityFile ${host.privateKeyPath}`, ...lines]
      const home = homeWith(
        [
          ...block("trex-second", "  UserKnownHostsFile ~/.ssh/other ~/.ssh/missing ~/.ssh/real", "  GlobalKnownHostsFile none"),
          ...block("trex-global", "  UserKnownHostsFile none", "  GlobalKnownHostsFile ~/.ssh/other ~/.ssh/real"),
          ...block("trex-revoked", "  UserKnownHostsFile ~/.ssh/real", "  GlobalKnownHostsFile ~/.ssh/other ~/.ssh/revoked"),
          // the defaults: ~/.ssh/known_hosts, then ~/.ssh/known_hosts2 (as OpenSSH reads them)
          ...block("trex-default2", "  GlobalKnownHostsFile none"),
          ""
        ].join("\n"),
        { other, real: `${hostKey}\n`, revoked, known_hosts: `${hostKey}\n`, known_hosts2: revoked }
      )
      const run = (name: string) =>
        Effect.promise(async () => {
          const p = prepare({ host: name }, ssh2, {}, { home, user })
          if (!("ok" in p)) return assert.fail(p.refusal)
          const c = new Connection(p.ok)
          const out = await c.exec("echo hello").then((r) => r.stdout.trim(), (e: unknown) => (e as Error).message)
          c.close()
          return out
        })
      assert.strictEqual(yield* run("trex-second"), "hello")
      assert.strictEqual(yield* run("trex-global"), "hello")
      const refused = yield* run("trex-revoked")
      assert.include(refused, `${user}@${host.host}:${host.port}: the host key offered is marked @revoked in ${home}/.ssh/real, ${home}/.ssh/other, ${home}/.ssh/revoked`)
      assert.include(yield* run("trex-default2"), `the host key offered is marked @revoked in ${home}/.ssh/known_hosts, ${home}/.ssh/known_hosts2`)
    }))

  it.live("ProxyJump: through a jump host (its own Host block, user, key, known_hosts) or a list of hops to the host; none is direct; an unknown jump host key is refused naming it and the fix", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* sshdUp
      const ssh2 = yield* Effect.promise(Clients.ssh2)
      // the test sshd jumps to itself: the jump host is 127.0.0.1, the host `localhost` (known under its own name)
      const hostKey = hostKeyLine()
      const keyOnly = hostKey.split(" ").slice(1, 3).join(" ")
      const home = sshdHome(
        [
          "Host trex-jump",
          `  HostName ${host.host}`,
          `  User ${user}`,
          "  UserKnownHostsFile ~/.ssh/jump_known_hosts",
          "Host trex-stranger",
          `  HostName ${host.host}`,
          "  UserKnownHostsFile ~/.ssh/other_known_hosts",
          "Host trex-direct",
          "  ProxyJump none",
          "Host trex-target trex-direct",
          "  HostName localhost",
          "  ProxyJump trex-jump",
          "Host trex-list",
          "  HostName localhost",
          `  ProxyJump ${user}@${host.host}:${host.port},root@trex-jump`,
          "Host trex-refused",
          "  HostName localhost",
          "  ProxyJump trex-stranger",
          // a host met twice on the way, but not the same way (first directly, then through trex-direct): no loop, as OpenSSH runs it
          "Host trex-twice",
          "  HostName localhost",
          "  ProxyJump trex-jump,trex-direct,trex-jump"
        ],
        "~/.ssh/target_known_hosts",
        {
          jump_known_hosts: `${hostKey}\n`,
          other_known_hosts: `other.example ${keyOnly}\n`,
          target_known_hosts: `[localhost]:${host.port} ${keyOnly}\n${hostKey}\n`
        }
      )
      const connect = (name: string) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const p = prepare({ host: name }, ssh2, {}, { home, user })
            return "ok" in p ? new Connection(p.ok) : assert.fail(p.refusal)
          }),
          (c) => Effect.sync(() => c.close())
        )
      /** The host's view of where its client connects from, and whether that client is this process (else the jump host's sshd). */
      const from = (name: string) =>
        Effect.gen(function*() {
          const c = yield* connect(name)
          const out = yield* Effect.promise(() => c.exec("echo $SSH_CONNECTION"))
          const port = out.stdout.trim().split(" ")[1]!
          const ss = yield* Effect.sync(() => execFileSync("ss", ["-tnpH", "state", "established", `( sport = :${port} )`], { encoding: "utf8" }))
          return { label: c.label, ours: ss.includes(`pid=${process.pid},`), sshd: ss.includes(`"sshd"`) }
        })
      // the jump host's key is checked against its own known_hosts, as a host's: unknown there, refused
      const stranger = yield* connect("trex-refused")
      // (side by side: each is a login of its own)
      const [target, list, direct, twice, refused] = yield* Effect.all([
        from("trex-target"),
        // two hops: sdktest@127.0.0.1, then root@trex-jump (its Host block) through it, then the host
        from("trex-list"),
        from("trex-direct"),
        from("trex-twice"),
        Effect.promise(() => stranger.exec("true").then(() => "connected", (e: unknown) => e as SshFailure))
      ], { concurrency: "unbounded" })
      assert.deepStrictEqual(target, { label: `${user}@localhost:${host.port}`, ours: false, sshd: true })
      assert.deepStrictEqual(list, { label: `${user}@localhost:${host.port}`, ours: false, sshd: true })
      assert.deepStrictEqual(direct, { label: `${user}@localhost:${host.port}`, ours: true, sshd: false })
      assert.deepStrictEqual(twice, { label: `${user}@localhost:${host.port}`, ours: false, sshd: true })
      if (!(refused instanceof SshFailure)) return assert.fail(`through a jump host whose key is unknown: ${String(refused)}`)
      assert.isFalse(refused.retryable)
      assert.strictEqual(
        refused.message,
        `${user}@localhost:${host.port}: jump host ${user}@${host.host}:${host.port} (ProxyJump trex-stranger, ${home}/.ssh/config:18): ` +
          `host key not in ${home}/.ssh/other_known_hosts (add it with ssh-keyscan -p ${host.port} ${host.host}, after checking its fingerprint)`
      )
      // a host behind a jump host whose key is unknown: scanned from the jump host (this machine cannot reach it)
      const behind = prepare({ host: "trex-target", knownHostsPath: `${home}/.ssh/jump_known_hosts` }, ssh2, {}, { home, user })
      const unknown = "ok" in behind ? new Connection(behind.ok) : assert.fail(behind.refusal)
      const why = yield* Effect.promise(() => unknown.exec("true").then(() => "connected", (e: unknown) => (e as Error).message))
      unknown.close()
      assert.strictEqual(
        why,
        `${user}@localhost:${host.port}: host key not in ${home}/.ssh/jump_known_hosts (add it with ssh trex-jump ssh-keyscan -p ${host.port} localhost, ` +
          "run on the jump host, since this machine reaches the host only through it, after checking its fingerprint)"
      )
      // a loop (a host met again the same way) is said once, as a whole, with the lines that make it
      Fs.appendFileSync(`${home}/.ssh/config`, `Host trex-loopa\n  ProxyJump trex-loopb\nHost trex-loopb\n  ProxyJump trex-loopa\nHost trex-self\n  ProxyJump ${user}@TREX-self\n`)
      const loop = (name: string) => { const p = prepare({ host: name }, ssh2, {}, { home, user }); return "refusal" in p ? p.refusal : "accepted" }
      assert.deepStrictEqual([loop("trex-loopa"), loop("trex-self")], [
        `${user}@trex-loopa: ProxyJump loop: trex-loopa -> trex-loopb -> trex-loopa (${home}/.ssh/config:29, ${home}/.ssh/config:31): give trex-loopa \`ProxyJump none\` in its own Host block`,
        `${user}@trex-self: ProxyJump loop: trex-self -> TREX-self (${home}/.ssh/config:33): give TREX-self \`ProxyJump none\` in its own Host block`
      ])
      // through the backend: a job runs, named as before (the name given, not the jump)
      const backend = yield* withEnv({ HOME: home }, SshBackend.make({ ...config, hosts: [{ host: "trex-target", username: user }] }))
      const ref = yield* backend.submit(spec(["sh", "-c", `echo '{"metrics":{},"primary":7}' > result.json`]))
      assert.strictEqual(ref.data["host"], `${user}@trex-target:22`)
      const exit = yield* Backend.awaitExit(backend, ref)
      assert.strictEqual(exit.outcome, "Succeeded", exit.message)
    })))

  it.live("ProxyJump: the host's connection dropping while the connection is in use ends every client; a jump host's late close forgets no newer connection", () =>
    Effect.promise(async () => {
      const hostKey = hostKeyLine()
      const home = sshdHome(
        ["Host trex-jump", `  HostName ${host.host}`, "Host trex-target", "  HostName localhost", "  ProxyJump trex-jump"],
        "~/.ssh/known",
        { known: `[localhost]:${host.port} ${hostKey.split(" ").slice(1, 3).join(" ")}\n${hostKey}\n` }
      )
      /** This process's TCP connections to the sshd (its jump host's: the host's go from the jump host's sshd), by local port. */
      const ours = () =>
        execFileSync("ss", ["-tnpH", "state", "established", `( dport = :${host.port} )`], { encoding: "utf8" }).split("\n")
          .filter((l) => l.includes(`pid=${process.pid},`)).map((l) => l.trim().split(/\s+/)[2]!)
      const before = new Set(ours())
      const p = prepare({ host: "trex-target" }, await Clients.ssh2(), {}, { home, user })
      if (!("ok" in p)) return assert.fail(p.refusal)
      const c = new Connection(p.ok)
      assert.strictEqual((await c.exec("echo up")).stdout, "up\n")
      // the host's sshd session goes (as a host dropping the connection) while polls keep asking, every 2 ms, for a
      // while (the kill's own command never ends: not waited for)
      c.exec("kill -9 $PPID").catch(() => undefined)
      let polls = 0
      let settled = 0
      for (; polls < 150; polls++) {
        void c.exec("true").catch(() => undefined).finally(() => settled++)
        await new Promise((r) => setTimeout(r, 2))
      }
      // each request is answered, and the connection serves again (one "Not connected" for good answers none)
      for (let i = 0; i < 100 && settled < polls; i++) await new Promise((r) => setTimeout(r, 50))
      const again = await c.exec("echo again").then((r) => r.stdout, (e: unknown) => String(e))
      c.close()
      // every connection this one made is gone (waited for: a client ends a round trip after close())
      let left = ours().filter((port) => !before.has(port))
      for (let i = 0; i < 100 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 20))
        left = ours().filter((port) => !before.has(port))
      }
      assert.deepStrictEqual([settled, again, left], [polls, "again\n", []])
    }))

  it.live("ProxyJump: a jump host whose sshd forbids TCP forwarding is refused at once, not retried, naming the setting", () =>
    Effect.promise(async () => {
      // an sshd of this test's own: the test one's configuration on another port, forwarding forbidden (needs root, as in CI)
      const port = await new Promise<number>((resolve) => {
        const server = Net.createServer().listen(0, "127.0.0.1", () => {
          const p = (server.address() as Net.AddressInfo).port
          server.close(() => resolve(p))
        })
      })
      const sshd = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", `/etc/ssh/sdktest/sshd_config.${host.port}`, "-o", `Port=${port}`, "-o", "PidFile=none", "-o", "AllowTcpForwarding=no"], { stdio: "ignore" })
      try {
        for (let i = 0; i < 100; i++) {
          const up = await new Promise<boolean>((resolve) => {
            const s = Net.connect(port, host.host, () => (s.destroy(), resolve(true))).once("error", () => resolve(false))
          })
          if (up) break
          await new Promise((r) => setTimeout(r, 50))
        }
        const keyOnly = hostKeyLine().split(" ").slice(1, 3).join(" ")
        const home = sshdHome(
          ["Host trex-closed", `  HostName ${host.host}`, `  Port ${port}`, "Host trex-behind", "  HostName localhost", "  ProxyJump trex-closed"],
          "~/.ssh/known",
          { known: `[${host.host}]:${port} ${keyOnly}\n[localhost]:${host.port} ${keyOnly}\n` }
        )
        const p = prepare({ host: "trex-behind" }, await Clients.ssh2(), {}, { home, user })
        if (!("ok" in p)) return assert.fail(p.refusal)
        const c = new Connection(p.ok)
        const e = await c.exec("true").then(() => undefined, (e: unknown) => e as SshFailure)
        c.close()
        if (!(e instanceof SshFailure)) return assert.fail(`through a jump host that forbids forwarding: ${String(e)}`)
        assert.deepStrictEqual([e.retryable, e.unreachable], [false, false])
        assert.include(e.message, `${user}@localhost:${host.port}: jump host ${user}@${host.host}:${port} (ProxyJump trex-closed, ${home}/.ssh/config:6): its sshd refuses to open a connection from it to localhost:${host.port}`)
        assert.include(e.message, "set AllowTcpForwarding yes (or local) in its sshd_config")
      } finally {
        sshd.kill()
      }
    }))

  it("an unknown key behind a jump host: the keyscan advice is a command ssh runs (an IPv6 jump host with a port as -p, a hop of a list through the hops before it)", async () => {
    const ssh2 = await Clients.ssh2()
    const home = sshdHome(
      [
        "Host trex-jump",
        `  HostName ${host.host}`,
        "Host trex-v6 trex-v6list trex-list2",
        "  HostName localhost",
        "Host trex-v6",
        `  ProxyJump [::1]:${host.port}`,
        "Host trex-v6list",
        `  ProxyJump trex-jump,${user}@[::1]:${host.port}`,
        "Host trex-list2",
        "  ProxyJump trex-jump,trex-jump2:2200"
      ],
      "~/.ssh/known",
      { known: `${hostKeyLine()}\n` }
    )
    const advice = (name: string) => {
      const p = prepare({ host: name }, ssh2, {}, { home, user })
      if (!("ok" in p)) return assert.fail(p.refusal)
      const m = KnownHosts.refusal("unknown", "h", "f", "localhost", host.port!, p.ok.jump?.destination)
      return m.slice(m.indexOf("add it with ") + 12, m.indexOf(" ssh-keyscan"))
    }
    assert.deepStrictEqual(["trex-v6", "trex-v6list", "trex-list2"].map(advice), [
      `ssh -p ${host.port} ::1`,
      `ssh -J trex-jump -p ${host.port} ${user}@::1`,
      "ssh -J trex-jump ssh://trex-jump2:2200"
    ])
  })

  it.live("a host that closes the connection right after its banner is a clear, retryable failure, not a request left waiting", () =>
    Effect.promise(async () => {
      // a TCP server of this test's own: an SSH banner, then the connection closed (ssh2 sends no error for it)
      const server = Net.createServer((s) => s.end("SSH-2.0-OpenSSH_9.2\r\n"))
      const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as Net.AddressInfo).port)))
      try {
        const home = homeWith("")
        const p = prepare(
          { host: "127.0.0.1", port, username: user, privateKeyPath: host.privateKeyPath, knownHostsPath: host.knownHostsPath },
          await Clients.ssh2(),
          {},
          { home, user }
        )
        if (!("ok" in p)) return assert.fail(p.refusal)
        const c = new Connection(p.ok)
        const e = await c.exec("true").then(() => undefined, (e: unknown) => e as SshFailure)
        c.close()
        if (!(e instanceof SshFailure)) return assert.fail(`a host that closes after its banner: ${String(e)}`)
        assert.deepStrictEqual([e.message, e.retryable, e.unreachable], [`${user}@127.0.0.1:${port}: the host closed the connection before login`, true, true])
      } finally {
        server.close()
      }
    }))

  it.live("a fully explicit host is not refused over an IdentityFile or UserKnownHostsFile it overrides; %C is the hash OpenSSH uses", () =>
    Effect.gen(function*() {
      yield* sshdUp
      const ssh2 = yield* Effect.promise(Clients.ssh2)
      const home = homeWith(["Host *", "  IdentityFile ~/.ssh/id_%Z", "  UserKnownHostsFile ~/.ssh/kh_%Z", "  Port ssh", ""].join("\n"))
      const given = { host: "trex-explicit", username: user, privateKeyPath: host.privateKeyPath, knownHostsPath: host.knownHostsPath }
      const p = prepare(given, ssh2, {}, { home, user })
      assert.isTrue("ok" in p, "refusal" in p ? p.refusal : "")
      // %C: ssh's own expansion (its debug log names the identity file it tries)
      Fs.writeFileSync(`${home}/.ssh/config`, ["Host trex-c", `  HostName ${host.host}`, `  Port ${host.port}`, `  User ${user}`, "  IdentityFile ~/.ssh/id_%C", ""].join("\n"))
      const log = spawnSync("ssh", ["-F", `${home}/.ssh/config`, "-vvv", "-o", "BatchMode=yes", "-o", `UserKnownHostsFile=${host.knownHostsPath}`, "trex-c", "true"], {
        env: { ...process.env, HOME: home },
        encoding: "utf8"
      }).stderr
      const theirs = /identity file \S*\/\.ssh\/id_([0-9a-f]{40}) /.exec(log)?.[1]
      assert.isDefined(theirs, log)
      assert.deepStrictEqual(SshConfig.forHost("trex-c", {}, { home, user: SshConfig.here().user }).identityFiles, [`${home}/.ssh/id_${theirs}`])
    }))

  it.live("a key the host refuses is said with where it came from (the field, the config's line) and that it was read at make", () =>
    Effect.gen(function*() {
      yield* sshdUp
      const ssh2 = yield* Effect.promise(Clients.ssh2)
      const home = homeWith(["Host trex-key", `  HostName ${host.host}`, `  Port ${host.port}`, `  User ${user}`, "  IdentityFile ~/.ssh/other_key", `  UserKnownHostsFile ${host.knownHostsPath}`, ""].join("\n"))
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", `${home}/.ssh/other_key`])
      const refusedWith = (given: { readonly host: string; readonly privateKeyPath?: string }) =>
        Effect.promise(async () => {
          const p = prepare(given, ssh2, {}, { home, user })
          if (!("ok" in p)) return assert.fail(p.refusal)
          const c = new Connection(p.ok)
          const e = await c.exec("true").then(() => undefined, (e: unknown) => e as Error)
          c.close()
          return e?.message ?? "accepted"
        })
      const fromFile = yield* refusedWith({ host: "trex-key" })
      assert.include(fromFile, `the key ${home}/.ssh/other_key was not accepted for user ${user}`)
      assert.include(fromFile, `it is the IdentityFile of ${home}/.ssh/config:5, read when the backend was made (a key file changed since, say a rotated key, is read at the next start)`)
      const fromField = yield* refusedWith({ host: "trex-key", privateKeyPath: `${home}/.ssh/other_key` })
      assert.include(fromField, "it is the host's privateKeyPath, read when the backend was made")
    }))
})
