#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pmpi_run.sh -- run one multi-rank test under mpirun with libnangila-mpi.so
# preloaded into the ranks only (not into mpirun), over TCP on loopback.
#
#   pmpi_run.sh [options] -- program [args...]
#     --np N                 ranks (default 4)
#     --timeout S            hard limit in seconds (default 120); hitting it
#                            is a failure ("hang"), never a pass
#     --env VAR=VAL          environment for every rank (repeatable)
#     --rank-env R VAR=VAL   environment for rank R only (repeatable; MPMD)
#     --expect-fail          the job must fail, and must do so before the
#                            time limit (a dead rank must not hang the job)
#     --expect-count N REGEX the combined output must have exactly N lines
#                            matching REGEX (extended grep)
#     --expect-min N REGEX   ... at least N lines
#     --no-preload           run without the wrapper (a baseline)
#     --no-leak-check        no LeakSanitizer at exit (sanitized builds; for
#                            uninstrumented programs such as python3)
#     --expect-auto-argmin   every first choice NANGILA_MODE=auto logs
#                            ("auto <sizes>: <arm> (off A ms ..., int8 B ms
#                            ...)", a plain arm as "plain alg1 (basic
#                            linear)" listed as "alg1 C ms") is the fastest
#                            of the times it lists
#     --shm                  ranks talk over shared memory (Open MPI's vader
#                            BTL) instead of TCP, as ranks of one node do
#     --netns RATE           each rank in its own network namespace behind a
#                            link limited to RATE (tc syntax, e.g. 200mbit;
#                            scripts/netns-mpi.sh); needs root, else skip (77)
#     --ranks-per-node L     with --netns: L ranks per namespace ("node", its
#                            own Open MPI daemon), shared memory between them
#
# Meson passes NGL_PMPI_PRELOAD (the library, preceded by libasan in
# sanitized builds), NGL_PMPI_LSAN_SUPP and MPIRUN in the environment.
set -uo pipefail

np=4
limit=120
expect_fail=0
preload=1
leaks=1
netns_rate=""
per_node=1
shm=0
argmin=0
envs=()
declare -A rank_envs=()
counts=()
while [ $# -gt 0 ]; do
    case "$1" in
    --np) np=$2; shift 2 ;;
    --timeout) limit=$2; shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --rank-env) rank_envs[$2]="${rank_envs[$2]:-} $3"; shift 3 ;;
    --expect-fail) expect_fail=1; shift ;;
    --expect-count) counts+=("=$2" "$3"); shift 3 ;;
    --expect-min) counts+=(">$2" "$3"); shift 3 ;;
    --no-preload) preload=0; shift ;;
    --no-leak-check) leaks=0; shift ;;
    --netns) netns_rate=$2; shift 2 ;;
    --ranks-per-node) per_node=$2; shift 2 ;;
    --shm) shm=1; shift ;;
    --expect-auto-argmin) argmin=1; shift ;;
    --) shift; break ;;
    *) echo "pmpi_run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "pmpi_run.sh: no program" >&2; exit 2; }

: "${MPIRUN:=mpirun}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

common=(--oversubscribe --bind-to none
        --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo
        --mca mpi_yield_when_idle 1)
if [ "$shm" = 1 ]; then
    common=(--oversubscribe --bind-to none --mca btl self,vader --mca mpi_yield_when_idle 1)
fi
if [ -n "$netns_rate" ]; then
    if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
        echo "pmpi_run.sh: --netns needs root, ip and tc; skipping"
        exit 77
    fi
    # A set of our own names and addresses, so a benchmark's set survives.
    export NGL_NETNS_NAME=nglt NGL_NETNS_SUBNET=10.78.0
    netns=$(cd "$(dirname "$0")/../../scripts" && pwd)/netns-mpi.sh
    nodes=$((np / per_node))
    "$netns" up "$nodes" "$netns_rate" || { echo "pmpi_run.sh: FAIL: cannot create namespaces"; exit 1; }
    trap '"$netns" down' EXIT
    # PMIx's shared-memory store trips over several daemons on one host.
    export PMIX_MCA_gds=hash
    # Each namespace's Open MPI daemon would share its hwloc topology
    # through the same /dev/shm; two writing at once can crash one
    # (hwloc_shmem_topology_write): no sharing (vmhole none).
    btl=self,tcp
    [ "$per_node" -gt 1 ] && btl=self,vader,tcp
    common=(--oversubscribe --bind-to none --host "$("$netns" hosts "$nodes" "$per_node")"
            --mca plm_rsh_agent "$netns rsh" --mca rtc_hwloc_vmhole none
            --mca btl "$btl" --mca btl_tcp_if_include "$NGL_NETNS_SUBNET.0/24"
            --mca oob_tcp_if_include "$NGL_NETNS_SUBNET.0/24"
            --mca mpi_yield_when_idle 1)
