# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts/gpu-*.sh and scripts/bench-kernels.sh: find the CUDA
# toolkit and configure a build of kernels/ with the CUDA kernels enabled.

# nvcc and compute-sanitizer live in the toolkit, which is not always on PATH.
nangila_cuda_path() {
    local d
    for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda /opt/cuda; do
        if [ -n "$d" ] && [ -x "$d/bin/nvcc" ]; then
            case ":$PATH:" in
            *":$d/bin:"*) ;;
            *) PATH="$d/bin:$PATH" ;;
            esac
            if [ -d "$d/compute-sanitizer" ]; then
                PATH="$PATH:$d/compute-sanitizer"
            fi
            export PATH
            return 0
        fi
    done
    command -v nvcc >/dev/null
}

# Install Debian packages only when the build tools are missing (a GPU
# machine may have no package mirror but everything already installed).
nangila_gpu_deps() {
    if command -v meson >/dev/null && command -v ninja >/dev/null &&
        { [ -f /usr/include/cmocka.h ] || pkg-config --exists cmocka 2>/dev/null; }; then
        return 0
    fi
    nangila_ensure_deps
}

# nangila_gpu_setup BUILDDIR: release build, CUDA required.
nangila_gpu_setup() {
    local dir=$1
    if ! nangila_cuda_path; then
        echo "nvcc not found (looked in CUDA_HOME, CUDA_PATH, /usr/local/cuda, PATH)" >&2
        return 1
    fi
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" -Dbuildtype=release -Dcuda=enabled >/dev/null
    else
        meson setup "$dir" -Dbuildtype=release -Dcuda=enabled >/dev/null
    fi
    meson compile -C "$dir"
}

# @return 0 if a CUDA device is usable (asks the built test program, which
# exits 77 without one).
nangila_gpu_present() {
    local dir=$1 rc=0
    "$dir/kernels/bench_gpu_kernels" 0 >/dev/null 2>&1 || rc=$?
    # count 0 is a usage error (2) when a device exists, 77 when none does
    [ "$rc" -ne 77 ]
}
