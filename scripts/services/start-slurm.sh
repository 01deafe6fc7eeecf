#!/usr/bin/env bash
# start-slurm.sh — single-node Slurm 22.05 (Debian bookworm) on localhost, as root, no systemd, for the
# SlurmBackend integration tests.
#   munged + slurmctld + slurmd (+ slurmdbd on MariaDB when SLURM_ACCOUNTING=1, the default)
#   (+ slurmrestd REST API on 127.0.0.1:6820 with JWT auth when SLURM_REST=1, the default;
#    get a token with: scontrol token username=USER lifespan=SECONDS  -> SLURM_JWT=...
#    and send headers X-SLURM-USER-NAME / X-SLURM-USER-TOKEN),
#   NodeName=localhost with SLURM_CPUS (default 4, whatever nproc says) CPUs and SLURM_FAKE_GPUS (default 2) fake GPUs as GRES
#   (gres.conf File= points at char device nodes 195:N, the NVIDIA major, made with mknod in
#   /var/lib/slurm-fakegpu; no driver is behind them, nothing opens them: --gres=gpu:N / --gpus=N
#   is scheduled, counted in sacct, and CUDA_VISIBLE_DEVICES is set in the job).
# Idempotent: re-running it with daemons up only checks that they answer.
# Usage: start-slurm.sh            install/configure/start, wait until the node is idle
#        start-slurm.sh stop       stop slurmrestd, slurmd, slurmctld, slurmdbd (leaves munge/mariadb up)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
ACCOUNTING=${SLURM_ACCOUNTING:-1}
REST=${SLURM_REST:-1}
JWT_KEY=/var/spool/slurmctld/jwt_hs256.key
GPUS=${SLURM_FAKE_GPUS:-2}
# Four CPUs, whatever the machine has (slurmd takes slurm.conf's word for them: SlurmdParameters=config_overrides).
# The test jobs sleep and wait for files, one CPU each: with the 2 of a CI machine, SlurmBackend.test.ts's conformance
# jobs (a dozen at once, one of them held up to 30 s by Slurm's time-limit check) queued for the two, and the other
# files' jobs (code agent, trex check, chaos) queued behind them. Not more than 4: the conformance suite's capacity case
# runs min(slots, 4) + 1 jobs, and with more slots than 4 none of them would have to wait.
NCPU=${SLURM_CPUS:-4}
CLUSTER=local
log() { echo "[start-slurm $(date +%T)] $*" >&2; }
# The daemons started here, and the checks, read the configuration this script writes, whatever SLURM_CONF its caller
# has: SlurmBackend.test.ts's outage tests give their clients a copy with another MessageTimeout, and a slurmctld
# restarted from within them read that copy (in a temporary directory) until its next restart, its configuration
# then differing from slurmd's ("Node localhost appears to have a different slurm.conf", twice a run of that file).
# MessageTimeout stays Slurm's 10 s here (not the outage tests' 4 s): it also bounds the daemons' own messages (the
# controller's pings and launches to slurmd, slurmd's reports of a job's end) on a machine of 2 cores at load 14-22,
# and no other test waits on a client's timeout, so a shorter one would save no CI time.
export SLURM_CONF=/etc/slurm/slurm.conf

if [ "${1:-}" = stop ]; then
  for d in slurmrestd slurmd slurmctld slurmdbd; do
    if pidfile_running /run/slurm/$d.pid; then stop_pidfile /run/slurm/$d.pid >/dev/null; log "stopped $d"; fi
  done
  exit 0
fi

# ---- install ---------------------------------------------------------------
pkgs="munge slurm-wlm slurmctld slurmd slurm-client"
[ "$ACCOUNTING" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
[ "$REST" = 1 ] && pkgs="$pkgs slurmrestd slurm-wlm-jwt-plugin curl"
apt_install $pkgs

# ---- munge -----------------------------------------------------------------
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key; }
install -d -o munge -g munge -m 755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for i in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

# ---- fake GPU device nodes (char 195:N like /dev/nvidiaN; no driver behind them) -------
# Not copies of /dev/null (c 1:3): with cgroup ConstrainDevices=yes that would deny /dev/null to jobs.
install -d /var/lib/slurm-fakegpu
for i in $(seq 0 $((GPUS - 1))); do
  f=/var/lib/slurm-fakegpu/nvidia$i
  [ "$(stat -c '%F %t:%T' $f 2>/dev/null)" = "character special file c3:$(printf '%x' $i)" ] || { rm -f $f; mknod $f c 195 $i; }
done

