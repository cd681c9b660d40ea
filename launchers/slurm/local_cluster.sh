#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for CI and for trying the launchers on a laptop.
#
#   launchers/slurm/local_cluster.sh [up]   install (Debian packages) if needed, configure, start
#   launchers/slurm/local_cluster.sh status exit 0 when the node takes jobs, 1 otherwise
#   launchers/slurm/local_cluster.sh down   stop slurmd, slurmctld and munged started here
#
# Idempotent: running `up` on a cluster that already answers does nothing. It writes
# /etc/slurm/slurm.conf only when that file is absent or was written by this script, so it never
# touches a real cluster's configuration. It needs root (or passwordless sudo) to install and
# start daemons. Exit status 3 means "SLURM cannot be had here" (no apt, no root): CI carries on
# and the SLURM tests skip with that reason.
set -euo pipefail

MARKER="# written by mind_nemo launchers/slurm/local_cluster.sh"
CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)
STATE=/var/spool/slurm-mind-nemo

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  SUDO=(false)
fi

say() { echo "local_cluster: $*" >&2; }
unavailable() { say "$*"; exit 3; }

node_ready() {
  # The controller answers and our node is in a state that runs jobs.
  scontrol ping >/dev/null 2>&1 || return 1
  local state
  state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1)
  [[ $state =~ ^(idle|mixed|allocated|completing)$ ]]
}

install_packages() {
  command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
    && command -v munged >/dev/null && return 0
  command -v apt-get >/dev/null || unavailable "SLURM is not installed and apt-get is not available"
  [[ ${SUDO[0]:-} != false ]] || unavailable "SLURM is not installed and we are neither root nor sudo"
  say "installing slurmctld slurmd slurm-client munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null 2>&1 \
    || { "${SUDO[@]}" apt-get update -q >/dev/null 2>&1 \
         && "${SUDO[@]}" apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null; } \
    || unavailable "apt-get could not install the SLURM packages"
}

write_config() {
  if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    say "$CONF exists and is not ours; using it as it is"
    return 0
  fi
  local cpus mem_mb
  cpus=$(nproc)
  # RealMemory a little under what the node has, or slurmd registers the node as invalid.
  mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  "${SUDO[@]}" mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" /var/log/slurm
  # Everything runs as root; processes are tracked by parentage (no cgroups in containers);
  # CPUs are the consumable resource so a 2-CPU node runs two 1-CPU array tasks at once.
  # KillWait is SIGTERM-to-SIGKILL: the time a preempted synthesize has to flush.
  "${SUDO[@]}" tee "$CONF" >/dev/null <<EOF
$MARKER
ClusterName=mindnemo
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
ReturnToService=2
KillWait=20
MinJobAge=3600
SchedulerParameters=defer_batch
MaxArraySize=10001
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_daemons() {
  if ! pgrep -x munged >/dev/null; then
    "${SUDO[@]}" mkdir -p /run/munge /var/log/munge /var/lib/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
      "${SUDO[@]}" dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    "${SUDO[@]}" chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
    "${SUDO[@]}" chmod 0700 /etc/munge
    "${SUDO[@]}" chmod 0400 /etc/munge/munge.key
    "${SUDO[@]}" runuser -u munge -- /usr/sbin/munged
  fi
  pgrep -x slurmctld >/dev/null || "${SUDO[@]}" /usr/sbin/slurmctld
  pgrep -x slurmd >/dev/null || "${SUDO[@]}" /usr/sbin/slurmd
}

wait_ready() {
  # Up to 60 s for the node to register; a node left DOWN by an earlier session is resumed.
  local i
  for i in $(seq 1 120); do
    node_ready && return 0
    if [[ $i -eq 20 ]] && scontrol ping >/dev/null 2>&1; then
      "${SUDO[@]}" scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    fi
    sleep 0.5
  done
  say "the node did not become ready; see /var/log/slurm/slurmctld.log and slurmd.log"
  sinfo >&2 || true
  exit 1
}

stop_daemons() {
  local name
  for name in slurmd slurmctld munged; do
    if pgrep -x "$name" >/dev/null; then
      "${SUDO[@]}" kill "$(pgrep -x "$name")" || true
    fi
  done
}

case ${1:-up} in
  up)
    if command -v sinfo >/dev/null && node_ready; then
      say "cluster already up: $(sinfo -h -o '%P %D nodes %T')"
      exit 0
    fi
    install_packages
    [[ ${SUDO[0]:-} != false ]] || unavailable "starting SLURM daemons needs root or sudo"
    write_config
    start_daemons
    wait_ready
    say "cluster up: $(sinfo -h -o '%P %D nodes %T %c CPUs')"
    ;;
  status)
    command -v sinfo >/dev/null && node_ready
    ;;
  down)
    stop_daemons
    ;;
  *)
    echo "usage: $0 [up|status|down]" >&2
    exit 2
    ;;
esac
