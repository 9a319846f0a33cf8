#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for tests and for trying sweeps: scripts/slurm_cluster.sh start|stop|status BASE_DIR
#
# It installs nothing: it needs Debian's (or Ubuntu's) `slurmctld slurmd slurm-client munge` packages
#   apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
# and runs as root, without systemd. With `slurmdbd mariadb-server` installed too it also runs accounting
# (a MariaDB server and slurmdbd), so `sacct` answers: submitit reads job states through sacct, and without
# it a job that dies before writing its result (killed, out of memory, os._exit) leaves the submitting
# process waiting for ever. Everything lives under BASE_DIR: slurm.conf, munge key and socket, database,
# controller state, slurmd spool, logs, pid files. `start` waits until the node is idle and prints the
# line to paste (every SLURM client, submitit included, reads the cluster's config from $SLURM_CONF):
#   eval "$(scripts/slurm_cluster.sh start /tmp/slurm)"     # or copy its `export SLURM_CONF=...` line
#   scripts/slurm_cluster.sh status /tmp/slurm
#   scripts/slurm_cluster.sh stop /tmp/slurm
# Ports (TCP, 127.0.0.1): SLURMCTLD_PORT (6817), SLURMD_PORT (6818), SLURMDBD_PORT (6819), SLURM_DB_PORT (6820).
# SLURM_ACCOUNTING=none skips accounting even when slurmdbd and MariaDB are installed.
# Messages go to stderr; stdout carries only the export line.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status BASE_DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
base=$(realpath -m "$2")
conf=$base/etc/slurm.conf
say() { echo "slurm_cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    [[ $(id -u) -eq 0 ]] || die "run it as root (the daemons and the jobs run as root)"
    for exe in slurmctld slurmd sinfo munged mungekey; do
        command -v "$exe" >/dev/null || [[ -x /usr/sbin/$exe ]] || die "$exe not found; install: apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge"
    done
    export PATH=$PATH:/usr/sbin
    if pid_alive "$base/run/slurmctld.pid"; then die "a cluster already runs from $base (stop it first)"; fi
    local ctld_port=${SLURMCTLD_PORT:-6817} d_port=${SLURMD_PORT:-6818}
    local dbd_port=${SLURMDBD_PORT:-6819} db_port=${SLURM_DB_PORT:-6820} accounting=none
    if [[ ${SLURM_ACCOUNTING:-auto} != none ]] && command -v slurmdbd >/dev/null && command -v mariadbd >/dev/null; then
        accounting=slurmdbd
    elif [[ ${SLURM_ACCOUNTING:-auto} != none ]]; then
        say "no slurmdbd/mariadbd: no accounting (sacct fails; install slurmdbd mariadb-server for it)"
    fi
    local ports=("$ctld_port" "$d_port")
    [[ $accounting == none ]] || ports+=("$dbd_port" "$db_port")
    for port in "${ports[@]}"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port is in use (another slurmctld/slurmd?); choose others with SLURMCTLD_PORT/SLURMD_PORT"
        fi
    done

    mkdir -p "$base"/{etc,state,spool,log,run,munge/run,db}
    # munged checks its folders: the socket's folder and every folder above it must be searchable by all
    chmod a+x "$base"
    chmod 711 "$base/munge"
    chmod 755 "$base/munge/run"
    local socket=$base/munge/run/munge.socket.2
    [[ -s $base/munge/munge.key ]] || mungekey --create --keyfile="$base/munge/munge.key" 2>/dev/null
    chmod 600 "$base/munge/munge.key"
    munged --socket="$socket" --key-file="$base/munge/munge.key" --log-file="$base/log/munged.log" \
        --pid-file="$base/run/munged.pid" --seed-file="$base/munge/munged.seed" \
        || die "munged did not start; see $base/log/munged.log"
    munge -S "$socket" -n </dev/null | unmunge -S "$socket" >/dev/null || die "munge does not answer on $socket"

    local host node mem_mb
    host=$(hostname -s)
    # the node as slurmd sees it (CPUs, sockets, cores, threads), with RealMemory a little under the total
    node=$(slurmd -C | head -n1)
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    node=$(sed -E "s/^NodeName=[^ ]+/NodeName=$host/; s/RealMemory=[0-9]+/RealMemory=$mem_mb/" <<<"$node")
    export SLURM_CONF=$conf
    local accounting_lines="AccountingStorageType=accounting_storage/none"
    if [[ $accounting == slurmdbd ]]; then
        start_accounting "$socket" "$dbd_port" "$db_port"
        accounting_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
AccountingStoragePass=$socket"   # the munge socket for talking to slurmdbd (AuthInfo covers only the rest)
    fi
    cat >"$conf" <<EOF
# one-node cluster written by scripts/slurm_cluster.sh; everything under $base
ClusterName=aejax
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: slurmctld holds a requeued job back for cred_expire + 1 s (default 120) before it may start again
AuthInfo=socket=$socket,cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$accounting_lines
JobCompType=jobcomp/filetxt
JobCompLoc=$base/log/jobcomp.txt
SchedulerType=sched/backfill
# look at pending jobs every 2 s (default 60), so a requeued job starts soon after it may
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default a job that asks no memory takes the whole node, and jobs run one at a time
DefMemPerCPU=1024
# requeue: submitit requeues a signalled job with scontrol requeue; preempted jobs go back to the queue
JobRequeue=1
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=10
MailProg=/bin/true
StateSaveLocation=$base/state
SlurmdSpoolDir=$base/spool
SlurmctldPidFile=$base/run/slurmctld.pid
SlurmdPidFile=$base/run/slurmd.pid
SlurmctldLogFile=$base/log/slurmctld.log
SlurmdLogFile=$base/log/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    if [[ $accounting == slurmdbd ]]; then
        sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx aejax || sacctmgr -i -Q add cluster aejax >/dev/null \
            || die "sacctmgr could not register the cluster; see $base/log/slurmdbd.log"
    fi
    slurmctld -f "$conf" || die "slurmctld did not start; see $base/log/slurmctld.log"
    slurmd -f "$conf" || die "slurmd did not start; see $base/log/slurmd.log"
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -n1 || true)
        [[ $state == idle ]] && break
        if [[ $state == down* || $state == drain* ]]; then scontrol update nodename="$host" state=resume 2>/dev/null || true; fi
        sleep 0.5
    done
    [[ $state == idle ]] || die "the node is not idle after 30 s (state: '${state:-no answer}'); see $base/log/"
    say "node $host idle ($(sinfo -h -N -o '%c CPUs, %m MB')); logs in $base/log"
    echo "export SLURM_CONF=$conf"
}

