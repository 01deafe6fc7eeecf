/**
 * Pure parts of the Grid Engine backend: the `qsub` script, the parsing of `qstat -xml`, `qstat -j`
 * and `qacct -j`, and the mapping of Grid Engine job states and accounting records onto TREX job
 * events. Checked against Son of Grid Engine 8.1.9.
 */
import type { Backend, Result } from "@trex/core"
import { shellJoin, shellQuote } from "./shell.ts"

/** The file names the backend uses inside a job directory. */
export const STDOUT_FILE = "gridengine.stdout.log"
export const STDERR_FILE = "gridengine.stderr.log"
export const ENV_FILE = ".trex-env"
export const SCRIPT_FILE = "trex-job.sh"
/** The job's record (`{"id", "run", "node", "name", "submittedAt"}`), for `list` once qstat has forgotten the job. */
export const RECORD_FILE = "trex-job.json"
/** Written before TREX deletes a job: a job killed by a signal after it was cancelled, not by the OOM killer. */
export const CANCEL_FILE = ".trex-cancelled"
/**
 * Written by the job script when its command has ended (`{"exitCode", "start", "end", "gpus"}`, times in
 * seconds): the end of a job whose execution daemon never reports it (a dead execd or host), or whose
 * cluster keeps no accounting.
 */
export const EXIT_FILE = "trex-exit.json"
/**
 * The job's runs, appended to by its script: `start <epoch s>` when a run starts, `exit <code> <epoch s>`
 * when its command ends. Grid Engine runs a job again (same id, same directory) when its script exits 99,
 * after `qmod -rj`, or after its host failed in a rerunnable queue.
 */
export const RUNS_FILE = "trex-runs"

/** The job context variables (`qsub -ac`) that carry a job's labels and directory. */
export const CONTEXT = { run: "trex_run", node: "trex_node", dir: "trex_dir" } as const

/** Exit code of the script when it cannot claim the GPUs it was granted (see {@link renderScript}). */
export const GPU_CLAIM_EXIT = 96

/**
 * Exit code of the script when it ends a job that Grid Engine would run more than `1 + maxRequeues` times
 * (it writes an exit record saying so). 99 (run the job again) and 100 (put it in error state) mean
 * something to Grid Engine, so a command's 100 leaves the script as 1, its own code kept in the exit record.
 */
export const RERUN_LIMIT_EXIT = 95

/**
 * A context value: URI-encoded, and `!'()*~` too, so that it holds no `,` or `=` (which separate
 * context variables) and no character a directive line would read otherwise.
 */
export const encodeContext = (value: string): string =>
  encodeURIComponent(value).replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

const decodeContext = (value: string): string | undefined => {
  try {
    return decodeURIComponent(value)
  } catch {
    return undefined
  }
}

/** A job name Grid Engine accepts: no whitespace, `/`, `:`, `@`, `\`, `*` or `?`, not starting with a digit. */
export const sanitizeJobName = (name: string): string => {
  const clean = name.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 100)
  return clean.length === 0 ? "trex-job" : /^[0-9]/.test(clean) ? `t${clean}`.slice(0, 100) : clean
}

const directiveValue = (what: string, value: string): string => {
  if (!/^[A-Za-z0-9_@+=:,./-]+$/.test(value)) throw new Error(`${what} ${JSON.stringify(value)} cannot go into a #$ line`)
  return value
}

/** Everything the job script needs. */
export interface ScriptInput {
  readonly jobName: string
  readonly labels: Backend.Labels
  readonly jobDir: string
  readonly envFile: string
  readonly argv: ReadonlyArray<string>
  readonly submittedAt: number
  readonly gpus: number
  /** The consumable complex that counts GPUs (`gpu`). */
  readonly gpuResource: string
  /** Claim devices for `CUDA_VISIBLE_DEVICES` under `gpuLockDir` when the site sets none. */
  readonly assignGpus: boolean
  readonly gpuLockDir: string
  readonly cpus: number
  /** With a parallel environment, `-pe <pe> <cpus>`; without, the job takes one slot. */
  readonly parallelEnvironment?: string | undefined
  readonly memoryMb?: number | undefined
  /** The complex a memory limit is asked with (`h_vmem`, per slot), or none. */
  readonly memoryResource?: string | undefined
  readonly timeLimitSeconds?: number | undefined
  readonly queue?: string | undefined
  readonly project?: string | undefined
  readonly extraDirectives: ReadonlyArray<string>
  /** Reruns the script allows (Grid Engine's, after exit 99, `qmod -rj` or a host failure) before it ends the job. */
  readonly maxRequeues: number
}

/** The slots a job takes: its CPUs under a parallel environment, else one. */
export const slotsOf = (input: Pick<ScriptInput, "cpus" | "parallelEnvironment">): number =>
  input.parallelEnvironment !== undefined ? Math.max(1, Math.ceil(input.cpus)) : 1

/** The job's record file, as the controller and the job itself write it. */
export const recordPrefix = `{"id":"`
export const recordSuffix = (input: Pick<ScriptInput, "labels" | "jobName" | "submittedAt">): string =>
  `",${JSON.stringify({ run: input.labels.run, node: input.labels.node, name: sanitizeJobName(input.jobName), submittedAt: input.submittedAt }).slice(1)}`

/** A job record read back: `undefined` for a file that is not one. */
export const parseRecord = (line: string): { readonly id: string; readonly labels: Backend.Labels; readonly name?: string; readonly submittedAt?: number } | undefined => {
  try {
    const r = JSON.parse(line) as Record<string, unknown>
    if (typeof r.id !== "string" || !/^\d+$/.test(r.id) || typeof r.run !== "string" || typeof r.node !== "string") return undefined
    return {
      id: r.id,
      labels: { run: r.run, node: r.node },
      ...(typeof r.name === "string" ? { name: r.name } : {}),
      ...(typeof r.submittedAt === "number" ? { submittedAt: r.submittedAt } : {})
    }
  } catch {
    return undefined
  }
}

/** After this many seconds a GPU lock with no owner written (its claimer died between `mkdir` and writing) is stale. */
const GPU_LOCK_GRACE_SECONDS = 30

/**
 * The lines that give the job its GPUs. Grid Engine counts GPUs as a consumable but names no
 * devices, so unless the site set `CUDA_VISIBLE_DEVICES` (a prolog) or granted device ids
 * (Univa's RSMAP: `SGE_HGR_<complex>`), the job claims as many of its host's devices as it was
 * granted: device `i` is a directory `<lockDir>/gpu<i>` made with `mkdir` (atomic), its owner the
 * script (which lives as long as the job) in `owner`: its pid, its start time (field 22 of
 * `/proc/<pid>/stat`) and the boot id, written whole (a file moved into place). A pid alone does not
 * name a process: pids are reused (pid_max is often 32768), so a lock left by a job killed without
 * giving it back (qdel's SIGKILL, a crashed node) read as held once any process had its pid. A lock is
 * taken over when its owner is gone: no such process, one started at another time, or another boot.
 * `pid` alone is written too, for the scripts of an earlier TREX, and a lock of theirs (`pid` only) is
 * stale when its process is gone or started after the file was written. A lock with no owner yet is
 * stale only past {@link GPU_LOCK_GRACE_SECONDS}. An owner this job cannot see is kept: its `/proc` entry
 * unreadable (another user's, `hidepid`) while `kill -0` does not say "no such process", or of another pid
 * namespace (`ns`, beside `owner`). A stale lock is broken under a second lock (`<lockDir>/breaks/gpu<i>`), judged
 * again there, so that two jobs that found it stale cannot both take it; and under an earlier TREX's (`<lockDir>/gpu<i>.break`),
 * under which its scripts break a lock by `rm -rf` and `mkdir`. An owner `0 0 released` (a lock given back) is stale. The lock directory is sticky, where no user
 * may remove another's lock, so a lock is a directory any user may write in (0777), taken over in place.
 * The job gives its devices back when its command has ended (see {@link gpuRelease}). A lock whose owner is gone is
 * held while its job's watcher (`watch`, see {@link watchLines}) lives, and a claim waits for it a while.
 * The host's device count is `nvidia-smi -L`'s, else the complex's value on the host (`qconf -se`).
 */
