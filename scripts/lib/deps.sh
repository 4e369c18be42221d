# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts/*.sh: install the Debian 12 packages Nangila needs,
# only those missing. Safe to run repeatedly.

NANGILA_DEBS=(
    build-essential meson ninja-build pkg-config
    libcmocka-dev libzstd-dev zstd xz-utils libhwloc-dev
    openmpi-bin libopenmpi-dev
    python3 python3-numpy python3-mpi4py python3-sklearn python3-matplotlib
    python3-zstandard
    clang libclang-rt-14-dev clang-format
    lammps zfp libzfp-dev
    # hpc/h5z: the HDF5 filter plugin, its h5py test and h5dump/h5ls
    libhdf5-dev hdf5-tools python3-h5py
    # examples/lammps: python3-lammps dlopens "liblammps.so", which in
    # Debian 12 only liblammps-dev provides
    python3-lammps liblammps-dev
    iproute2
    mosquitto mosquitto-clients libmosquitto-dev
)

nangila_missing_debs() { # extra package names may follow
    local p missing=()
    for p in "${NANGILA_DEBS[@]}" "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    echo "${missing[@]:-}"
}

# Extra arguments: packages only some scripts need (python3-torch for
# scripts/train-mpi.sh --model charlm), installed on demand.
nangila_ensure_deps() {
    local missing
    missing=$(nangila_missing_debs "$@")
    if [ -z "$missing" ]; then
        return 0
    fi
    echo "==> installing: $missing"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq --no-install-recommends $missing
}

# Debian's interpreter, which carries the apt-installed numpy/mpi4py,
# even when another python3 comes first on PATH.
nangila_python() {
    if [ -x /usr/bin/python3 ]; then
        echo /usr/bin/python3
    else
        command -v python3
    fi
}

# Open MPI refuses to start as root unless told; tests and demos run in
# containers as root.
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
