#!/usr/bin/env bash
# What several vCPUs cost (issue #16): Debian's Linux (scripts/linux-subject.sh)
# booting its busybox workload to poweroff, four QEMU commands run alternately
# REPS times (default 3), medians of the wall times:
#   smp1:      -smp 1 -icount shift=0,sleep=off, no plugin
#   smp2:      -smp 2 in the re-executable configuration (`krewind record
#              --smp 2`: the same icount, -cpu max,-rdrand,-rdseed, clock=vm),
#              no plugin
#   smp2-mt:   -smp 2 multi-threaded TCG, no icount (not re-executable)
#   smp2+plugin: smp2 with the tracer (one callback per instruction there,
#              tracer/plugin.c "Several vCPUs")
# printed as ratios to smp1 and smp2. Without a Linux subject: skipped, saying so.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.." || exit 2
PLUGIN=build/tracer/libkrewind.so
KREWIND=$BUILD/krewind
REPS=${REPS:-3}
for f in "$KREWIND" "$PLUGIN"; do
	[ -e "$f" ] || { echo "smp_cost: $f not built" >&2; exit 2; }
done
env=$(scripts/linux-subject.sh 2>/dev/null) || { echo "smp_cost: no Linux subject (scripts/linux-subject.sh failed): skipped"; exit 0; }
eval "$env"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/krewind-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
probe=$tmp/linux.probe
"$KREWIND" probe linux "$LINUX_VMLINUX" -o "$probe" 2>/dev/null || exit 1
append="console=ttyS0 nokaslr panic=-1 random.trust_cpu=off"
reexec=(-icount shift=0,sleep=off -rtc base=2020-01-01T00:00:00,clock=vm)

# boot NAME: one boot, prints its wall time in ms
boot() {
	local args=(-cpu max -smp 1 "${reexec[@]}") start end
	case $1 in
	smp2) args=(-cpu max,-rdrand,-rdseed -smp 2 "${reexec[@]}") ;;
	smp2-mt) args=(-cpu max -smp 2) ;;
	smp2+plugin) args=(-cpu max,-rdrand,-rdseed -smp 2 "${reexec[@]}"
		-plugin "$PLUGIN,db=$tmp/t.db,probe=$probe,symbols=$LINUX_VMLINUX") ;;
	esac
	rm -f "$tmp"/t.db*
	start=$(date +%s%N)
	timeout -s KILL 900 qemu-system-x86_64 -m 128M -kernel "$LINUX_VMLINUZ" -initrd "$LINUX_INITRD" \
		-append "$append" -display none -monitor none -no-reboot -net none -serial "file:$tmp/serial.log" \
		"${args[@]}" </dev/null >/dev/null 2>&1
	end=$(date +%s%N)
	grep -q "reboot: Power down" "$tmp/serial.log" || { echo "smp_cost: $1 did not power off" >&2; exit 1; }
	echo $(((end - start) / 1000000))
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

names=(smp1 smp2 smp2-mt smp2+plugin)
declare -A times
for ((i = 0; i < REPS; i++)); do
	for n in "${names[@]}"; do
		times[$n]+="$(boot "$n") "
	done
done
declare -A med
for n in "${names[@]}"; do
	med[$n]=$(tr ' ' '\n' <<<"${times[$n]}" | grep . | median)
done
echo "Linux $LINUX_KVER boot to poweroff, median of $REPS (load $(cut -d' ' -f1 /proc/loadavg)):"
for n in "${names[@]}"; do
	printf '  %-12s %7d ms  %5.2fx smp1  %5.2fx smp2\n' "$n" "${med[$n]}" \
		"$(awk -v a="${med[$n]}" -v b="${med[smp1]}" 'BEGIN {print a / b}')" \
		"$(awk -v a="${med[$n]}" -v b="${med[smp2]}" 'BEGIN {print a / b}')"
done
