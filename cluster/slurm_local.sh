#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying the cluster profile (`--profile slurm`)
# for real: munge, MariaDB + slurmdbd (accounting: the executor plugin polls sacct/squeue and
# asks sacctmgr for the account), slurmctld and slurmd, one partition `cpu` holding this host.
#
#   sudo cluster/slurm_local.sh install   # Debian/Ubuntu: apt-get install slurm-wlm munge slurmdbd mariadb-server
#   sudo cluster/slurm_local.sh up        # start (seconds); prints what it set up
#   cluster/slurm_local.sh status         # sinfo / squeue / sacctmgr view
#   sudo cluster/slurm_local.sh down      # stop every daemon it started, remove its config and state
#
# Needs root (munged/slurmd/slurmdbd run as root or their users) and no systemd: every daemon is
# started here directly.  No cgroups either: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none
# (so the memory a job asks for is bookkeeping, not a limit; JobAcctGather still records MaxRSS).
# Node CPUs and RealMemory come from `slurmd -C`.
#
# The config is written to /etc/slurm (the path compiled into the Debian build), not to a private
# folder with SLURM_CONF: the plugin's job step (snakemake-executor-plugin-slurm-jobstep 0.6.1)
# removes every SLURM_* variable except the job's identity before it calls `srun` inside the job,
# SLURM_CONF included, so on a cluster whose config is not at the compiled-in path `srun` inside
# the job fails.  An /etc/slurm/slurm.conf that this script did not write is never touched: `up`
# refuses to run.
#
# Environment (all optional):
#   DIPBENCH_SLURM_DIR     state, logs, the MariaDB data  (default /tmp/dipbench-slurm)
#   DIPBENCH_SLURM_DBPORT  MariaDB TCP port on 127.0.0.1  (default 3307)
#   DIPBENCH_SLURM_USERS   extra users to add to the account (root and $SUDO_USER always are)
set -euo pipefail

S=${DIPBENCH_SLURM_DIR:-/tmp/dipbench-slurm}
DBPORT=${DIPBENCH_SLURM_DBPORT:-3307}
ETC=/etc/slurm
CLUSTER=dipbench
ACCOUNT=dipbench
MARK="# written by dipbench cluster/slurm_local.sh"

die() { echo "slurm_local: $*" >&2; exit 1; }
say() { echo "slurm_local: $*" >&2; }

need_root() { [ "$(id -u)" = 0 ] || die "run as root (sudo $0 $1): it starts munged, slurmdbd, slurmctld and slurmd"; }

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
    local t=$1 what=$2; shift 2
    local end=$((SECONDS + t))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || die "timed out after ${t}s waiting for $what (logs: $S/log/)"
        sleep 0.2
    done
}

install() {
    need_root install
    local pkgs="slurm-wlm munge slurmdbd mariadb-server"
    command -v apt-get >/dev/null || die "no apt-get: install $pkgs with your package manager"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs
}

check_installed() {
    local missing=""
    for b in munged slurmctld slurmd slurmdbd mariadbd mariadb-install-db sacctmgr sbatch; do
        command -v "$b" >/dev/null || missing="$missing $b"
    done
    [ -z "$missing" ] || die "missing:$missing -- run: sudo $0 install   (Debian: slurm-wlm munge slurmdbd mariadb-server)"
}

ours() { [ ! -e "$1" ] || grep -qF "$MARK" "$1"; }

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "munged already running (reused)"; return
    fi
    [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 2>/dev/null; }
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged
    else
        munged --force
    fi
    echo started > "$S/munge.started"
    wait_for 10 munged sh -c 'munge -n | unmunge'
}

start_mariadb() {
    local db=$S/mysql
    if [ ! -d "$db/mysql" ]; then
        mariadb-install-db --user=root --datadir="$db" --auth-root-authentication-method=socket \
            --skip-test-db > "$S/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed: $S/log/mariadb-install.log"
    fi
    mariadbd --user=root --datadir="$db" --socket="$S/mysqld.sock" --port="$DBPORT" \
        --bind-address=127.0.0.1 --pid-file="$S/mysqld.pid" --log-error="$S/log/mariadb.log" \
        --innodb-buffer-pool-size=64M --skip-log-bin >/dev/null 2>&1 &
    wait_for 60 "MariaDB on 127.0.0.1:$DBPORT" mariadb -S "$S/mysqld.sock" -u root -e "select 1"
    mariadb -S "$S/mysqld.sock" -u root -e "
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'dipbench';
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'dipbench';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
        FLUSH PRIVILEGES;"
}

