#!/usr/bin/env bash
# start-podman.sh — Podman (Debian 12: 4.3) serving its Docker-compatible API on /run/podman/podman.sock, rootful,
# without systemd, for the DockerBackend integration tests on Podman. It runs beside dockerd (start-docker.sh) and
# shares nothing with it: its own store (/var/lib/containers), runc from the docker.io packages, conmon per container.
# No registry is needed: local/busybox:latest (stored by Podman as localhost/local/busybox:latest) is made with
# `podman import`, from the same busybox-static rootfs as start-docker.sh's.
# Settings in /etc/containers/containers.conf that this machine needs:
#   default_ulimits  the VM lacks CAP_SYS_RESOURCE, and Podman's rootful defaults (nofile=1048576, nproc=4194304)
#                    make runc fail with "error setting rlimit type 7: operation not permitted"
#   netns = "none"   loopback-only containers unless asked otherwise (no CNI bridge, no iptables, no NAT)
#   log_driver = "k8s-file", events_logger = "file": set explicitly, as there is no journald here (the logs API
#                    reads the k8s-file log; Podman 4.3's *followed* k8s-file log drops lines under load, which the
#                    backend works around by reading it unfollowed, see DockerBackend.ts pollLogs)
# GPUs: Podman's compat API accepts a DeviceRequest and ignores it (the container runs without GPUs); the backend
# refuses a GPU job on Podman for that reason (see docs/backends.md).
# Idempotent (with the service up it only checks it answers). Usage: start-podman.sh [stop]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
SOCK=/run/podman/podman.sock
PIDFILE=/run/podman/trex-service.pid
LOG=/var/log/podman-service.log
CONF=/etc/containers/containers.conf
log() { echo "[start-podman $(date +%T)] $*" >&2; }

if [ "${1:-}" = stop ]; then
  pid=$(stop_pidfile $PIDFILE)
  [ -n "$pid" ] && log "stopped podman system service $pid (its containers run on, under conmon)"
  exit 0
fi

apt_install podman catatonit busybox-static curl

mkdir -p /etc/containers /run/podman
# conmon (2.1.6) writes its `oom` marker into the working directory of whoever started the container (the service),
# not where Podman reads it (so State.OOMKilled stays false): start everything from a directory of its own, not the
# caller's (a repository, where empty `oom` files would appear)
cd /run/podman
want='[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"
log_driver = "k8s-file"

[engine]
events_logger = "file"'
if [ "$(cat $CONF 2>/dev/null)" != "$want" ]; then
  [ -f $CONF ] && [ ! -f $CONF.trex-orig ] && cp $CONF $CONF.trex-orig
  printf '%s\n' "$want" > $CONF
  log "wrote $CONF"
fi

PODMAN=/usr/bin/podman
if ! $PODMAN image exists localhost/local/busybox:latest; then
  log "importing local/busybox:latest"
  busybox_rootfs | $PODMAN import -q --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - local/busybox:latest >/dev/null
fi

ping_ok() { curl -sf --max-time 2 --unix-socket $SOCK http://d/_ping 2>/dev/null | grep -q OK; }
if ! ping_ok; then
  log "starting podman system service on $SOCK"
  rm -f $SOCK
  setsid nohup $PODMAN system service --time=0 unix://$SOCK >>$LOG 2>&1 < /dev/null &
  echo $! > $PIDFILE
  wait_for 20 ping_ok || { log "podman system service did not answer; tail of $LOG:"; tail -30 $LOG >&2; exit 1; }
fi
log "podman up: $(curl -s --unix-socket $SOCK http://d/version | sed -n 's/.*"Version":"\([^"]*\)","ApiVersion":"\([^"]*\)".*/\1 API \2/p' | head -1)"

out=$($PODMAN run --rm local/busybox:latest echo podman-ok)
[ "$out" = podman-ok ] || { log "smoke test failed: $out"; exit 1; }
log "ready: DOCKER_HOST=unix://$SOCK ($($PODMAN images --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' '))"
