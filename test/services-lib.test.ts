/**
 * scripts/services/lib.sh's `wait_for SECONDS CMD...`, which the start-*.sh scripts wait for their daemons with, run by
 * a real bash on shell functions as those scripts give it: a try that hangs (a daemon that takes the connection and
 * never answers) is killed, with the command it started, once the time is up, rather than hanging the script; and when
 * the script itself is stopped (SIGTERM, Ctrl-C) while a try runs, the try goes with it. lib.sh says when a signal was
 * ignored at the shell's start (bash cannot trap it then), and start-all.sh, stopped, stops the start scripts, stop
 * scripts or apt it runs, here scripts of the test's own (TREX_SERVICES_DIR) and an apt-get of its own on PATH, never
 * the real services or apt.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "vitest"

const lib = path.resolve(import.meta.dirname, "../scripts/services/lib.sh")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trex-wait-for-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** `script` run by bash with lib.sh sourced, under `set -euo pipefail` as the start scripts run; a bash that has not ended in 30 s is killed. */
const bash = (script: string) => {
  const r = spawnSync("bash", ["-c", `set -euo pipefail\n. ${lib}\n${script}`], { cwd: dir, encoding: "utf8", timeout: 30_000 })
  assert.isNull(r.signal, `bash did not end in 30 s (killed by ${r.signal}): wait_for hung. stdout: ${r.stdout} stderr: ${r.stderr}`)
  return r
}

/**
 * An apt configuration (for APT_CONFIG) whose dpkg admin directory (`admin`), lists and caches are the test's own, under
 * `root`, with no sources: apt's locks are there, never the machine's (which another apt may hold meanwhile).
 */
const aptConfig = (root: string, admin: string) => {
  for (const d of [admin, `${root}/lists/partial`, `${root}/cache/archives/partial`, `${root}/sources.list.d`, `${root}/log`]) {
    fs.mkdirSync(d, { recursive: true })
  }
  if (!fs.existsSync(`${admin}/status`)) fs.writeFileSync(`${admin}/status`, "")
  const conf = path.join(root, "apt.conf")
  fs.writeFileSync(
    conf,
    [
      `Dir::State::status "${admin}/status";`,
      `Dir::State::lists "${root}/lists/";`,
      `Dir::Cache "${root}/cache/";`,
      `Dir::Cache::archives "${root}/cache/archives/";`,
      `Dir::Etc::sourcelist "/dev/null";`,
      `Dir::Etc::sourceparts "${root}/sources.list.d/";`,
      `Dir::Log "${root}/log/";`
    ].join("\n") + "\n"
  )
  return conf
}

/** The process runs (a killed one may stay a zombie a moment, until whoever inherited it reaps it: not running). */
const alive = (pid: number) => {
  const stat = fs.existsSync(`/proc/${pid}/stat`) ? fs.readFileSync(`/proc/${pid}/stat`, "utf8") : ""
  return stat !== "" && !/^\d+ \(.*\) Z /.test(stat)
}

/** Waits (up to 10 s, polling) until `done()` holds; false if it never did. */
const until = async (done: () => boolean) => {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  return done()
}

/**
 * bash started with `args` (env added to this process's), which gets `signal` once every one of `pidFiles` (and `kept`)
 * holds the pid of a command it runs; resolves with how bash ended, its stdout and stderr, which of the `pidFiles`
 * commands still run, and which of the `kept` ones (meant to outlive it: looked at once, when bash has ended) do not
 * (killed by the test if they run).
 */
