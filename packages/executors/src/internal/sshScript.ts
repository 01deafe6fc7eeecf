/**
 * POSIX shell quoting and the wrapper script the SSH backend runs on a remote host. The wrapper
 * records the job's process group in `.trex-pid`, enforces the time limit on the remote side (so
 * it holds while the controller is away), and writes the exit code to `.trex-exit`.
 */

/** Control files in a remote job directory. */
export const FILES = {
  script: ".trex-run.sh",
  env: ".trex-env",
  job: ".trex-job.json",
  pid: ".trex-pid",
  exit: ".trex-exit",
  cancelled: ".trex-cancelled",
  timeout: ".trex-timeout",
  wrapperLog: ".trex-wrapper.log",
  stdout: "stdout.log",
  stderr: "stderr.log"
} as const

/**
 * Quote one word for a POSIX shell: the result is always a single word whose value is exactly `s`
 * (single quotes keep everything literal; a single quote itself becomes `'\''`). Words with `=` are
 * quoted too, so that a first word like `A=1` is a command, never an assignment.
 */
export const quote = (s: string): string => (/^[A-Za-z0-9_@%+:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`)

/** Quote an argv into one command line. */
export const quoteArgv = (argv: ReadonlyArray<string>): string => argv.map(quote).join(" ")

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** The prefix of the wrapper's own shell names: a job's environment may not use it (its `export` would replace them). */
export const RESERVED_PREFIX = "__trex_"

/** `export NAME='value'` lines (a file sourced by the wrapper, then deleted). Throws on a bad name. */
export const envFile = (env: Readonly<Record<string, string>>): string =>
  Object.entries(env)
    .map(([k, v]) => {
      if (!ENV_NAME.test(k)) throw new Error(`environment variable name ${JSON.stringify(k)} is not a valid shell name`)
      if (k.startsWith(RESERVED_PREFIX)) {
        throw new Error(`environment variable name ${JSON.stringify(k)} is reserved (names starting ${RESERVED_PREFIX} are the SSH job wrapper's own): rename it in the job's env`)
      }
      return `export ${k}=${quote(v)}\n`
    })
    .join("")

export interface WrapperOptions {
  readonly jobDir: string
  readonly argv: ReadonlyArray<string>
  readonly gpuIds: ReadonlyArray<string>
  readonly timeLimitSeconds?: number | undefined
  readonly killGraceSeconds: number
  /**
   * The job's token (its record's `token`, a hex nonce): written into its `.trex-exit`, `.trex-timeout` (and a cancel's
   * `.trex-cancelled`), so that a marker a job of another record wrote (hosts sharing one file system) is told apart.
   */
  readonly token: string
}

/** Where a marker holds its job's token (a field, from 1): `.trex-exit` is `<code> <time> <token>`, the others `<time> <token>`. */
export const TOKEN_FIELD = { [FILES.exit]: 3, [FILES.cancelled]: 2, [FILES.timeout]: 2 } as const

/** A token, as {@link WrapperOptions.token} and the record's `token` are (anything else is none). */
export const TOKEN = /^[0-9a-f]{1,64}$/

/**
 * Whether a marker's text is its job's, given the token of the directory's record (`undefined`: a record without one):
 * a marker without a token (written by an earlier version) is, as before; one with a token is only if it is that one.
 */
export const markerOf = (file: keyof typeof TOKEN_FIELD, text: string | undefined, token: string | undefined): boolean => {
  if (text === undefined) return false
  const t = text.trim().split(/\s+/)[TOKEN_FIELD[file] - 1]
  return t === undefined || t === token
}

/** A shell test: the marker `file` in the current directory has no token or the token in shell word `tok`. */
const markerIs = (file: keyof typeof TOKEN_FIELD, tok: string, d = "."): string =>
  `{ [ -f ${d}/${file} ] && __trex_t=$(awk '{print $${TOKEN_FIELD[file]}}' ${d}/${file} 2>/dev/null) && { [ -z "$__trex_t" ] || [ "$__trex_t" = ${tok} ]; }; }`

/** Shell: the token of the job record in directory `d` (a shell word; empty: none, a record of an earlier version). */
const tokenIn = (d: string): string => `"$(sed -n 's/.*"token":"\\([0-9a-f]*\\)".*/\\1/p' ${d}/${FILES.job} 2>/dev/null)"`

/**
 * A shell test: the job in directory `d` (a shell word) has ended: its `.trex-exit` is there with its record's token
 * (or none). An exit of another token (a job the directory held before, hosts sharing one file system) is not its end.
 */
export const exited = (d: string): string => markerIs(FILES.exit, tokenIn(d), d)

/** A `sleep` of `seconds` that a SIGUSR1 to its shell ends, with the shell, at any moment. */
const timer = (seconds: number): string =>
  `u=; trap 'u=1' USR1; sleep ${seconds} & s=$!; trap 'kill -KILL $s 2>/dev/null; exit 0' USR1; ` +
  `[ -z "$u" ] || { kill -KILL $s 2>/dev/null; exit 0; }; wait $s`

/**
 * The wrapper, run as `setsid nohup sh .trex-run.sh` so that it leads its own process group and
 * survives the SSH session. Its own TERM trap keeps it alive long enough to record the exit code
 * when the job is cancelled; a KILL of the group leaves only the `.trex-cancelled`/`.trex-timeout` marker.
 */
export const wrapper = (o: WrapperOptions): string => {
  const dir = quote(o.jobDir)
  const limit = o.timeLimitSeconds !== undefined ? Math.max(1, Math.ceil(o.timeLimitSeconds)) : undefined
  if (!TOKEN.test(o.token)) throw new Error(`token ${JSON.stringify(o.token)} must be hex`)
  return [
    "#!/bin/sh",
    "# written by the TREX SSH backend",
    `cd ${dir} || exit 97`,
    // its job's record as it started: a directory whose record changed since holds another job (hosts sharing one
    // file system: the node's next job on another host took it), whose exit and time-out marker this one never writes.
    // Every name of the wrapper's own that a job's env could set is __trex_-prefixed (refused in a job's env): an
    // `export rec=...` there replaced the noted record, and the job's exit was never written
    `__trex_rec=$(cat ${FILES.job} 2>/dev/null); __trex_ours() { [ "$(cat ${FILES.job} 2>/dev/null)" = "$__trex_rec" ]; }`,
    `if [ -f ${FILES.env} ]; then . ./${FILES.env}; rm -f ${FILES.env}; fi`,
    `export TREX_JOB_DIR=${dir}`,
    `export CUDA_VISIBLE_DEVICES=${quote(o.gpuIds.join(","))}`,
    // no pid recorded (a full disk): nobody could follow or stop the job, so it does not start
    `{ echo "$$ $(date +%s) $(cat ${BOOT_ID} 2>/dev/null)" > ${FILES.pid}.tmp && mv ${FILES.pid}.tmp ${FILES.pid}; } || exit 98`,
    "trap 'term=1' TERM INT HUP",
    // cancelled before it started (by a cancel of this job: a marker of another job's token is not its): do not start it
    `if ${markerIs(FILES.cancelled, o.token)}; then code=143; else`,
    `${quoteArgv(o.argv)} > ${FILES.stdout} 2> ${FILES.stderr} < /dev/null &`,
    "child=$!",
    // The watchdog, in the job's process group: it ignores the SIGTERM it sends the group at the time
    // limit (else it would die of it and never send the SIGKILL after the grace), and it is ended
    // with SIGUSR1 when the job ends first, its timer (a `sleep`, which would outlive it) killed too.
    // (A SIGUSR1 that comes while a timer is being started, before its pid is known, is noted and acted
    // on once it is: the timer is never left behind.)
    limit !== undefined
      ? `( trap '' TERM; ${timer(limit)}; ! __trex_ours || echo "$(date +%s) ${o.token}" > ${FILES.timeout}; kill -TERM -$$; ${timer(o.killGraceSeconds)}; kill -KILL -$$ ) > /dev/null 2>&1 &\nwatchdog=$!`
      : "watchdog=",
    // `wait` returns early when a trapped signal arrives: wait again until the child is gone.
    "while :; do wait $child; code=$?; kill -0 $child 2>/dev/null || break; done",
    `[ -n "$watchdog" ] && kill -USR1 $watchdog 2>/dev/null`,
    "fi",
    `! __trex_ours || { echo "$code $(date +%s) ${o.token}" > ${FILES.exit}.tmp && mv ${FILES.exit}.tmp ${FILES.exit}; }`,
    ""
  ].join("\n")
}

/** The host's boot id (Linux): recorded beside a job's pid, since after a reboot that pid may be another process's. */
const BOOT_ID = "/proc/sys/kernel/random/boot_id"

/**
 * A shell test: the pid file in directory `d` (a shell word) was written in this boot of the host
 * (or records no boot id). A pid of an earlier boot names no process of the job's, so it is never signalled.
 */
export const sameBoot = (d: string): string =>
  `{ b=$(cut -d' ' -f3 ${d}/${FILES.pid} 2>/dev/null); [ -z "$b" ] || [ "$b" = "$(cat ${BOOT_ID} 2>/dev/null)" ]; }`

/** A shell test: the job in directory `d` (a shell word) still runs (its wrapper is alive, in this boot). */
export const alive = (d: string): string => `{ kill -0 $(cut -d' ' -f1 ${d}/${FILES.pid}) 2>/dev/null && ${sameBoot(d)}; }`

/** The command that starts the wrapper detached from the SSH session. */
export const launch = (jobDir: string): string =>
  // Only the setsid command is asynchronous (an async `cd && ...` list would hold the channel open).
  `cd ${quote(jobDir)} || exit 1\nsetsid nohup sh ./${FILES.script} < /dev/null >> ${FILES.wrapperLog} 2>&1 &`

/**
 * A shell test, run in a job directory: its job record names one of `hosts` (another host of the pool: its job is that
 * host's). False for no hosts.
 */
export const namesOneOf = (hosts: ReadonlyArray<string>): string =>
  hosts.length === 0 ? "false" : `grep -qF ${hosts.map((h) => `-e ${quote(`"host":${JSON.stringify(h)}`)}`).join(" ")} ${FILES.job} 2>/dev/null`

/** Shell: the token of the job record in the current directory into `__trex_tok` (empty: none, a record of an earlier version). */
const readToken = `__trex_tok=${tokenIn(".")}`

/**
 * TERM the job's process group, give it `grace` seconds, then KILL it; nothing to do once it has exited
 * (or when its pid is of an earlier boot). Only while the directory has a job record naming none of `others` (the
 * other hosts of the pool) and, with `pgid`, still that process group: the directory may hold a newer job (a shared
 * `remoteRoot`, a rerun). The cancel marker carries the record's token: written after a newer job took the directory
 * (between the test and the write), it is not that job's.
 */
export const kill = (o: { readonly dir: string; readonly grace: number; readonly others: ReadonlyArray<string>; readonly pgid?: number }): string =>
  [
    `cd ${quote(o.dir)} || exit 0`,
    `[ -f ${FILES.job} ] || exit 0`,
    readToken,
    `${markerIs(FILES.exit, '"$__trex_tok"')} && exit 0`,
    `${namesOneOf(o.others)} && exit 0`,
    ...(o.pgid !== undefined ? [`[ "$(cut -d' ' -f1 ${FILES.pid} 2>/dev/null)" = ${o.pgid} ] || exit 0`] : []),
    `echo "$(date +%s) $__trex_tok" > ${FILES.cancelled}`,
    `[ -f ${FILES.pid} ] || exit 0`,
    // recorded before a reboot: that process group is gone, its number maybe another's
    `${sameBoot(".")} || exit 0`,
    `pg=$(cut -d' ' -f1 ${FILES.pid})`,
    `kill -TERM -$pg 2>/dev/null || exit 0`,
    `i=0; while [ $i -lt ${o.grace * 5} ]; do [ -f ${FILES.exit} ] && exit 0; kill -0 -$pg 2>/dev/null || exit 0; sleep 0.2; i=$((i+1)); done`,
    `kill -KILL -$pg 2>/dev/null; exit 0`
  ].join("\n")

/** `<run>/<node> <job record>` for each job under `root` that still runs (what a new controller adopts). */
export const running = (root: string): string =>
  [
    `cd ${quote(root)} 2>/dev/null || exit 0`,
    `for f in */*/${FILES.job}; do d=\${f%/${FILES.job}}`,
    `  ${exited('"$d"')} && continue; [ -f "$d/${FILES.pid}" ] || continue`,
    `  ${alive('"$d"')} && printf '%s %s\n' "$d" "$(cat "$f")"`,
    `done`
  ].join("\n")

/** `<node> <process group>` for each job of the run directory `runDir` that still runs. */
export const runningGroups = (runDir: string): string =>
  [
    `cd ${quote(runDir)} 2>/dev/null || exit 0`,
    `for d in */; do d=\${d%/}; ${exited('"$d"')} && continue; [ -f "$d/${FILES.pid}" ] || continue`,
    `  pg=$(cut -d' ' -f1 "$d/${FILES.pid}"); ${alive('"$d"')} && echo "$d $pg"`,
    `done`
  ].join("\n")

/** `<state> <node> <record>` (Finished, Running or Pending; the job's `.trex-job.json`, one line) for each job of the run directory `runDir`. */
export const states = (runDir: string): string =>
  [
    `cd ${quote(runDir)} 2>/dev/null || exit 0`,
    `for d in */; do d=\${d%/}; [ -f "$d/${FILES.job}" ] || continue`,
    `  if ${exited('"$d"')}; then s=Finished`,
    `  elif [ -f "$d/${FILES.pid}" ]; then if ${alive('"$d"')}; then s=Running; else s=Finished; fi`,
    `  else s=Pending; fi`,
    // the job's record (its host, when it was submitted) on the line, cut at 4 KiB and joined into one line; by printf,
    // not echo: dash's and zsh's echo (a login shell the host may give) turn the record's JSON escapes (\n, \t) into
    // the characters, and a name holding `\n` then split the line into a second, forged job
    `  printf '%s %s %s\\n' "$s" "$d" "$(head -c 4096 "$d/${FILES.job}" | tr -d '\\n\\r')"`,
    `done`
  ].join("\n")