# ---- config ----------------------------------------------------------------
install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
MEM_MB=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
if [ "$ACCOUNTING" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment"
else
  ACCT="AccountingStorageType=accounting_storage/none"
fi
GRES_NODE=""; [ "$GPUS" -gt 0 ] && GRES_NODE="Gres=gpu:$GPUS"
JWT_CONF=""
if [ "$REST" = 1 ]; then
  [ -s $JWT_KEY ] || { dd if=/dev/urandom bs=32 count=1 2>/dev/null > $JWT_KEY; chmod 600 $JWT_KEY; }
  JWT_CONF="AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY"
fi
new_conf=$(cat <<EOF
# generated by start-slurm.sh
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
$JWT_CONF
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
# the node's CPUs as configured below, not as counted (no drain for "Low socket*core*thread count")
SlurmdParameters=config_overrides
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroup plugins: plain process tracking works in containers/VMs without systemd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
$ACCT
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SchedulerType=sched/backfill
# a batch job is scheduled at once, not at the next of slurmctld's passes every 3 s (batch_sched_delay's default):
# submitted to an idle node, a job started 2.0-3.2 s after its sbatch, 0.2-0.7 s with 0 (measured at load 8-10)
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM_MB $GRES_NODE State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
EOF
)
new_gres=""
[ "$GPUS" -gt 0 ] && new_gres="NodeName=localhost Name=gpu File=/var/lib/slurm-fakegpu/nvidia[0-$((GPUS - 1))]"
changed=0
[ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" = "$new_conf" ] || { printf '%s\n' "$new_conf" > /etc/slurm/slurm.conf; changed=1; }
[ "$(cat /etc/slurm/gres.conf 2>/dev/null)" = "$new_gres" ] || { printf '%s\n' "$new_gres" > /etc/slurm/gres.conf; changed=1; }
# unused with proctrack/linuxproc + task/none; proctrack/cgroup + task/cgroup (cgroup v1) also work on this VM
echo "CgroupPlugin=cgroup/v1" > /etc/slurm/cgroup.conf

# ---- accounting: mariadb + slurmdbd ------------------------------------------
if [ "$ACCOUNTING" = 1 ]; then
  if ! mysqladmin ping >/dev/null 2>&1; then
    log "starting mariadb"
    # in a session of its own: the init script starts mysqld_safe with a plain `&`, which would stay in this script's
    # process group (that start-all.sh signals when stopped while this script runs)
    setsid -w /etc/init.d/mariadb start >/dev/null
  fi
  mysql -uroot -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  new_dbd=$(cat <<EOF
AuthType=auth/munge
$JWT_CONF
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
)
  if [ "$(cat /etc/slurm/slurmdbd.conf 2>/dev/null)" != "$new_dbd" ]; then
    printf '%s\n' "$new_dbd" > /etc/slurm/slurmdbd.conf
    pidfile_running /run/slurm/slurmdbd.pid && { log "slurmdbd.conf changed: restarting slurmdbd"; stop_pidfile /run/slurm/slurmdbd.pid >/dev/null; }
  fi
  chmod 600 /etc/slurm/slurmdbd.conf
  if ! pidfile_running /run/slurm/slurmdbd.pid; then
    log "starting slurmdbd"
    slurmdbd
    for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/6819) 2>/dev/null && break; sleep 0.1; done
  fi
  sacctmgr -i -Q add cluster $CLUSTER >/dev/null 2>&1 || true
fi

# ---- slurmctld + slurmd -------------------------------------------------------
if [ $changed = 1 ]; then
  for d in slurmrestd slurmd slurmctld; do
    if pidfile_running /run/slurm/$d.pid; then log "config changed: restarting $d"; stop_pidfile /run/slurm/$d.pid >/dev/null; fi
  done
fi
pidfile_running /run/slurm/slurmctld.pid || { log "starting slurmctld"; slurmctld; }
for i in $(seq 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.1; done
pidfile_running /run/slurm/slurmd.pid || { log "starting slurmd"; slurmd -N localhost; }

for i in $(seq 150); do
  st=$(sinfo -h -n localhost -o '%T' 2>/dev/null | head -1 || true)
  case "$st" in idle|mixed|allocated) break ;; drain*|down*) scontrol update nodename=localhost state=resume 2>/dev/null || true ;; esac
  sleep 0.2
done
st=$(sinfo -h -n localhost -o '%T' 2>/dev/null | head -1 || true)
case "$st" in idle|mixed|allocated) log "ready: node localhost is $st" ;; *) log "node not ready (state '$st')"; tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2; exit 1 ;; esac
if [ "$ACCOUNTING" = 1 ]; then
  for i in $(seq 100); do sacct -n -X -S now-1minutes >/dev/null 2>&1 && break; sleep 0.1; done
fi
if [ "$REST" = 1 ]; then
  id slurmrest >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin slurmrest   # slurmrestd refuses to run as root
  if ! pidfile_running /run/slurm/slurmrestd.pid; then
    log "starting slurmrestd on 127.0.0.1:6820"
    SLURM_JWT=daemon setsid nohup slurmrestd -a rest_auth/jwt -u slurmrest 127.0.0.1:6820 \
        >>/var/log/slurm/slurmrestd.log 2>&1 < /dev/null &
    echo $! > /run/slurm/slurmrestd.pid
  fi
  tok=$(scontrol token username=root lifespan=60 | cut -d= -f2)
  for i in $(seq 100); do
    curl -sf -H "X-SLURM-USER-NAME: root" -H "X-SLURM-USER-TOKEN: $tok" http://127.0.0.1:6820/slurm/v0.0.38/ping 2>/dev/null | grep -q '"UP"' && break
    sleep 0.1
  done
  curl -sf -H "X-SLURM-USER-NAME: root" -H "X-SLURM-USER-TOKEN: $tok" http://127.0.0.1:6820/slurm/v0.0.38/ping 2>/dev/null | grep -q '"UP"' \
    || { log "slurmrestd not answering"; tail -20 /var/log/slurm/slurmrestd.log >&2; exit 1; }
  log "slurmrestd ready: http://127.0.0.1:6820/slurm/v0.0.38/ (JWT: scontrol token username=USER)"
fi
sinfo