const stoppedWhileRunning = (
  args: ReadonlyArray<string>,
  pidFiles: ReadonlyArray<string>,
  signal: NodeJS.Signals = "SIGTERM",
  env: Record<string, string> = {},
  kept: ReadonlyArray<string> = []
) =>
  new Promise<{
    code: number | null
    signal: NodeJS.Signals | null
    stdout: string
    stderr: string
    left: Array<string>
    gone: Array<string>
  }>(
    (resolve, reject) => {
      const child = spawn("bash", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (chunk) => (stdout += chunk))
      child.stderr.on("data", (chunk) => (stderr += chunk))
      child.on("error", reject)
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((done) => child.on("exit", (code, signal) => done([code, signal])))
      const written = (f: string) => fs.existsSync(f) && fs.readFileSync(f, "utf8").endsWith("\n")
      void (async () => {
        const started = await until(() => [...pidFiles, ...kept].every(written))
        child.kill(started ? signal : "SIGKILL")
        const [code, ended] = await exited
        const gone: Array<string> = []
        for (const f of kept.filter(written)) {
          const pid = Number(fs.readFileSync(f, "utf8"))
          if (alive(pid)) process.kill(pid, "SIGKILL")
          else gone.push(path.basename(f))
          fs.rmSync(f)
        }
        const left: Array<string> = []
        for (const f of pidFiles.filter(written)) {
          const pid = Number(fs.readFileSync(f, "utf8"))
          if (!(await until(() => !alive(pid)))) {
            left.push(path.basename(f))
            process.kill(pid, "SIGKILL")
          }
          fs.rmSync(f)
        }
        if (!started) return reject(new Error(`not every command started: stdout: ${stdout} stderr: ${stderr}`))
        resolve({ code, signal: ended, stdout, stderr, left, gone })
      })().catch(reject)
    }
  )

/** `script` (lib.sh sourced) run by bash, which gets SIGTERM once `pidFile` holds the pid of the try's command. */
const terminatedWhileTrying = async (script: string, pidFile: string) => {
  const r = await stoppedWhileRunning(["-c", `set -euo pipefail\n. ${lib}\n${script}`], [pidFile])
  return { code: r.code, signal: r.signal, stdout: r.stdout, tryAlive: r.left.length > 0 }
}

describe("wait_for", () => {
  it("kills a try that hangs when the calling script gets SIGTERM, under the script's own traps, restored", async () => {
    const pidFile = path.join(dir, "term.pid")
    const hangs = `hangs() { sh -c 'echo $$ > ${pidFile}; exec sleep 600'; }`
    // a script with no trap of its own dies of the signal, as it would have without wait_for
    const bare = await terminatedWhileTrying(`${hangs}\nwait_for 60 hangs\necho "wait_for returned $?"`, pidFile)
    assert.deepStrictEqual(bare, { code: null, signal: "SIGTERM", stdout: "", tryAlive: false })
    // a script's own TERM and EXIT traps are back in place when the signal is given back to it
    const trapped = await terminatedWhileTrying(
      [hangs, `trap 'echo "script exits"' EXIT`, `trap 'echo "script got TERM"; exit 7' TERM`, `wait_for 60 hangs`, `echo "wait_for returned $?"`].join("\n"),
      pidFile
    )
    assert.deepStrictEqual(trapped, { code: 7, signal: null, stdout: "script got TERM\nscript exits\n", tryAlive: false })
  })

  it("kills a try that hangs, and the command it started, when the time is up, and fails", () => {
    const pidFile = path.join(dir, "hung.pid")
    try {
      // a shell function whose command never answers (as `curl` or `docker info` on a daemon that hangs). wait_for
      // counts whole seconds of $SECONDS, so `wait_for 1` may end in a tenth of a second, before a loaded machine has
      // started the command: 2 gives it at least one second
      const r = bash(`hangs() { sh -c 'echo $$ > ${pidFile}; exec sleep 600'; }\nwait_for 2 hangs && echo "succeeded" || echo "failed: $?"`)
      assert.strictEqual(r.stdout, "failed: 137\n", r.stderr)
      assert.strictEqual(r.stderr, "")
      assert.isTrue(fs.existsSync(pidFile), "the hung command never started")
      const pid = Number(fs.readFileSync(pidFile, "utf8"))
      assert.isFalse(alive(pid), `the hung command (process ${pid}) still runs`)
    } finally {
      if (fs.existsSync(pidFile)) {
        const pid = Number(fs.readFileSync(pidFile, "utf8"))
        if (alive(pid)) process.kill(pid, "SIGKILL")
      }
    }
  })

  it("retries a shell function until it succeeds, its output hidden, and gives the last try's status when none does", () => {
    const count = path.join(dir, "tries")
    const r = bash([
      `third() { n=$(( $(cat ${count} 2>/dev/null || echo 0) + 1 )); echo $n > ${count}; echo "try $n"; [ "$n" -ge 3 ]; }`,
      `wait_for 20 third && echo "succeeded at try $(cat ${count})"`,
      `fails() { echo no; return 3; }`,
      `wait_for 0 fails || echo "failed: $?"`,
      // the shell's job control is as it was
      `case $- in *m*) echo "job control on" ;; esac`
    ].join("\n"))
    assert.strictEqual(r.stdout, "succeeded at try 3\nfailed: 3\n", r.stderr)
    assert.strictEqual(r.stderr, "")
  })
})

