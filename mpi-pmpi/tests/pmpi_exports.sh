#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pmpi_exports.sh LIB FORTRAN -- libnangila-mpi.so must export exactly the
# MPI entry points it wraps (FORTRAN=1: also the Fortran MPI_ALLREDUCE
# and MPI_IALLREDUCE names) and nothing else: no core symbols, no helpers.
set -euo pipefail
lib=$1
want="MPI_Allreduce MPI_Iallreduce MPI_Init MPI_Init_thread"
if [ "$2" = 1 ]; then
    want="$want MPI_ALLREDUCE mpi_allreduce mpi_allreduce_ mpi_allreduce__"
    want="$want MPI_IALLREDUCE mpi_iallreduce mpi_iallreduce_ mpi_iallreduce__"
fi
want=$(tr ' ' '\n' <<<"$want" | sort)
got=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort)
if [ "$got" != "$want" ]; then
    echo "exported symbols differ from the expected set:"
    diff <(echo "$want") <(echo "$got") || true
    exit 1
fi
echo "exports OK: $(echo $got)"