const gpuLines = (input: ScriptInput): Array<string> => {
  const hgr = `SGE_HGR_${input.gpuResource.replace(/[^A-Za-z0-9_]/g, "_")}`
  const lock = shellQuote(input.gpuLockDir)
  const grace = GPU_LOCK_GRACE_SECONDS
  return [
    `# GPUs: Grid Engine grants a count (-l ${input.gpuResource}=${input.gpus}), no devices: name them in CUDA_VISIBLE_DEVICES`,
    `trex_got=`,
    `if [ -n "\${CUDA_VISIBLE_DEVICES:-}" ]; then :`,
    `elif [ -n "\${${hgr}:-}" ]; then CUDA_VISIBLE_DEVICES=$(printf '%s' "$${hgr}" | tr ' ' ','); export CUDA_VISIBLE_DEVICES`,
    `else`,
    `  trex_host=$(hostname)`,
    `  trex_total=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')`,
    `  [ "\${trex_total:-0}" -gt 0 ] 2>/dev/null || trex_total=$(qconf -se "$trex_host" 2>/dev/null | tr ', ' '\\n\\n' | sed -n 's/^${input.gpuResource}=\\([0-9][0-9]*\\).*/\\1/p' | head -n 1)`,
    `  [ "\${trex_total:-0}" -gt 0 ] 2>/dev/null || trex_total=${input.gpus}`,
    `  mkdir -p ${lock} 2>/dev/null; chmod 1777 ${lock} 2>/dev/null; mkdir -m 0777 ${lock}/breaks 2>/dev/null`,
    `  trex_num() { case "$1" in ''|*[!0-9]*) return 1;; esac; }`,
    // the fields after the comm field's last ')' (a name may hold spaces and parens) start at field 3
    `  trex_started() { sed -n 's/.*) //p' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }`,
    `  trex_age() { trex_m=$(stat -c %Y "$1" 2>/dev/null); trex_num "$trex_m" && echo $(($(date +%s) - trex_m)) || echo 0; }`,
    `  trex_boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)`,
    `  trex_hz=$(getconf CLK_TCK 2>/dev/null); trex_num "$trex_hz" && [ "$trex_hz" -gt 0 ] || trex_hz=100`,
    `  trex_btime=$(sed -n 's/^btime //p' /proc/stat 2>/dev/null)`,
    `  trex_me="$$ $(trex_started $$) $trex_boot"`,
    `  trex_ns=$(readlink /proc/$$/ns/pid 2>/dev/null); trex_unseen=`,
    // an earlier TREX's lock (its pid only): stale when that process is gone or started after the file was written
    // whether process $1 is gone: its /proc entry unreadable is not enough (hidepid hides another user's): kill -0 tells
    // "no such process" from one it may not signal; one it can signal but not read is there too
    `  trex_none() { [ -z "$(LC_ALL=C kill -0 "$1" 2>&1 >/dev/null | grep -i 'no such process')" ] && return 1; [ ! -e "/proc/$1" ]; }`,
    // whether the lock $1 has a live watcher (`watch`: pid, start time, boot id; see watchLines), kept as one when it
    // cannot be seen but kill -0 does not say it is gone; trex_waiting says a claim found one
    `  trex_watched() {`,
    `    trex_wp=; trex_ws=; trex_wb=`,
    `    { read -r trex_wp trex_ws trex_wb < "$1/watch"; } 2>/dev/null`,
    `    trex_num "$trex_wp" && trex_num "$trex_ws" && [ "$trex_wb" = "$trex_boot" ] || return 1`,
    `    trex_t=$(trex_started "$trex_wp")`,
    `    if [ -n "$trex_t" ]; then [ "$trex_t" = "$trex_ws" ] || return 1; else ! trex_none "$trex_wp" || return 1; fi`,
    `    trex_waiting="$trex_waiting $1"`,
    `  }`,
    `  trex_gone() {`,
    `    trex_t=$(trex_started "$1"); [ -n "$trex_t" ] || { trex_none "$1"; return; }`,
    `    trex_m=$(stat -c %Y "$2" 2>/dev/null)`,
    `    trex_num "$trex_t" && trex_num "$trex_btime" && trex_num "$trex_m" && [ $((trex_btime + trex_t / trex_hz)) -gt $((trex_m + 2)) ]`,
    `  }`,
    `  trex_stale() {`,
    `    trex_op=; trex_os=; trex_ob=`,
    `    if [ -e "$1/owner" ]; then`,
    `      { read -r trex_op trex_os trex_ob < "$1/owner"; } 2>/dev/null`,
    `      if trex_num "$trex_op" && trex_num "$trex_os"; then`,
    // given back (`0 0 released`): stale whatever else, as `kill -0 0` would signal this job's own process group
    `        { [ "$trex_op" -eq 0 ] || [ "$trex_ob" = released ]; } && return 0`,
    `        [ -n "$trex_ob" ] && [ -n "$trex_boot" ] && [ "$trex_ob" != "$trex_boot" ] && return 0`,
    // an owner in another pid namespace (a container's job): its pid means nothing here, so it is kept
    `        if [ -e "$1/ns" ] && [ "$(cat "$1/ns" 2>/dev/null)" != "$trex_ns" ]; then trex_unseen="$trex_unseen $1"; return 1; fi`,
    `        trex_t=$(trex_started "$trex_op")`,
    `        if [ -n "$trex_t" ]; then [ "$trex_t" != "$trex_os" ] || return 1`,
    // its /proc entry not readable: gone only when kill -0 says no such process, else it is kept (hidepid)
    `        else trex_none "$trex_op" || { trex_unseen="$trex_unseen $1"; return 1; }`,
    `        fi`,
    // its owner gone (the job's script killed), the lock is held while that job's watcher lives: it ends what the
    // job's command left running, then gives the lock back
    `        trex_watched "$1" && return 1`,
    `        return 0`,
    `      fi`,
    `    else`,
    `      trex_op=$(cat "$1/pid" 2>/dev/null)`,
    `      if trex_num "$trex_op"; then [ "$trex_op" -eq 0 ] || trex_gone "$trex_op" "$1/pid"; return; fi`,
    `    fi`,
    // no owner: one being given back by its watcher (which removes `watch` last) is waited for, and so is one younger
    // than the grace: being taken (its owner not yet written) or given back (its files removed, not yet the directory)
    `    trex_watched "$1" && return 1`,
    `    [ "$(trex_age "$1")" -gt ${grace} ] && return 0`,
    `    trex_waiting="$trex_waiting $1"; return 1`,
    `  }`,
    // the lock's owner, written in place (over a stale owner's files, when taking over): the pid namespace first (an
    // owner file is never without it), in a file of its own as older scripts read owner's 3 fields
    `  trex_own() {`,
    `    rm -f "$1/watch" "$1/watch.tmp" 2>/dev/null`,
    `    printf '%s\\n' "$trex_ns" > "$1/ns.tmp" && mv -f "$1/ns.tmp" "$1/ns" &&`,
    `    printf '%s\\n' "$trex_me" > "$1/owner.tmp" && mv -f "$1/owner.tmp" "$1/owner" &&`,
    `    echo $$ > "$1/pid.tmp" && mv -f "$1/pid.tmp" "$1/pid"`,
    `  }`,
    // a second lock $1 (a plain directory), taken, or broken once older than the grace (its breaker killed)
    `  trex_break() { mkdir "$1" 2>/dev/null || { [ "$(trex_age "$1")" -gt ${grace} ] && rmdir "$1" 2>/dev/null && mkdir "$1" 2>/dev/null; }; }`,
    // a lock is a directory any of the cell's users may write in (0777, not sticky), so that a job of another user
    // can take over one left by a killed job, in place: in the sticky lock directory it could not remove it
    `  trex_take() {`,
    `    if mkdir -m 0777 "$1" 2>/dev/null; then trex_own "$1"; return 0; fi`,
    `    trex_stale "$1" || return 1`,
    // broken under a second lock, in a directory of such locks any user may remove (0777, not sticky)
    `    trex_b=${lock}/breaks/\${1##*/}`,
    `    trex_break "$trex_b" || return 1`,
    // and under the second lock of an earlier TREX (`gpu<i>.break`, beside the lock), which breaks a stale lock
    // under it alone (`rm -rf`, `mkdir`): without it, a job of each could take one stale lock at once. One of
    // another user's, stale and left in the sticky lock directory, cannot be removed: the break goes on without it
    // (else the device were lost to every other user), as only its user's earlier scripts could break under it
    `    trex_b2=; if trex_break "$1.break"; then trex_b2="$1.break"`,
    `    elif [ ! -d "$1.break" ] || [ "$(trex_age "$1.break")" -le ${grace} ]; then rmdir "$trex_b" 2>/dev/null; return 1; fi`,
    // judged again under the second lock: another job may have broken and taken it meanwhile
    `    trex_r=1`,
    `    trex_stale "$1" && trex_own "$1" && trex_r=0`,
    `    [ -z "$trex_b2" ] || rmdir "$trex_b2" 2>/dev/null`,
    `    rmdir "$trex_b" 2>/dev/null`,
    `    return $trex_r`,
    `  }`,
    // a device held only by the watcher of a killed job (ending what that job left running) is waited for, a while
    `  trex_n=0; trex_until=$(($(date +%s) + ${WATCH_WAIT_SECONDS}))`,
    `  while :; do`,
    `    trex_i=0; trex_waiting=; trex_unseen=`,
    `    while [ "$trex_n" -lt ${input.gpus} ] && [ "$trex_i" -lt "$trex_total" ]; do`,
    `      trex_l=${lock}/gpu$trex_i`,
    `      case " $trex_got " in *" $trex_i "*) ;; *)`,
    `        if trex_take "$trex_l"; then trex_got=$trex_got\${trex_got:+ }$trex_i; trex_n=$((trex_n + 1)); fi;;`,
    `      esac`,
    `      trex_i=$((trex_i + 1))`,
    `    done`,
    `    [ "$trex_n" -lt ${input.gpus} ] && [ -n "$trex_waiting" ] && [ "$(date +%s)" -lt "$trex_until" ] || break`,
    `    sleep 1`,
    `  done`,
    `  if [ "$trex_n" -lt ${input.gpus} ]; then`,
    `    trex_release`,
    `    echo "trex: Grid Engine granted ${input.gpus} ${input.gpuResource} but only $trex_n of the $trex_total devices of $trex_host are free (locks in ${input.gpuLockDir.replace(/[`"$\\]/g, "_")})" >&2`,
    `    [ -z "$trex_waiting" ] || echo "trex: waited ${WATCH_WAIT_SECONDS} s for locks held by the watcher of a job whose script was killed (it ends what that job's command left running, then gives them back), or being taken or given back:$trex_waiting" >&2`,
    `    [ -z "$trex_unseen" ] || echo "trex: kept as held, their owners not visible from this job (another pid namespace, or /proc mounted hidepid):$trex_unseen; remove such a lock by hand once its job has ended" >&2`,
    `    exit ${GPU_CLAIM_EXIT}`,
    `  fi`,
    `  CUDA_VISIBLE_DEVICES=$(printf '%s' "$trex_got" | tr ' ' ','); export CUDA_VISIBLE_DEVICES`,
    `fi`
  ]
}

/** Seconds the processes a command leaves behind get after SIGTERM before SIGKILL, when its job gives back its GPUs. */
export const LEFTOVER_GRACE_SECONDS = 5

/**
 * The variable, in the command's environment (and so in every process it starts that keeps its environment), that
 * names the job's run: `<JOB_ID>-<script pid>-<start>`. The script finds the processes the command left running by it.
 */
export const MARK_VAR = "TREX_JOB_MARK"

/**
 * The lines that give back the devices the job claimed (see {@link gpuLines}): the locks it still owns. Grid Engine
 * kills what a job's command left running (its process group) only once the script has ended, after it gave its
 * devices back, so a child still on a GPU would share it with the next job: the script, which leads the job's
 * process group, first ends the other processes of that group, and those that left it (`setsid`, a server that
 * daemonised itself) but carry the job's {@link MARK_VAR} in their environment (`/proc/<pid>/environ`, readable for
 * the job's own user's processes), with SIGTERM, SIGKILL after {@link LEFTOVER_GRACE_SECONDS} s, saying so in the
 * job's log. One still there 30 s after SIGKILL (stuck in the kernel) is written as the locks' owner (`owner` and
 * `pid`), so that they are held as long as it lives. A process that left the group and cleared its environment
 * (`env -i`) is not seen. The job's watcher runs the same lines when the script was killed (see {@link watcherProgram}).
 */
const gpuRelease = (input: ScriptInput): Array<string> => [
  // the pids of the processes of the script's process group (trex_pg: none in the watcher) but the script (none when
  // it leads no group of its own), then those outside it whose environment holds the job's mark (a zombie's
  // environment reads empty); in trex_out, those of the second kind
  `trex_left() {`,
  `  trex_o=; trex_out=`,
  `  [ -z "$trex_pg" ] || for trex_f in /proc/[0-9]*/stat; do`,
  `    trex_s=; { read -r trex_s < "$trex_f"; } 2>/dev/null`,
  `    trex_s=\${trex_s##*") "}`,
  `    set -- $trex_s`,
  `    [ "\${3:-}" = "$trex_pg" ] && [ "$1" != Z ] || continue`,
  `    trex_p=\${trex_f#/proc/}; trex_p=\${trex_p%/stat}`,
  `    [ "$trex_p" = "$trex_pg" ] || trex_o="$trex_o $trex_p"`,
  `  done`,
  // grep runs without the mark (the script never exports it), so it does not find itself; under `timeout -s KILL`
  // where there is one: reading a process's environment takes its memory map's lock, which a process hung in a
  // driver call (a GPU's) may hold, and the read waits killably for it
  `  for trex_f in $($trex_bounded grep -lsFxz -e "${MARK_VAR}=$trex_mark" /proc/[0-9]*/environ 2>/dev/null); do`,
  `    trex_p=\${trex_f#/proc/}; trex_p=\${trex_p%/environ}`,
  `    case " $trex_o " in *" $trex_p "*) continue;; esac`,
  `    [ "$trex_p" = "$$" ] || { trex_o="$trex_o $trex_p"; trex_out="$trex_out $trex_p"; }`,
  `  done`,
  `}`,
  `trex_end_left() {`,
  `  [ -n "$trex_got" ] || return 0`,
  `  trex_bounded=; command -v timeout >/dev/null 2>&1 && trex_bounded="timeout -s KILL 5"`,
  // a grep without -z (busybox's may lack it) finds no marked process: said, not silent
  `  printf 'a\\0' | grep -qz a 2>/dev/null || echo "trex: this node's grep cannot read /proc/<pid>/environ (no -z): processes of the command outside its process group are not looked for" >&2`,
  `  trex_left; [ -n "$trex_o" ] || return 0`,
  `  echo "trex: the command left processes running (pids$trex_o): ending them (SIGTERM, SIGKILL after ${LEFTOVER_GRACE_SECONDS} s) before its GPUs ($trex_got) are given back" >&2`,
  `  [ -z "$trex_out" ] || echo "trex: of them, outside the job's process group (setsid, a daemon), found by ${MARK_VAR} in their environment: pids$trex_out" >&2`,
  `  kill -TERM $trex_o 2>/dev/null`,
  // deadlines by the clock, in whole seconds (a fractional sleep is not POSIX: where `sleep 0.1` fails, 1 s steps)
  `  trex_w=$(date +%s); trex_kill=$((trex_w + ${LEFTOVER_GRACE_SECONDS})); trex_quit=$((trex_w + ${LEFTOVER_GRACE_SECONDS + 30}))`,
  `  while trex_left; [ -n "$trex_o" ]; do`,
  `    trex_w=$(date +%s)`,
  `    [ "$trex_w" -gt "$trex_kill" ] && kill -KILL $trex_o 2>/dev/null`,
  `    [ "$trex_w" -gt "$trex_quit" ] && break`,
  `    sleep 0.5 2>/dev/null || sleep 1`,
  `  done`,
  `  [ -n "$trex_o" ] || return 0`,
  `  set -- $trex_o`,
  `  echo "trex: process $1 of the command outlived SIGKILL: GPUs $trex_got stay locked as long as it lives" >&2`,
  `  for trex_i in $trex_got; do`,
  `    trex_l=${shellQuote(input.gpuLockDir)}/gpu$trex_i`,
  `    printf '%s\\n' "$1 $(trex_started "$1") $trex_boot" > "$trex_l/owner.tmp" && mv -f "$trex_l/owner.tmp" "$trex_l/owner" &&`,
  // `pid` too, which the scripts of an earlier TREX read alone
  `    echo "$1" > "$trex_l/pid.tmp" && mv -f "$trex_l/pid.tmp" "$trex_l/pid"`,
  `  done`,
  `  trex_got=`,
  `}`,
  `trex_release() {`,
  `  for trex_i in $trex_got; do`,
  `    trex_l=${shellQuote(input.gpuLockDir)}/gpu$trex_i`,
  `    [ "$(cat "$trex_l/owner" 2>/dev/null)" = "$trex_me" ] || continue`,
  // a lock taken over from another user cannot be removed from the sticky lock directory: it is left marked released
  // (an owner of no boot, stale to any TREX). `pid` first and `watch` last: a claim that looks meanwhile finds the
  // lock held (by its owner or watcher, or as one with no owner yet), never stale, so it writes nothing into it
  `    rm -f "$trex_l/pid" "$trex_l/ns" "$trex_l/owner" "$trex_l/watch" "$trex_l/ns.tmp" "$trex_l/owner.tmp" "$trex_l/pid.tmp" "$trex_l/watch.tmp" 2>/dev/null`,
  `    rmdir "$trex_l" 2>/dev/null || { printf '0 0 released\\n' > "$trex_l/owner.tmp" && mv -f "$trex_l/owner.tmp" "$trex_l/owner"; }`,
  `  done`,
  `  trex_got=`,
  `}`
]

/**
 * Seconds a claim waits for a device whose lock only the watcher of a job whose script was killed holds (see
 * {@link watchLines}): the watcher's look (1 s), the grace and the 30 s after SIGKILL, and some.
 */
const WATCH_WAIT_SECONDS = LEFTOVER_GRACE_SECONDS + 40

/**
 * The job's watcher, a program for `sh -c` (`$1` the script's pid, `$2` its start time, `$3` the job's mark, `$4` the
 * devices it claimed). When the script is gone and still owns some of the locks (it was killed before it gave them
 * back: a qdel past the queue's `notify` time, `h_rt`, both SIGKILL to the job's process group), the watcher ends
 * what the command left running outside that group (by the job's mark, as the script would have) and gives the locks
 * back. It looks once a second; the script ends it when it ends as it should.
 */
const watcherProgram = (input: ScriptInput): string => [
  `trap '' HUP`,
  `trex_started() { sed -n 's/.*) //p' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }`,
  // whether process $1, started at $2, runs still: builtins only, as it is asked once a second
  `trex_runs() { trex_x=$2; trex_s=; { read -r trex_s < "/proc/$1/stat"; } 2>/dev/null; trex_s=\${trex_s##*") "}; set -- $trex_s; [ "\${1:-Z}" != Z ] && [ "\${20:-}" = "$trex_x" ]; }`,
  // a script whose start time could not be read could not be told from one gone: the watcher does nothing
  `case "$2" in ''|*[!0-9]*) exit 0;; esac`,
  `while trex_runs "$1" "$2"; do sleep 1; done`,
  `trex_boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)`,
  `trex_me="$1 $2 $trex_boot"; trex_mark=$3; trex_pg=; trex_got=`,
  `for trex_i in $4; do [ "$(cat ${shellQuote(input.gpuLockDir)}/gpu$trex_i/owner 2>/dev/null)" = "$trex_me" ] && trex_got="$trex_got\${trex_got:+ }$trex_i"; done`,
  `[ -n "$trex_got" ] || exit 0`,
  `echo "trex: the job's script (pid $1) was killed before it gave back its GPUs ($trex_got) (a qdel past its grace, h_rt): its watcher (pid $$) ends what the command left running, then gives them back" >&2`,
  ...gpuRelease(input),
  "trex_end_left",
  "trex_release"
].join("\n")

/**
 * The lines that start the job's watcher ({@link watcherProgram}) before the command, and end it after. Grid Engine
 * ends a job whose script is killed by its process group, so what the command started outside it (which the script
 * ends by the job's mark when it ends as it should) ran on, on devices the locks no longer held: the watcher runs in
 * a session of its own (`setsid`), outside the group, and so outlives the script. It is the locks' second owner
 * (`watch`: its pid, start time and boot id): a lock whose owner is gone is held while its watcher lives, and a
 * claim waits for it a while ({@link WATCH_WAIT_SECONDS}). A node without `setsid` says so in the job's log.
 */
const watchLines = (input: ScriptInput): Array<string> => [
  `trex_watcher=; trex_wstart=`,
  `trex_watch() {`,
  `  [ -n "$trex_got" ] || return 0`,
  `  command -v setsid >/dev/null 2>&1 || { echo "trex: this node has no setsid: if the job's script is killed (a qdel past its grace, h_rt), what its command left running outside its process group runs on" >&2; return 0; }`,
  `  setsid /bin/sh -c ${shellQuote(watcherProgram(input))} trex-watch "$$" "$(trex_started $$)" "$trex_mark" "$trex_got" </dev/null &`,
  `  trex_watcher=$!`,
  `  trex_wstart=$(trex_started $trex_watcher)`,
  `  trex_wme="$trex_watcher $trex_wstart $trex_boot"`,
  `  for trex_i in $trex_got; do`,
  `    trex_l=${shellQuote(input.gpuLockDir)}/gpu$trex_i`,
  `    printf '%s\\n' "$trex_wme" > "$trex_l/watch.tmp" && mv -f "$trex_l/watch.tmp" "$trex_l/watch"`,
  `  done`,
  `}`,
  // the script has ended what the command left and given the devices back: its watcher (and its sleep) ends
  // (by its pid alone if it has not yet made its session), if it is still the process started then: one that died
  // during the job (killed by hand, out of memory) left its pid to any process, maybe another job's script
  `trex_unwatch() {`,
  `  if [ -n "$trex_watcher" ] && [ -n "$trex_wstart" ] && [ "$(trex_started $trex_watcher)" = "$trex_wstart" ]; then`,
  `    kill -KILL -$trex_watcher 2>/dev/null || kill -KILL $trex_watcher 2>/dev/null`,
  `  fi`,
  `  trex_watcher=`,
  `}`
]

/**
 * Render the job script. Labels travel as job context (`-ac`), secrets and env only in the 0600
 * env file that the script sources, never on a command line; argv is shell-quoted. The command
 * runs as a child of the script, which ignores SIGUSR1/SIGUSR2 for it: with `-notify`, a `qdel`
 * first sends SIGUSR2, which the script turns into a SIGTERM to the whole job (a grace to save
 * and exit) before Grid Engine's SIGKILL after the queue's `notify` time.
 */
export const renderScript = (input: ScriptInput): string => {
  const d: Array<string> = [
    `-N ${sanitizeJobName(input.jobName)}`,
    "-S /bin/sh",
    `-wd ${directiveValue("job directory", input.jobDir)}`,
    `-o ${directiveValue("job directory", `${input.jobDir}/${STDOUT_FILE}`)}`,
    `-e ${directiveValue("job directory", `${input.jobDir}/${STDERR_FILE}`)}`,
    "-j n",
    "-notify",
    `-ac ${CONTEXT.run}=${encodeContext(input.labels.run)},${CONTEXT.node}=${encodeContext(input.labels.node)},${CONTEXT.dir}=${encodeContext(input.jobDir)}`
  ]
  const slots = slotsOf(input)
  if (input.parallelEnvironment !== undefined) d.push(`-pe ${directiveValue("parallel environment", input.parallelEnvironment)} ${slots}`)
  const resources: Array<string> = []
  if (input.gpus > 0) resources.push(`${directiveValue("GPU complex", input.gpuResource)}=${Math.ceil(input.gpus)}`)
  // a memory complex such as h_vmem is per slot
  if (input.memoryMb !== undefined && input.memoryResource !== undefined) {
    resources.push(`${directiveValue("memory complex", input.memoryResource)}=${Math.ceil(input.memoryMb / slots)}M`)
  }
  if (input.timeLimitSeconds !== undefined) resources.push(`h_rt=${Math.max(1, Math.ceil(input.timeLimitSeconds))}`)
  if (resources.length > 0) d.push(`-l ${resources.join(",")}`)
  // the exit record carries the requests as qacct's category does (the memory limit, for an allocation that failed)
  const category = resources.length > 0 ? `-l ${resources.join(",")}` : ""
  if (input.queue !== undefined) d.push(`-q ${directiveValue("queue", input.queue)}`)
  if (input.project !== undefined) d.push(`-P ${directiveValue("project", input.project)}`)
  for (const extra of input.extraDirectives) {
    const words = extra.trim().split(/\s+/)
    if (words.length === 0 || !/^-[A-Za-z]+$/.test(words[0]!)) throw new Error(`extra directive ${JSON.stringify(extra)} must start with an option such as -l`)
    d.push(words.map((w) => directiveValue("extra directive", w)).join(" "))
  }
  const dir = shellQuote(input.jobDir)
  const maxRuns = 1 + Math.max(0, Math.floor(input.maxRequeues))
  // written whole, then moved into place: a reader never sees half a record
  const record = (fields: string, values: string) =>
    `printf '{"exitCode":%s,"start":%s,"end":%s,"runs":%s,"notified":%s,"gpus":${Math.max(0, Math.ceil(input.gpus))},"category":"${category}"${fields}}\n' ${values} "$trex_told" > ${EXIT_FILE}.tmp && mv -f ${EXIT_FILE}.tmp ${EXIT_FILE}`
  return [
    "#!/bin/sh",
    ...d.map((x) => `#$ ${x}`),
    `# submitted by TREX for run ${JSON.stringify(input.labels.run)}, node ${JSON.stringify(input.labels.node)}`,
    `cd ${dir} || exit 97`,
    // a job that Grid Engine runs again must not leave its last run's exit behind
    `rm -f ${EXIT_FILE}`,
    "trex_start=$(date +%s)",
    // set once Grid Engine (a qdel's SIGUSR2, h_rt) or anyone else tells the script to end its command; what it was
    // when the command ended goes into the exit record (a cancel's marker counts only for a command told to end)
    "trex_notified=0; trex_told=0",
    `echo "start $trex_start" >> ${RUNS_FILE}`,
    `trex_runs=$(grep -c '^start' ${RUNS_FILE})`,
    // a cancel has marked the job and its qdel is coming: a run Grid Engine starts meanwhile (a rerun, or a first run
    // dispatched just then) does not start the command, and ends as one the qdel's SIGTERM would have ended; first: a run
    // past maxRequeues that a cancel caught is cancelled (an empty marker is one not yet written: a cancel writes it whole)
    `if [ -s ${CANCEL_FILE} ]; then`,
    `  echo "trex: the job was cancelled (${CANCEL_FILE}) before this run started: its command does not run" >&2`,
    `  trex_told=1; ${record("", `143 "$trex_start" "$(date +%s)" "$trex_runs"`)}`,
    "  exit 143",
    "fi",
    // run again more often than allowed: end the job here (its command does not run), saying so
    `if [ "$trex_runs" -gt ${maxRuns} ]; then`,
    `  ${record(`,"rerunLimit":${maxRuns - 1}`, `${RERUN_LIMIT_EXIT} "$trex_start" "$(date +%s)" "$trex_runs"`)}`,
    `  exit ${RERUN_LIMIT_EXIT}`,
    "fi",
    `TREX_JOB_DIR=${dir}`,
    "export TREX_JOB_DIR",
    // the job's own record, in case the controller stopped before it wrote it
    `printf '%s%s%s\\n' ${shellQuote(recordPrefix)} "$JOB_ID" ${shellQuote(recordSuffix(input))} > ${shellQuote(RECORD_FILE)}`,
    `. ${shellQuote(input.envFile)} || exit 98`,
    ...(input.gpus > 0 && input.assignGpus ? [...gpuRelease(input), ...gpuLines(input), ...watchLines(input)] : []),
    "trap '' USR1 USR2",
    // the job's mark for the command and all it starts, not exported: the script's own processes lack it
    `trex_mark="\${JOB_ID:-0}-$$-$trex_start"`,
    // the watcher, outside the job's process group, ends what the command leaves if this script is killed
    ...(input.gpus > 0 && input.assignGpus ? ["trex_pg=$$", "trex_watch"] : []),
    `${MARK_VAR}=$trex_mark ${shellJoin(input.argv)} &`,
    "trex_child=$!",
    `trap 'trex_notified=1; trap "" TERM; kill -TERM 0 2>/dev/null' USR2 TERM`,
    `while :; do wait "$trex_child"; trex_code=$?; kill -0 "$trex_child" 2>/dev/null || break; done`,
    // a signal after the command's end (a cancel just after it) does not make that end the cancel's
    "trex_told=$trex_notified",
    "trex_end=$(date +%s)",
    `echo "exit $trex_code $trex_end" >> ${RUNS_FILE}`,
    "trex_status=$trex_code",
    // 99 asks Grid Engine to run the job again: on its last allowed run, the job ends here instead
    `if [ "$trex_code" = 99 ] && [ "$trex_runs" -ge ${maxRuns} ]; then`,
    `  ${record(`,"rerunLimit":${maxRuns - 1}`, `"$trex_code" "$trex_start" "$trex_end" "$trex_runs"`)}`,
    `  trex_status=${RERUN_LIMIT_EXIT}`,
    "else",
    `  ${record("", `"$trex_code" "$trex_start" "$trex_end" "$trex_runs"`)}`,
    "fi",
    // the devices it claimed are free for the next job; after the record (ending what the command left may take
    // LEFTOVER_GRACE_SECONDS and 30 s more): a cancel meanwhile finds the command's end, and a qdel's SIGKILL does not
    // take it with the script
    ...(input.gpus > 0 && input.assignGpus ? ["trex_end_left", "trex_release", "trex_unwatch"] : []),
    // 100 would put the job in error state, to wait for an admin: the command's code is in the exit record
    `[ "$trex_status" = 100 ] && exit 1`,
    `exit "$trex_status"`,
    ""
  ].join("\n")
}

const xmlText = (s: string): string =>
  s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, "\"").replace(/&apos;/g, "'").replace(/&amp;/g, "&")

const tag = (block: string, name: string): string | undefined => {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(block)
  return m === null ? undefined : xmlText(m[1]!.trim())
}

/** A job as `qstat -xml` lists it. */
export interface QueuedJob {
  readonly id: string
  readonly state: string
  readonly name: string
  readonly slots: number
}

/** The jobs of `qstat -xml` (running, then pending). Array tasks share their job's id; the first is kept. */
export const parseQstat = (xml: string): Map<string, QueuedJob> => {
  const jobs = new Map<string, QueuedJob>()
  for (const m of xml.matchAll(/<job_list[^>]*>([\s\S]*?)<\/job_list>/g)) {
    const id = tag(m[1]!, "JB_job_number")
    if (id === undefined || jobs.has(id)) continue
    jobs.set(id, { id, state: tag(m[1]!, "state") ?? "", name: tag(m[1]!, "JB_name") ?? "", slots: Number(tag(m[1]!, "slots") ?? 1) })
  }
  return jobs
}

/** Each job's context variables from `qstat -j <ids> -xml`. */
export const parseContexts = (xml: string): Map<string, Record<string, string>> => {
  const out = new Map<string, Record<string, string>>()
  for (const element of xml.split(/\n {4}<element>/).slice(1)) {
    const id = tag(element, "JB_job_number")
    if (id === undefined) continue
    const context: Record<string, string> = {}
    for (const c of element.matchAll(/<context_list>([\s\S]*?)<\/context_list>/g)) {
      const name = tag(c[1]!, "VA_variable")
      if (name !== undefined) context[name] = tag(c[1]!, "VA_value") ?? ""
    }
    out.set(id, context)
  }
  return out
}

/** The labels and directory of a job that TREX submitted; `undefined` for any other job. */
export const labelsOf = (context: Record<string, string>): { readonly labels: Backend.Labels; readonly jobDir?: string } | undefined => {
  const run = context[CONTEXT.run] !== undefined ? decodeContext(context[CONTEXT.run]!) : undefined
  const node = context[CONTEXT.node] !== undefined ? decodeContext(context[CONTEXT.node]!) : undefined
  if (run === undefined || node === undefined) return undefined
  const dir = context[CONTEXT.dir] !== undefined ? decodeContext(context[CONTEXT.dir]!) : undefined
  return { labels: { run, node }, ...(dir !== undefined && dir !== "" ? { jobDir: dir } : {}) }
}

/** What `qstat -j <id>` says of a waiting or failed job: its error reasons and the scheduler's messages. */
export interface JobDetails {
  readonly errorReasons: ReadonlyArray<string>
  readonly schedulingInfo: ReadonlyArray<string>
}

/** Parse `qstat -j <id>` (plain text). Error reasons lose their date and `[uid:pid]` prefix. */
export const parseJobDetails = (text: string): JobDetails => {
  const errorReasons: Array<string> = []
  const schedulingInfo: Array<string> = []
  let inScheduling = false
  for (const line of text.split("\n")) {
    const error = /^error reason\s+\d+:\s*(.*)$/.exec(line)
    if (error !== null) {
      inScheduling = false
      errorReasons.push(error[1]!.replace(/^\d\d\/\d\d\/\d{4} \d\d:\d\d:\d\d \[[^\]]*\]:\s*/, "").replace(/^error:\s*/, "").trim())
      continue
    }
    const sched = /^scheduling info:\s*(.*)$/.exec(line)
    if (sched !== null) {
      inScheduling = true
      if (sched[1]!.trim() !== "") schedulingInfo.push(sched[1]!.trim())
      continue
    }
    if (inScheduling && /^\s+\S/.test(line)) schedulingInfo.push(line.trim())
    else if (/^\S/.test(line)) inScheduling = false
  }
  return { errorReasons, schedulingInfo }
}

/** The scheduler's reason for a waiting job, when it collects one (`schedd_job_info true`). */
export const pendingReason = (details: JobDetails): string | undefined => {
  const line = details.schedulingInfo.find((l) => !/Collecting of scheduler job information is turned off|There are no messages available/i.test(l))
  return line?.replace(/\s+/g, " ").slice(0, 300)
}

/** Records of `qacct -j <id>`, oldest first, each a map of field to value. */
export const parseQacct = (text: string): Array<Record<string, string>> => {
  const records: Array<Record<string, string>> = []
  let current: Record<string, string> | undefined
  for (const line of text.split("\n")) {
    if (/^=+\s*$/.test(line)) {
      current = {}
      records.push(current)
      continue
    }
    const m = /^(\w+)\s+(.*)$/.exec(line)
    if (m !== null && current !== undefined) current[m[1]!] = m[2]!.trim()
  }
  return records
}

const UNITS: Record<string, number> = { "": 1, k: 1e3, K: 1024, m: 1e6, M: 1024 ** 2, g: 1e9, G: 1024 ** 3, t: 1e12, T: 1024 ** 4 }

/** A memory value as Grid Engine writes it (`3.461MB` in qacct, `50M` or `2G` in a request) in bytes. */
export const memoryBytes = (text: string | undefined): number | undefined => {
  const m = /^([\d.]+)\s*([kKmMgGtT]?)B?$/.exec((text ?? "").trim())
  if (m === null) return undefined
  const n = Number(m[1])
  // qacct prints binary units in upper case (`MB`); a request's lower case are decimal
  return Number.isFinite(n) ? n * (UNITS[m[2]!] ?? 1) : undefined
}

/** The `-l` requests of a qacct `category` (`-l gpu=1,h_rt=3 -q all.q`), by name. */
export const categoryRequests = (category: string | undefined): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const m of (category ?? "").matchAll(/(?:^|\s)-l\s+(\S+)/g)) {
    for (const part of m[1]!.split(",")) {
      const [k, v] = part.split("=")
      if (k !== undefined && v !== undefined) out[k] = v
    }
  }
  return out
}

