#!/usr/bin/env bash
# start-sshd.sh — a private OpenSSH server on 127.0.0.1:$SSH_PORT (default 2222), key-only auth, for the
# SshBackend integration tests; separate from any system sshd (own config, host key and pid file in /etc/ssh/sdktest).
#   user $SSH_USER (default sdktest) and root may log in with the throwaway key $SSH_KEY_DIR/id_ed25519
#   (default /var/lib/trex-test-ssh); the server's known_hosts line is in $SSH_KEY_DIR/known_hosts.
# Idempotent. Usage: start-sshd.sh [stop]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
PORT=${SSH_PORT:-2222}
USER_NAME=${SSH_USER:-sdktest}
KEYDIR=${SSH_KEY_DIR:-/var/lib/trex-test-ssh}
CONF=/etc/ssh/sdktest
PIDFILE=/run/sshd-sdktest-$PORT.pid
LOG=/var/log/sshd-sdktest-$PORT.log
log() { echo "[start-sshd $(date +%T)] $*" >&2; }

if [ "${1:-}" = stop ]; then
  if pidfile_running $PIDFILE && kill "$(cat $PIDFILE)" 2>/dev/null; then log "stopped sshd on $PORT"; fi
  exit 0
fi

apt_install openssh-server openssh-client

install -d -m 755 $CONF /run/sshd
install -d -m 700 "$KEYDIR"
[ -f "$KEYDIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C trex-test -f "$KEYDIR/id_ed25519"
chmod 600 "$KEYDIR/id_ed25519"
[ -f $CONF/host_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -f $CONF/host_ed25519
id "$USER_NAME" >/dev/null 2>&1 || useradd -m -s /bin/bash "$USER_NAME"
usermod -p '*' "$USER_NAME"   # '!' (locked) makes sshd refuse even key logins when UsePAM is off
# (rewritten only when they change, by a rename: other test files log in meanwhile; see put_file)
for u in "$USER_NAME" root; do put_file 644 $CONF/authorized_keys_$u < "$KEYDIR/id_ed25519.pub"; done
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1-2 $CONF/host_ed25519.pub)" | put_file 644 "$KEYDIR/known_hosts"

put_file 644 $CONF/sshd_config.$PORT <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $CONF/host_ed25519
PidFile $PIDFILE
AuthorizedKeysFile $CONF/authorized_keys_%u
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
Subsystem sftp internal-sftp
MaxStartups 100:30:200
MaxSessions 100
CONF
/usr/sbin/sshd -t -f $CONF/sshd_config.$PORT

ssh_ok() { ssh -o BatchMode=yes -o UserKnownHostsFile="$KEYDIR/known_hosts" -o StrictHostKeyChecking=yes \
             -o ConnectTimeout=2 -o LogLevel=ERROR -i "$KEYDIR/id_ed25519" -p "$PORT" "$USER_NAME@127.0.0.1" true; }
# A running sshd that does not answer at once is given 10 s (ConnectTimeout bounds its first reply too, and a loaded
# machine answered in 0.4-1 s): restarting it would refuse the logins of the test files that use it meanwhile.
if ! ssh_ok 2>/dev/null && ! { pidfile_running $PIDFILE && wait_for 10 ssh_ok 2>/dev/null; }; then
  if pidfile_running $PIDFILE; then kill "$(cat $PIDFILE)"; sleep 0.3; fi
  log "starting sshd on 127.0.0.1:$PORT"
  /usr/sbin/sshd -f $CONF/sshd_config.$PORT -E $LOG
  wait_for 5 ssh_ok || { log "sshd not answering; tail of $LOG:"; tail -20 $LOG >&2; exit 1; }
fi
log "ready: ssh -i $KEYDIR/id_ed25519 -o UserKnownHostsFile=$KEYDIR/known_hosts -p $PORT $USER_NAME@127.0.0.1"
