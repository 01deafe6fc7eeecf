#!/usr/bin/env bash
# start-all.sh — start the real engines the integration tests use: Docker, Podman (its Docker-compatible API),
# sshd on 127.0.0.1:2222, Slurm, Grid Engine.
# Packages are installed in one apt transaction first, then the services start in parallel; if one does not come
# up, the script says which and prints the tail of its log, and exits non-zero. Writes the facts the tests read to
# scripts/services/.env (KEY=value lines; tests also fall back to the same well-known defaults).
# Usage: start-all.sh [docker|podman|sshd|slurm|gridengine ...]     start all (default) or the named services
#        start-all.sh stop [docker|podman|sshd|slurm|gridengine ...]
# Needs root (CI: `sudo scripts/services/start-all.sh`). Everything listens on unix sockets or 127.0.0.1 only.
# Stopped (SIGTERM, Ctrl-C, SIGHUP) while the services start, it gives the signal to each start script still running,
# with all that script runs (its process group), waits for them to end (SIGKILL after 10 s), then dies of the signal.
# TREX_SERVICES_DIR: the directory of the start-<service>.sh scripts it runs, where it writes .env (default: its own;
# a service is any name with a script there), TREX_SERVICES_LOG_DIR: their logs (default /var/log/trex-services).
# Both are for tests of this script with start scripts of their own, which need no root.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
dir=${TREX_SERVICES_DIR:-$here}
log() { echo "[start-all $(date +%T)] $*" >&2; }

# The facts the tests read, for every service that is up now (whoever started it). Each check is bounded: a daemon
# that takes the connection and never answers (a dockerd hung, or stopped with SIGSTOP) is not up, and does not hang
# this script (`docker info` has no timeout of its own): TREX_SERVICES_CHECK_SECONDS, default 5.
ssh_port=${SSH_PORT:-2222}
ssh_dir=${SSH_KEY_DIR:-/var/lib/trex-test-ssh}
write_env() {
  local up=()
  timeout -k 1 "${TREX_SERVICES_CHECK_SECONDS:-5}" docker -H unix:///var/run/docker.sock info >/dev/null 2>&1 && up+=(docker)
  curl -sf --max-time 2 --unix-socket /run/podman/podman.sock http://d/_ping 2>/dev/null | grep -q OK && up+=(podman)
  pidfile_running /run/sshd-sdktest-$ssh_port.pid && up+=(sshd)
  pidfile_running /run/slurm/slurmctld.pid && up+=(slurm)
  pidfile_running /var/spool/gridengine/qmaster/qmaster.pid && up+=(gridengine)
  {
    echo "# written by scripts/services/start-all.sh on $(date -u +%FT%TZ): the services up then"
    echo "TREX_SERVICES=\"${up[*]}\""
    for s in "${up[@]}"; do
      case "$s" in
        docker) echo "DOCKER_HOST=unix:///var/run/docker.sock"
                echo "TREX_TEST_DOCKER_IMAGE=local/busybox:latest" ;;
        podman) echo "TREX_TEST_PODMAN_HOST=unix:///run/podman/podman.sock"
                echo "TREX_TEST_PODMAN_IMAGE=local/busybox:latest" ;;
        sshd) echo "TREX_TEST_SSH_HOST=127.0.0.1"
              echo "TREX_TEST_SSH_PORT=$ssh_port"
              echo "TREX_TEST_SSH_USER=${SSH_USER:-sdktest}"
              echo "TREX_TEST_SSH_KEY=$ssh_dir/id_ed25519"
              echo "TREX_TEST_SSH_KNOWN_HOSTS=$ssh_dir/known_hosts" ;;
        slurm) echo "TREX_TEST_SLURM_REST_URL=http://127.0.0.1:6820"
               echo "TREX_TEST_SLURM_FAKE_GPUS=${SLURM_FAKE_GPUS:-2}" ;;
        gridengine) echo "SGE_ROOT=/var/lib/gridengine"
                    echo "SGE_CELL=default"
                    echo "TREX_TEST_SGE_FAKE_GPUS=${SGE_FAKE_GPUS:-2}" ;;
      esac
    done
  } > "$dir/.env"
}

