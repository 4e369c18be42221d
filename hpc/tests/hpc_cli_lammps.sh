#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# hpc_cli_lammps.sh NANGILA -- `nangila hpc` on real LAMMPS trajectories that
# this test generates with Debian's lmp (256 LJ atoms, seconds of run time):
# custom (sorted, with extra columns), atom (unsorted, scaled) and unwrapped
# dumps, at several eps, absolute and relative, every level (level 3's cage on
# a coarse dump of 500 atoms); each round trip
# is checked by `nangila hpc verify` and by an independent Python checker.
# Also: corrupted and truncated containers and bad input fail with status 1,
# a clear message and no output file. Exit 77 (skip) without lmp.
set -euo pipefail
nangila=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v lmp >/dev/null 2>&1; then
    echo "lmp not installed: skipping"
    exit 77
fi
# NGL_PYTHON: set by scripts/test.sh (Debian's interpreter, with numpy); NANGILA_* is
# reserved for user settings.
py=${NGL_PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

cat >in.small <<'IN'
units           lj
atom_style      atomic
lattice         fcc 0.8442
region          box block 0 4 0 4 0 4
create_box      1 box
create_atoms    1 box
mass            1 1.0
velocity        all create 3.0 87287 loop geom
pair_style      lj/cut 2.5
pair_coeff      1 1 1.0 1.0 2.5
neighbor        0.3 bin
neigh_modify    every 20 delay 0 check no
fix             1 all nve
run             300
dump            c all custom 2 custom.dump id type x y z vx vy vz ix iy iz
dump_modify     c sort id
dump            a all atom 5 atom.dump
dump            u all custom 3 unwrapped.dump id xu yu zu
run             90
IN
lmp -nocite -log none -screen none -in in.small
# a coarse dump (0.25 tau apart) of a box large enough for level 3's cage
cat >in.coarse <<'IN'
units           lj
atom_style      atomic
lattice         fcc 0.8442
region          box block 0 5 0 5 0 5
create_box      1 box
create_atoms    1 box
mass            1 1.0
velocity        all create 2.0 4928 loop geom
pair_style      lj/cut 2.5
pair_coeff      1 1 1.0 1.0 2.5
neighbor        0.3 bin
fix             1 all nve
run             400
dump            c all custom 50 coarse.dump id type x y z
run             500
IN
lmp -nocite -log none -screen none -in in.coarse
for f in custom.dump atom.dump unwrapped.dump coarse.dump; do
    [ -s "$f" ] || { echo "lmp did not write $f"; exit 1; }
done
echo "generated: $(grep -c TIMESTEP custom.dump) + $(grep -c TIMESTEP atom.dump) +" \
     "$(grep -c TIMESTEP unwrapped.dump) snapshots of 256 atoms"

roundtrip() { # dump eps [flags...]
    local f=$1 eps=$2
    shift 2
    "$nangila" hpc compress --eps "$eps" "$@" "$f" c.nhd
    "$nangila" hpc decompress c.nhd d.dump
    local rel=()
    for a in "$@"; do [ "$a" = --rel ] && rel=(--rel); done
    "$nangila" hpc verify "$f" d.dump --eps "$eps" "${rel[@]}"
    "$py" "$here/hpc_check_dump.py" "$f" d.dump "$eps" "${rel[@]}"
    if [ "$eps" = 0 ]; then
        cmp "$f" d.dump
    fi
}

for f in custom.dump atom.dump unwrapped.dump; do
    for eps in 1e-2 1e-3 1e-4 0; do
        roundtrip "$f" "$eps"
    done
    roundtrip "$f" 1e-3 --fast
    roundtrip "$f" 1e-3 --fastest
    roundtrip "$f" 0 --fastest
    roundtrip "$f" 1e-3 --rel
done
roundtrip coarse.dump 1e-3
roundtrip coarse.dump 1e-3 --best
roundtrip coarse.dump 1e-2 --best --rel
roundtrip custom.dump 1e-3 --best # box too small for the cage: level 2 coding
# extract and bench, as scripts/bench-hpc.sh uses them
read -r frames atoms < <("$nangila" hpc extract custom.dump xyz.f32 2>/dev/null)
[ "$frames" = 46 ] && [ "$atoms" = 256 ] || { echo "extract: $frames x $atoms"; exit 1; }
[ "$(stat -c %s xyz.f32)" = $((frames * atoms * 12)) ] || { echo "extract: wrong size"; exit 1; }
"$nangila" hpc extract --axis-major custom.dump axes.f32 >/dev/null 2>&1
cmp <(head -c 4 axes.f32) <(head -c 4 xyz.f32) || { echo "extract: axis-major layout"; exit 1; }
out=$("$nangila" hpc bench --eps 1e-3 --best coarse.dump)
echo "$out"
case "$out" in *" cage_frames=0 "*) echo "level 3 did not use the cage on the coarse dump"; exit 1 ;; esac
for fast in "" --fast --fastest; do
    out=$("$nangila" hpc bench --eps 1e-3 --repeat 2 $fast custom.dump)
    echo "$out"
    "$py" - "$out" <<'PY'