write_config() {
    local host node cpus mem
    host=$(hostname -s)
    node=$(slurmd -C | head -1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    [ -n "$cpus" ] && [ -n "$mem" ] || die "could not read CPUs/RealMemory from 'slurmd -C': $node"
    mkdir -p "$ETC"
    cat > "$ETC/slurm.conf" <<EOF
$MARK (state: $S); removed by '$0 down'
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# squeue keeps finished jobs this long; the plugin's squeue status command needs >= 3 status intervals
MinJobAge=600
KillWait=10
ReturnToService=2
EnforcePartLimits=ALL
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cat > "$ETC/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$S/slurmdbd.pid
LogFile=$S/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBPORT
StorageUser=slurm
StoragePass=dipbench
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$ETC/slurmdbd.conf"
    echo "$cpus $mem"
}

up() {
    need_root up
    check_installed
    ours "$ETC/slurm.conf" || die "$ETC/slurm.conf exists and was not written by this script: not touching a real cluster's config"
    ours "$ETC/slurmdbd.conf" || die "$ETC/slurmdbd.conf exists and was not written by this script"
    if [ -e "$S/up" ] && sinfo -h >/dev/null 2>&1; then say "already up ($S)"; status; return; fi
    local t0=$SECONDS
    mkdir -p "$S/log" "$S/state" "$S/spool"
    start_munge
    start_mariadb
    read -r cpus mem < <(write_config)
    slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster
    sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
    sacctmgr -i -Q add account "$ACCOUNT" Description="dipbench local" Organization=dipbench >/dev/null 2>&1 || true
    local u
    for u in root ${SUDO_USER:-} ${DIPBENCH_SLURM_USERS:-}; do
        sacctmgr -i -Q add user "$u" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null 2>&1 || true
    done
    slurmctld
    wait_for 30 slurmctld scontrol ping
    slurmd
    wait_for 30 "node $(hostname -s) idle" sh -c "sinfo -h -o %t | grep -qx idle"
    touch "$S/up"
    say "up in $((SECONDS - t0)) s: cluster $CLUSTER, partition cpu (1 node, $cpus CPUs, $mem MB), account $ACCOUNT; state in $S"
}

stop_pidfile() {  # stop_pidfile FILE NAME
    local f=$1 pid
    [ -s "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && { say "$2 ($pid) did not stop on SIGTERM: SIGKILL"; kill -9 "$pid" 2>/dev/null || true; }
    fi
    rm -f "$f"
}

down() {
    need_root down
    if [ -e "$ETC/slurm.conf" ] && ! ours "$ETC/slurm.conf"; then
        die "$ETC/slurm.conf was not written by this script: not stopping anything"
    fi
    if [ -e "$ETC/slurm.conf" ]; then
        scancel --user=root --full >/dev/null 2>&1 || true
    fi
    stop_pidfile "$S/slurmd.pid" slurmd
    stop_pidfile "$S/slurmctld.pid" slurmctld
    stop_pidfile "$S/slurmdbd.pid" slurmdbd
    stop_pidfile "$S/mysqld.pid" mariadbd
    if [ -e "$S/munge.started" ]; then
        stop_pidfile /run/munge/munged.pid munged
        rm -f "$S/munge.started"
    fi
    ours "$ETC/slurm.conf" && rm -f "$ETC/slurm.conf"
    ours "$ETC/slurmdbd.conf" && rm -f "$ETC/slurmdbd.conf"
    rm -rf "$S"
    say "down (removed $S and the config it wrote)"
}

status() {
    sinfo || true
    squeue || true
    sacctmgr -n -P list assoc format=cluster,account,user 2>/dev/null || true
}

case "${1:-}" in
    install) install ;;
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 install|up|down|status   (see the header of this file)" >&2; exit 2 ;;
esac