/** The job script's exit record, read back. */
export interface ExitRecord {
  /** As an accounting record: `failed 0`, its exit status, its run time, its requests as `category`. */
  readonly record: Record<string, string>
  readonly gpus: number
  /** The runs of the job so far, this one included. */
  readonly runs?: number
  /** Set when the script ended the job because Grid Engine would run it again past `maxRequeues` (this value). */
  readonly rerunLimit?: number
  /** Whether the script had been told to end its command (SIGUSR2 or SIGTERM) when the command ended; absent from an earlier TREX's record. */
  readonly notified?: boolean
}

/** The job script's exit record (see {@link EXIT_FILE}); `undefined` for a file that is not one. */
export const exitRecord = (text: string): ExitRecord | undefined => {
  try {
    const r = JSON.parse(text) as Record<string, unknown>
    if (typeof r.exitCode !== "number" || typeof r.start !== "number" || typeof r.end !== "number") return undefined
    return {
      record: {
        failed: "0",
        exit_status: String(r.exitCode),
        ru_wallclock: `${Math.max(0, r.end - r.start)}s`,
        ...(typeof r.category === "string" && r.category !== "" ? { category: r.category } : {})
      },
      gpus: typeof r.gpus === "number" ? r.gpus : 0,
      ...(typeof r.runs === "number" ? { runs: r.runs } : {}),
      ...(typeof r.rerunLimit === "number" ? { rerunLimit: r.rerunLimit } : {}),
      ...(r.notified === 0 || r.notified === 1 ? { notified: r.notified === 1 } : {})
    }
  } catch {
    return undefined
  }
}

