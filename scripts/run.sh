#!/usr/bin/env bash
# The main job, from a fresh machine: install what is missing, build, convert
# Fashion-MNIST to HDF5, and train the default MLP on NP ranks (default 2).
# Extra arguments go to `mpitrain train` and override the config file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash scripts/prepare-data.sh
source scripts/mpi-env.sh
exec mpirun -np "${NP:-2}" --oversubscribe build/mpitrain train --config jobs/fashion-mnist-mlp.ini "$@"
