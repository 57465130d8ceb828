#!/usr/bin/env bash
# A one-node SLURM on localhost for the `slurm` tests: bash .ci/slurm.sh start|stop|status|running
# (`start` leaves a cluster that is already running alone; `running` exits 0 when one answers)
#
# Debian's slurmctld, slurmd, slurm-client and munge (`start` installs them when missing;
# root only). No systemd is needed: munged, slurmctld and slurmd are started by hand with
# a slurm.conf written for this machine (its real CPU count and memory), no cgroups
# (proctrack/linuxproc, task/none), and two fake GPUs that SLURM only counts. CPUs are
# shared by up to 4 jobs each (OverSubscribe=FORCE:4), so how many jobs run at once is decided
# by what the jobs ask (an array's parallelism), not by this machine's few cores.
set -euo pipefail

CONF_DIR=/etc/slurm
STATE=/var/spool/slurm-ci
PACKAGES=(slurmctld slurmd slurm-client munge)

install_packages() {
    local missing=()
    for command in slurmctld slurmd sbatch munged; do
        command -v "$command" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin" command -v "$command" \
            >/dev/null 2>&1 || missing+=("$command")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "slurm.sh: installing ${PACKAGES[*]} (missing: ${missing[*]})"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
    fi
}

write_config() {
    local host cpus memory
    host=$(hostname -s)
    cpus=$(nproc)
    # SLURM refuses a node that reports less memory than configured: keep a margin.
    memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" /var/log/slurm-ci /run/slurm-ci
    cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by .ci/slurm.sh: a one-node cluster on $host for tests.
ClusterName=ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/slurm-ci/slurmctld.pid
SlurmdPidFile=/run/slurm-ci/slurmd.pid
SlurmctldLogFile=/var/log/slurm-ci/slurmctld.log
SlurmdLogFile=/var/log/slurm-ci/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerNode=512
GresTypes=gpu
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SlurmctldTimeout=10
SlurmdTimeout=10
MessageTimeout=10
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
MpiDefault=none
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
    # Two GPUs that SLURM counts and schedules: character devices that are /dev/null.
    for index in 0 1; do
        [ -e "/run/slurm-ci/fake-gpu$index" ] || mknod "/run/slurm-ci/fake-gpu$index" c 1 3
    done
    cat >"$CONF_DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=$host Name=gpu File=/run/slurm-ci/fake-gpu[0-1]
EOF
    echo "ConstrainCores=no" >"$CONF_DIR/cgroup.conf"
}

start_munge() {
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 0700 /etc/munge
    chmod 0400 /etc/munge/munge.key
    if ! pgrep -u munge -x munged >/dev/null; then
        runuser -u munge -- /usr/sbin/munged
    fi
}

wait_for_node() {
    local deadline=$((SECONDS + 50))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            return 0
        fi
        sleep 0.5
    done
    echo "slurm.sh: the node did not become idle; see /var/log/slurm-ci/*.log" >&2
    sinfo -N -l >&2 || true
    tail -n 20 /var/log/slurm-ci/slurmctld.log /var/log/slurm-ci/slurmd.log >&2 || true
    return 1
}

# Whether a cluster started here answers: both daemons alive and the node usable.
running() {
    local pidfile
    for pidfile in /run/slurm-ci/slurmctld.pid /run/slurm-ci/slurmd.pid; do
        [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null || return 1
    done
    command -v sinfo >/dev/null 2>&1 &&
        sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

start() {
    local install_ns start_ns
    if [ "$(id -u)" -ne 0 ]; then
        echo "slurm.sh start: run as root (it installs packages and starts daemons)" >&2
        exit 1
    fi
    # A running cluster may hold someone's jobs: leave it (and its state) alone.
    if running; then
        echo "slurm.sh: a one-node SLURM is already running on $(hostname -s); left as it is" \
            "(bash .ci/slurm.sh stop, then start, for a fresh one)"
        return 0
    fi
    install_ns=$(date +%s%N)
    install_packages
    start_ns=$(date +%s%N)
    stop >/dev/null 2>&1 || true
    # A test cluster starts empty: no jobs or node states left from an earlier start.
    rm -rf "$STATE"
    write_config
    start_munge
    /usr/sbin/slurmctld -i
    /usr/sbin/slurmd
    wait_for_node
    local elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
    local install_ms=$(((start_ns - install_ns) / 1000000))
    echo "slurm.sh: one-node SLURM on $(hostname -s) ($(nproc) CPUs, 2 fake GPUs) started in" \
        "$((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000))) s" \
        "(package check/install before it: $((install_ms / 1000)).$(printf '%03d' $((install_ms % 1000))) s)"
}

stop() {
    # scancel first so that no test job outlives the cluster.
    scancel --user=root >/dev/null 2>&1 || true
    for pidfile in /run/slurm-ci/slurmd.pid /run/slurm-ci/slurmctld.pid; do
        if [ -s "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
    for _ in $(seq 1 20); do
        if ! [ -s /run/slurm-ci/slurmd.pid ] && ! [ -s /run/slurm-ci/slurmctld.pid ]; then
            break
        fi
        local alive=0
        for pidfile in /run/slurm-ci/slurmd.pid /run/slurm-ci/slurmctld.pid; do
            if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
                alive=1
            fi
        done
        [ "$alive" -eq 0 ] && break
        sleep 0.25
    done
    rm -f /run/slurm-ci/slurmd.pid /run/slurm-ci/slurmctld.pid
    echo "slurm.sh: stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) sinfo -N -l && squeue ;;
running) running ;;
*)
    echo "usage: bash .ci/slurm.sh start|stop|status|running" >&2
    exit 2
    ;;
esac
