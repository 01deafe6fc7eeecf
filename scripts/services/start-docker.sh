#!/usr/bin/env bash
# start-docker.sh — Docker Engine (Debian docker.io, API >= 1.41) on /var/run/docker.sock, as root, without systemd,
# for the DockerBackend integration tests. No registry is needed: images are made locally with `docker import`:
#   local/busybox:latest          busybox-static with every applet linked in /bin (~2 MB, ~1 s)
#   local/python:bookworm         only with DOCKER_PYTHON_IMAGE=1: debootstrap minbase + python3 (~1-2 min)
# Networking: no bridge, no iptables (--bridge=none); nothing leaves the machine. A container gets only its own
# loopback by default; NetworkMode "host" reaches servers on the host's 127.0.0.1.
# GPUs: without the NVIDIA runtime a DeviceRequest fails with `could not select device driver "" ...`.
# Idempotent (re-running it with dockerd up only checks it answers). Usage: start-docker.sh [stop]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
SOCK=/var/run/docker.sock
LOG=/var/log/dockerd.log
PIDFILE=/var/run/docker.pid
log() { echo "[start-docker $(date +%T)] $*" >&2; }

if [ "${1:-}" = stop ]; then
  pid=$(stop_pidfile $PIDFILE)
  [ -n "$pid" ] && log "stopped dockerd $pid"
  # dockerd leaves this bind mount behind; a later start fails on it otherwise
  mountpoint -q /run/docker/netns/default 2>/dev/null && umount /run/docker/netns/default || true
  exit 0
fi

pkgs="docker.io busybox-static"
[ "${DOCKER_PYTHON_IMAGE:-0}" = 1 ] && pkgs="$pkgs debootstrap"
apt_install $pkgs

DOCKER="/usr/bin/docker -H unix://$SOCK"
# bounded: `docker info` on a dockerd that hangs would hang this script (and start-all.sh) for good
docker_ok() { timeout -k 1 10 $DOCKER info >/dev/null 2>&1; }
if ! docker_ok; then
  if pidfile_running $PIDFILE && [ "$(cat "/proc/$(cat $PIDFILE)/comm" 2>/dev/null)" = dockerd ]; then
    # a dockerd that runs but does not answer (still starting, or hung) is waited for, not started a second time
    log "dockerd $(cat $PIDFILE) runs but does not answer: waiting for it"
    wait_for 30 docker_ok || { log "dockerd $(cat $PIDFILE) runs but did not answer in 30 s (hung?): stop it (start-docker.sh stop), then start again; tail of $LOG:"; tail -30 $LOG >&2; exit 1; }
  else
    log "starting dockerd"
    # the pid files of a dockerd and its containerd that died: dockerd takes a pid that `kill -0` still finds (a zombie
    # not reaped yet: this machine's pid 1 reaps about a second later) for a daemon that runs, and refuses to start
    # ("pid file found") or waits for that containerd's socket, which no one serves ("timeout waiting for containerd")
    # (and one whose pid another process has taken since, where /run survived a restart: no dockerd runs from this one)
    rm -f $PIDFILE
    c=/var/run/docker/containerd/containerd.pid
    [ "$(cat "/proc/$(pidfile_pid $c)/comm" 2>/dev/null)" = containerd ] || rm -f $c
    extra=""; [ -n "${DOCKER_STORAGE_DRIVER:-}" ] && extra="--storage-driver=$DOCKER_STORAGE_DRIVER"
    setsid nohup /usr/sbin/dockerd --host=unix://$SOCK --pidfile=$PIDFILE \
        --iptables=false --ip6tables=false --ip-masq=false --bridge=none $extra >>$LOG 2>&1 < /dev/null &
    wait_for 30 docker_ok || { log "dockerd did not come up; tail of $LOG:"; tail -30 $LOG >&2; exit 1; }
  fi
fi
log "dockerd up: $($DOCKER version -f '{{.Server.Version}} API {{.Server.APIVersion}}') storage=$($DOCKER info -f '{{.Driver}}')"

if ! $DOCKER image inspect local/busybox:latest >/dev/null 2>&1; then
  log "importing local/busybox:latest"
  busybox_rootfs | $DOCKER import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - local/busybox:latest >/dev/null
fi

if [ "${DOCKER_PYTHON_IMAGE:-0}" = 1 ] && ! $DOCKER image inspect local/python:bookworm >/dev/null 2>&1; then
  log "debootstrap bookworm minbase + python3 (takes a minute or two)"
  root=/var/cache/trex-test-bookworm-rootfs
  if [ ! -x $root/usr/bin/python3 ]; then
    rm -rf $root
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    debootstrap --variant=minbase --include=python3 bookworm $root "${mirror:-http://deb.debian.org/debian}" >/var/log/debootstrap-trex-test.log 2>&1
    rm -rf $root/var/cache/apt/archives/*.deb $root/var/lib/apt/lists/*
  fi
  tar -C $root -c . | $DOCKER import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'CMD ["/usr/bin/python3"]' - local/python:bookworm >/dev/null
fi

out=$($DOCKER run --rm --network none local/busybox:latest echo docker-ok)
[ "$out" = docker-ok ] || { log "smoke test failed: $out"; exit 1; }
log "ready: $SOCK ($($DOCKER images --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' '))"
