#!/usr/bin/env bash
# Tokenize a mix with a SLURM job array (one shard of every source per task), then merge the
# shards and write the blend in one job that starts when every task has succeeded.
#
#   launchers/mix_slurm.sh TASKS [mix overrides...]
#   launchers/mix_slurm.sh 64 mix=mind_owm4b_longest sources.longest.path=/lustre/filter/owm4b \
#       sources.general.path='/lustre/fineweb-edu/*.parquet' output_dir=/lustre/mix/owm4b_longest
#
# Environment: MIX_CPUS (CPUs per task, default 32: one tokenizer worker each), MIX_TIME (default
# 04:00:00), PYTHON (default python), MIX_LOG_DIR (job logs, default slurm-logs), SBATCH_EXTRA
# (e.g. "--account=acct --partition=cpu").
# A failed task can be resubmitted alone (--array=I): finished sources and shards are reused.
set -euo pipefail
if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 TASKS [mix overrides...]" >&2
  exit 2
fi
tasks=$1
shift
overrides=$(printf '%q ' "$@")
python=${PYTHON:-python}
logs=${MIX_LOG_DIR:-slurm-logs}
mkdir -p "$logs"
common=(--cpus-per-task="${MIX_CPUS:-32}" --time="${MIX_TIME:-04:00:00}")
# shellcheck disable=SC2206  # SBATCH_EXTRA is a list of flags on purpose
extra=(${SBATCH_EXTRA:-})

array=$(sbatch --parsable --job-name=mix-shard --array="0-$((tasks - 1))" "${common[@]}" "${extra[@]}" \
  --output="$logs/%x-%A_%a.out" --wrap "$python -m mind_nemo.mix $overrides num_shards=$tasks step=shard progress=false")
final=$(sbatch --parsable --job-name=mix-finalize --dependency="afterok:${array%%;*}" \
  "${common[@]}" "${extra[@]}" --output="$logs/%x-%j.out" \
  --wrap "$python -m mind_nemo.mix $overrides num_shards=$tasks step=finalize progress=false")
echo "shards: job array $array ($tasks tasks); merge + blend: job $final"
