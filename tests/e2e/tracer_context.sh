#!/usr/bin/env bash
# The execution state the tracer records on our kernel (schema 2, issue #12):
# context (process, hardirq, the DPC softirq), RFLAGS.IF, the lock ops the
# probe declares (irq=raise-dispatch/at-dispatch, restore=), call sites, DPC
# queue/run and sleep events; and how `krewind events` shows them.
source "$(dirname "$0")/lib.sh"
PLUGIN=build/tracer/libkrewind.so
PROBE=probes/krewind.probe

for f in "$PLUGIN" "$KERNEL"; do
	[ -e "$f" ] || { skip "tracer context" "$f not built"; done_testing; }
done
trace() { # SCENARIO DB TIMEOUT: sets TRACE_RC
	boot_kernel "$1" "$3" "$TMP/$1.serial" -net none -plugin "$PLUGIN,db=$2,probe=$PROBE,symbols=$KERNEL"
	TRACE_RC=$BOOT_RC
}
q() { sqlite3 "$db" "$1"; }
addr() { q "SELECT addr FROM symbols WHERE name='$1'"; }
in_fn() { echo "(pc >= $(addr "$1") AND pc < (SELECT addr + size FROM symbols WHERE name='$1'))"; }

db=$TMP/clean.db
trace clean "$db" 30
check "clean boot under the plugin (status $TRACE_RC)" [ "$TRACE_RC" -eq 33 ]

