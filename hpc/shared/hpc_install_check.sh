#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What an in-situ user gets from `meson install`: installs the build into a
# temporary DESTDIR, then, from the installed files only,
#   - builds examples/hpc-insitu/insitu.c with `pkg-config nangila-hpc`
#     (PKG_CONFIG_PATH / PKG_CONFIG_SYSROOT_DIR into the DESTDIR) and runs it
#     against the installed libnangila-hpc.so;
#   - checks that libnangila-hpc.so exports only ngl_hpc_* and the plugin
#     only H5PLget_plugin_type / H5PLget_plugin_info;
#   - runs the HDF5 C test (if given) with HDF5_PLUGIN_PATH set to the
#     installed plugin directory.
#
# usage: hpc_install_check.sh BUILD_DIR SOURCE_DIR CC SANITIZE [TEST_H5Z_HDF5]
set -euo pipefail
build=$1 src=$2 cc=$3 sanitize=$4 h5test=${5:-}

dest=$(mktemp -d /tmp/ngl_install_XXXXXX)
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --destdir "$dest" --no-rebuild --quiet

pc=$(find "$dest" -name nangila-hpc.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: nangila-hpc.pc not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_SYSROOT_DIR=$dest
cflags=$(pkg-config --cflags nangila-hpc)
libs=$(pkg-config --libs nangila-hpc)
echo "pkg-config nangila-hpc: $cflags $libs"
case "$cflags $libs" in
*"$dest"*) ;;
*) echo "FAIL: pkg-config does not point into the DESTDIR"; exit 1 ;;
esac

san=()
if [ "$sanitize" != "none" ]; then
    san=(-fsanitize="$sanitize")
fi
libdir=$(dirname "$(find "$dest" -name 'libnangila-hpc.so' | head -n 1)")
# shellcheck disable=SC2086
"$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror "${san[@]}" $cflags \
    "$src/examples/hpc-insitu/insitu.c" -o "$dest/insitu" $libs -lm
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if ! ldd "$dest/insitu" | grep -q "$libdir/libnangila-hpc.so"; then
    echo "FAIL: the example does not load the installed libnangila-hpc.so"
    ldd "$dest/insitu"
    exit 1
fi
"$dest/insitu" "$dest/traj.nhp" 40 3000

# Exported symbols: the public API and nothing else.
bad=$(nm -D --defined-only "$libdir/libnangila-hpc.so" | awk '$2 ~ /[TDBRW]/ {print $3}' |
    grep -v '^ngl_hpc_' || true)
[ -z "$bad" ] || { echo "FAIL: libnangila-hpc.so also exports: $bad"; exit 1; }
for h in nangila_hpc.h nangila_h5z.h nangila.h; do
    [ -n "$(find "$dest" -name "$h")" ] || { echo "FAIL: $h not installed"; exit 1; }
done

plugin=$(find "$dest" -name libh5z-nangila.so | head -n 1)
if [ -z "$plugin" ]; then
    echo "no HDF5 plugin in this build (libhdf5-dev missing): library checks only"
    exit 0
fi
bad=$(nm -D --defined-only "$plugin" | awk '$2 ~ /[TDBRW]/ {print $3}' |
    grep -v -x -e H5PLget_plugin_type -e H5PLget_plugin_info || true)
[ -z "$bad" ] || { echo "FAIL: the plugin also exports: $bad"; exit 1; }
echo "installed plugin: ${plugin#"$dest"}"
if [ -n "$h5test" ]; then
    HDF5_PLUGIN_PATH=$(dirname "$plugin") "$h5test"
fi
echo "ok"