/** What the runs file says: how many runs started, and how each earlier one ended (its command's exit code, or none: killed). */
export const parseRuns = (text: string): { readonly starts: number; readonly ends: ReadonlyArray<number | undefined> } => {
  const ends: Array<number | undefined> = []
  let starts = 0
  for (const line of text.split("\n")) {
    if (line.startsWith("start ")) {
      if (starts > ends.length) ends.push(undefined)
      starts++
    } else {
      const m = /^exit (\d+) /.exec(line)
      if (m !== null && starts > ends.length) ends.push(Number(m[1]))
    }
  }
  return { starts, ends }
}

/** What a Grid Engine state (`qw`, `hqw`, `r`, `Eqw`, `dr`...) means for TREX. */
export type Live =
  | { readonly _tag: "Pending"; readonly reason?: string; readonly held?: boolean }
  | { readonly _tag: "Running" }
  | { readonly _tag: "Error" }
  | { readonly _tag: "Deleting" }

/**
 * Map the state letters of `qstat`: `E` error (the job will not run until an admin clears it),
 * `d` being deleted, `s`/`S`/`T` suspended (by a user, its queue, or a load threshold), `r`/`t`
 * running or being transferred to its host (`R`: restarted), `h` held, `qw` waiting.
 */
export const mapLive = (state: string): Live => {
  const s = state.trim()
  if (s.includes("E")) return { _tag: "Error" }
  if (s.includes("d")) return { _tag: "Deleting" }
  if (/[sST]/.test(s)) return { _tag: "Pending", reason: `suspended (${s})` }
  // a hold on a job that runs (`hr`) matters only if it is rescheduled
  if (/[rt]/.test(s)) return { _tag: "Running" }
  if (s.includes("h")) return { _tag: "Pending", reason: `held (${s})`, held: true }
  if (/w/.test(s)) return { _tag: "Pending" }
  // `Rq`: rescheduled (`qmod -rj`, its host failed), to run again once the last run is cleaned up
  if (s.includes("R")) return { _tag: "Pending", reason: `rescheduled (${s}): Grid Engine runs the job again` }
  return { _tag: "Pending", reason: `Grid Engine state ${s}` }
}

