#!/usr/bin/env bash
# start-gridengine.sh — single-host Son of Grid Engine 8.1.9 (Debian bookworm's gridengine-*) on this machine, as root,
# no systemd, for the GridEngineBackend integration tests.
#   sge_qmaster + sge_execd on host "localhost", queue all.q with SGE_SLOTS (default 4) slots, and a consumable
#   complex "gpu" of SGE_FAKE_GPUS (default 2) on the host, so `qsub -l gpu=N` is scheduled and counted (no devices
#   behind it: the backend's job script names them in CUDA_VISIBLE_DEVICES itself); qsub/qstat/qdel/qacct work for root
#   (CI runs as root) and normal users. Beside Slurm: Grid Engine uses ports 6444/6445, Slurm 6817-6819.
# Clients need: export SGE_ROOT=/var/lib/gridengine SGE_CELL=default   (or . /var/lib/gridengine/default/common/settings.sh)
# Idempotent: with the daemons up it only checks that they answer.
# Usage: start-gridengine.sh            install/configure/start, wait until the queue instance is ok
#        start-gridengine.sh preseed    only answer the packages' debconf questions (start-all.sh, before its one apt transaction)
#        start-gridengine.sh stop       stop sge_execd and sge_qmaster
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
GPUS=${SGE_FAKE_GPUS:-2}
# Four slots, whatever the machine has: the test jobs sleep and wait for files, and with the 2 of a CI machine
# GridEngineBackend.test.ts's conformance jobs (a dozen at once) queued for the two, and the other files' jobs (code
# agent, trex check, chaos) queued behind them. Not more than 4: the conformance suite's capacity case runs
# min(slots, 4) + 1 jobs, and with more slots than 4 none of them would have to wait.
SLOTS=${SGE_SLOTS:-4}
COMMON=$SGE_ROOT/$SGE_CELL/common
QPID=/var/spool/gridengine/qmaster/qmaster.pid
EPID=/var/spool/gridengine/execd/localhost/execd.pid
log() { echo "[start-gridengine $(date +%T)] $*" >&2; }
PKGS="gridengine-master gridengine-exec gridengine-client"

# The packages' postinst creates the cell (bootstrap, spool database, sgeadmin as manager) from these answers; its
# init.d start is refused by policy-rc.d on CI images, and the daemons are started below.
preseed() {
  [ -z "$(missing_pkgs $PKGS)" ] && return 0
  command -v debconf-set-selections >/dev/null || apt_install debconf
  for p in gridengine-common gridengine-client gridengine-master; do
    printf '%s shared/gridenginecell string default\n%s shared/gridengineconfig boolean true\n%s shared/gridenginesqmaster string %s\n' \
      $p $p $p "$(hostname)" | debconf-set-selections
  done
}

case "${1:-}" in
  stop)
    [ -n "$(stop_pidfile $EPID)" ] && log "stopped sge_execd"
    [ -n "$(stop_pidfile $QPID)" ] && log "stopped sge_qmaster"
    exit 0 ;;
  preseed) preseed; exit 0 ;;
esac

preseed
apt_install $PKGS

queue_ok() { qstat -f -q all.q@localhost 2>/dev/null | awk 'NR>2 && $1=="all.q@localhost" {print ($6==""?"ok":$6)}' | grep -qx ok; }
# Up, and configured by this very script (a stamp of its text and settings, written after a full run below): only
# check that the queue instance is ok. The test files bring Grid Engine up before each group of tests and after each
# test that stops a daemon, a dozen times a file; the full check (a dozen qconf calls) took 2-5 s each on 2 busy cores.
STAMP=/run/trex-start-gridengine.configured
configured="$(cat "$0" "$here/lib.sh" | md5sum | cut -d' ' -f1) $GPUS $SLOTS $(hostname)"
up() { pidfile_running $QPID && pidfile_running $EPID && [ "$(cat $STAMP 2>/dev/null)" = "$configured" ] && queue_ok; }
up && { log "ready: SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL, all.q@localhost up (configured before)"; exit 0; }

# 127.0.0.1 reverse-resolves to "localhost" but gethostname() may say otherwise ("vm"): tell SGE they are one host,
# otherwise every client gets "commlib error: access denied (client IP resolved to host name localhost ...)"
# One start at a time: test files that run side by side may each start (or restart) the daemons, and
# two sge_execd started at once fail the second ("can't bind socket", exit 100)
exec 8>/run/trex-start-gridengine.lock
flock 8
# brought up meanwhile by the start this one waited for
up && { log "ready: SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL, all.q@localhost up (by another start)"; exit 0; }

echo "localhost $(hostname)" > $COMMON/host_aliases

if ! pidfile_running $QPID; then
  log "starting sge_qmaster"
  echo localhost > $COMMON/act_qmaster
  /usr/lib/gridengine/sge_qmaster
  wait_for 20 qstat || true
