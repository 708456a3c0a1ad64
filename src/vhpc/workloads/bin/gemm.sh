#!/bin/bash
# gemm.sh: batch script for the distributed block GEMM, like the seed's /usr/local/bin/gemm.sh.
#
#   sbatch -N4 gemm.sh 4096              one rank per node, N=4096
#   sbatch -N2 -n4 gemm.sh -n 2048       a task count given by the user wins
#   salloc -N4 gemm.sh 1024 --json       interactively, same launch
#   GEMM_LAUNCHER=mpirun salloc -N4 gemm.sh 1024    Open MPI's mpirun instead of srun
#   salloc -N4 mpirun gemm.sh 1024       already an MPI rank: runs the program directly
#
# All arguments go to gemm_block_mpi (see `gemm_block_mpi --help`). Environment:
#   GEMM_LAUNCHER   srun | mpirun | none (default: srun inside Slurm, else mpirun)
#   GEMM_PROGRAM    path of gemm_block_mpi (default: from PATH, else next to this script)
#   GEMM_MPIRUN_ARGS  extra arguments for mpirun
#SBATCH --job-name=gemm
set -euo pipefail

program=${GEMM_PROGRAM:-$(command -v gemm_block_mpi || true)}
if [[ -z $program ]]; then
    for dir in "$(dirname "$(readlink -f "$0")")" /opt/vhpc/bin; do
        if [[ -x $dir/gemm_block_mpi ]]; then program=$dir/gemm_block_mpi; break; fi
    done
fi
if [[ -z $program ]]; then
    echo "gemm.sh: gemm_block_mpi not found on PATH nor in /opt/vhpc/bin" >&2
    exit 127
fi

# Started as a rank by an MPI launcher (mpirun gemm.sh / srun --mpi=pmix gemm.sh): just run.
if [[ -n ${OMPI_COMM_WORLD_SIZE:-}${PMIX_RANK:-}${PMI_RANK:-} ]]; then
    exec "$program" "$@"
fi

user_set_tasks() {
    [[ -n ${SLURM_NTASKS:-}${SLURM_NPROCS:-}${SLURM_NTASKS_PER_NODE:-} ]]
}

launcher=${GEMM_LAUNCHER:-}
if [[ -z $launcher ]]; then
    if [[ -n ${SLURM_JOB_ID:-} ]] && command -v srun >/dev/null; then
        launcher=srun
    elif command -v mpirun >/dev/null; then
        launcher=mpirun
    else
        launcher=none
    fi
fi

cmd=()
case $launcher in
    srun)
        # a rank killed (e.g. OOM) ends the step instead of leaving its peers blocked
        cmd=(srun --mpi=pmix --kill-on-bad-exit=1)
        user_set_tasks || cmd+=(--ntasks-per-node=1)
        ;;
    mpirun)
        cmd=(mpirun)
        [[ $(id -u) -eq 0 ]] && cmd+=(--allow-run-as-root)
        if [[ -n ${SLURM_JOB_ID:-} ]] && ! user_set_tasks; then
            cmd+=(--map-by ppr:1:node)
        fi
        # shellcheck disable=SC2206  # word splitting of the extra arguments is intended
        cmd+=(${GEMM_MPIRUN_ARGS:-})
        ;;
    none) ;;
    *)
        echo "gemm.sh: GEMM_LAUNCHER must be srun, mpirun or none, not '$launcher'" >&2
        exit 2
        ;;
esac

echo "gemm.sh: job ${SLURM_JOB_ID:-(none)} nodes ${SLURM_JOB_NODELIST:-$(hostname)}:" \
    "${cmd[*]} $program $*" >&2
rc=0
"${cmd[@]}" "$program" "$@" || rc=$?
if (( rc == 137 || rc == 143 )); then
    echo "gemm.sh: the MPI step was killed (exit $rc): a rank got SIGKILL, on vhpc nodes" \
        "the OOM killer at the node's memory limit ('vhpc events' names the node);" \
        "use a smaller N or more nodes (docs/gemm.md has the memory per rank)" >&2
fi
exit "$rc"
