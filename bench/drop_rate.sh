#!/usr/bin/env bash
# The tracer's drop rate at a peak event rate: the hobby kernel (tests/hobby)
# with storm=N, worker-a taking and releasing one lock N thousand times in a
# row (3 events each: try, acquire, release), as a kernel spinning on a lock
# in its idle loop does. Recorded with the default queue and with one 16 times
# larger, side by side; prints per run the events offered (kept + lost), lost,
# the drop rate, and the events offered per wall second.
set -u
BUILD=${BUILD:-build}
K=$BUILD/krewind
IMG=build/tests/hobby/disk.img
ELF=build/tests/hobby/hobby.elf
[ -x "$K" ] && [ -e "$IMG" ] || { echo "drop_rate: not built" >&2; exit 1; }
STORM=${STORM:-1000}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/krewind-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$IMG" "$tmp/storm.img"
printf 'storm=%s\0' "$STORM" | dd of="$tmp/storm.img" bs=512 seek=200 conv=notrunc status=none
printf '%-22s %12s %12s %8s %14s\n' queue offered lost rate "offered/s"
for q in default 4194304; do
	env=()
	[ "$q" = default ] || env=(KREWIND_TRACE_QUEUE=$q)
	env "${env[@]}" "$K" record -q --image "$tmp/storm.img" --symbols "$ELF" --probe probes/hobby.probe \
		-o "$tmp/r-$q" --timeout 300 >/dev/null 2>&1
	kept=$("$K" sql "$tmp/r-$q" "SELECT value FROM meta WHERE key = 'events_total'" --json | jq -r '.rows[0][0]')
	lost=$("$K" sql "$tmp/r-$q" "SELECT value FROM meta WHERE key = 'dropped'" --json | jq -r '.rows[0][0]')
	wall=$(jq -r .wall_seconds "$tmp/r-$q/manifest.json")
	awk -v q="$q" -v k="$kept" -v l="$lost" -v w="$wall" 'BEGIN {
		printf "%-22s %12d %12d %7.1f%% %14.0f\n", q, k + l, l, 100 * l / (k + l), (k + l) / w }'
done