fi
qstat >/dev/null 2>&1 || { log "qmaster not answering"; tail -20 /var/spool/gridengine/qmaster/messages >&2; exit 1; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# global config: allow root (uid 0) to submit, as CI runs as root; write the accounting file (read by qacct) at once
# instead of every 15 s; execution daemons report every 2 s instead of 40 s (an execd finds a restarted qmaster
# sooner). A job Grid Engine runs again (its script exited 99, `qmod -rj`) waits in Rq until its host's execd has sent
# two reports since (the qmaster's "reschedule unknown" list for the host): 12-13 s with reports every 5 s, 4-5 s with
# every 2 s (measured here at load 8-10), for the three rerun tests of GridEngineBackend.test.ts. Not every second: the
# rerun test looks for the job's Pending state between its two runs, polling every 300 ms on a busy machine.
qconf -sconf global > "$tmp/global"; cp "$tmp/global" "$tmp/global.orig"
sed -i 's/^min_uid .*/min_uid                      0/; s/^min_gid .*/min_gid                      0/;
        s/flush_time=00:00:15/flush_time=00:00:01 accounting_flush_time=00:00:00/;
        s/^load_report_time .*/load_report_time             00:00:02/' "$tmp/global"
cmp -s "$tmp/global" "$tmp/global.orig" || (cd "$tmp" && qconf -Mconf global >/dev/null)
# scheduler: run every second instead of every 15 s, and on every submit/finish; keep the reasons a job waits
# (`qstat -j`'s scheduling info, which the backend reports as the Pending reason)
qconf -ssconf > "$tmp/sconf"; cp "$tmp/sconf" "$tmp/sconf.orig"
sed -i 's/^schedule_interval .*/schedule_interval                 0:0:1/; s/^flush_submit_sec .*/flush_submit_sec                  1/;
        s/^flush_finish_sec .*/flush_finish_sec                  1/; s/^schedd_job_info .*/schedd_job_info                   true/' "$tmp/sconf"
cmp -s "$tmp/sconf" "$tmp/sconf.orig" || qconf -Msconf "$tmp/sconf" >/dev/null
# consumable "gpu" complex
if ! qconf -sc | grep -q '^gpu '; then
  qconf -sc > "$tmp/complex"
  echo 'gpu                 gpu        INT         <=    YES         YES        0        0' >> "$tmp/complex"
  qconf -Mc "$tmp/complex" >/dev/null
fi
qconf -ss 2>/dev/null | grep -qx localhost || qconf -as localhost >/dev/null
qconf -sh 2>/dev/null | grep -qx localhost || qconf -ah localhost >/dev/null
cat > "$tmp/host" <<EOF
hostname              localhost
load_scaling          NONE
complex_values        gpu=$GPUS
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
EOF
if qconf -sel 2>/dev/null | grep -qx localhost; then
  qconf -se localhost | grep -q "^complex_values *gpu=$GPUS\$" || qconf -Me "$tmp/host" >/dev/null
else
  qconf -Ae "$tmp/host" >/dev/null
fi

if ! pidfile_running $EPID; then
  log "starting sge_execd"
  # a port the last execd held may not be free yet: tried again, a few times
  for try in 1 2 3 4 5; do
    /usr/lib/gridengine/sge_execd && break
    pidfile_running $EPID && break
    [ "$try" = 5 ] && { log "sge_execd did not start"; tail -20 /var/spool/gridengine/execd/localhost/messages >&2 || true; exit 1; }
    log "sge_execd did not start (try $try of 5); again in 2 s"
    sleep 2
  done
fi
if ! qconf -sql 2>/dev/null | grep -qx all.q; then
  { printf 'qname all.q\nhostlist localhost\nseq_no 0\nload_thresholds NONE\nsuspend_thresholds NONE\nnsuspend 1\n'
    printf 'suspend_interval 00:05:00\npriority 0\nmin_cpu_interval 00:05:00\nprocessors UNDEFINED\nqtype BATCH INTERACTIVE\n'
    printf 'ckpt_list NONE\npe_list NONE\nrerun FALSE\nslots %s\ntmpdir /tmp\nshell /bin/sh\nprolog NONE\nepilog NONE\n' "$SLOTS"
    printf 'shell_start_mode posix_compliant\nstarter_method NONE\nsuspend_method NONE\nresume_method NONE\nterminate_method NONE\n'
    # notify: the grace between a qdel's SIGUSR2 (jobs submitted with -notify) and its SIGKILL
    printf 'notify 00:00:10\nowner_list NONE\nuser_lists NONE\nxuser_lists NONE\nsubordinate_list NONE\ncomplex_values NONE\n'
    printf 'projects NONE\nxprojects NONE\ncalendar NONE\ninitial_state default\n'
    for l in s_rt h_rt s_cpu h_cpu s_fsize h_fsize s_data h_data s_stack h_stack s_core h_core s_rss h_rss s_vmem h_vmem; do printf '%s INFINITY\n' $l; done
  } > "$tmp/all.q"
  qconf -Aq "$tmp/all.q" >/dev/null
fi
# (a queue made by an earlier version of this script, with other slots)
[ "$(qconf -sq all.q | awk '$1 == "slots" {print $2}')" = "$SLOTS" ] || qconf -mattr queue slots "$SLOTS" all.q >/dev/null
wait_for 30 queue_ok || { log "queue all.q@localhost not ok:"; qstat -f >&2; tail -20 /var/spool/gridengine/execd/localhost/messages >&2 || true; exit 1; }
echo "$configured" > $STAMP
log "ready: SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL, all.q@localhost with $SLOTS slots, gpu=$GPUS"
