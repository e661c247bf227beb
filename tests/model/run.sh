#!/usr/bin/env bash
# Checks a Promela model with spin and prints one result line.
#
# Usage: tests/model/run.sh [-D NAME]... safety|liveness OUTDIR [MODEL]
#   MODEL     default tests/model/dispatcher.pml
#   -D NAME   a variant (see the model's header), passed to spin as -DNAME
#   safety    assertions and invalid end states (pan built with -DSAFETY -DNOCLAIM)
#   liveness  the model's ltl property, acceptance cycles (pan -a), with
#             assertions ignored (-A) so that only the property is judged
#   OUTDIR    where spin's files go (pan.c, pan, the trail, trail.txt)
#
# Prints: "<model> [variants] <check>: errors=N states=S depth=D [violation]".
# When pan reports an error its trail is replayed with `spin -t -p` into
# OUTDIR/trail.txt. Exit status 0 when the check ran (whatever it found), 2 on
# a usage error, 1 when spin, gcc or pan failed to run.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
defs=()
while [ $# -gt 0 ] && [ "$1" = -D ]; do
	[ $# -ge 2 ] || { echo "run.sh: -D needs a name" >&2; exit 2; }
	defs+=("-D$2"); shift 2
done
if [ $# -lt 2 ] || { [ "$1" != safety ] && [ "$1" != liveness ]; }; then
	echo "usage: tests/model/run.sh [-D NAME]... safety|liveness OUTDIR [MODEL]" >&2
	exit 2
fi
check=$1 out=$2 model=${3:-$top/tests/model/dispatcher.pml}
[ -r "$model" ] || { echo "run.sh: cannot read $model" >&2; exit 2; }
command -v spin >/dev/null || { echo "run.sh: spin is not installed (scripts/install-deps.sh)" >&2; exit 1; }
mkdir -p "$out" || exit 1
name=$(basename "$model")
cp "$model" "$out/$name" || exit 1
cd "$out" || exit 1
rm -f ./*.trail pan pan.* trail.txt

if ! spin -a "${defs[@]}" "$name" >spin.log 2>&1; then
	echo "run.sh: spin -a failed: $(tail -n 3 spin.log)" >&2
	exit 1
fi
if [ "$check" = safety ]; then
	cflags=(-DSAFETY -DNOCLAIM) panargs=(-m200000)
else
	cflags=() panargs=(-a -A -m200000)
fi
if ! gcc -O0 -w "${cflags[@]}" -o pan pan.c 2>gcc.log; then
	echo "run.sh: building pan failed: $(head -n 3 gcc.log)" >&2
	exit 1
fi
timeout 300 ./pan "${panargs[@]}" >pan.log 2>&1
rc=$?
if ! grep -q 'errors: [0-9]' pan.log; then
	echo "run.sh: pan did not finish (status $rc): $(tail -n 3 pan.log)" >&2
	exit 1
fi
errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.log | head -n 1)
states=$(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' pan.log | head -n 1)
depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' pan.log | head -n 1)
what=$(grep -m 1 -oE 'assertion violated .*|invalid end state \(.*|acceptance cycle.*|non-progress cycle.*' pan.log)
if [ "$errors" != 0 ] && ls ./*.trail >/dev/null 2>&1; then
	spin -t -p "${defs[@]}" "$name" >trail.txt 2>&1
fi
echo "$name${defs:+ ${defs[*]}} $check: errors=$errors states=${states:-?} depth=${depth:-?}${what:+ [$what]}"
exit 0
