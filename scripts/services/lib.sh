# lib.sh — helpers sourced by the start-*.sh scripts (not run on its own).
# apt_install PKG...: installs the packages that are missing (first finishing, with `dpkg --configure -a`, what a dpkg
# that was stopped mid-run left, as its journal in <admindir>/updates tells; DPKG_ADMINDIR as for dpkg). `apt-get update` runs at most once per boot
# (stamp in /run), and a lock serialises apt so start-all.sh can run the scripts in parallel. TREX_SERVICES_RUN_DIR:
# where the stamp and the lock are (default /run), for tests of start-all.sh with an apt-get of their own on PATH.
# Another apt or dpkg holding apt's locks (on a fresh cloud or CI machine: unattended-upgrades, cloud-init's package
# step or apt-daily, for minutes) is waited for, up to TREX_SERVICES_APT_LOCK_WAIT seconds (default 600), which the log
# says with who holds them; apt-get alone (DPkg::Lock::Timeout 0) failed at once ("Could not get lock").
export DEBIAN_FRONTEND=noninteractive
APT_LOCK=${TREX_SERVICES_RUN_DIR:-/run}/trex-services-apt.lock
APT_STAMP=${TREX_SERVICES_RUN_DIR:-/run}/trex-services-apt-updated

missing_pkgs() {
  local p out=""
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || out="$out $p"; done
  echo "$out"
}

# apt_lock_holders: "PID (NAME)" of each process holding one of apt's or dpkg's locks (POSIX locks, in /proc/locks) on
# dpkg's lock-frontend and lock, apt's lists and archives (the directories as apt-config, so APT_CONFIG, has them)
apt_lock_holders() {
  local status=/var/lib/dpkg/status lists=/var/lib/apt/lists/ archives=/var/cache/apt/archives/ f inodes="" pid
  eval "$(apt-config shell status Dir::State::status/f lists Dir::State::lists/d archives Dir::Cache::archives/d 2>/dev/null)"
  for f in "${status%/*}/lock-frontend" "${status%/*}/lock" "${DPKG_ADMINDIR:-${status%/*}}/lock" "${lists%/}/lock" "${archives%/}/lock"; do
    [ -e "$f" ] && inodes="$inodes $(stat -c %i "$f")"
  done
  [ -n "$inodes" ] || return 0
  awk -v inodes="$inodes " '$2 != "->" { n = split($6, d, ":"); if (index(inodes, " " d[n] " ")) print $5 }' /proc/locks | sort -un |
    while read -r pid; do echo "$pid ($(cat "/proc/$pid/comm" 2>/dev/null))"; done
}

# wait_apt_locks SECONDS: waits until no other process holds apt's or dpkg's locks, at most SECONDS (polling every
# second), saying on stderr who held them and for how long; succeeds either way (apt-get then says why it refuses)
wait_apt_locks() {
  local end=$(( SECONDS + $1 )) start=$SECONDS holders
  holders=$(apt_lock_holders | tr '\n' ' ')
  [ -n "$holders" ] || return 0
  echo "[apt $(date +%T)] apt's lock is held by ${holders% } (on a fresh machine: unattended-upgrades, cloud-init or apt-daily): waiting for it, up to $1 s (TREX_SERVICES_APT_LOCK_WAIT)" >&2
  while [ -n "$holders" ] && [ "$SECONDS" -lt "$end" ]; do
    sleep 1
    holders=$(apt_lock_holders | tr '\n' ' ')
  done
  if [ -n "$holders" ]; then
    echo "[apt $(date +%T)] apt's lock still held after $1 s by ${holders% }: trying all the same" >&2
  else
    echo "[apt $(date +%T)] apt's lock free after $(( SECONDS - start )) s" >&2
  fi
}

