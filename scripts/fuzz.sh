#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/fuzz.sh -- run the libFuzzer targets of tests/fuzz/ for a bounded
# time each and merge what they find into the committed corpora.
#
#   scripts/fuzz.sh [-t SECONDS] [TARGET...]
#
# Sets up build/fuzz with clang, ASan and UBSan (-Dfuzzing=enabled), runs each
# target (default: all) for SECONDS (default 60), one after the other, then
# minimizes tests/fuzz/corpus/TARGET with -merge=1 so that it keeps only
# inputs that add edge coverage (-use_counters=0 keeps the corpus small). A crash stops the script; the reproducer is left
# in build/fuzz/crashes/ (replay it with build/fuzz/tests/fuzz/TARGET FILE).
# Review and commit the corpus changes like any other change.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh

usage() {
    sed -n '3,13p' "$0" | sed 's/^# \{0,1\}//'
}

secs=60
while getopts "t:h" opt; do
    case $opt in
    t) secs=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
all_targets=(fuzz_frame_decode fuzz_roundtrip fuzz_dst_too_small)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
case $secs in
'' | *[!0-9]*) echo "fuzz.sh: -t takes whole seconds" >&2; exit 2 ;;
esac

nangila_ensure_deps

build=build/fuzz
if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" >/dev/null
else
    CC=clang meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false \
        -Dfuzzing=enabled >/dev/null
fi
meson compile -C "$build" "${targets[@]/#/tests/fuzz/}"

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
mkdir -p "$build/crashes"

for t in "${targets[@]}"; do
    bin=$build/tests/fuzz/$t
    corpus=tests/fuzz/corpus/$t
    new=$build/fuzz-new/$t
    merged=$build/fuzz-merged/$t
    rm -rf "$new" "$merged"
    mkdir -p "$new" "$merged" "$corpus"
    seeds=()
    if [ "$t" = fuzz_frame_decode ]; then
        # every golden frame is a seed; they are read, never rewritten
        seeds=(tests/golden/invalid)
        for d in tests/golden/valid/*/; do
            seeds+=("$d")
        done
    fi
    before=$(find "$corpus" -type f | wc -l)
    echo "==> $t: ${secs}s from $before corpus inputs"
    # New inputs go to the first directory; the others are only read.
    log=$build/fuzz-$t.log
    rc=0
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -artifact_prefix="$build/crashes/$t-" -print_final_stats=1 \
        "$new" "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
    grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::new_units_added)' "$log" || true
    if [ "$rc" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz.sh: $t failed (log $log); reproducers in $build/crashes/" >&2
        exit 1
    fi
    # Minimize: keep the inputs of the old corpus and of this run that add
    # edge coverage, and nothing else.
    # regress-* files (hand-made reproducers) stay as they are.
    "$bin" -merge=1 -use_counters=0 "$merged" "$corpus" "$new" >/dev/null 2>&1
    find "$corpus" -type f ! -name 'regress-*' -delete
    cp "$merged"/* "$corpus"/ 2>/dev/null || true
    for f in "$corpus"/regress-*; do
        [ -e "$f" ] || continue
        rm -f "$corpus/$(sha1sum "$f" | cut -d' ' -f1)" # libFuzzer names by SHA-1
    done
    after=$(find "$corpus" -type f | wc -l)
    echo "==> $t: corpus $before -> $after inputs ($(du -sh "$corpus" | cut -f1))"
done
