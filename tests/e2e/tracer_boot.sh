#!/usr/bin/env bash
# The tracer on our kernel under real QEMU: a clean boot and two broken
# scenarios recorded with probes/krewind.probe, checked with sqlite3.
source "$(dirname "$0")/lib.sh"
PLUGIN=build/tracer/libkrewind.so
PROBE=probes/krewind.probe

# trace SCENARIO DB [plugin args]: boots with the plugin; sets TRACE_RC.
trace() {
	local scenario=$1 db=$2; shift 2
	local args=db=$db
	[ $# -gt 0 ] && args="$args,$1"
	boot_kernel "$scenario" 30 "$TMP/$scenario.serial" -net none -plugin "$PLUGIN,$args"
	TRACE_RC=$BOOT_RC
}
q() { sqlite3 "$1" "$2"; }

for f in "$PLUGIN" "$KERNEL"; do
	[ -e "$f" ] || { skip "tracer boots" "$f not built"; done_testing; }
done

# --- clean: everything the probe-less sources and the probe give
db=$TMP/clean.db
trace clean "$db" "probe=$PROBE,symbols=$KERNEL"
check "clean boot passes under the plugin (status 33)" [ "$TRACE_RC" -eq 33 ]
check "trace database written" [ -s "$db" ]
n=$(q "$db" "SELECT count(*) FROM events WHERE kind='trap' AND a=209")
check "timer traps at vector 0xD1 ($n)" [ "$n" -gt 10 ]
n=$(q "$db" "SELECT count(*) FROM events WHERE kind='trap' AND a=209 AND pc NOT IN (SELECT pc FROM events WHERE kind='trap' AND a=209 LIMIT 1)")
check "every 0xD1 trap enters the same handler" [ "$n" -eq 0 ]
traps=$(q "$db" "SELECT count(*) FROM events WHERE kind='trap'")
irets=$(q "$db" "SELECT count(*) FROM events WHERE kind='iret' AND a>=0")
check "each trap is left by an iretq that knows its vector ($traps/$irets)" [ "$traps" -gt 0 ] && [ $((traps - irets)) -le 1 ]
n=$(q "$db" "SELECT count(*) FROM events WHERE kind='irql' AND obj=0 AND a<>b")
check "CR8 writes that change the IRQL ($n)" [ "$n" -gt 0 ]
n=$(q "$db" "SELECT count(*) FROM events WHERE kind='irql' AND obj IN (1,2)")
check "probed KeRaiseIrql/KeLowerIrql calls ($n)" [ "$n" -gt 0 ]
try=$(q "$db" "SELECT count(*) FROM events WHERE kind='lock_try'")
acq=$(q "$db" "SELECT count(*) FROM events WHERE kind='lock_acq'")
rel=$(q "$db" "SELECT count(*) FROM events WHERE kind='lock_rel'")
check "spinlock try/acquired/released balance ($try/$acq/$rel)" [ "$try" -gt 0 ] && [ "$try" -eq "$acq" ] && [ "$acq" -eq "$rel" ]
n=$(q "$db" "SELECT count(*) FROM events t JOIN events a ON a.id = (SELECT min(id) FROM events WHERE kind='lock_acq' AND vcpu=t.vcpu AND id>t.id AND obj=t.obj) WHERE t.kind='lock_try' AND a.b <> a.icount - t.icount")
check "lock_acq b = instructions spent since its try" [ "$n" -eq 0 ]
n=$(q "$db" "SELECT count(*) FROM events WHERE kind='lock_acq' AND a<2")
check "spinlocks are held at DISPATCH_LEVEL or above" [ "$n" -eq 0 ]
n=$(q "$db" "SELECT count(*) FROM events WHERE kind='switch' AND a<>0 AND b<>0 AND a<>b")
check "context switches old->new ($n)" [ "$n" -gt 10 ]
# KiSwapContext publishes New in gs:[0x188], then writes New's CR8: that
# irql event must carry the new thread (an interrupt can come in between).
swap="(SELECT addr FROM symbols WHERE name='KiSwapContext')"
swap_end="(SELECT addr + size FROM symbols WHERE name='KiSwapContext')"
n=$(q "$db" "SELECT count(*) FROM events s WHERE kind='switch' AND (SELECT thread FROM events e WHERE e.id>s.id
	AND e.vcpu=s.vcpu AND e.kind='irql' AND e.pc>=$swap AND e.pc<$swap_end ORDER BY e.id LIMIT 1) <> s.b")
m=$(q "$db" "SELECT count(*) FROM events e WHERE kind='irql' AND e.pc>=$swap AND e.pc<$swap_end")
check "KiSwapContext's CR8 write runs on the new thread (gs:[0x188]; $m writes)" [ "$n" -eq 0 ] && [ "$m" -gt 10 ]
n=$(q "$db" "SELECT count(*) FROM threads WHERE name='Idle'")
check "threads named from KTHREAD.Name" [ "$n" -eq 1 ]
eoi=$(q "$db" "SELECT count(*) FROM events WHERE kind='eoi' AND a=1")
check "x2APIC EOIs ($eoi)" [ "$eoi" -gt 10 ]
passed=$(sed -n 's/^selftest: \([0-9]*\) passed, 0 failed.*/\1/p' "$TMP/clean.serial")
n=$(q "$db" "SELECT obj||'/'||b FROM events WHERE kind='marker' AND a=2")
check "self-test result marker matches the serial line ($n vs $passed/0)" [ -n "$passed" ] && [ "$n" = "$passed/0" ]
line=$(q "$db" "SELECT text FROM events WHERE kind='marker' AND a=3 AND text LIKE 'selftest: % passed, % failed'")
check "serial lines recorded as markers" [ "$line" = "selftest: $passed passed, 0 failed" ]
n=$(q "$db" "SELECT count(*) FROM events WHERE kind='wait'")
m=$(q "$db" "SELECT count(*) FROM events WHERE kind='wait_end'")
check "waits end ($n waits, $m ends, through KiWait's tail call)" [ "$n" -gt 0 ] && [ "$n" -eq "$m" ]
n=$(q "$db" "SELECT count(*) FROM events WHERE kind='mutex_acq' AND (b IS NULL OR b=0)")
m=$(q "$db" "SELECT count(*) FROM events WHERE kind='mutex_acq' AND b<>thread")
check "mutex_acq names its owner (KiSatisfyMutexWait rsi), also when granted to a waiter ($m)" [ "$n" -eq 0 ] && [ "$m" -gt 0 ]
n=$(q "$db" "SELECT count(*) FROM events WHERE kind='lock_init' AND a=0")
check "lock_init has the caller's return address" [ "$n" -eq 0 ] && [ "$(q "$db" "SELECT count(*) FROM events WHERE kind='lock_init'")" -gt 0 ]
n=$(q "$db" "SELECT count(*) FROM events WHERE icount < (SELECT max(icount) FROM events e2 WHERE e2.vcpu=events.vcpu AND e2.id<events.id)")
check "icounts never go backwards on a vCPU" [ "$n" -eq 0 ]
n=$(q "$db" "SELECT count(*) FROM symbols WHERE name='KiSwapContext'")
check "ELF symbols copied into the trace" [ "$n" -eq 1 ]
id=$(q "$db" "SELECT value FROM meta WHERE key='kernel_build_id'")
if readelf -n "$KERNEL" 2>/dev/null | grep -q 'Build ID'; then
	want=$(readelf -n "$KERNEL" | sed -n 's/.*Build ID: //p')
else
	want=sha256:$(sha256sum "$KERNEL" | cut -d' ' -f1)
fi
check "metadata kernel_build_id is the ELF's build-id or sha256 ($id)" [ "$id" = "$want" ]
for k in probe symbols started_at icount_total tracer_version; do
	v=$(q "$db" "SELECT value FROM meta WHERE key='$k'")
	check "metadata $k is set ($v)" [ -n "$v" ]
done

# --- eoi-before-switch: EOI, then a switch, inside one clock trap
db=$TMP/ebs.db
trace eoi-before-switch "$db" "probe=$PROBE,symbols=$KERNEL"
check "eoi-before-switch ran (status $TRACE_RC)" [ "$TRACE_RC" -eq 37 ]
# a clock trap T, an eoi E and a switch S after it, no trap or iret between T and S
n=$(q "$db" "SELECT count(*) FROM events t WHERE t.kind='trap' AND t.a=209
	AND EXISTS (SELECT 1 FROM events s WHERE s.kind='switch' AND s.vcpu=t.vcpu AND s.id>t.id
	  AND NOT EXISTS (SELECT 1 FROM events x WHERE x.vcpu=t.vcpu AND x.id>t.id AND x.id<s.id AND x.kind IN ('trap','iret'))
	  AND EXISTS (SELECT 1 FROM events e WHERE e.kind='eoi' AND e.vcpu=t.vcpu AND e.id>t.id AND e.id<s.id))")
check "an eoi then a switch inside one clock trap, before its iretq ($n)" [ "$n" -gt 0 ]
n=$(q "$db" "SELECT count(*) FROM events WHERE kind='bugcheck' AND a=226")
check "the bugcheck 0xE2 is recorded" [ "$n" -eq 1 ]

# --- lock-order: ScenarioLockA/B taken in both orders
db=$TMP/lo.db
trace lock-order "$db" "probe=$PROBE,symbols=$KERNEL"
check "lock-order ran (status $TRACE_RC)" [ "$TRACE_RC" -eq 39 ]
order() { # FIRST SECOND: acquisitions of SECOND while the same thread holds FIRST
	q "$db" "SELECT count(*) FROM events b JOIN locks lb ON lb.addr=b.obj AND lb.name='$2'
	  WHERE b.kind='lock_acq' AND EXISTS (SELECT 1 FROM events a JOIN locks la ON la.addr=a.obj AND la.name='$1'
	    WHERE a.kind='lock_acq' AND a.thread=b.thread AND a.id<b.id
	    AND NOT EXISTS (SELECT 1 FROM events r WHERE r.kind='lock_rel' AND r.obj=a.obj AND r.id>a.id AND r.id<b.id))"
}
ab=$(order ScenarioLockA ScenarioLockB)
ba=$(order ScenarioLockB ScenarioLockA)
check "ScenarioLockB acquired while holding ScenarioLockA ($ab)" [ "$ab" -gt 0 ]
check "ScenarioLockA acquired while holding ScenarioLockB ($ba)" [ "$ba" -gt 0 ]
n=$(q "$db" "SELECT text FROM events WHERE kind='marker' AND a=1")
check "scenario marker names the scenario ($n)" [ "$n" = "lock-order" ]

done_testing
