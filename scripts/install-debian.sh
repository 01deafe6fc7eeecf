#!/bin/sh
# install-debian.sh BINARY PACKAGE: install Debian's PACKAGE when BINARY is missing, for the tests that
# drive a real program (chromium for the HTML report's browser tests, tmux for the live view's terminal
# tests, btrfs-progs for trex list's btrfs test). Idempotent: does nothing when BINARY exists. Needs root (CI containers) or passwordless sudo.
# Waits for the dpkg/apt locks, since other setup scripts may be installing packages at once.
set -eu

if [ "$#" -ne 2 ]; then
  echo "usage: install-debian.sh BINARY PACKAGE" >&2
  exit 2
fi
BINARY=$1
PACKAGE=$2
if [ -x "$BINARY" ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo -n"
fi

export DEBIAN_FRONTEND=noninteractive
LOCK="-o DPkg::Lock::Timeout=600"

# `apt-get update` takes the lists lock, which DPkg::Lock::Timeout does not cover: retry.
tries=0
until $SUDO apt-get $LOCK update -qq; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "install-debian: apt-get update kept failing" >&2
    exit 1
  fi
  sleep 5
done
$SUDO apt-get $LOCK install -y -qq --no-install-recommends "$PACKAGE" >/dev/null
if [ ! -x "$BINARY" ]; then
  echo "install-debian: $PACKAGE installed, but $BINARY is still missing" >&2
  exit 1
fi
