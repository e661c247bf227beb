#!/usr/bin/env bash
# The tracer's refusals (one clear line, QEMU does not start the guest) and a
# stripped kernel, which is still traced from its instructions alone.
source "$(dirname "$0")/lib.sh"
PLUGIN=build/tracer/libkrewind.so

for f in "$PLUGIN" "$KERNEL"; do
	[ -e "$f" ] || { skip "tracer errors" "$f not built"; done_testing; }
done

# run_plugin ARGS: QEMU with the plugin only (the guest never matters: every
# case here must fail before it runs); sets RC and ERR (stderr).
run_plugin() {
	timeout -s KILL 20 qemu-system-x86_64 -display none -no-reboot -monitor none -serial none \
		-net none -plugin "$PLUGIN,$1" </dev/null >"$TMP/out" 2>"$TMP/err"
	RC=$?
	ERR=$(grep '^krewind: error:' "$TMP/err")
}
one_line() { [ "$(grep -c '^krewind: error:' "$TMP/err")" -eq 1 ]; }

printf 'KeRaiseIrql raise new=rdi:1\nKeFrobnicateThings signal object=rdi\n' >"$TMP/missing.probe"
run_plugin "db=$TMP/a.db,probe=$TMP/missing.probe,symbols=$KERNEL"
check "probe naming a missing symbol: QEMU exits 1" [ "$RC" -eq 1 ]
check "  one line naming the symbol, the probe line and the ELF" \
	[ "$ERR" = "krewind: error: $TMP/missing.probe:2: symbol 'KeFrobnicateThings' not found in $KERNEL" ]
check "  no trace left behind" [ ! -e "$TMP/a.db" ]

printf 'KeRaiseIrql raise new=rdi:1\nKeLowerIrql lowr new=rdi\n' >"$TMP/bad.probe"
run_plugin "db=$TMP/b.db,probe=$TMP/bad.probe,symbols=$KERNEL"
check "probe syntax error: QEMU exits 1" [ "$RC" -eq 1 ] && one_line
check "  the message has file:line" \
	[ "$ERR" = "krewind: error: $TMP/bad.probe:2: unknown event 'lowr' for symbol 'KeLowerIrql'" ]

run_plugin "db=$TMP/c.db,colour=blue"
check "unknown plugin argument refused" [ "$RC" -eq 1 ] && one_line && [[ "$ERR" == *"unknown plugin argument 'colour=blue'"* ]]
run_plugin "probe=probes/krewind.probe,symbols=$KERNEL"
check "missing db= refused" [ "$RC" -eq 1 ] && one_line && [[ "$ERR" == *"needs db=FILE"* ]]
run_plugin "db=$TMP/d.db,probe=probes/krewind.probe"
check "probe= without symbols= refused" [ "$RC" -eq 1 ] && one_line && [[ "$ERR" == *"needs symbols=ELF"* ]]
run_plugin "db=$TMP/e.db,symbols=$TMP/nope.elf"
check "missing symbols file refused" [ "$RC" -eq 1 ] && one_line && [[ "$ERR" == *"cannot open $TMP/nope.elf"* ]]
run_plugin "db=$TMP/f.db,symbols=probes/krewind.probe"
check "symbols= not an ELF refused" [ "$RC" -eq 1 ] && one_line && [[ "$ERR" == *"not an ELF file"* ]]
: >"$TMP/exists.db"
run_plugin "db=$TMP/exists.db"
check "an existing trace is never overwritten" [ "$RC" -eq 1 ] && one_line && [ ! -s "$TMP/exists.db" ]

# A stripped kernel: no probe possible, but traps, CR8, EOIs and serial lines.
strip -o "$TMP/kernel.stripped" "$KERNEL"
run_plugin "db=$TMP/g.db,probe=probes/krewind.probe,symbols=$TMP/kernel.stripped"
check "probe against a stripped kernel fails on its first symbol" [ "$RC" -eq 1 ] && one_line &&
	[[ "$ERR" == *"probes/krewind.probe:"*": symbol 'KeRaiseIrql' not found in $TMP/kernel.stripped" ]]
KERNEL=$TMP/kernel.stripped boot_kernel clean 30 "$TMP/stripped.serial" -net none -plugin "$PLUGIN,db=$TMP/s.db"
check "stripped kernel boots clean under the plugin" [ "$BOOT_RC" -eq 33 ]
for kind in trap iret irql eoi; do
	n=$(sqlite3 "$TMP/s.db" "SELECT count(*) FROM events WHERE kind='$kind'")
	check "  stripped kernel still has $kind events ($n)" [ "$n" -gt 0 ]
done
n=$(sqlite3 "$TMP/s.db" "SELECT count(*) FROM events WHERE kind IN ('lock_try','switch','wait')")
check "  and no probe events" [ "$n" -eq 0 ]
n=$(sqlite3 "$TMP/s.db" "SELECT count(*) FROM events WHERE kind='marker' AND a=3 AND text LIKE '%passed, 0 failed'")
check "  serial lines are there" [ "$n" -eq 1 ]

# symbols= may be another ELF than the booted one: the unstripped twin.
KERNEL=$TMP/kernel.stripped boot_kernel clean 30 "$TMP/twin.serial" -net none \
	-plugin "$PLUGIN,db=$TMP/t.db,probe=probes/krewind.probe,symbols=$KERNEL"
n=$(sqlite3 "$TMP/t.db" "SELECT count(*) FROM events WHERE kind='switch'")
check "stripped kernel + unstripped twin's symbols: probes work ($n switches)" [ "$BOOT_RC" -eq 33 ] && [ "$n" -gt 0 ]

done_testing
