#!/bin/sh
# Install Debian's chromium for the HTML report's browser tests (packages/cli/test/HtmlReport.test.ts).
# Idempotent: does nothing when /usr/bin/chromium exists. Needs root (CI containers) or passwordless
# sudo. Waits for the dpkg/apt locks, since other setup scripts may be installing packages at once.
set -eu

if [ -x /usr/bin/chromium ]; then
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
    echo "install-chromium: apt-get update kept failing" >&2
    exit 1
  fi
  sleep 5
done
$SUDO apt-get $LOCK install -y -qq --no-install-recommends chromium >/dev/null
/usr/bin/chromium --version