fi
xs=()
if [ "$preload" = 1 ]; then
    xs+=(-x "LD_PRELOAD=${NGL_PMPI_PRELOAD:?NGL_PMPI_PRELOAD not set}")
fi
if [ -n "${NGL_PMPI_LSAN_SUPP:-}" ]; then
    # Open MPI leaves allocations behind at exit, some made by components
    # it has already unloaded. Full (slow) unwinding records the libmpi
    # frames below them, which the suppressions then match; leaks of ours
    # have no such frame and are still reported.
    xs+=(-x "LSAN_OPTIONS=suppressions=${NGL_PMPI_LSAN_SUPP}:print_suppressions=0")
    asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
    [ "$leaks" = 0 ] && asan="$asan:detect_leaks=0"
    xs+=(-x "ASAN_OPTIONS=$asan")
fi
for e in "${envs[@]}"; do
    xs+=(-x "$e")
done

cmd=("$MPIRUN" "${common[@]}")
if [ ${#rank_envs[@]} -eq 0 ]; then
    cmd+=(-np "$np" "${xs[@]}" "$@")
else
    for ((r = 0; r < np; r++)); do
        [ "$r" -gt 0 ] && cmd+=(:)
        cmd+=(-np 1 "${xs[@]}")
        for e in ${rank_envs[$r]:-}; do
            cmd+=(-x "$e")
        done
        cmd+=("$@")
    done
fi

out=$(mktemp)
if [ -n "$netns_rate" ]; then
    trap 'rm -f "$out"; "$netns" down' EXIT
else
    trap 'rm -f "$out"' EXIT
fi
start=$(date +%s)
timeout --kill-after=10 "$limit" "${cmd[@]}" >"$out" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$out"
echo "pmpi_run.sh: exit $rc after ${elapsed}s: ${cmd[*]}"

status=0
# timeout(1) exits 124 when the limit hit (mpirun itself exits 128+signal
# when a rank was killed, e.g. 137).
if [ "$rc" = 124 ]; then
    echo "pmpi_run.sh: FAIL: hit the ${limit}s limit (hang?)"
    exit 1
fi
if [ "$expect_fail" = 1 ]; then
    if [ "$rc" = 0 ]; then
        echo "pmpi_run.sh: FAIL: the job was expected to fail"
        status=1
    fi
elif [ "$rc" != 0 ]; then
    [ "$rc" = 77 ] && exit 77
    echo "pmpi_run.sh: FAIL: exit $rc"
    status=1
fi
for ((i = 0; i < ${#counts[@]}; i += 2)); do
    want=${counts[$i]:1}
    op=${counts[$i]:0:1}
    re=${counts[$((i + 1))]}
    got=$(grep -cE -- "$re" "$out" || true)
    if { [ "$op" = "=" ] && [ "$got" -ne "$want" ]; } ||
        { [ "$op" = ">" ] && [ "$got" -lt "$want" ]; }; then
        echo "pmpi_run.sh: FAIL: $got lines match /$re/, expected ${op/>/at least }$want"
        status=1
    fi
done
if [ "$argmin" = 1 ]; then
    # "auto 4..8 KiB: off (off 0.0149 ms (link ...), int8 0.0218 ms (codec ...))"
    # "auto 4..8 KiB: plain alg1 (basic linear) (default 0.061 ms, alg1 0.041 ms
    #  (link ...), alg3 0.05 ms, ...)": the chosen arm, then every arm's time
    bad=$(grep -E 'info: auto [0-9]+\.\.[0-9]+ [KMGT]?i?B: ((off|int8|int4) |plain [A-Za-z0-9_]+ )\(' "$out" |
        grep -v '(changed)' | awk '{
            choice = ""; best = ""; bt = 0; ct = -1
            for (i = 1; i <= NF; i++) {
                if (choice == "" && $(i - 1) ~ /B:$/) choice = ($i == "plain") ? $(i + 1) : $i
                if ($(i + 2) ~ /^ms[,)]*$/ && $(i + 1) ~ /^[0-9.e+-]+$/) {
                    m = $i; sub(/^\(/, "", m)
                    if (m == choice) ct = $(i + 1) + 0
                    if (best == "" || $(i + 1) + 0 < bt) { best = m; bt = $(i + 1) + 0 }
                }
            }
            # (times are printed to 3 digits: a tie in print is no error)
            if (choice == "" || ct < 0 || ct > bt) print
        }')
    n=$(grep -cE 'info: auto [0-9]+\.\.[0-9]+ [KMGT]?i?B: ' "$out" || true)
    echo "pmpi_run.sh: $n auto choices checked against their agreed times"
    if [ -n "$bad" ]; then
        echo "pmpi_run.sh: FAIL: auto chose an arm that is not the fastest it measured:"
        echo "$bad"
        status=1
    fi
fi
exit $status
