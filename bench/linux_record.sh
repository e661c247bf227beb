#!/usr/bin/env bash
# Recording Debian's stock Linux (scripts/linux-subject.sh: the cloud kernel,
# a busybox workload, poweroff) with the probe `krewind probe linux` makes.
# Three QEMU commands, run alternately REPS times (default 5), medians:
#   record:   what `krewind record` runs: -icount shift=auto,rr=record + plugin
#   no-plugin the same command without the plugin
#   plain:    plain TCG, no icount, no plugin
# printed as ratios, with where the last record run's time went (its meta
# tracer_counters, bench/breakdown.awk: setup, callbacks, the plugin lock,
# the writer thread's CPU, translation flushes, the rest); then one `krewind
# record` of the same boot: bytes per event, recording size, and the wall
# times of check, report and export on it.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.." || exit 2
PLUGIN=${PLUGIN:-build/tracer/libkrewind.so}
KREWIND=$BUILD/krewind
REPS=${REPS:-5}
for f in "$KREWIND" "$PLUGIN"; do
	[ -e "$f" ] || { echo "linux_record: $f not built" >&2; exit 2; }
done
env=$(scripts/linux-subject.sh) || { echo "linux_record: scripts/linux-subject.sh failed" >&2; exit 1; }
eval "$env"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/krewind-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
probe=$tmp/linux.probe
"$KREWIND" probe linux "$LINUX_VMLINUX" -o "$probe" || exit 1
if ! "$KREWIND" probe check "$probe" "$LINUX_VMLINUX" >/dev/null 2>&1; then
	echo "(the tracer does not read the schema-2 probe yet: measuring with --schema 1)"
	"$KREWIND" probe linux --schema 1 "$LINUX_VMLINUX" -o "$probe" || exit 1
fi
append="console=ttyS0 nokaslr panic=-1"

# run SETTING: prints the wall time in ms of one boot to poweroff.
run() {
	local setting=$1 args=() start end rc
	rm -f "$tmp"/t.db* "$tmp"/r.bin "$tmp"/snap.qcow2
	case $setting in
	record|no-plugin)
		qemu-img create -q -f qcow2 "$tmp/snap.qcow2" 64M
		args+=(-icount "shift=auto,rr=record,rrfile=$tmp/r.bin,rrsnapshot=init"
		       -drive "file=$tmp/snap.qcow2,if=none,id=rrsnap") ;;
	esac
	[ "$setting" = record ] && args+=(-plugin "$PLUGIN,db=$tmp/t.db,probe=$probe,symbols=$LINUX_VMLINUX")
	start=$(date +%s%N)
	/usr/bin/time -f '%U %S' -o "$tmp/time" timeout -s KILL 300 \
		qemu-system-x86_64 -cpu max -m 128M -smp 1 -kernel "$LINUX_VMLINUZ" -initrd "$LINUX_INITRD" \
		-append "$append" -serial "file:$tmp/serial.log" -display none -monitor none -no-reboot -net none \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 "${args[@]}" </dev/null >/dev/null 2>&1
	rc=$?
	end=$(date +%s%N)
	grep -q "reboot: Power down" "$tmp/serial.log" ||
		{ echo "linux_record: boot failed ($setting): status $rc" >&2; exit 1; }
	awk '{printf "%d\n", ($1 + $2) * 1000}' "$tmp/time" | tail -n 1 >>"$tmp/cpu-$setting"
	if [ "$setting" = record ]; then
		sqlite3 "$tmp/t.db" "SELECT value FROM meta WHERE key='tracer_counters'" >"$tmp/counters" 2>/dev/null
		echo $(((end - start) / 1000000)) >"$tmp/counters_ms"
	fi
	echo $(((end - start) / 1000000))
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(((e - s) / 1000000)); }

for s in record no-plugin plain; do : >"$tmp/$s"; : >"$tmp/cpu-$s"; done
for _ in $(seq "$REPS"); do
	for s in record no-plugin plain; do run "$s" >>"$tmp/$s" || exit 1; done
done
r=$(median <"$tmp/record") n=$(median <"$tmp/no-plugin") p=$(median <"$tmp/plain")
echo "Linux $LINUX_KVER boot to poweroff, median of $REPS, alternating:"
printf '  record (plugin + rr)   %6d ms\n  same without plugin    %6d ms   record/no-plugin %s\n  plain TCG, no icount   %6d ms   record/plain %s   no-plugin/plain %s\n' \
	"$r" "$n" "$(echo "scale=2; $r / $n" | bc)" "$p" "$(echo "scale=2; $r / $p" | bc)" "$(echo "scale=2; $n / $p" | bc)"
cr=$(median <"$tmp/cpu-record") cn=$(median <"$tmp/cpu-no-plugin") cp=$(median <"$tmp/cpu-plain")
printf '  CPU time (user + system, all threads): record %d ms, without plugin %d ms, plain %d ms   record/no-plugin %s\n' \
	"$cr" "$cn" "$cp" "$(echo "scale=2; $cr / $cn" | bc)"
echo "  the last record run ($(cat "$tmp/counters_ms") ms):"
awk -f bench/breakdown.awk -v ms="$(cat "$tmp/counters_ms")" -v extra=$((r - n)) -v c="$(cat "$tmp/counters")"
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) CPUs)"

rec=$tmp/rec
t=$(ms "$KREWIND" record -q --kernel "$LINUX_VMLINUZ" --symbols "$LINUX_VMLINUX" --initrd "$LINUX_INITRD" \
	--probe "$probe" --append "$append" --timeout 300 -o "$rec")
events=$(jq -r .events_total "$rec/manifest.json")
db=$(stat -c %s "$rec/trace.db")
own=$(find "$rec" -type f -links 1 -printf '%s\n' | awk '{s += $1} END {print s}')
echo "krewind record: $t ms; $events events, $(jq -r .icount_total "$rec/manifest.json") instructions"
echo "  trace.db $((db / 1048576)) MB = $((db / events)) bytes/event; recording directory $((own / 1048576)) MB" \
	"(vmlinux $(jq -r '.inputs[] | select(.file=="symbols.elf") | .stored' "$rec/manifest.json"), not copied)"
echo "  events per kind: $(jq -r '.event_counts | to_entries | map("\(.key) \(.value)") | join(", ")' "$rec/manifest.json")"
printf '  check %d ms, report %d ms, export chrome-json %d ms, export csv %d ms\n' \
	"$(ms "$KREWIND" check "$rec")" "$(ms "$KREWIND" report "$rec")" \
	"$(ms "$KREWIND" export "$rec" --format chrome-json -o "$tmp/x.json")" \
	"$(ms "$KREWIND" export "$rec" --format csv -o "$tmp/x.csv")"
