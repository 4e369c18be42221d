#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/make-trajectories.sh -- generate real LAMMPS trajectories (text dumps) for the hpc
# codec's benchmark, with Debian's `lmp`, into a git-ignored directory.
#
#   scripts/make-trajectories.sh [OUTDIR]        default OUTDIR: verification/data
#   NGL_TRAJ_SYSTEMS="melt lj solid" ...     choose systems (default: all three)
#
# Systems (LJ units, pair lj/cut 2.5, fix nve, dt 0.005 tau):
#   melt   in.melt-like: 4000 atoms, fcc rho 0.8442, T0 3.0, 2000 steps to melt, then
#          201 frames dumped every 1, 10 and 100 steps (melt-e1, melt-e10, melt-e100),
#          plus melt-atom-e1 (`dump atom`, scaled coordinates, every step).
#   lj     bench/in.lj-like: 32000 atoms, fcc rho 0.8442, T0 1.44, 1000 steps to settle, then
#          51 frames every 1, 10 and 100 steps (lj-e1, lj-e10, lj-e100).
#   solid  fcc LJ solid: 4000 atoms, rho 1.0, T0 0.2, 1000 steps, then 201 frames every 10
#          steps (solid-e10).
# Custom dumps are `id type x y z` (wrapped, %g) sorted by id, as LAMMPS writes them by default.
# Each file is written next to a .log of its run. Files that already exist are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
nangila_ensure_deps

out=${1:-verification/data}
systems=${NGL_TRAJ_SYSTEMS:-melt lj solid}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run_lmp NAME CELLS RHO T0 EQUIL EVERY NFRAMES STYLE
run_lmp() {
    local name=$1 cells=$2 rho=$3 t0=$4 equil=$5 every=$6 nframes=$7 style=$8
    local file=$out/$name.dump
    if [ -s "$file" ]; then
        echo "  $file exists, kept"
        return 0
    fi
    local dumpcmd
    if [ "$style" = atom ]; then
        dumpcmd="dump d all atom $every $tmp/$name.dump"
    else
        dumpcmd="dump d all custom $every $tmp/$name.dump id type x y z"
    fi
    cat >"$tmp/in.$name" <<IN
units           lj
atom_style      atomic
lattice         fcc $rho
region          box block 0 $cells 0 $cells 0 $cells
create_box      1 box
create_atoms    1 box
mass            1 1.0
velocity        all create $t0 87287 loop geom
pair_style      lj/cut 2.5
pair_coeff      1 1 1.0 1.0 2.5
neighbor        0.3 bin
neigh_modify    every 20 delay 0 check no
fix             1 all nve
thermo          1000
run             $equil
$dumpcmd
dump_modify     d sort id
run             $(( every * (nframes - 1) ))
IN
    local t0s=$SECONDS
    (cd "$tmp" && lmp -nocite -log "$name.log" -screen none -in "in.$name")
    mv "$tmp/$name.dump" "$file"
    mv "$tmp/$name.log" "$out/$name.log"
    echo "  $file: $(du -h "$file" | cut -f1), $((SECONDS - t0s)) s"
}

for s in $systems; do
    case $s in
    melt)
        run_lmp melt-e1 10 0.8442 3.0 2000 1 201 custom
        run_lmp melt-e10 10 0.8442 3.0 2000 10 201 custom
        run_lmp melt-e100 10 0.8442 3.0 2000 100 201 custom
        run_lmp melt-atom-e1 10 0.8442 3.0 2000 1 201 atom
        ;;
    lj)
        run_lmp lj-e1 20 0.8442 1.44 1000 1 51 custom
        run_lmp lj-e10 20 0.8442 1.44 1000 10 51 custom
        run_lmp lj-e100 20 0.8442 1.44 1000 100 51 custom
        ;;
    solid)
        run_lmp solid-e10 10 1.0 0.2 1000 10 201 custom
        ;;
    *)
        echo "make-trajectories: unknown system '$s' (melt, lj, solid)" >&2
        exit 2
        ;;
    esac
done
echo "==> trajectories in $out"