# MariaDB (bound to 127.0.0.1:db_port, files in $base/db) and slurmdbd (127.0.0.1:dbd_port).
start_accounting() {
    local socket=$1 dbd_port=$2 db_port=$3 db=$base/db
    if [[ ! -d $db/data/mysql ]]; then
        mariadb-install-db --no-defaults --datadir="$db/data" --user=root --auth-root-authentication-method=socket \
            --skip-test-db >"$base/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $base/log/mariadb-install.log"
    fi
    setsid mariadbd --no-defaults --datadir="$db/data" --socket="$db/mariadb.sock" --pid-file="$base/run/mariadbd.pid" \
        --port="$db_port" --bind-address=127.0.0.1 --user=root --log-error="$base/log/mariadbd.log" \
        --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
    for _ in $(seq 100); do [[ -S $db/mariadb.sock ]] && break; sleep 0.2; done
    [[ -S $db/mariadb.sock ]] || die "MariaDB did not start; see $base/log/mariadbd.log"
    [[ -s $db/password ]] || (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$db/password")
    local password
    password=$(cat "$db/password")
    mariadb --no-defaults -S "$db/mariadb.sock" -u root -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "could not create the slurm database user"
    # slurmdbd reads slurmdbd.conf beside $SLURM_CONF; it must be the SlurmUser's and not readable by others
    (umask 077; cat >"$base/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db
LogFile=$base/log/slurmdbd.log
PidFile=$base/run/slurmdbd.pid
EOF
)
    slurmdbd || die "slurmdbd did not start; see $base/log/slurmdbd.log"
    for _ in $(seq 60); do
        (exec 3<>"/dev/tcp/127.0.0.1/$dbd_port") 2>/dev/null && return 0
        sleep 0.5
    done
    die "slurmdbd does not listen on port $dbd_port after 30 s; see $base/log/slurmdbd.log"
}

stop() {
    export PATH=$PATH:/usr/sbin
    # the daemons' pids, read before they exit (slurmctld and slurmd remove their pid files)
    local name pid
    local -A pids=()
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        pid=$(cat "$base/run/$name.pid" 2>/dev/null || true)
        [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && pids[$name]=$pid
    done
    if [[ -f $conf && -n ${pids[slurmctld]:-} ]]; then
        # end the jobs first, or their slurmstepd outlive slurmd
        export SLURM_CONF=$conf
        local jobs
        jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            timeout 10 scancel $jobs 2>/dev/null || true
            for _ in $(seq 60); do [[ -z $(timeout 10 squeue -h -o %A 2>/dev/null || true) ]] && break; sleep 0.5; done
        fi
        timeout 10 scontrol shutdown >/dev/null 2>&1 || true
    fi
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        pid=${pids[$name]:-}
        [[ -n $pid ]] || continue
        if [[ $name == slurmd || $name == slurmctld ]]; then  # scontrol shutdown asked them to stop
            for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        fi
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
    done
    # a job step that outlived its slurmd: this cluster's slurmstepd, found by the SLURM_CONF in its environment
    local proc
    for proc in /proc/[0-9]*; do
        [[ $(cat "$proc/comm" 2>/dev/null) == slurmstepd ]] || continue
        tr '\0' '\n' <"$proc/environ" 2>/dev/null | grep -qx "SLURM_CONF=$conf" && kill -9 "${proc#/proc/}" 2>/dev/null || true
    done
    say "stopped the cluster in $base"
}

status() {
    export PATH=$PATH:/usr/sbin
    local name up=0
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        [[ $name == mariadbd || $name == slurmdbd ]] && [[ ! -f $base/etc/slurmdbd.conf ]] && continue
        if pid_alive "$base/run/$name.pid"; then say "$name running (pid $(cat "$base/run/$name.pid"))"; else say "$name not running"; up=1; fi
    done
    if [[ -f $conf ]]; then
        SLURM_CONF=$conf sinfo -N >&2 || up=1
        SLURM_CONF=$conf squeue >&2 || true
        echo "export SLURM_CONF=$conf"
    fi
    return $up
}

case $action in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