import sys
kv = dict(t.split("=", 1) for t in sys.argv[1].split() if "=" in t)
assert float(kv["max_err"]) <= float(kv["eps"]) == 1e-3, kv
assert float(kv["ratio_f32"]) > 2 and int(kv["bytes"]) > 0, kv
assert float(kv["enc_MBps"]) > 0 and float(kv["dec_MBps"]) > 0, kv
PY
done
# stdin/stdout
"$nangila" hpc compress --eps 1e-3 - - <custom.dump | "$nangila" hpc decompress - - >d.dump
"$nangila" hpc verify custom.dump d.dump --eps 1e-3

expect_fail() { # message-substring command...
    local want=$1
    shift
    set +e
    "$@" 2>err.txt
    local rc=$?
    set -e
    if [ "$rc" != 1 ]; then
        echo "expected exit 1 from: $*, got $rc"
        cat err.txt
        exit 1
    fi
    if ! grep -q "$want" err.txt; then
        echo "expected '$want' in the message of: $*"
        cat err.txt
        exit 1
    fi
}

"$nangila" hpc compress --eps 1e-3 custom.dump c.nhd
size=$(stat -c %s c.nhd)
# a flipped byte in the middle
cp c.nhd bad.nhd
printf '\x55' | dd of=bad.nhd bs=1 seek=$((size / 2)) conv=notrunc status=none
rm -f out.dump
expect_fail "CRC32C mismatch" "$nangila" hpc decompress bad.nhd out.dump
[ ! -e out.dump ] || { echo "a failed decompress left out.dump behind"; exit 1; }
ls out.dump.tmp.* >/dev/null 2>&1 && { echo "temporary file left behind"; exit 1; }
# truncated
head -c $((size - 7)) c.nhd >trunc.nhd
expect_fail "truncated" "$nangila" hpc decompress trunc.nhd out.dump
[ ! -e out.dump ] || { echo "a failed decompress left out.dump behind"; exit 1; }
# not a container, not a dump, a truncated dump
expect_fail "not an hpc container" "$nangila" hpc decompress custom.dump out.dump
expect_fail "not a LAMMPS text dump" "$nangila" hpc compress --eps 1e-3 c.nhd out.nhd
head -n 300 custom.dump >short.dump
expect_fail "truncated dump" "$nangila" hpc compress --eps 1e-3 short.dump out.nhd
[ ! -e out.nhd ] || { echo "a failed compress left out.nhd behind"; exit 1; }
# verify catches a coordinate moved by more than eps
"$nangila" hpc decompress c.nhd d.dump
awk 'NR==12 {$3 = $3 + 0.01} {print}' d.dump >moved.dump
expect_fail "eps" "$nangila" hpc verify custom.dump moved.dump --eps 1e-3
# usage errors exit 2
set +e
"$nangila" hpc compress custom.dump x.nhd 2>/dev/null
rc=$?
set -e
[ "$rc" = 2 ] || { echo "missing --eps should exit 2, got $rc"; exit 1; }
echo "hpc CLI on LAMMPS dumps: OK"