apt_install() {
  local need
  need=$(missing_pkgs "$@")
  [ -z "$need" ] && return 0
  (
    flock 9
    need=$(missing_pkgs "$@")   # another script may have installed them while we waited
    [ -z "$need" ] && exit 0
    echo "[apt $(date +%T)] installing:$need" >&2
    local wait=${TREX_SERVICES_APT_LOCK_WAIT:-600} end
    end=$(( SECONDS + wait ))
    wait_apt_locks "$wait"
    # and apt-get waits for what is left of that time, should another take the lock again meanwhile (its option does
    # not cover `apt-get update`'s lists lock: tried again while the lock is held)
    apt_get() { apt-get -o DPkg::Lock::Timeout=$(( end > SECONDS ? end - SECONDS : 0 )) "$@"; }
    if [ ! -f "$APT_STAMP" ]; then
      local urc
      while :; do
        urc=0; apt_get update -qq || urc=$?
        [ "$urc" -ne 0 ] && [ "$SECONDS" -lt "$end" ] && [ -n "$(apt_lock_holders)" ] || break
        sleep 2
      done
      # a failed update ends apt_install, unstamped (a later start updates again), whether or not the caller runs under
      # `set -e` (start-all.sh does not: `(exit "$urc")` alone stamped a failed update, and no later start of the boot
      # updated again)
      [ "$urc" -eq 0 ] || exit "$urc"
      touch "$APT_STAMP"
    fi
    # a dpkg stopped mid-run (start-all.sh passes a signal on to apt, and kills it 10 s later) leaves its journal in
    # <admindir>/updates, and every later `apt-get install` refuses ("dpkg was interrupted") until `dpkg --configure -a`
    # has replayed it. That journal is what apt refuses on, not `dpkg --audit`, which also lists lasting, harmless
    # things (a package without its md5sums file). If the replay fails, apt-get below says why.
    if [ -n "$(ls -A "${DPKG_ADMINDIR:-/var/lib/dpkg}/updates" 2>/dev/null)" ]; then
      echo "[apt $(date +%T)] finishing what an interrupted dpkg left: dpkg --configure -a" >&2
      local rc=0
      dpkg --configure -a || rc=$?
      [ "$rc" -eq 0 ] || echo "[apt $(date +%T)] dpkg --configure -a failed (status $rc)" >&2
    fi
    # policy-rc.d on CI images keeps packages from starting their system services; ours start them explicitly
    apt_get install -y -qq --no-install-recommends $need >/dev/null
  ) 9>"$APT_LOCK"
}

# wait_for SECONDS CMD...: retry CMD (a command or a shell function) every 0.1 s until it succeeds or SECONDS of wall
# time pass (counted by the clock, not in tries: a try such as `docker info` can itself take seconds on a loaded
# machine); its status is the last try's. A try is bounded too: one still running when the time is up (a `docker info`
# or `curl` on a daemon that takes the connection and never answers) is killed with what it started, and fails (137);
# a try made when the time is up gets 1 s. Each try runs in a subshell of its own process group (the shell's job
# control, on for the start of the try alone), so that the kill reaches a function's commands: what CMD sets in the
# shell is not kept. Being in a group of its own, a try gets no Ctrl-C or SIGTERM meant for the calling script, so
# while wait_for runs it traps INT, TERM and HUP (kill the try's group, then give the signal back to the shell under
# the caller's own traps: a script with none dies of it as it would have) and EXIT; the caller's traps are restored
# before it returns.
wait_for() {
  local end=$(( SECONDS + $1 )) job=+m pid= rc=1 until traps sig=; shift
  case $- in *m*) job=-m ;; esac
  traps=$(trap -p INT TERM HUP EXIT)
  trap '[ -z "$pid" ] || kill -KILL -- "-$pid" 2>/dev/null; sig=INT' INT
  trap '[ -z "$pid" ] || kill -KILL -- "-$pid" 2>/dev/null; sig=TERM' TERM
  trap '[ -z "$pid" ] || kill -KILL -- "-$pid" 2>/dev/null; sig=HUP' HUP
  trap '[ -z "$pid" ] || kill -KILL -- "-$pid" 2>/dev/null' EXIT
  while [ -z "$sig" ]; do
    until=$(( end > SECONDS ? end : SECONDS + 1 ))
    set -m
    ( "$@" ) >/dev/null 2>&1 </dev/null &
    pid=$!
    set "$job"
    while [ -z "$sig" ] && running "$pid" && [ "$SECONDS" -lt "$until" ]; do sleep 0.1; done
    running "$pid" && kill -KILL -- "-$pid" 2>/dev/null
    rc=0; wait "$pid" 2>/dev/null || rc=$?
    pid=
    [ "$rc" -eq 0 ] && break
    [ "$SECONDS" -lt "$end" ] || break
    sleep 0.1
  done
  trap - INT TERM HUP EXIT
  eval "$traps"
  if [ -n "$sig" ]; then
    kill -s "$sig" "$BASHPID"
    return $(( 128 + $(kill -l "$sig") ))
  fi
  return "$rc"
}

