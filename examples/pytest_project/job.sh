#!/bin/bash
#SBATCH -N2
#SBATCH --job-name=hello
# A job script under test: every node reports in, then a 2-rank MPI hello.
srun hostname
srun /opt/vhpc/venv/bin/python -c "from mpi4py import MPI; c = MPI.COMM_WORLD; print(f'rank {c.rank} of {c.size}')"
