#!/usr/bin/env bash
# krewind record / replay / gdb / verify on the real kernel under real QEMU:
# a clean recording is complete and passes, directories are never overwritten,
# replaying to an event stops at its pc and icount, gdb there reads the same
# $pc and $cr8 as the trace, reverse-stepi goes back one instruction and stepi
# comes back to the same pc, and the replay of clean is deterministic.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
if [ ! -x "$KREWIND" ] || [ ! -e build/kernel/kernel.elf ] || [ ! -e build/tracer/libkrewind.so ]; then
	skip "record/replay" "krewind, the kernel or the plugin is not built"
	done_testing
fi
export KREWIND_TRACES=$TMP/traces

same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }
json_field() { # FILE KEY: the value of "KEY": in a one-object JSON file
	python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v.get(sys.argv[2]))' "$1" "$2"
}

# --- record clean: a complete directory, outcome pass
"$KREWIND" record --scenario clean --json >"$TMP/clean.json" 2>"$TMP/clean.err"
same "record clean exits 0" "$?" 0
rec=$KREWIND_TRACES/clean-1
for f in trace.db replay.bin snap.qcow2 kernel.elf probe serial.log manifest.json; do
	check "clean-1 has $f" test -s "$rec/$f"
done
# The finished trace is one self-contained file (rollback journal, not WAL),
# so readers such as check leave no -wal/-shm files in the recording.
same "the trace is back in journal_mode delete" "$(sqlite3 -readonly "$rec/trace.db" 'PRAGMA journal_mode')" delete
"$KREWIND" check "$rec" >/dev/null 2>&1
check "check leaves no trace.db-wal behind" test ! -e "$rec/trace.db-wal"
same "clean outcome is pass" "$(json_field "$rec/manifest.json" outcome)" pass
same "clean exit status is 33" "$(json_field "$rec/manifest.json" exit_status)" 33
same "manifest kernel_sha256 is the kernel's" "$(json_field "$rec/manifest.json" kernel_sha256)" \
	"$(sha256sum build/kernel/kernel.elf | cut -d' ' -f1)"
same "trace says outcome pass" "$("$KREWIND" sql "$rec" "SELECT value FROM meta WHERE key='outcome'" | tail -1 | tr -d ' ')" pass
check "manifest replays with rr=replay's twin rr=record" grep -q 'rr=record,rrfile=replay.bin,rrsnapshot=init' "$rec/manifest.json"

# --- never overwrite: the next recording is clean-2; -o to a non-empty dir is refused
"$KREWIND" record --scenario clean --no-plugin -q >/dev/null 2>&1
check "second recording goes to clean-2" test -s "$KREWIND_TRACES/clean-2/manifest.json"
before=$(sha256sum "$rec/manifest.json")
"$KREWIND" record --scenario clean -o "$rec" -q >/dev/null 2>"$TMP/over.err"
same "record -o into an existing recording exits 2" "$?" 2
check "the refusal is one error line" grep -q '^krewind: error: .*not empty' "$TMP/over.err"
same "the existing recording is untouched" "$(sha256sum "$rec/manifest.json")" "$before"

# --- verify: the replay of clean is deterministic
"$KREWIND" verify "$rec" >"$TMP/verify.out" 2>&1
same "verify clean exits 0" "$?" 0
check "verify compared the event streams" grep -qE '^  events ok +[0-9]+ events identical' "$TMP/verify.out"
check "verify compared the serial output" grep -qE '^  serial ok' "$TMP/verify.out"

# --- replay eoi-before-switch to its last eoi event: exact pc and icount
"$KREWIND" record --scenario eoi-before-switch -q >/dev/null 2>&1
ebs=$KREWIND_TRACES/eoi-before-switch-1
read -r id icount pc < <("$KREWIND" sql "$ebs" --json \
	"SELECT id, icount, pc FROM events WHERE kind = 'eoi' ORDER BY id DESC LIMIT 1" |
	python3 -c 'import json,sys; r=json.load(sys.stdin)["rows"][0]; print(r[0], r[1], int(r[2]) & (2**64-1))')
if [ -z "${id:-}" ]; then
	not_ok "eoi-before-switch has an eoi event" "no eoi in the trace"
else
	"$KREWIND" replay "$ebs" --to "$id" --json >"$TMP/replay.json" 2>"$TMP/replay.err"
	same "replay --to the last eoi exits 0" "$?" 0
	same "replay stops at the event's icount" "$(json_field "$TMP/replay.json" icount_hex)" "$(printf '0x%x' "$icount")"
	same "replay stops at the event's pc" "$(json_field "$TMP/replay.json" pc)" "$(printf '0x%x' "$pc")"
	check "replay disassembles wrmsr at an x2APIC EOI" grep -q '"insn": "wrmsr"' "$TMP/replay.json"

	# --- gdb at that event: $pc and $cr8 match the trace; reverse-stepi / stepi
	irql=$("$KREWIND" sql "$ebs" "SELECT b FROM events WHERE kind = 'irql' AND id < $id ORDER BY id DESC LIMIT 1" | tail -1 | tr -d ' ')
	cat >"$TMP/at.gdb" <<'GDB'
printf "KR pc=0x%lx cr8=%d\n", $pc, $cr8
stepi
printf "KR next=0x%lx\n", $pc
reverse-stepi
printf "KR back=0x%lx\n", $pc
kr-icount
stepi
printf "KR again=0x%lx\n", $pc
GDB
	"$KREWIND" gdb "$ebs" --at "$id" --batch "$TMP/at.gdb" >"$TMP/gdb.out" 2>&1
	same "gdb --batch exits 0" "$?" 0
	same "gdb \$pc is the event's pc" "$(sed -n 's/^KR pc=\(0x[0-9a-f]*\) .*/\1/p' "$TMP/gdb.out")" "$(printf '0x%x' "$pc")"
	same "gdb \$cr8 is the trace's IRQL" "$(sed -n 's/^KR pc=.* cr8=\([0-9]*\)/\1/p' "$TMP/gdb.out")" "$irql"
	next=$(sed -n 's/^KR next=//p' "$TMP/gdb.out")
	check "stepi moved off the event's pc" test -n "$next" -a "$next" != "$(printf '0x%x' "$pc")"
	same "reverse-stepi goes back to the event's pc" "$(sed -n 's/^KR back=//p' "$TMP/gdb.out")" "$(printf '0x%x' "$pc")"
	check "after reverse-stepi the icount is the event's" grep -q "^icount $icount " "$TMP/gdb.out"
	same "stepi forward again reaches the same pc" "$(sed -n 's/^KR again=//p' "$TMP/gdb.out")" "$next"
fi
done_testing
