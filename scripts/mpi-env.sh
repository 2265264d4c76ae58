# Sourced by the run and test scripts. Open MPI refuses to start as root
# unless told it is intended (CI and containers run as root).
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