/**
 * Whether `job`, as qstat lists it, is the job named `name` waiting to run (again), read from its raw state letters:
 * queued (`qw`, `hqw`, `Rq`, `hRwq`: only `h`, `q`, `w`, `R`), or in error state (`Eqw`: it waits for an admin's
 * `qmod -cj`). A suspended job (`s`, `S`, `T`, which {@link mapLive} counts as pending) is not waiting: its command runs
 * or has ended. Job ids are reused: a job of another name is another job (`name` undefined: a ref of an earlier TREX).
 */
export const waitsToRun = (job: QueuedJob | undefined, name: string | undefined): boolean => {
  if (job === undefined || (name !== undefined && job.name !== name)) return false
  const s = job.state.trim()
  return s.includes("E") || /^[hqwR]+$/.test(s)
}

/**
 * What a cancel saw when it wrote its marker ({@link CANCEL_FILE}): the run of the exit record it found (`runs`; none: the
 * job had no record, its command had not ended), and whether Grid Engine was to run the job again (`waiting`: its command
 * exited 99, or qstat listed it waiting). A marker of an earlier TREX holds a time alone (`undefined` here).
 */
export interface CancelMarker {
  readonly runs?: number
  readonly waiting: boolean
}

/** Whether a record says its command asked Grid Engine to run the job again (exit 99, below `maxRequeues`: no `rerunLimit`). */
export const runsAgain = (record: ExitRecord): boolean => record.record.exit_status === "99" && record.rerunLimit === undefined

