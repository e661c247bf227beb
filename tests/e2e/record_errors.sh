#!/usr/bin/env bash
# krewind record refuses bad input before QEMU runs, with one error line and
# exit 2: a missing kernel, a kernel without symbols given a probe, a probe
# naming a symbol the kernel lacks, more than one vCPU with record/replay;
# and replay/gdb/bisect/verify refuse missing recordings and positions.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
if [ ! -x "$KREWIND" ] || [ ! -e build/kernel/kernel.elf ]; then
	skip "record errors" "krewind or the kernel is not built"
	done_testing
fi
export KREWIND_TRACES=$TMP/traces

# refused NAME PATTERN CMD...: exit 2, one stderr line matching PATTERN, no recording made
refused() {
	local name=$1 pattern=$2 rc
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" -ne 2 ]; then not_ok "$name" "exit $rc, want 2: $(cat "$TMP/err")"; return; fi
	if [ "$(wc -l <"$TMP/err")" -ne 1 ] || ! grep -qE -- "^krewind: error: .*$pattern" "$TMP/err"; then
		not_ok "$name" "stderr: $(cat "$TMP/err")"
		return
	fi
	if [ -n "$(ls -A "$KREWIND_TRACES" 2>/dev/null)" ]; then not_ok "$name" "left $(ls "$KREWIND_TRACES")"; return; fi
	ok "$name"
}

strip -o "$TMP/stripped.elf" build/kernel/kernel.elf
printf 'lock-acquire KeNoSuchFunction lock=rdi\n' >"$TMP/missing.probe"

refused "missing kernel" "cannot read kernel" "$KREWIND" record --kernel "$TMP/nope.elf"
refused "kernel without symbols and a probe" "no symbols" \
	"$KREWIND" record --kernel "$TMP/stripped.elf" --probe probes/krewind.probe
refused "probe naming a missing symbol" "KeNoSuchFunction" \
	"$KREWIND" record --kernel build/kernel/kernel.elf --probe "$TMP/missing.probe"
# two vCPUs record a re-executable run (replay/smp.c): what would break it is refused
refused "two vCPUs with a disk" "-drive" \
	"$KREWIND" record --kernel build/kernel/kernel.elf -- -smp 2 -drive file=/dev/null,format=raw
refused "a vCPU count out of range" "vCPU count of 1-16" \
	"$KREWIND" record --kernel build/kernel/kernel.elf -- -smp 99
refused "bad --hang-after" "hang-after" "$KREWIND" record --scenario clean --hang-after x
refused "replay of a missing recording" "no recording named nope" "$KREWIND" replay nope --to 1
refused "replay without --to" "--to" "$KREWIND" replay nope
refused "gdb of a missing recording" "no recording named nope" "$KREWIND" gdb nope --at 1
refused "bisect without a predicate kind" "sql:COND or gdb:EXPR" "$KREWIND" bisect nope --until x
refused "verify of a missing recording" "no recording named nope" "$KREWIND" verify nope

# Without a probe, record says once what is traced (and still records).
"$KREWIND" record --kernel build/kernel/kernel.elf --no-rr -o "$TMP/noprobe" >"$TMP/np.out" 2>"$TMP/np.err"
rc=$?
if [ $rc -eq 0 ] && grep -q '^krewind: note: no --probe: only traps' "$TMP/np.err" && [ -s "$TMP/noprobe/trace.db" ]; then
	ok "record --kernel without --probe notes what is traced, and records"
else
	not_ok "record --kernel without --probe notes what is traced, and records" "exit $rc: $(head -c 300 "$TMP/np.err")"
fi
done_testing