describe("lib.sh", () => {
  it("says once, on stderr, which of SIGINT, SIGTERM and SIGHUP were ignored when the shell started, and keeps a script's own traps", () => {
    // ignored by the `sh` that execs bash, as a shell without job control does for a job started with `&` (SIGINT)
    // and as nohup does (SIGHUP): bash cannot trap them, so wait_for's traps of them are not set
    const script = `set -euo pipefail\n. ${lib}\nok() { true; }\nwait_for 5 ok\ntrap -p\necho done`
    const ignored = spawnSync("sh", ["-c", `trap '' INT HUP; exec bash -c "$0"`, script], { cwd: dir, encoding: "utf8", timeout: 30_000 })
    assert.strictEqual(
      ignored.stderr,
      "[bash] SIGINT SIGHUP ignored since this shell started (as in a job that a shell without job control starts with &, or under nohup): " +
        "bash cannot trap such a signal, so it stops neither this script nor a wait_for try\n"
    )
    assert.strictEqual(ignored.stdout, "trap -- '' SIGHUP\ntrap -- '' SIGINT\ndone\n")
    // a signal the script itself ignores, or traps, before it sources lib.sh can be trapped: nothing said, and kept
    const own = bash(`trap '' TERM\ntrap 'echo hup' HUP\n. ${lib}\ntrap -p\necho done`)
    assert.strictEqual(own.stderr, "")
    assert.strictEqual(own.stdout, "trap -- 'echo hup' SIGHUP\ntrap -- '' SIGTERM\ndone\n")
  })
})