/**
 * The marker a cancel writes, from the job's exit record (`undefined`: none, its command has not ended) and, for a record
 * that does not say the job runs again, what qstat lists under its id (`"gone"`: nothing; `undefined`: the qmaster did not
 * answer, the record decides): `undefined` for no marker. A job with a record that qstat still lists (of its `name`: ids
 * are reused) is marked: it may wait to run again (`Rq`, `Eqw`), have started that rerun since its record was read
 * (`Rr`), or be finishing its own end, which the marker's `runs` keeps its own (see {@link cancelledBy}). A record of an
 * earlier TREX (no `runs`) is marked only when its job waits to run again.
 */
export const cancelMarker = (recorded: ExitRecord | undefined, listed: QueuedJob | "gone" | undefined, name: string | undefined): CancelMarker | undefined => {
  if (recorded === undefined) return { waiting: false }
  const seen = recorded.runs !== undefined ? { runs: recorded.runs } : {}
  if (runsAgain(recorded)) return { ...seen, waiting: true }
  const job = listed === "gone" || (listed !== undefined && name !== undefined && listed.name !== name) ? undefined : listed
  const waiting = waitsToRun(job, name)
  if (job === undefined || (recorded.runs === undefined && !waiting)) return undefined
  return { ...seen, waiting }
}

