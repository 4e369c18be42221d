# SPDX-License-Identifier: Apache-2.0
# scripts/lib/hpc_bench_setup.sh -- what every hpc benchmark script does first
# (sourced from the repository root, after scripts/lib/deps.sh): install what
# is missing, pick the trajectories (the arguments, or all seven), generate
# them if verification/data lacks one, and build the release tree. Sets py,
# data, build and the array files.
nangila_ensure_deps
py=$(nangila_python)

data=verification/data
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    files=(melt-e1 melt-e10 melt-e100 lj-e1 lj-e10 lj-e100 solid-e10)
fi
for f in "${files[@]}"; do
    if [ ! -s "$data/$f.dump" ]; then
        scripts/make-trajectories.sh "$data"
        break
    fi
done

build=build/bench
if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" -Dbuildtype=release -Dtests=false >/dev/null
else
    meson setup "$build" -Dbuildtype=release -Dtests=false >/dev/null
fi
meson compile -C "$build" >/dev/null
