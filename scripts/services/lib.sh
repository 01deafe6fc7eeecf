# lib.sh — helpers sourced by the start-*.sh scripts (not run on its own).
# apt_install PKG...: installs the packages that are missing (first finishing, with `dpkg --configure -a`, what a dpkg
# that was stopped mid-run left, as its journal in <admindir>/updates tells; DPKG_ADMINDIR as for dpkg). `apt-get update` runs at most once per boot
# (stamp in /run), and a lock serialises apt so start-all.sh can run the scripts in parallel. TREX_SERVICES_RUN_DIR:
# where the stamp and the lock are (default /run), for tests of start-all.sh with an apt-get of their own on PATH.
export DEBIAN_FRONTEND=noninteractive
APT_LOCK=${TREX_SERVICES_RUN_DIR:-/run}/trex-services-apt.lock
APT_STAMP=${TREX_SERVICES_RUN_DIR:-/run}/trex-services-apt-updated

missing_pkgs() {
  local p out=""
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || out="$out $p"; done
  echo "$out"
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
    [ -f "$APT_STAMP" ] || { apt-get update -qq; touch "$APT_STAMP"; }
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
    apt-get install -y -qq --no-install-recommends $need >/dev/null
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
    while [ -z "$sig" ] && kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$until" ]; do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
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

# stop_pidfile FILE: kill the daemon named by a pid file (SIGTERM, SIGKILL after 15 s), wait until it
# is gone and remove the file; prints the pid it stopped, nothing when none ran
stop_pidfile() {
  local f=$1 pid
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null || { rm -f "$f"; return 0; }
  pid=$(cat "$f"); kill "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
  echo "$pid"
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
