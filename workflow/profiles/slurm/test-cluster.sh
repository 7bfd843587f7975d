#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1, to try the SLURM profile on one machine (tests/test_slurm.py
# runs a paper's reproduction on it): munged, MariaDB + slurmdbd (so that `sacct` answers), slurmctld
# and slurmd, each on a free port, every file under DIR (its config, state, logs and database).
# Needs root (slurmd and munged run as root); installs the Debian packages where they are missing.
#   sudo workflow/profiles/slurm/test-cluster.sh start DIR   # prints the SLURM_CONF to export
#   export SLURM_CONF=DIR/slurm.conf                          # then sinfo, sbatch, sacct, snakemake
#   sudo workflow/profiles/slurm/test-cluster.sh stop DIR     # cancels its jobs, stops its daemons
set -euo pipefail

PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
COMMANDS=(slurmctld slurmd slurmdbd sbatch sacct sacctmgr sinfo munged mungekey mariadbd mariadb-install-db)
DAEMONS=(slurmd slurmctld slurmdbd mariadbd munged)   # stopped in this order
RUN_CONF=/run/slurm/conf/slurm.conf

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
action=$1
dir=$(realpath -m "$2")

die() {
  echo "test-cluster: $*" >&2
  exit 1
}

alive() {  # alive NAME: the daemon whose pid file DIR/NAME.pid names is running
  [ -s "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
  local until=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$until" ] || die "$what did not come up within the time allowed; logs in $dir/log"
    sleep 0.5
  done
}

install_packages() {
  local missing=0 c
  for c in "${COMMANDS[@]}"; do command -v "$c" >/dev/null || missing=1; done
  [ "$missing" -eq 0 ] && return
  echo "test-cluster: installing ${PACKAGES[*]} (Debian apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${PACKAGES[@]}" >/dev/null
}

free_ports() {  # four distinct free TCP ports on 127.0.0.1
  python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
}

start() {
  [ "$(id -u)" -eq 0 ] || die "needs root (slurmd and munged run as root)"
  for d in "${DAEMONS[@]}"; do
    ! alive "$d" || die "a cluster is already running in $dir ($d); stop it first"
  done
  install_packages
  mkdir -p "$dir"/{munge,db,state,spool,log}
  chmod 755 "$dir" "$dir/munge"
  local ctld_port slurmd_port dbd_port db_port node_line secret
  read -r ctld_port slurmd_port dbd_port db_port < <(free_ports)
  # the node as slurmd sees it (CPUs, sockets, cores, threads, memory), reachable on 127.0.0.1
  node_line=$(slurmd -C | head -n 1)
  [[ $node_line == NodeName=* ]] || die "slurmd -C printed no node line: $node_line"
  secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

  # --- munge: the cluster's own key and socket ---------------------------------------------------
  [ -s "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key" --bits=1024
  munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munged.pid" --seed-file="$dir/munge/munged.seed" --log-file="$dir/log/munged.log"

  # --- MariaDB for slurmdbd (sacct's job records) ------------------------------------------------
  if [ ! -d "$dir/db/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$dir/db" --user=root --skip-test-db \
      --auth-root-authentication-method=socket >"$dir/log/mariadb-install.log" 2>&1
  fi
  umask 077
  cat >"$dir/db-init.sql" <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$secret';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$secret';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
  cat >"$dir/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
LogFile=$dir/log/slurmdbd.log
PidFile=$dir/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$secret
StorageLoc=slurm_acct_db
CONF
  umask 022
  setsid mariadbd --no-defaults --datadir="$dir/db" --user=root --bind-address=127.0.0.1 --port="$db_port" \
    --socket="$dir/mariadb.sock" --pid-file="$dir/mariadbd.pid" --init-file="$dir/db-init.sql" \
    --innodb-buffer-pool-size=64M --log-error="$dir/log/mariadb.log" </dev/null >/dev/null 2>&1 &
  wait_for 60 MariaDB mariadb-admin --no-defaults --host=127.0.0.1 --port="$db_port" --user=slurm \
    --password="$secret" ping

  # --- SLURM: one node, one partition, no cgroups (works in a container or a VM) ----------------
  cat >"$dir/slurm.conf" <<CONF
ClusterName=repro
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MailProg=/bin/true
MpiDefault=none
# finished jobs stay visible to squeue for 10 minutes (the profile's slurm-status-command: squeue)
MinJobAge=600
# accounting through slurmdbd, so that sacct lists every job (with the rule in its comment)
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStoragePass=$dir/munge/munge.socket
AccountingStoreFlags=job_comment
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  # Snakemake's jobstep executor (snakemake-executor-plugin-slurm-jobstep) runs each job's srun
  # without SLURM_* variables, SLURM_CONF too: srun then looks where a configless node keeps its
  # config, /run/slurm/conf/slurm.conf, so that is where this cluster's config is linked.
  if [ -e "$RUN_CONF" ] && [ "$(realpath "$RUN_CONF")" != "$dir/slurm.conf" ]; then
    die "$RUN_CONF is another cluster's config ($(realpath "$RUN_CONF")); stop that cluster first"
  fi
  mkdir -p "$(dirname "$RUN_CONF")"
  ln -sfn "$dir/slurm.conf" "$RUN_CONF"
  slurmdbd
  wait_for 60 slurmdbd sacctmgr --noheader list cluster
  slurmctld
  slurmd
  idle() { [ "$(sinfo --noheader --Node --format=%T)" = idle ]; }
  wait_for 60 "the node (sinfo: idle)" idle
  echo "export SLURM_CONF=$dir/slurm.conf"
}

stop() {
  if [ -f "$dir/slurm.conf" ] && alive slurmctld; then
    SLURM_CONF="$dir/slurm.conf" scancel --full --user=root 2>/dev/null || true
  fi
  local d pid i
  for d in "${DAEMONS[@]}"; do
    alive "$d" || continue
    pid=$(cat "$dir/$d.pid")
    kill "$pid"
    for i in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  done
  if [ -L "$RUN_CONF" ] && [ "$(readlink "$RUN_CONF")" = "$dir/slurm.conf" ]; then rm -f "$RUN_CONF"; fi
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