/** The marker's text: its time, for a reader, and what the cancel saw. */
export const renderCancelMarker = (marker: CancelMarker, at: Date): string => `${JSON.stringify({ at: at.toISOString(), ...marker })}\n`

/**
 * A marker's text read back: what the cancel saw; `"earlier"` for an earlier TREX's (an ISO time alone), which counts as a
 * cancel whatever the record; `undefined` for anything else (empty, cut short): a marker not yet written whole (an earlier
 * TREX wrote it in place), to be read again.
 */
export const parseCancelMarker = (text: string): CancelMarker | "earlier" | undefined => {
  const t = text.trim()
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(t)) return "earlier"
  try {
    const m = JSON.parse(t) as Record<string, unknown>
    if (typeof m !== "object" || m === null || typeof m.waiting !== "boolean" || (m.runs !== undefined && typeof m.runs !== "number")) return undefined
    return { waiting: m.waiting, ...(typeof m.runs === "number" ? { runs: m.runs } : {}) }
  } catch {
    return undefined
  }
}

/**
 * Whether a cancel's marker makes the job's end by a signal its own, given the job's last exit record (`undefined`: its
 * script was killed before it wrote one, as a qdel past its grace does). The record of the run the cancel saw ended
 * before the cancel: it counts only if Grid Engine was to run the job again (the cancel ended the job, not that run). A
 * later run's end, or one the cancel did not see, counts if its command was told to end (by the cancel's qdel): a
 * command that ended by itself after the cancel looked (an exit 137, a SIGKILL of the OOM killer) keeps its own end.
 * An earlier TREX's marker or record, without what this needs, counts.
 */