# A signal that was ignored when the shell started (SIGINT in a job that a shell without job control starts with `&`,
# SIGHUP under nohup) cannot be trapped by bash: wait_for's trap of it is not set, and it stops neither the script
# nor a try (which ignores it too). Said once on stderr, when this file is sourced, so that a Ctrl-C that does nothing
# is explained. Not reset: the ignoring is what whoever started the script asked for (nohup's SIGHUP), and bash could
# undo it only by starting itself again through `env --default-signal`.
untrappable_signals() {
  local s saved out=""
  for s in INT TERM HUP; do
    saved=$(trap -p "$s")
    trap : "$s"
    [ "$(trap -p "$s")" = "trap -- ':' SIG$s" ] || out="$out SIG$s"
    if [ -n "$saved" ]; then eval "$saved"; else trap - "$s"; fi
  done
  echo "${out# }"
}
ignored_signals=$(untrappable_signals)
[ -z "$ignored_signals" ] || echo "[${0##*/}] $ignored_signals ignored since this shell started (as in a job that a shell without job control starts with &, or under nohup): bash cannot trap such a signal, so it stops neither this script nor a wait_for try" >&2
unset ignored_signals

# running PID: process PID runs, as /proc/PID/stat's state tells. Not `kill -0`, which succeeds on a zombie too: a
# process that has ended but that its parent has not reaped yet (a daemon's middle fork, or a daemon that died, whose
# reaper is pid 1: this machine's /process_api reaps about a second later, a container's `sleep infinity` as pid 1
# never). A zombie taken as alive kept a dead daemon from being started again, counted it up in .env, and made
# stop_pidfile wait its 15 s for a process already gone. Every liveness check of the start scripts goes through it.
running() {
  local stat
  [[ ${1:-} =~ ^[1-9][0-9]*$ ]] || return 1
  { read -r stat < "/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  case ${stat%% *} in Z|X|x) return 1 ;; esac
}

# pidfile_pid FILE: the pid a pid file holds, with or without a final newline (dockerd and containerd write none, and
# `read` then fails though it read the pid: taken for no pid, a live dockerd's file was removed as a dead one's and
# `stop` left the daemon running), nothing when there is no file
pidfile_pid() {
  local pid=
  { read -r pid || :; } 2>/dev/null < "$1" || :
  printf '%s' "$pid"
}

# pidfile_running FILE: FILE names a process that runs (see `running`)
pidfile_running() {
  [ -f "$1" ] && running "$(pidfile_pid "$1")"
}

# stop_pidfile FILE: kill the daemon named by a pid file (SIGTERM, SIGKILL after 15 s), wait until it
# is gone (ended: a zombie left for its parent or pid 1 to reap is gone) and remove the file; prints the pid it
# stopped, nothing when none ran
stop_pidfile() {
  local f=$1 pid
  pidfile_running "$f" || { rm -f "$f"; return 0; }
  pid=$(pidfile_pid "$f"); kill "$pid" 2>/dev/null || true
  for _ in $(seq 150); do running "$pid" || break; sleep 0.1; done
  running "$pid" && kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
  echo "$pid"
}

# put_file MODE FILE: stdin becomes FILE's contents, with MODE, only when they differ, and by a rename (a reader sees
# the old file or the new one, never an empty or missing one). `install` unlinks and recreates, `cat >` truncates:
# test files run side by side log in while another file's start rewrites sshd's authorized keys, and a review saw
# 2 of 80 logins refused ("Permission denied (publickey)") while `install` replaced them.
put_file() {
  local mode=$1 f=$2 tmp
  tmp=$(mktemp "$f.XXXXXX")
  cat > "$tmp" && chmod "$mode" "$tmp" || { rm -f "$tmp"; return 1; }
  if [ -f "$f" ] && [ "$(stat -c %a "$f")" = "${mode#0}" ] && cmp -s "$tmp" "$f"; then rm -f "$tmp"; else mv -f "$tmp" "$f"; fi
}

# busybox_rootfs: a minimal root filesystem made of the host's static busybox, as a tar on stdout (what the
# engines import as local/busybox:latest: no registry is reachable here)
busybox_rootfs() {
  local tmp a
  tmp=$(mktemp -d)
  mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/etc" "$tmp/root" "$tmp/proc" "$tmp/sys" "$tmp/dev"
  chmod 1777 "$tmp/tmp"
  cp /bin/busybox "$tmp/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$tmp/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$tmp/etc/passwd"; echo 'root:x:0:' > "$tmp/etc/group"
  tar -C "$tmp" -c .
  rm -rf "$tmp"
}
