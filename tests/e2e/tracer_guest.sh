#!/usr/bin/env bash
# The tracer on a guest that is not our kernel (tracer/testguest/guest.S):
# traps found through its lidt, a page fault's error code, xAPIC EOIs written
# over MMIO through either register, an iretq to self, what the CPU state says
# at each trap, serial lines; and the icounts of those events under replay,
# past a fault in the middle of a block QEMU translated at another virtual
# address of the same page (the count must find the faulting instruction).
source "$(dirname "$0")/lib.sh"
PLUGIN=build/tracer/libkrewind.so
GUEST=build/tracer/testguest.elf

for f in "$PLUGIN" "$GUEST"; do
	[ -e "$f" ] || { skip "tracer guest" "$f not built"; done_testing; }
done
guest() { # [qemu args]: killed after 60 s whatever happens
	timeout -s KILL 60 qemu-system-x86_64 -cpu max -m 128M -kernel "$GUEST" -display none \
		-no-reboot -net none -device isa-debug-exit,iobase=0xf4,iosize=0x04 "$@"
}
q() { sqlite3 "$TMP/g.db" "$1"; }

# A probe for this guest: its puts(rsi = string) as a text marker.
printf 'thread gs:0x10\nputs marker text=str:rsi\n' >"$TMP/guest.probe"
guest -serial "file:$TMP/g.serial" -monitor none -icount "shift=auto,rr=record,rrfile=$TMP/r.bin" \
	-plugin "$PLUGIN,db=$TMP/g.db,probe=$TMP/guest.probe,symbols=$GUEST" </dev/null >/dev/null 2>&1
check "test guest recorded with the plugin (status 33)" [ $? -eq 33 ]
sym() { printf '%d' "0x$(nm "$GUEST" | awk -v s="$1" '$3 == s {print $1}')"; }

n=$(q "SELECT count(*) FROM events WHERE kind='trap' AND a=3 AND pc=$(sym bp_handler)")
check "int3: one trap at vector 3 in bp_handler" [ "$n" -eq 1 ]
n=$(q "SELECT count(*) FROM events WHERE kind='trap' AND a=14 AND b=0 AND pc=$(sym pf_handler)")
check "page faults: two at vector 14 with error code 0 (not present, read, ring 0)" [ "$n" -eq 2 ]
c=$(q "SELECT value FROM meta WHERE key='tracer_counters'")
check "every fault and MMIO rerun found its block ($(grep -o 'unmatched=[0-9]*' <<<"$c"))" grep -q ' unmatched=0' <<<"$c"
check "MMIO accesses in the middle of a block were rerun ($(grep -o 'io_reruns=[0-9]*' <<<"$c"))" \
	grep -Eq ' io_reruns=[1-9]' <<<"$c"
ticks=$(q "SELECT count(*) FROM events WHERE kind='trap' AND a=48")
eois=$(q "SELECT count(*) FROM events WHERE kind='eoi' AND a=2")
check "xAPIC timer traps and MMIO EOIs pair up ($ticks/$eois)" [ "$ticks" -ge 5 ] && [ "$ticks" -eq "$eois" ]
n=$(q "SELECT count(*) FROM events WHERE kind='iret' AND a IN (3, 14, 48) AND NOT flags & 8")
check "every trap left by an iretq with its vector" [ "$n" -eq $((ticks + 3)) ]
# Execution state (schema 2): what the CPU said at each trap.
n=$(q "SELECT flags || ctx FROM events WHERE kind='trap' AND a=3")
check "int3: a software trap (DB_F_SOFT), IF off, process context ($n)" [ "$n" = "4process" ]
n=$(q "SELECT group_concat(flags || ctx) FROM events WHERE kind='trap' AND a=14")
check "page faults: not software traps, IF off, process context ($n)" [ "$n" = "0process,0process" ]
n=$(q "SELECT count(*) FROM events WHERE kind='trap' AND a=48 AND ctx='hardirq' AND flags=1")
check "timer traps: hardirq, IF on in the interrupted loop ($n/$ticks)" [ "$n" -eq "$ticks" ]
n=$(q "SELECT count(*) FROM events WHERE kind='eoi' AND ctx='hardirq'")
check "EOIs are sent in hardirq context" [ "$n" -eq "$eois" ]
n=$(q "SELECT count(DISTINCT pc) FROM events WHERE kind='eoi'")
check "EOIs found whichever register holds the APIC page ($n store sites)" [ "$n" -eq 2 ]
n=$(q "SELECT count(*) || '/' || sum(a = -1) || '/' || sum(pc = $(sym iret_to_self) + 17) FROM events WHERE kind='iret' AND flags & 8")
check "the iretq to self is flagged DB_F_NOFRAME and closes no frame ($n)" [ "$n" = "1/1/1" ]
build/krewind events "$TMP/g.db" --kind iret 2>&1 | grep -q 'iret to self'
check "krewind events says \"iret to self\"" [ $? -eq 0 ]
n=$(q "SELECT group_concat(text, '|') FROM events WHERE kind='marker' AND a=3")
check "serial lines ($n)" [ "$n" = "testguest: hello|testguest: breakpoint|testguest: 5 ticks" ]
n=$(q "SELECT group_concat(text, '|') FROM events WHERE kind='marker' AND a=0 AND pc=$(sym puts)")
nl=$'\n' # ($(...) drops the last one)
check "probed puts: text markers read from str:rsi" \
	[ "$n" = "testguest: hello$nl|testguest: breakpoint$nl|testguest: 5 ticks" ]

# Replay to: the first xAPIC EOI (an MMIO store, re-executed by QEMU in icount
# mode), and the last serial line (after the page faults).
{
	echo "target remote $TMP/gdb.sock"
	q "SELECT icount, pc, kind FROM events WHERE id IN
		((SELECT min(id) FROM events WHERE kind='eoi'), (SELECT max(id) FROM events WHERE kind='marker' AND a=3))
		ORDER BY icount" | while IFS='|' read -r ic pc kind; do
		echo "monitor replay_break $ic"
		echo "continue"
		echo "printf \"$kind $pc %lu\\n\", \$pc"
	done
} >"$TMP/gdb.cmd"
rm -f "$TMP/gdb.sock"
guest -icount "shift=auto,rr=replay,rrfile=$TMP/r.bin" -S -gdb "unix:$TMP/gdb.sock,server=on,wait=off" \
	-serial null -monitor none </dev/null >/dev/null 2>&1 &
qpid=$!
for _ in $(seq 50); do [ -S "$TMP/gdb.sock" ] && break; sleep 0.1; done
timeout -s KILL 60 gdb -nx -batch -x "$TMP/gdb.cmd" </dev/null >"$TMP/gdb.out" 2>&1
kill "$qpid" 2>/dev/null
wait "$qpid" 2>/dev/null
for kind in eoi marker; do
	read -r _ want got <<<"$(grep "^$kind " "$TMP/gdb.out")"
	check "replay_break to the $kind event stops at its pc" [ -n "$want" ] && [ "$want" = "$got" ]
done

done_testing