action=start
if [ "${1:-}" = stop ]; then action=stop; shift; fi
services=("$@"); [ ${#services[@]} -eq 0 ] && services=(docker podman sshd slurm gridengine)
for s in "${services[@]}"; do
  [ -f "$dir/start-$s.sh" ] || { log "unknown service '$s' (docker, podman, sshd, slurm or gridengine: no $dir/start-$s.sh)"; exit 2; }
done
[ "$dir" != "$here" ] || [ "$(id -u)" = 0 ] || { log "must run as root (sudo $0)"; exit 2; }

# Each command of a step (the gridengine preseed, the apt transaction, each start script, each stop script) runs as a
# process group of its own (job control on for its start alone, as in wait_for), its stdin /dev/null, so that a signal
# can be given to all it runs: this script catches INT, TERM and HUP (a `kill` of it alone, CI cancelling, or Ctrl-C,
# which reaches the terminal's foreground group only), gives the signal to each such group still running (a script's
# wait_for gives it on to its try, a group of its own), kills what still runs 10 s later, then dies of the signal.
# (Started with a plain `&`, the scripts were in this script's group, and ignored SIGINT, as does any job that a shell
# without job control starts, and which bash cannot trap then; run in the foreground, as `stop` and apt were, a command
# held the trap until it ended, and a `kill` of this script alone left it running.)
# pids: each command's pid by its name; started: the names in the order they were started (not a copy of pids' keys:
# bash lists an associative array's keys in its hash order, and the log says what it stops in the order it started it)
declare -A pids
started=()
# running_groups: sets `live_groups` to the process groups of which a process runs, in one scan of /proc (a process that
# has ended but is not reaped yet, a zombie, does not run: init may take seconds to reap a script's child)
declare -A live_groups
running_groups() {
  local f stat state pgrp
  live_groups=()
  for f in /proc/[0-9]*/stat; do
    { read -r stat < "$f"; } 2>/dev/null || continue
    read -r state _ pgrp _ <<< "${stat##*) }"
    [ "$state" = Z ] || live_groups[$pgrp]=1
  done
}
# Only a command that still runs is signalled, never the group of one that has ended: a daemon that a finished script
# left in its group (as `/etc/init.d/mariadb start` did mysqld_safe) is a service that is up, and once the script is
# reaped its pid may be another process's group. A command runs while bash lists it as a running job (not reaped, so
# its pid is its own) and it is no zombie.
stop_scripts() {
  local sig=$1 s pid jobs_running stopping=() left end
  trap '' INT TERM HUP
  jobs_running=$'\n'$(jobs -rp)$'\n'
  for s in "${started[@]}"; do
    pid=${pids[$s]:-}
    [ -n "$pid" ] && [[ $jobs_running == *$'\n'$pid$'\n'* ]] || continue
    running "$pid" && kill -s "$sig" -- "-$pid" 2>/dev/null && stopping+=("$s")
  done
  log "got SIG$sig: stopping ${stopping[*]:-nothing}"
  # what is left of those groups 10 s later (by the clock, in microseconds) is killed
  end=$(( ${EPOCHREALTIME/[!0-9]/} + 10000000 ))
  while [ ${#stopping[@]} -gt 0 ]; do
    running_groups
    left=()
    for s in "${stopping[@]}"; do [ -z "${live_groups[${pids[$s]}]:-}" ] || left+=("$s"); done
    stopping=("${left[@]}")
    [ ${#stopping[@]} -eq 0 ] || [ "${EPOCHREALTIME/[!0-9]/}" -ge "$end" ] && break
    sleep 0.1
  done
  for s in "${stopping[@]}"; do log "$s still runs after 10 s: killed"; kill -KILL -- "-${pids[$s]}" 2>/dev/null; done
  trap - INT TERM HUP
  kill -s "$sig" "$BASHPID"
  exit $(( 128 + $(kill -l "$sig") ))
}
# While commands are started, a signal is only noted (one started but whose pid is not in `pids` yet would not be
# signalled), and handled once the last started command's pid is: no further command is started then. (Not ignored:
# a signal ignored in this shell would be in the commands too, which bash cannot trap then.)
pending=
note_signals() { trap 'pending=INT' INT; trap 'pending=TERM' TERM; trap 'pending=HUP' HUP; }
handle_signals() {
  trap 'stop_scripts INT' INT; trap 'stop_scripts TERM' TERM; trap 'stop_scripts HUP' HUP
  [ -z "$pending" ] || stop_scripts "$pending"
}
# spawn NAME LOG CMD...: starts CMD as a process group of its own, its output to LOG (none: this script's), between
# note_signals and handle_signals
spawn() {
  local name=$1 out=$2; shift 2
  set -m
  if [ -n "$out" ]; then "$@" >"$out" 2>&1 </dev/null & else "$@" </dev/null & fi
  pids[$name]=$!
  started+=("$name")
  set +m
}
# run NAME CMD...: CMD spawned and waited for; its status (a signal meanwhile stops it, and this script)
run() {
  note_signals
  spawn "$1" "" "${@:2}"
  handle_signals
  wait "${pids[$1]}"
}
handle_signals

if [ $action = stop ]; then
  rc=0
  for s in "${services[@]}"; do run "$s" "$dir/start-$s.sh" stop || rc=1; done
  write_env
  exit $rc
fi

# One apt transaction for everything (the scripts then find their packages installed).
pkgs=""
for s in "${services[@]}"; do
  case "$s" in
    docker) pkgs="$pkgs docker.io busybox-static" ;;
    podman) pkgs="$pkgs podman catatonit busybox-static curl" ;;
    sshd) pkgs="$pkgs openssh-server openssh-client" ;;
    slurm) pkgs="$pkgs munge slurm-wlm slurmctld slurmd slurm-client"
           [ "${SLURM_ACCOUNTING:-1}" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
           [ "${SLURM_REST:-1}" = 1 ] && pkgs="$pkgs slurmrestd slurm-wlm-jwt-plugin curl" ;;
    # its packages' postinst asks debconf for the cell and the qmaster host: answered before the transaction
    gridengine) run preseed "$dir/start-gridengine.sh" preseed || { log "gridengine: debconf preseed failed"; exit 1; }
                pkgs="$pkgs gridengine-master gridengine-exec gridengine-client" ;;
  esac
done
t0=$(date +%s)
run apt apt_install $pkgs || { log "apt-get install failed"; exit 1; }

logdir=${TREX_SERVICES_LOG_DIR:-/var/log/trex-services}
mkdir -p "$logdir"
note_signals
for s in "${services[@]}"; do
  [ -z "$pending" ] || break
  spawn "$s" "$logdir/$s.log" "$dir/start-$s.sh"
done
handle_signals
failed=()
for s in "${services[@]}"; do
  if wait "${pids[$s]}"; then log "$s: up"; else failed+=("$s"); fi
done
for s in "${failed[@]}"; do
  log "$s did NOT come up; last lines of $logdir/$s.log:"
  tail -25 "$logdir/$s.log" >&2
done

write_env
log "facts in $dir/.env; took $(( $(date +%s) - t0 )) s"
[ ${#failed[@]} -eq 0 ] || { log "failed: ${failed[*]}"; exit 1; }
log "all up: ${services[*]}"
