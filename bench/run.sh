#!/bin/sh
# SPDX-License-Identifier: MIT
# run.sh - run the broker, startup, watch, sandbox, exec, turn and oneshot benchmarks against a build tree:
# bench/run.sh [BUILD_DIR]
#
# BUILD_DIR defaults to the directory above this script. Benchmarks not built yet (or older than
# their source) are compiled by hand with $CC. Extra flags: BENCH_BROKER_ARGS (e.g. "-n 20000"),
# BENCH_STARTUP_ARGS (e.g. "-r 20 -R"), BENCH_WATCH_ARGS (e.g. "-n 500"), BENCH_SANDBOX_ARGS
# (e.g. "-n 500 -c 5000"), BENCH_EXEC_ARGS (e.g. "-n 100 -b 268435456", or "-R": no reference; it
# installs the reference codex app-server with npm when it finds none), BENCH_TURN_ARGS (e.g.
# "-n 50 -c 40000", or "-R"; bench/turn.py runs with $PYTHON, default /usr/bin/python3, and takes the
# reference bench/exec installed), BENCH_ONESHOT_ARGS (e.g. "-n 40", or "-R"; bench/oneshot.py, the
# same). A MISS against a target is reported, not an error; a benchmark that cannot run is.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/..}" && pwd)
cc=${CC:-gcc}
cflags="-std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror"

# build_one NAME [CC ARGS...]: C sources among the arguments, and the files in $deps (headers),
# count towards "older than" too.
deps=""
build_one() {
	src="$here/$1.c"
	util="$here/bench_util.c"
	bin="$build/bench/$1"
	shift
	newer_than="$deps"
	for arg in "$@"; do
		if [ -f "$arg" ]; then
			newer_than="$newer_than $arg"
		fi
	done
	# shellcheck disable=SC2086 # newer_than is a word list
	if [ ! -x "$bin" ] || [ -n "$(find "$src" "$util" "$here/bench_util.h" $newer_than -newer "$bin")" ]; then
		mkdir -p "$build/bench"
		# shellcheck disable=SC2086 # cflags is a word list
		"$cc" $cflags "$src" "$util" "$@" -o "$bin"
	fi
}

for bin in agentd/agentd sandboxd/sandboxd sandboxd/agentd-sandbox; do
	if [ ! -x "$build/$bin" ]; then
		echo "run.sh: $build/$bin is not built; run make first" >&2
		exit 1
	fi
done
build_one broker -lnng -lpthread
build_one startup
build_one watch
build_one exec
top=$(cd "$here/.." && pwd)
deps="$top/sandboxd/plan.h $top/sandboxd/policy.h $top/sandboxd/arena.h $top/sandboxd/fstree.h $top/sandboxd/glob.h $top/common/paths.h"
build_one sandbox -I"$top/sandboxd" -I"$top/common" "$top/sandboxd/plan.c" "$top/sandboxd/policy.c" \
	"$top/sandboxd/arena.c" "$top/sandboxd/fstree.c" "$top/sandboxd/glob.c" \
	"$top/common/paths.c" -ljansson
deps=""

cd "$build"
echo "== bench/broker"
# shellcheck disable=SC2086 # the ARGS variables are word lists
./bench/broker ${BENCH_BROKER_ARGS:-} "$build/agentd/agentd"
echo
echo "== bench/startup"
# shellcheck disable=SC2086
./bench/startup ${BENCH_STARTUP_ARGS:-} "$build/agentd/agentd"
echo
echo "== bench/watch"
# shellcheck disable=SC2086
./bench/watch ${BENCH_WATCH_ARGS:-} "$build/agentd/agentd"
echo
echo "== bench/sandbox"
# shellcheck disable=SC2086
./bench/sandbox ${BENCH_SANDBOX_ARGS:-} "$build"
echo
echo "== bench/exec"
# shellcheck disable=SC2086
./bench/exec ${BENCH_EXEC_ARGS:-} "$build/agentd/agentd"
echo
echo "== bench/turn"
# shellcheck disable=SC2086
"${PYTHON:-/usr/bin/python3}" "$here/turn.py" ${BENCH_TURN_ARGS:-} "$build/agentd/agentd"
echo
echo "== bench/oneshot"
# shellcheck disable=SC2086
"${PYTHON:-/usr/bin/python3}" "$here/oneshot.py" ${BENCH_ONESHOT_ARGS:-} "$build/agentd/agentd"
