#!/usr/bin/env bash
# krewind bisect checks its answer: the boundary is evaluated again (false just
# before, true at it), earlier candidates are sampled and a predicate that is
# not monotone is reported (on eoi-before-switch CR8 >= 13 first holds inside
# KiRetireDpcList, long before the EOI the binary search lands on, which is
# what sql: finds); a monotone one is not; SIGINT exits 130 with nothing left.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
if [ ! -x "$KREWIND" ] || [ ! -e build/kernel/kernel.elf ] || [ ! -e build/tracer/libkrewind.so ]; then
	skip "bisect checks" "krewind, the kernel or the plugin is not built"
	done_testing
fi
export KREWIND_TRACES=$TMP/traces

same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }
json_get() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k] if v is not None else None
print(v)' "$1"; }
leftovers() {
	local p
	for p in $(pgrep -x qemu-system-x86) $(pgrep -x gdb); do
		if readlink "/proc/$p/cwd" 2>/dev/null | grep -q "^$TMP" ||
			tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -q "^KREWIND_REC=$TMP"; then
			echo "$p"
		fi
	done
}

"$KREWIND" record --scenario eoi-before-switch -q >/dev/null 2>&1
rec=$KREWIND_TRACES/eoi-before-switch-1

# --- not monotone: CR8 goes to 15 and back to 2 before the clock's 13
"$KREWIND" bisect "$rec" --until 'gdb:$cr8 >= 13' --json >"$TMP/nm.json" 2>"$TMP/nm.err"
same "bisect gdb:\$cr8 >= 13 exits 0" "$?" 0
same "its boundary holds on a second replay" "$(json_get verified <"$TMP/nm.json")" True
same "it is reported as not monotone" "$(json_get monotone <"$TMP/nm.json")" False
sqlfirst=$("$KREWIND" bisect "$rec" --until "sql:kind = 'irql' AND b >= 13" --json | json_get first_bad.event)
nmbad=$(json_get first_bad.event <"$TMP/nm.json")
early=$(json_get also_true_before <"$TMP/nm.json")
check "the earlier true event ($early) is before the binary search's answer ($nmbad)" test "$early" -lt "$nmbad"
same "and right after the first IRQL >= 13 the trace has (sql: $sqlfirst)" "$early" "$((sqlfirst + 1))"
check "with a warning on stderr" grep -q "^krewind: warning: the predicate is not monotone" "$TMP/nm.err"

# --- monotone: the clock's tick count only grows
"$KREWIND" bisect "$rec" --until 'gdb:KeTickCount >= 2' --json >"$TMP/m.json" 2>"$TMP/m.err"
same "bisect gdb:KeTickCount >= 2 exits 0" "$?" 0
same "it is monotone" "$(json_get monotone <"$TMP/m.json")" True
same "its boundary holds" "$(json_get verified <"$TMP/m.json")" True
check "earlier candidates were sampled" test "$(json_get sampled <"$TMP/m.json")" -gt 0
check "and no warning" test ! -s "$TMP/m.err"

# --- SIGINT: 130, no QEMU or gdb left
"$KREWIND" bisect "$rec" --until 'gdb:KeTickCount >= 2' -q >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -n "$(leftovers)" ] && break; sleep 0.1; done
sleep 0.5
kill -INT "$pid"
wait "$pid"
same "bisect interrupted by SIGINT exits 130" "$?" 130
sleep 0.3
same "no QEMU or gdb survives it" "$(leftovers | tr '\n' ' ')" ""
done_testing