describe("running, pidfile_running, stop_pidfile", () => {
  it("take a zombie (a process that ended, its parent not waiting for it) for gone, which `kill -0` does not", () => {
    // a real zombie: a child that exits at once, whose parent (perl, which reaps no child unless asked) never waits for
    // it, as a daemon's middle fork or a daemon that died stays one until pid 1 reaps it (this machine's /process_api a
    // second later, a container's `sleep infinity` as pid 1 never)
    const r = bash([
      `perl -e '$p = fork; exit 0 unless $p; open F, ">zombie.pid"; print F "$p\\n"; close F; sleep 30' & parent=$!`,
      `sleep 30 & echo $! > runs.pid`,
      `until [ -s zombie.pid ] && grep -q '^[0-9]* (.*) Z ' /proc/$(cat zombie.pid)/stat; do sleep 0.05; done`,
      `kill -0 $(cat zombie.pid) && echo "kill -0 finds the zombie"`,
      `running $(cat zombie.pid) || echo "the zombie does not run"`,
      `pidfile_running zombie.pid || echo "nor does its pid file's process"`,
      `pidfile_running runs.pid && running $(cat runs.pid) && echo "sleep runs"`,
      `pidfile_running no-such.pid || running "" || running abc || echo "no pid file, no pid: nothing runs"`,
      // stopped: the zombie is nothing to stop (before, 15 s of waiting for it to go, then its pid printed as stopped)
      `echo "stopped [$(stop_pidfile zombie.pid)]"; [ -e zombie.pid ] || echo "its pid file removed"`,
      `[ "$(stop_pidfile runs.pid)" = "$!" ] && ! running $! && echo "sleep stopped"`,
      `kill $parent`
    ].join("\n"))
    assert.strictEqual(
      r.stdout,
      [
        "kill -0 finds the zombie",
        "the zombie does not run",
        "nor does its pid file's process",
        "sleep runs",
        "no pid file, no pid: nothing runs",
        "stopped []",
        "its pid file removed",
        "sleep stopped",
        ""
      ].join("\n"),
      r.stderr
    )
  })

  it("read a pid file without a final newline, as dockerd and containerd write theirs: the daemon runs, and stop stops it", () => {
    // before, `read` failed on the missing newline: `stop` removed a live dockerd's pid file and left it running, and the
    // Docker tests that stop the engine then waited for an outage that never came
    const r = bash([
      `sleep 30 & printf '%s' $! > nonl.pid`,
      `pidfile_running nonl.pid && echo "runs"`,
      `echo "pid $(pidfile_pid nonl.pid) of $!"`,
      `echo "stopped [$(stop_pidfile nonl.pid)]"`,
      `running $! || echo "sleep stopped"`,
      `[ -e nonl.pid ] || echo "its pid file removed"`
    ].join("\n"))
    const pid = /pid (\d+) of (\d+)/.exec(r.stdout)
    assert.isNotNull(pid, r.stdout + r.stderr)
    assert.strictEqual(pid![1], pid![2])
    assert.strictEqual(r.stdout, ["runs", `pid ${pid![1]} of ${pid![1]}`, `stopped [${pid![1]}]`, "sleep stopped", "its pid file removed", ""].join("\n"), r.stderr)
  })

  it("are what every start script checks a daemon with: none uses `kill -0`, which a zombie passes", () => {
    // a dead slurmctld, sge_qmaster or sshd, a zombie a moment, was taken for up: not started again, and counted in .env
    const scripts = path.resolve(import.meta.dirname, "../scripts/services")
    for (const f of fs.readdirSync(scripts).filter((f) => f.endsWith(".sh"))) {
      const code = fs.readFileSync(path.join(scripts, f), "utf8").split("\n").filter((l) => !/^\s*#/.test(l))
      assert.deepStrictEqual(code.filter((l) => /kill -0/.test(l)), [], `${f} checks a process with kill -0`)
    }
  })
})

describe("put_file", () => {
  it("replaces a file by a rename only when its contents or mode change: a reader meanwhile never sees it empty or missing", async () => {
    const f = path.join(dir, "authorized_keys")
    const seen = path.join(dir, "reader-saw")
    bash(`printf 'key 0\\n' | put_file 644 ${f}`)
    // a reader as sshd reads authorized keys, as fast as it can, while the file is written 40 times
    const reader = spawn("bash", ["-c", `while :; do c=; { read -r c < ${f}; } 2>/dev/null || [ -n "$c" ] || { [ -e ${f} ] && c=EMPTY || c=MISSING; }; case $c in key*) ;; *) echo "$c" >> ${seen} ;; esac; done`], { stdio: "ignore" })
    try {
      bash(`for i in $(seq 40); do printf 'key %s\\n' $((i % 2)) | put_file 644 ${f}; done`)
    } finally {
      reader.kill("SIGKILL")
    }
    assert.isFalse(fs.existsSync(seen), fs.existsSync(seen) ? fs.readFileSync(seen, "utf8").slice(0, 200) : "")
    // the same contents and mode: the file is left as it is (same inode); a new mode is set
    const inode = fs.statSync(f).ino
    bash(`printf 'key 0\\n' | put_file 644 ${f}`)
    assert.strictEqual(fs.statSync(f).ino, inode)
    bash(`printf 'key 0\\n' | put_file 600 ${f}`)
    assert.strictEqual(fs.statSync(f).mode & 0o777, 0o600)
    assert.strictEqual(fs.readFileSync(f, "utf8"), "key 0\n")
    assert.deepStrictEqual(fs.readdirSync(dir).filter((n) => n.startsWith("authorized_keys.")), [], "no temporary file left")
  })
})

describe("apt_install", () => {
  it("finishes first what a dpkg stopped mid-run left (dpkg --configure -a), and only then", () => {
    // a dpkg, apt-get and dpkg-query of the test's own on PATH, which say what they were asked: never the real apt
    const bin = fs.mkdtempSync(path.join(dir, "bin-"))
    const calls = path.join(bin, "calls")
    // and a dpkg admin directory of its own (DPKG_ADMINDIR, dpkg's own variable), in a path with a space
    const admin = path.join(bin, "dpkg admin")
    const journal = path.join(admin, "updates", "0001")
    fs.mkdirSync(path.dirname(journal), { recursive: true })
    fs.writeFileSync(path.join(bin, "dpkg-query"), "#!/bin/sh\nexit 1\n", { mode: 0o755 })
    fs.writeFileSync(path.join(bin, "apt-get"), `#!/bin/sh\necho "apt-get $*" >> "${calls}"\n`, { mode: 0o755 })
    // a dpkg whose replay of its journal fails the first time (the lock held), then empties it
    fs.writeFileSync(
      path.join(bin, "dpkg"),
      `#!/bin/sh\necho "dpkg $*" >> "${calls}"\ncase "$*" in\n--configure\\ -a) [ -e "${calls}.once" ] || { touch "${calls}.once"; exit 2; }; rm -f "${journal}" ;;\nesac\n`,
      { mode: 0o755 }
    )
    fs.writeFileSync(path.join(bin, "trex-services-apt-updated"), "")
    const install = () => {
      fs.rmSync(calls, { force: true })
      const r = bash(
        `PATH='${bin}':$PATH TREX_SERVICES_RUN_DIR='${admin}' DPKG_ADMINDIR='${admin}' APT_CONFIG='${aptConfig(bin, admin)}'\n. ${lib}\napt_install openssh-server`
      )
      assert.strictEqual(r.status, 0, r.stderr)
      // apt-get waits for another apt's lock (none here) no longer than what is left of the 600 s (a second may pass)
      const asked = fs.readFileSync(calls, "utf8").replace(/Timeout=\d+ /, "Timeout=600 ")
      return { calls: asked, stderr: r.stderr.replace(/\[apt [\d:]+\]/g, "[apt]") }
    }
    fs.writeFileSync(path.join(admin, "trex-services-apt-updated"), "")
    const replay = "[apt] installing: openssh-server\n[apt] finishing what an interrupted dpkg left: dpkg --configure -a\n"
    const installed = "apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends openssh-server\n"
    fs.writeFileSync(journal, "")
    // a failed replay is said, and apt-get is tried all the same (it says why it refuses, if it does)
    assert.deepStrictEqual(install(), {
      calls: `dpkg --configure -a\n${installed}`,
      stderr: `${replay}[apt] dpkg --configure -a failed (status 2)\n`
    })
    assert.deepStrictEqual(install(), { calls: `dpkg --configure -a\n${installed}`, stderr: replay })
    // an empty journal: nothing to finish, whatever else dpkg --audit would list
    assert.deepStrictEqual(install(), { calls: installed, stderr: "[apt] installing: openssh-server\n" })
  })

  it("a failed `apt-get update` fails apt_install and leaves no stamp, also where the caller runs without `set -e`", () => {
    // start-all.sh runs without -e: before, the failed update was stamped, and no later start of the boot updated again
    const bin = fs.mkdtempSync(path.join(dir, "bin-"))
    const admin = path.join(bin, "dpkg")
    fs.mkdirSync(admin)
    fs.writeFileSync(path.join(bin, "dpkg-query"), "#!/bin/sh\nexit 1\n", { mode: 0o755 })
    fs.writeFileSync(path.join(bin, "apt-get"), `#!/bin/sh\necho "apt-get $*" >> "${bin}/calls"\ncase "$*" in *update*) exit 100 ;; esac\n`, { mode: 0o755 })
    const r = spawnSync("bash", ["-c", `set -uo pipefail\nexport PATH='${bin}':$PATH TREX_SERVICES_RUN_DIR='${bin}' DPKG_ADMINDIR='${admin}' APT_CONFIG='${aptConfig(bin, admin)}'\n. ${lib}\napt_install openssh-server\necho "status $?"`], { encoding: "utf8", timeout: 30_000 })
    assert.strictEqual(r.stdout, "status 100\n", r.stderr)
    assert.isFalse(fs.existsSync(path.join(bin, "trex-services-apt-updated")), "the failed update was stamped")
    assert.notInclude(fs.readFileSync(path.join(bin, "calls"), "utf8"), "install", "apt-get install ran after a failed update")
  })

  it("waits for another apt or dpkg that holds apt's lock, saying who and for how long at most, then runs apt-get", () => {
    // the real apt-get and dpkg-query, on an apt configuration and a dpkg admin directory of the test's own (APT_CONFIG,
    // DPKG_ADMINDIR), no sources: the package asked for is nowhere, so nothing is ever installed
    const root = fs.mkdtempSync(path.join(dir, "apt-"))
    const admin = path.join(root, "dpkg")
    const conf = aptConfig(root, admin)
    fs.writeFileSync(path.join(root, "trex-services-apt-updated"), "")
    // another apt (as unattended-upgrades on a fresh machine) holds dpkg's frontend lock, a POSIX lock, until the test
    // has seen apt_install wait for it (a fixed hold could end before a loaded machine's apt_install first looks)
    const holder = `import fcntl, os, sys, time; f = open(sys.argv[1], "w"); fcntl.lockf(f, fcntl.LOCK_EX); open(sys.argv[2], "w").close()\nwhile not os.path.exists(sys.argv[3]): time.sleep(0.05)`
    const r = bash([
      `export APT_CONFIG='${conf}' DPKG_ADMINDIR='${admin}' TREX_SERVICES_RUN_DIR='${root}'`,
      `python3 -c '${holder}' '${admin}/lock-frontend' '${root}/locked' '${root}/release' &`,
      `until [ -e '${root}/locked' ]; do sleep 0.05; done`,
      `apt_install trex-no-such-package 2>'${root}/err' & a=$!`,
      `for _ in $(seq 400); do grep -q 'waiting for it' '${root}/err' && break; sleep 0.05; done`,
      `touch '${root}/release'`,
      `wait $a || echo "apt_install failed: $?"`,
      `cat '${root}/err' >&2`
    ].join("\n"))
    const said = r.stderr.replace(/\[apt [\d:]+\]/g, "[apt]")
    // before, apt-get failed at once: "E: Could not get lock .../lock-frontend. It is held by process N (python3)"
    assert.notMatch(said, /Could not get lock/)
    assert.match(
      said,
      /^\[apt\] installing: trex-no-such-package\n\[apt\] apt's lock is held by \d+ \(python[\d.]*\) \(on a fresh machine: unattended-upgrades, cloud-init or apt-daily\): waiting for it, up to 600 s \(TREX_SERVICES_APT_LOCK_WAIT\)\n\[apt\] apt's lock free after \d+ s\n/
    )
    // then apt-get ran, and looked for the package
    assert.match(said, /E: Unable to locate package trex-no-such-package/)
    assert.strictEqual(r.stdout, "apt_install failed: 100\n")
  })
})

describe("start-all.sh", () => {
  const startAll = path.resolve(import.meta.dirname, "../scripts/services/start-all.sh")
  /**
   * A services directory of start scripts, `bodies(svc)` by name, each writing its pid to `start-<name>.pid` (and the
   * scripts of the tests, their command's to `<name>.pid`) before its body, with lib.sh sourced.
   */
  const servicesOf = (bodies: (svc: string) => Record<string, string>) => {
    const svc = fs.mkdtempSync(path.join(dir, "services-"))
    for (const [name, body] of Object.entries(bodies(svc))) {
      fs.writeFileSync(
        path.join(svc, `start-${name}.sh`),
        `#!/usr/bin/env bash\nset -euo pipefail\necho $$ > ${svc}/start-${name}.pid\n. ${lib}\n${body}\n`,
        { mode: 0o755 }
      )
    }
    return svc
  }
  /** Two start scripts that hang: one in a `wait_for` try, one in a command of its own. */
  const services = () =>
    servicesOf((svc) => ({
      tries: `hangs() { sh -c 'echo $$ > ${svc}/tries.pid; exec sleep 600'; }\nwait_for 60 hangs`,
      waits: `sh -c 'echo $$ > ${svc}/waits.pid; exec sleep 600'`
    }))

  it("gives a SIGTERM, SIGINT or SIGHUP to the start scripts it runs, with what they run, and dies of it", async () => {
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
      const svc = services()
      // (the scripts first: the test kills what is left in this order, and a script left would try again)
      const pids = ["start-tries", "start-waits", "tries", "waits"].map((p) => `${svc}/${p}.pid`)
      const r = await stoppedWhileRunning([startAll, "tries", "waits"], pids, signal, {
        TREX_SERVICES_DIR: svc,
        TREX_SERVICES_LOG_DIR: `${svc}/log`
      })
      // before, start-all.sh died alone (SIGINT did not even reach its scripts' group: ignored, as in any job a
      // shell without job control starts) and both sleeps ran on
      assert.deepStrictEqual(r.left, [], `${signal}: still running; stderr: ${r.stderr}`)
      assert.deepStrictEqual([r.code, r.signal], [null, signal], r.stderr)
      assert.match(r.stderr, new RegExp(`got ${signal}: stopping tries waits\\n`))
      assert.isFalse(fs.existsSync(`${svc}/.env`), "no .env written by a start that was stopped")
    }
  })

  it("gives the signal to the command of its debconf preseed, apt transaction or stop scripts, and dies of it", async () => {
    // an apt-get of the test's own on PATH, and a dpkg-query that finds no package installed: never the real apt
    const bin = fs.mkdtempSync(path.join(dir, "bin-"))
    fs.writeFileSync(path.join(bin, "dpkg-query"), "#!/bin/sh\nexit 1\n", { mode: 0o755 })
    fs.writeFileSync(path.join(bin, "apt-get"), `#!/bin/sh\necho $$ > "$TREX_SERVICES_RUN_DIR/apt-get.pid"\nexec sleep 600\n`, { mode: 0o755 })
    // and a dpkg that fails if asked anything (its admin directory below has no interrupted run to finish)
    fs.writeFileSync(path.join(bin, "dpkg"), "#!/bin/sh\necho \"dpkg $*: not expected\" >&2\nexit 1\n", { mode: 0o755 })
    const steps = [
      { signal: "SIGTERM", args: ["sshd"], hangs: "apt-get", stopping: "apt" },
      { signal: "SIGHUP", args: ["gridengine"], hangs: "start-gridengine", stopping: "preseed" },
      { signal: "SIGINT", args: ["stop", "sshd", "gridengine"], hangs: "start-sshd", stopping: "sshd" }
    ] as const
    for (const { args, hangs, signal, stopping } of steps) {
      const svc = servicesOf((svc) => ({
        // started, they would write their pid; a preseed or a stop hangs, in a command of its own
        sshd: `[ "\${1:-}" = stop ] && sh -c 'echo $$ > ${svc}/start-sshd.stop.pid; exec sleep 600'`,
        gridengine: `[ "\${1:-}" = preseed ] && sh -c 'echo $$ > ${svc}/start-gridengine.preseed.pid; exec sleep 600'`
      }))
      fs.writeFileSync(`${svc}/trex-services-apt-updated`, "")
      const pids = hangs === "apt-get" ? [`${svc}/apt-get.pid`] : [`${svc}/${hangs}.pid`, `${svc}/${hangs}.${args[0] === "stop" ? "stop" : "preseed"}.pid`]
      const r = await stoppedWhileRunning([startAll, ...args], pids, signal, {
        TREX_SERVICES_DIR: svc,
        TREX_SERVICES_LOG_DIR: `${svc}/log`,
        TREX_SERVICES_RUN_DIR: svc,
        DPKG_ADMINDIR: svc,
        APT_CONFIG: aptConfig(svc, svc),
        PATH: `${bin}:${process.env.PATH}`
      })
      // before, these ran in the foreground: the signal waited for them to end (never, here), and the test's SIGKILL
      // of start-all.sh alone left them running
      assert.deepStrictEqual(r.left, [], `${stopping}: still running; stderr: ${r.stderr}`)
      assert.deepStrictEqual([r.code, r.signal], [null, signal], r.stderr)
      assert.match(r.stderr, new RegExp(`got ${signal}: stopping ${stopping}\\n`))
      assert.notMatch(r.stderr, /killed|not expected/)
      // nothing started after the step stopped: no start script, no second stop script, no .env
      const written = fs.readdirSync(svc).filter((f) => f.endsWith(".pid") || f === ".env")
      assert.deepStrictEqual(written, [], `${stopping}: ran on after the signal`)
    }
  })

  it("writes .env without hanging on a Docker engine that takes the connection and never answers", () => {
    // a `docker` of the test's own on PATH that hangs (as `docker info` on a dockerd that hangs): start-all.sh waited
    // for it for good, in the foreground, before writing .env (its output elsewhere: a hung start-all.sh, killed after
    // 30 s, then leaves no one holding the test's pipes)
    const bin = fs.mkdtempSync(path.join(dir, "bin-"))
    fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh\necho $$ > "${bin}/docker.pid"\nexec sleep 600 >/dev/null 2>&1\n`, { mode: 0o755 })
    const svc = servicesOf(() => ({ quiet: "" }))
    const r = spawnSync(startAll, ["stop", "quiet"], {
      cwd: dir,
      encoding: "utf8",
      timeout: 30_000,
      // (SIGKILL: a SIGTERM waits for the command in the foreground, start-all.sh's trap running only after it)
      killSignal: "SIGKILL",
      env: {
        ...process.env,
        PATH: `${bin}:${process.env.PATH}`,
        TREX_SERVICES_DIR: svc,
        TREX_SERVICES_LOG_DIR: `${svc}/log`,
        // how long start-all.sh gives each check (default 5 s)
        TREX_SERVICES_CHECK_SECONDS: "1"
      }
    })
    const pid = fs.existsSync(`${bin}/docker.pid`) ? Number(fs.readFileSync(`${bin}/docker.pid`, "utf8")) : undefined
    if (pid !== undefined && alive(pid)) process.kill(pid, "SIGKILL")
    assert.isNull(r.signal, `start-all.sh did not end in 30 s (killed by ${r.signal}): it hung on docker info. stderr: ${r.stderr}`)
    assert.strictEqual(r.status, 0, r.stderr)
    assert.isDefined(pid, "docker info was never asked")
    assert.isFalse(alive(pid!), "the docker that hung still runs")
    // and the engine that does not answer is not up
    const services = /^TREX_SERVICES="(.*)"$/m.exec(fs.readFileSync(`${svc}/.env`, "utf8"))
    assert.isNotNull(services)
    assert.notInclude(services![1].split(" "), "docker")
  })

  it("leaves alone the group of a start script that has ended, and a daemon it left there", async () => {
    for (const order of [["up", "waits"], ["waits", "up"]]) {
      const svc = servicesOf((svc) => ({
        // a service up, whose daemon (started with a plain `&`, as `/etc/init.d/mariadb start` starts mysqld_safe) stays
        // in the script's group, and ignores SIGTERM
        up: `sh -c 'trap "" TERM; echo $$ > ${svc}/up.pid; exec sleep 600' &\nuntil [ -s ${svc}/up.pid ]; do sleep 0.05; done`,
        // a script still running once that one has ended (a zombie not reaped yet has ended too)
        waits: [
          `until [ -s ${svc}/up.pid ] && ! grep -qv '^[0-9]* (.*) Z ' /proc/$(cat ${svc}/start-up.pid)/stat 2>/dev/null; do sleep 0.05; done`,
          `sh -c 'echo $$ > ${svc}/waits.pid; exec sleep 600'`
        ].join("\n")
      }))
      const r = await stoppedWhileRunning(
        [startAll, ...order],
        [`${svc}/start-waits.pid`, `${svc}/waits.pid`],
        "SIGTERM",
        { TREX_SERVICES_DIR: svc, TREX_SERVICES_LOG_DIR: `${svc}/log` },
        [`${svc}/up.pid`]
      )
      // before, the ended script's group got the SIGTERM too, and its daemon, which ignores it, was killed 10 s later
      assert.deepStrictEqual(r.gone, [], `${order}: the daemon of the script that had ended was stopped; stderr: ${r.stderr}`)
      assert.deepStrictEqual(r.left, [], `${order}: still running; stderr: ${r.stderr}`)
      assert.deepStrictEqual([r.code, r.signal], [null, "SIGTERM"], r.stderr)
      assert.match(r.stderr, /got SIGTERM: stopping waits\n/)
      assert.notMatch(r.stderr, /killed/)
    }
  })
})