# KeAcquireSpinLockRaiseToDpc: declared irq=raise-dispatch; taken by threads
# with interrupts on.
raise=$(addr KeAcquireSpinLockRaiseToDpc)
n=$(q "SELECT count(*) FROM events WHERE kind='lock_try' AND pc=$raise")
m=$(q "SELECT count(*) FROM events WHERE kind='lock_try' AND pc=$raise AND irq='raise-dispatch' AND flavor='spin'
	AND ctx='process' AND if_on=1")
check "KeAcquireSpinLockRaiseToDpc: irq=raise-dispatch, IF on, process context ($m of $n)" [ "$n" -gt 0 ] && [ "$m" -eq "$n" ]
n=$(q "SELECT count(*) FROM events WHERE kind='lock_acq' AND irq='raise-dispatch' AND if_on=1 AND ctx='process'")
check "its acquisitions too ($n)" [ "$n" -gt 0 ]
# Call sites: the return address at entry, in the caller, never in the lock function.
n=$(q "SELECT count(*) FROM events WHERE kind IN ('lock_try','lock_acq','lock_rel','wait','wait_end','sleep','lock_init')
	AND (caller IS NULL OR caller = 0)")
check "every lock, wait and sleep event has its call site" [ "$n" -eq 0 ]
n=$(q "SELECT count(*) FROM events e WHERE kind='lock_acq'
	AND caller >= (SELECT addr FROM symbols WHERE addr <= e.pc ORDER BY addr DESC LIMIT 1)
	AND caller < (SELECT addr + size FROM symbols WHERE addr <= e.pc ORDER BY addr DESC LIMIT 1)")
check "a lock_acq's call site is outside the lock function" [ "$n" -eq 0 ]
n=$(q "SELECT count(*) FROM events t JOIN events a ON a.id = (SELECT min(id) FROM events WHERE kind='lock_acq'
	AND vcpu=t.vcpu AND obj=t.obj AND thread=t.thread AND id>t.id) WHERE t.kind='lock_try' AND a.caller <> t.caller")
check "a lock_acq has the call site of its lock_try" [ "$n" -eq 0 ]
# KeReleaseSpinLock(Lock, NewIrql): restore=rsi:1 lands in lock_rel's b.
rel=$(addr KeReleaseSpinLock)
n=$(q "SELECT count(*) FROM events WHERE kind='lock_rel' AND pc=$rel")
m=$(q "SELECT count(*) FROM events r WHERE kind='lock_rel' AND pc=$rel AND irq='raise-dispatch'
	AND b = (SELECT a FROM events t WHERE t.kind='lock_try' AND t.obj=r.obj AND t.id<r.id ORDER BY t.id DESC LIMIT 1)")
check "KeReleaseSpinLock restores the IRQL its acquire raised from (b; $m of $n)" [ "$n" -gt 0 ] && [ "$m" -eq "$n" ]
n=$(q "SELECT count(*) FROM events WHERE kind='lock_rel' AND pc=$(addr KeReleaseSpinLockFromDpcLevel) AND irq<>'at-dispatch'")
check "KeReleaseSpinLockFromDpcLevel is irq=at-dispatch" [ "$n" -eq 0 ]

# Hardirq: the clock interrupt (vector 0xD1) and what its handler does.
n=$(q "SELECT count(*) FROM events WHERE kind='trap' AND a=209")
m=$(q "SELECT count(*) FROM events WHERE kind='trap' AND a=209 AND ctx='hardirq' AND NOT flags & 4")
check "clock traps open hardirq context, not software traps ($m of $n)" [ "$n" -gt 10 ] && [ "$m" -eq "$n" ]
n=$(q "SELECT count(*) FROM events WHERE kind='eoi'")
m=$(q "SELECT count(*) FROM events WHERE kind='eoi' AND ctx='hardirq'")
check "EOIs are sent in hardirq context ($m of $n)" [ "$n" -gt 10 ] && [ "$m" -eq "$n" ]
n=$(q "SELECT count(*) FROM events WHERE $(in_fn KiClockInterrupt) AND ctx<>'hardirq'")
check "every event inside KiClockInterrupt is in hardirq context" [ "$n" -eq 0 ]
# A clock tick can come in while the ISR, on its way out, has lowered the
# IRQL: a nested hardirq. Leaving it returns to hardirq; leaving the others
# does not. One exception: a tick in the four instructions of KiSwapContext
# between publishing the new thread (gs:[0x188]) and switching stacks is
# counted on the new thread (the tracer knows threads by gs:[0x188]), whose
# frames it then ends up closing.
n=$(q "SELECT count(*) FROM events WHERE kind='iret' AND a=209 AND ctx='hardirq'")
m=$(q "SELECT count(*) FROM events t WHERE kind='trap' AND a=209
	AND (SELECT ctx FROM events p WHERE p.vcpu=t.vcpu AND p.thread=t.thread AND p.id<t.id ORDER BY p.id DESC LIMIT 1)='hardirq'")
w=$(q "SELECT count(*) FROM events t WHERE kind='trap' AND a=209
	AND (SELECT kind FROM events p WHERE p.vcpu=t.vcpu AND p.id<t.id ORDER BY p.id DESC LIMIT 1)='switch'")
check "leaving a clock trap returns to the context it interrupted ($n to hardirq, $m nested ticks, $w in a switch)" \
	[ "$n" -ge "$m" ] && [ "$n" -le $((m + w)) ]

# The DPC context: KiRetireDpcList is declared `context softirq`.
n=$(q "SELECT count(*) FROM events WHERE kind='defer_queue' AND pc=$(addr KeInsertQueueDpc) AND obj<>0")
check "KeInsertQueueDpc: defer_queue with the KDPC ($n)" [ "$n" -gt 0 ]
n=$(q "SELECT count(*) FROM events WHERE kind='defer_run'")
m=$(q "SELECT count(*) FROM events r WHERE kind='defer_run' AND ctx='softirq'
	AND obj IN (SELECT obj FROM events WHERE kind='defer_queue' AND id<r.id)")
check "every DPC runs in softirq context, after it was queued ($m of $n)" [ "$n" -gt 0 ] && [ "$m" -eq "$n" ]
n=$(q "SELECT count(*) FROM events WHERE $(in_fn KiRetireDpcList) AND ctx<>'softirq'")
check "every event inside KiRetireDpcList is in softirq context" [ "$n" -eq 0 ]
n=$(q "SELECT count(*) FROM events WHERE kind='irql' AND $(in_fn KiRetireDpcList)")
check "...and there are some ($n)" [ "$n" -gt 0 ]
# Sleeps: KeDelayExecutionThread(Mode, Alertable, Interval) with timeout=[rdx].
n=$(q "SELECT count(*) FROM events WHERE kind='sleep' AND b<0 AND ctx='process'")
check "KeDelayExecutionThread: sleep events with a relative timeout ($n)" [ "$n" -gt 0 ]
# Nothing here comes from user mode or is an iret to self.
n=$(q "SELECT count(*) FROM events WHERE flags & 10")
check "no user-mode traps, no iret to self in our kernel" [ "$n" -eq 0 ]

# krewind events shows the state after the description, --json as fields.
build/krewind events "$db" --kind lock_acq --limit 1 >"$TMP/ev" 2>&1
check "krewind events: [process, IF on, raise-dispatch, from ...]" \
	grep -Eq 'acquire .*\[process, IF on, raise-dispatch, from [A-Za-z_]+\+0x[0-9a-f]+\]$' "$TMP/ev"
build/krewind events "$db" --kind trap --limit 1 --json >"$TMP/ev.json" 2>&1
check "krewind events --json: ctx, if, flags, preempt, tid, caller" \
	jq -e '.[0] | .ctx == "hardirq" and (.if | type) == "boolean" and .preempt == null and .tid == null and .caller == null' "$TMP/ev.json"

# spinlock-high-irql: the clock ISR takes ScenarioIsrLock (KeAcquireSpinLockAtDpcLevel)
# while a thread holds it: hangs; the trace up to then is what we look at.
db=$TMP/high.db
trace spinlock-high-irql "$db" 10
check "spinlock-high-irql hangs (killed: $TRACE_RC)" [ "$TRACE_RC" -eq 124 ]
n=$(q "SELECT count(*) FROM events WHERE kind='lock_try' AND lock_name='ScenarioIsrLock' AND ctx='hardirq'
	AND irq='at-dispatch' AND pc=$(addr KeAcquireSpinLockAtDpcLevel)")
check "the ISR's lock_try on ScenarioIsrLock is in hardirq context, irq=at-dispatch ($n)" [ "$n" -gt 0 ]
n=$(q "SELECT count(*) FROM events WHERE kind='lock_acq' AND lock_name='ScenarioIsrLock' AND ctx='process'
	AND irq='raise-dispatch'")
check "the thread took it in process context with KeAcquireSpinLockRaiseToDpc" [ "$n" -eq 1 ]

done_testing
