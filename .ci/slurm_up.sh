#!/usr/bin/env bash
# One-node Slurm (Debian slurm-wlm + munge) for the `slurm`-marked tests; as root.
# Idempotent: a second call finds the daemons up and only waits for the node to be idle.
# Where apt-get cannot install the packages it says so and exits 0: the tests then skip
# with a reason, they are not silently deselected.
set -uo pipefail

log() { echo "slurm_up: $*"; }
if [ "$(id -u)" != 0 ]; then log "not root: skipping (the slurm tests will skip)"; exit 0; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    (apt-get update -q && apt-get install -y -q --no-install-recommends slurm-wlm munge) >/tmp/slurm_up_apt.log 2>&1 \
        || { log "apt-get could not install slurm-wlm/munge (see /tmp/slurm_up_apt.log); slurm tests will skip"; exit 0; }
fi

HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
CONF_DIR=/etc/slurm
mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /etc/munge
NEW_CONF=$(mktemp)
cat > "$NEW_CONF" <<CONF
ClusterName=tumorbench-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job may start again after cred_expire seconds (default 120): keep the requeue test short
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ReturnToService=2
MaxArraySize=1001
KillWait=10
MinJobAge=300
JobRequeue=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
if ! cmp -s "$NEW_CONF" "$CONF_DIR/slurm.conf"; then  # new or changed: daemons started before must restart
    mv "$NEW_CONF" "$CONF_DIR/slurm.conf"; chmod 644 "$CONF_DIR/slurm.conf"
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        pid=$(cat "$pidfile" 2>/dev/null) || continue
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    done
else
    rm -f "$NEW_CONF"
fi

if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key; chmod 0700 /etc/munge

pgrep -x munged >/dev/null || su -s /bin/sh munge -c "/usr/sbin/munged --force" || /usr/sbin/munged --force
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd

for _ in $(seq 60); do
    state=$(timeout 5 sinfo -h -N -o %T 2>/dev/null | head -1)
    case "$state" in
        idle*|mixed*|alloc*) log "node $HOST is $state ($CPUS CPUs, ${MEM_MB} MB)"; exit 0;;
        down*|drain*) timeout 5 scontrol update nodename="$HOST" state=resume >/dev/null 2>&1;;
    esac
    sleep 1
done
log "node did not come up (state '${state:-?}'); see /var/log/slurm/*.log; slurm tests will skip"
exit 0