export const cancelledBy = (marker: CancelMarker | "earlier", last: ExitRecord | undefined): boolean => {
  if (marker === "earlier" || last === undefined) return true
  if (marker.runs !== undefined && last.runs !== undefined && last.runs <= marker.runs) return marker.waiting
  return last.notified !== false
}

/** How a job ended, from its accounting record. */
export interface Ended {
  readonly outcome: "Succeeded" | "Failed" | "Cancelled"
  readonly failureKind?: Result.FailureKind
  readonly exitCode?: number
  readonly signal?: number
  readonly message: string
}

/** Input of {@link mapAccounting}: a `qacct -j` record and whether TREX had asked to delete the job. */
export interface AccountingInput {
  readonly record: Record<string, string>
  readonly cancelled: boolean
}

const SIGKILL = 9

/**
 * Map an accounting record onto an Exit. `failed` says whether Grid Engine ran the job to its
 * end: 0 (the job's own exit status counts), 37 (qmaster enforced a limit: `h_rt` is a Timeout,
 * `h_vmem` OOM), 100 (killed by a signal: SIGKILL from outside TREX reads as the OOM killer's, as on
 * the local backend), others (it could not start or finish it: the machine's failure, Infra). An
 * exit status of 137 is the job protocol's out-of-memory code; 128+N is a command killed by signal N.
 */
export const mapAccounting = (input: AccountingInput): Ended => {
  const failedText = input.record.failed ?? "0"
  const failed = Number(/^\d+/.exec(failedText)?.[0] ?? 0)
  const exitStatus = /^\d+/.exec(input.record.exit_status ?? "")?.[0]
  const code = exitStatus !== undefined ? Number(exitStatus) : undefined
  const exit = code !== undefined ? { exitCode: code } : {}
  const signal = code !== undefined && code > 128 && code < 160 ? code - 128 : undefined
  if (input.cancelled && (failed === 100 || signal !== undefined)) {
    return { outcome: "Cancelled", failureKind: "Cancelled", ...exit, ...(signal !== undefined ? { signal } : {}), message: "deleted with qdel" }
  }
  if (failed === 37) {
    const requests = categoryRequests(input.record.category)
    const limit = requests["h_rt"] ?? requests["s_rt"]
    const wall = Number.parseFloat(input.record.ru_wallclock ?? "")
    const vmemLimit = memoryBytes(requests["h_vmem"])
    const maxvmem = memoryBytes(input.record.maxvmem)
    const overMemory = vmemLimit !== undefined && maxvmem !== undefined && maxvmem >= vmemLimit * 0.9
    if (overMemory || (limit === undefined && vmemLimit !== undefined)) {
      return { outcome: "Failed", failureKind: "OOM", ...exit, message: `job killed at its memory limit (h_vmem=${requests["h_vmem"]}, maxvmem ${input.record.maxvmem ?? "unknown"})` }
    }
    return {
      outcome: "Failed",
      failureKind: "Timeout",
      ...exit,
      message: limit !== undefined ? `job reached its time limit (h_rt=${limit}${Number.isFinite(wall) ? `, ran ${wall} s` : ""})` : `job killed at a limit: ${failedText}`
    }
  }
  if (failed === 100 || failed === 0) {
    if (code === 137 && failed === 0) {
      return { outcome: "Failed", failureKind: "OOM", exitCode: 137, message: "job exited with code 137: out of memory (the job's own report, or its command killed by SIGKILL)" }
    }
    if (signal === SIGKILL || (failed === 100 && code === undefined)) {
      return { outcome: "Failed", failureKind: "OOM", ...exit, signal: SIGKILL, message: "job killed by SIGKILL: out of memory (the OOM killer), or killed from outside TREX" }
    }
    if (code === 0 && failed === 0) return { outcome: "Succeeded", exitCode: 0, message: "completed" }
    if (signal !== undefined) return { outcome: "Failed", failureKind: "Crash", ...exit, signal, message: `job killed by signal ${signal} (exit status ${code})` }
    return { outcome: "Failed", failureKind: "Crash", ...exit, message: `job exited with code ${code ?? "unknown"}` }
  }
  return {
    outcome: "Failed",
    failureKind: "Infra",
    ...exit,
    message: `Grid Engine could not run the job to its end (failed ${failedText}): see \`qacct -j ${input.record.jobnumber ?? "<id>"}\` and the execution host's messages file`
  }
}

/**
 * The record of our job among `qacct -j <id>`'s: job ids are reused (after 9,999,999, or a new
 * qmaster spool), and the accounting file keeps them all; a rerun job has one record a run. The
 * latest record with the job's name, else the latest.
 */
export const pickRecord = (records: ReadonlyArray<Record<string, string>>, name: string | undefined): Record<string, string> | undefined => {
  const named = name !== undefined ? records.filter((r) => r.jobname === name) : records
  return named.at(-1) ?? (name === undefined ? records.at(-1) : undefined)
}

/** Total slots of `qstat -g c` for `queues` (every cluster queue when none is named). */
export const parseClusterQueues = (text: string, queues: ReadonlyArray<string> | undefined): number => {
  let total = 0
  for (const line of text.split("\n")) {
    const cells = line.trim().split(/\s+/)
    if (cells.length < 6 || cells[0] === "CLUSTER" || /^-+$/.test(cells[0]!)) continue
    if (queues !== undefined && !queues.includes(cells[0]!)) continue
    const n = Number(cells[5])
    if (Number.isFinite(n)) total += n
  }
  return total
}

/** The value of complex `name` in a host's `complex_values` (`qconf -se <host>`), 0 when it has none. */
export const hostComplex = (text: string, name: string): number => {
  const line = /^complex_values\s+(.*(?:\n\s+.*)*)/m.exec(text)?.[1] ?? ""
  for (const part of line.replace(/\\\n/g, "").split(/[,\s]+/)) {
    const [k, v] = part.split("=")
    if (k === name && v !== undefined) return Number.parseFloat(v) || 0
  }
  return 0
}
