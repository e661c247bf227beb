#!/usr/bin/env bash
# Recording overhead of the tracer: the clean boot of our kernel with and
# without the plugin, the same QEMU command otherwise, run alternately
# REPS times (default 5) in one go. Three settings:
#   fixed:  -icount shift=0,sleep=off: guest time is the instruction count and
#           idle time is skipped, so the boot is a fixed amount of guest work
#           (~300 M instructions, mostly the idle loop) and time = speed;
#   record: -icount shift=auto,rr=record, as `krewind record` runs it;
#   plain:  no icount (as the e2e boots): the APIC timer runs on host time.
# Prints the median wall times and their ratio per setting.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.." || exit 2
KERNEL=build/kernel/kernel.elf
PLUGIN=build/tracer/libkrewind.so
REPS=${REPS:-5}
for f in "$KERNEL" "$PLUGIN"; do
	[ -e "$f" ] || { echo "record_overhead: $f not built" >&2; exit 2; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/krewind-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# run SETTING WITH_PLUGIN: prints the wall time in seconds of one boot
run() {
	local setting=$1 with=$2 args=() start end rc
	rm -f "$tmp"/t.db* "$tmp"/r.bin
	case $setting in
	fixed) args+=(-icount shift=0,sleep=off) ;;
	record) args+=(-icount "shift=auto,rr=record,rrfile=$tmp/r.bin") ;;
	esac
	[ "$with" = 1 ] && args+=(-plugin "$PLUGIN,db=$tmp/t.db,probe=probes/krewind.probe,symbols=$KERNEL")
	start=$(date +%s%N)
	timeout -s KILL 120 qemu-system-x86_64 -cpu max -m 128M -kernel "$KERNEL" -append scenario=clean \
		-serial null -display none -no-reboot -monitor none -net none \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 "${args[@]}" </dev/null >/dev/null 2>&1
	rc=$?
	end=$(date +%s%N)
	[ "$rc" -eq 33 ] || { echo "record_overhead: boot failed ($setting, plugin=$with): status $rc" >&2; exit 1; }
	echo $(((end - start) / 1000000))
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

for setting in fixed record plain; do
	: >"$tmp/without"; : >"$tmp/with"
	for _ in $(seq "$REPS"); do
		run "$setting" 0 >>"$tmp/without" || exit 1
		run "$setting" 1 >>"$tmp/with" || exit 1
	done
	a=$(median <"$tmp/without") b=$(median <"$tmp/with")
	events=$(sqlite3 "$tmp/t.db" "SELECT value FROM meta WHERE key='events_total'" 2>/dev/null)
	insns=$(sqlite3 "$tmp/t.db" "SELECT value FROM meta WHERE key='icount_total'" 2>/dev/null)
	printf '%-7s without %5d ms   with plugin %5d ms   ratio %s   (%s events, %s instructions, median of %d)\n' \
		"$setting" "$a" "$b" "$(echo "scale=2; $b / $a" | bc)" "${events:-?}" "${insns:-?}" "$REPS"
done
