/*
 * dispatcher.pml: the krewind kernel's dispatcher on its one processor -
 * the dispatcher lock handed across KiSwapContext, the ready queue, the DPC
 * queue drained by the DISPATCH software interrupt, the clock interrupt and
 * its EOI, IRQL (CR8) and the interrupt flag - as a Promela model for spin.
 *
 * What runs: the idle thread (sched.c KiIdleLoop), a waiter thread TA that
 * waits on a notification event with no timeout, and a signaller TB that
 * first sleeps (KeDelayExecutionThread: a kernel timer, expired by the timer
 * DPC) and then sets the event; both then spin through a few clock ticks and
 * terminate. A Clock process is the APIC timer: it raises the interrupt
 * request whenever the clock runs and none is pending.
 *
 * Uniprocessor: every step of a thread is guarded by `cur == me` (only the
 * current thread executes); an interrupt is taken *by* the current thread's
 * process at an interrupt point, as the CPU takes it on that thread's
 * instruction stream, when IF is set, CR8 is below CLOCK_LEVEL and the APIC
 * has the vector pending and not in service. Steps that the kernel does with
 * interrupts off, at HIGH_LEVEL, or at CLOCK_LEVEL inside the ISR are atomic.
 *
 * Checked (tests/model/run.sh):
 *  - safety: assertions below, and no invalid end state (a deadlock: the
 *    current thread blocks, e.g. on the dispatcher lock held by a thread that
 *    cannot run, or the system halts with a thread still waiting);
 *  - liveness (ltl done): every run ends with both threads terminated - no
 *    lost wake-up (of the event or of the timer) and no livelock.
 *
 * Variants (-D):
 *  EOI_BEFORE_SWITCH  the eoi-before-switch scenario (scenario.c): the clock
 *                     vector on IST2 (a stack shared by every clock interrupt)
 *                     and KiQuantumEndSwitchInIsr after the EOI. Expected: an
 *                     assertion failure at iretq - the interrupt frame was
 *                     overwritten by a nested clock interrupt of the thread
 *                     switched in.
 *  CLOCK_ON_IST       only the IST2 move, with the correct switch path.
 *  ISR_TAKES_DISPATCHER_LOCK  the mistake clock.c's header warns about: the
 *                     ISR spinning on the dispatcher lock at CLOCK_LEVEL.
 *                     Expected: an invalid end state (deadlock).
 *  WAIT_TESTS_BEFORE_LOCK  the classic lost wake-up: KiWait tests the event
 *                     before taking the dispatcher lock. Expected: the
 *                     idle-halt assertion (safety) and `done` (liveness) fail.
 *
 * Abstractions: KI_QUANTUM (3) is QUANTUM (2) ticks; the tick count is not
 * kept, only the sleeping thread's ticks to go; the event is a notification
 * event with one waiter; thread creation is done before the model starts (the
 * threads are ready, with KeCreateThread's frame: DISPATCH_LEVEL, IF set).
 */

#define IDLE 0
#define TA 1
#define TB 2
#define NTHREADS 3
#define NONE 255

#define PASSIVE_LEVEL 0
#define DISPATCH_LEVEL 2
#define CLOCK_LEVEL 13
#define HIGH_LEVEL 15

#define INITIALIZED 0
#define READY 1
#define RUNNING 2
#define WAITING 3
#define TERMINATED 4

#define QUANTUM 2
#define DELAY_TICKS 1
#define BUSY 2

#ifdef EOI_BEFORE_SWITCH
#define CLOCK_ON_IST
#endif

byte cur = IDLE;              /* gs:[0x188], KPCR.Prcb.CurrentThread */
byte irql = PASSIVE_LEVEL;    /* CR8 */
bool intf = 1;                /* RFLAGS.IF */
byte swapIrql[NTHREADS];      /* KTHREAD.SwapIrql, saved by KiSwapContext */
bool swapIf[NTHREADS];        /* RFLAGS saved by KiSwapContext's pushfq */
byte state[NTHREADS];         /* KTHREAD.State */
byte quantum[NTHREADS];       /* KTHREAD.Quantum */
byte dlock = NONE;            /* KiDispatcherLock: holder, NONE when 0 */
bool dir;                     /* Prcb.DispatchInterruptRequested */
bool quantumEnd;              /* Prcb.QuantumEnd */
chan readyq = [NTHREADS] of { byte }; /* KiReadyListHead, FIFO */
bool clockRunning = 1;        /* HalStopClock / HalStartClock */
bool irr;                     /* APIC: clock vector requested */
bool inService;               /* APIC: clock vector in service until EOI */
bool dpcQueued;               /* KiTimerExpirationDpc.Inserted (the DPC queue) */
bool timerArmed;              /* TB's KTIMER in KiTimerListHead */
byte timerDue;                /* its DueTick - KeTickCount */
bool eventSignalled;          /* the event's SignalState */
byte eventWaiter = NONE;      /* its wait list (one KWAIT_BLOCK) */
byte istFrame = NONE;         /* whose interrupt frame is on the IST2 stack */

#define CAN_INTR (intf && irql < CLOCK_LEVEL && irr && !inService)

/* sched.c:60 KiReadyThread. Dispatcher lock held. */
inline ready_thread(t)
{
	state[t] = READY;
	quantum[t] = QUANTUM;
	readyq!t;
	if
	:: cur == IDLE -> dir = 1 /* idle gives way at once */
	:: else
	fi
}

/* wait.c:59 KiUnwaitThread (KiRemoveTimer for TB's own timer). */
inline unwait(t)
{
	if
	:: eventWaiter == t -> eventWaiter = NONE
	:: else
	fi;
	if
	:: t == TB -> timerArmed = 0
	:: else
	fi;
	ready_thread(t)
}

/* sched.c:77-90 KiSwitchTo and trap.S:138-163 KiSwapContext: saves CR8 and
 * RFLAGS of Old, publishes New, resumes New with its own CR8 and RFLAGS. The
 * lock stays held; New takes it over (sched.c:91 or :167). */
inline switch_to(me, new)
{
	assert(dlock == me);
	state[new] = RUNNING;
	swapIrql[me] = irql;
	swapIf[me] = intf;
	cur = new;
	irql = swapIrql[new];
	intf = swapIf[new]
}

/* sched.c:96 KiSwapThread: the next ready thread, or idle. */
inline swap_thread(me, nxt)
{
	if
	:: len(readyq) > 0 -> readyq?nxt
	:: else -> nxt = IDLE
	fi;
	switch_to(me, nxt)
}

/* The CPU delivers vector 0xD1: interrupt gate (IF cleared), trap.S:68
 * KiClockInterruptEntry / KiTrapCommon; with IST2 the frame is written at the
 * top of the shared stack whatever is there. trap.c KiInterruptDispatch:
 * CR8 = vector >> 4 = CLOCK_LEVEL, then _enable(). */
inline deliver(me, saved)
{
	cur == me && CAN_INTR ->
	irr = 0;
	inService = 1;
#ifdef CLOCK_ON_IST
	istFrame = me;
#endif
	saved = irql;
	irql = CLOCK_LEVEL;
	intf = 1
}

/* clock.c:306 KiClockInterrupt up to its EOI. */
inline clock_body(me)
{
	/* ++KeTickCount; tick >= KiNextTimerDue -> KeInsertQueueDpc (dpc.c:128,
	 * which requests the DISPATCH interrupt only when it inserts) */
	if
	:: timerArmed && timerDue > 0 -> timerDue--
	:: else
	fi;
	if
	:: timerArmed && timerDue == 0 && !dpcQueued -> dpcQueued = 1; dir = 1
	:: else
	fi;
	/* clock.c:319-324: charge the quantum */
	if
	:: me != IDLE ->
		quantum[me]--;
		if
		:: quantum[me] == 0 -> quantum[me] = QUANTUM; quantumEnd = 1; dir = 1
		:: else
		fi
	:: else
	fi;
#ifdef ISR_TAKES_DISPATCHER_LOCK
	dlock == NONE; /* spinning at CLOCK_LEVEL: blocks for good if held */
#endif
	inService = 0 /* clock.c:327 KiApicEndOfInterrupt */
}

/* clock.c:328 and sched.c:133 KiQuantumEndSwitchInIsr: the planted bug. */
inline isr_switch(me, nxt, got)
{
#ifdef EOI_BEFORE_SWITCH
	atomic {
		cur == me ->
		got = 0;
		nxt = NONE;
		if
		:: quantumEnd && me != IDLE && dlock == NONE -> /* KiTryToAcquireDispatcherLock */
			dlock = me;
			got = 1;
			quantumEnd = 0;
			if
			:: len(readyq) > 0 ->
				readyq?nxt;
				state[me] = READY;
				readyq!me;
				switch_to(me, nxt)
			:: else
			fi
		:: else
		fi
	}
	atomic {
		cur == me ->
		if
		:: got ->
			dlock = me; /* sched.c:91, handed over (a no-op if no switch) */
			dlock = NONE /* sched.c:148 */
		:: else
		fi
	}
#endif
	skip
}

/* trap.S:107-126: pop the frame and iretq (IF back on). */
inline iret(me)
{
#ifdef CLOCK_ON_IST
	assert(istFrame == me); /* the frame popped is the one this interrupt pushed */
	istFrame = NONE;
#endif
	intf = 1
}

/* A clock interrupt taken at DISPATCH_LEVEL (in the DISPATCH software
 * interrupt or a DPC): KiLowerIrql(old >= DISPATCH) only writes CR8. */
inline clock_isr_disp(me)
{
	atomic { deliver(me, nOld); clock_body(me) }
	isr_switch(me, nNext, nGot);
	atomic {
		cur == me ->
		assert(nOld >= DISPATCH_LEVEL);
		intf = 0; /* trap.c _disable() */
		irql = nOld; /* KiLowerIrql(old) */
		iret(me)
	}
}

/* An interrupt point at DISPATCH_LEVEL with interrupts enabled. */
inline ipoint_disp(me)
{
	if
	:: clock_isr_disp(me)
	:: cur == me -> skip
	fi
}

/* sched.c:35 KiAcquireDispatcherLock when already at DISPATCH_LEVEL. On one
 * processor a held lock is never released while we spin: blocking here is an
 * invalid end state, i.e. the deadlock. */
inline acquire_at_dispatch(me)
{
	atomic { cur == me && dlock == NONE -> dlock = me }
}

/* clock.c:260 KiTimerExpiration, the timer DPC. */
inline timer_expiration(me)
{
	acquire_at_dispatch(me);
	ipoint_disp(me);
	atomic {
		cur == me ->
		if
		:: timerArmed && timerDue == 0 -> timerArmed = 0; unwait(TB)
		:: else
		fi;
		dlock = NONE /* KiReleaseDispatcherLock(DISPATCH_LEVEL) */
	}
}

/* dpc.c:147 KiRetireDpcList: the queue is read at HIGH_LEVEL (atomic). */
inline retire_dpc_list(me)
{
	do
	:: atomic { cur == me && !dpcQueued } -> break
	:: atomic { cur == me && dpcQueued -> dpcQueued = 0 } ->
		timer_expiration(me);
		ipoint_disp(me)
	od
}

/* sched.c:106 KiDispatchInterrupt, at DISPATCH_LEVEL, interrupts enabled. */
inline dispatch_interrupt(me)
{
	ipoint_disp(me);
	retire_dpc_list(me);
	if
	:: atomic { cur == me && me != IDLE && !quantumEnd } -> skip
	:: atomic { cur == me && (me == IDLE || quantumEnd) -> quantumEnd = 0 } ->
		acquire_at_dispatch(me);
		atomic {
			cur == me ->
			if
			:: len(readyq) > 0 ->
				readyq?dNext;
				if
				:: me != IDLE -> state[me] = READY; readyq!me
				:: else
				fi;
				switch_to(me, dNext)
			:: else -> dNext = NONE
			fi
		}
		atomic {
			cur == me ->
			if
			:: dNext != NONE -> dlock = me /* sched.c:91 */
			:: else
			fi;
			assert(dlock == me);
			dlock = NONE /* sched.c:123 KiReleaseDispatcherLock(DISPATCH_LEVEL) */
		}
	fi
}

/* irql.c:34 KiLowerIrql(new < DISPATCH_LEVEL): the request flag is tested
 * and CR8 written with interrupts off, so no request made by an interrupt is
 * missed; the DISPATCH interrupt runs with them on and may switch threads. */
inline lower_irql(me, new)
{
	atomic { cur == me -> lowerIf = intf; intf = 0 }
	do
	:: atomic { cur == me && dir -> irql = DISPATCH_LEVEL; dir = 0; intf = 1 } ->
		dispatch_interrupt(me);
		atomic { cur == me -> intf = 0 }
	:: atomic { cur == me && !dir -> irql = new; intf = lowerIf } -> break
	od
}

/* A clock interrupt taken below DISPATCH_LEVEL: on the way out KiLowerIrql
 * runs the DISPATCH interrupt (after the EOI, before the iretq). */
inline clock_isr_top(me)
{
	atomic { deliver(me, tOld); clock_body(me) }
	isr_switch(me, tNext, tGot);
	atomic { cur == me -> assert(tOld < DISPATCH_LEVEL); intf = 0 }
	lower_irql(me, tOld);
	atomic { cur == me -> iret(me) }
}

inline ipoint_top(me)
{
	if
	:: clock_isr_top(me)
	:: cur == me -> skip
	fi
}

/* sched.c:44 KiReleaseDispatcherLock(old < DISPATCH_LEVEL). */
inline release_lower(me, new)
{
	atomic { cur == me -> assert(dlock == me); dlock = NONE }
	lower_irql(me, new)
}

/* sched.c:35 KiAcquireDispatcherLock from PASSIVE_LEVEL: raise, then take. */
inline acquire_raise(me)
{
	atomic { cur == me -> irql = DISPATCH_LEVEL }
	ipoint_disp(me);
	atomic { cur == me && dlock == NONE -> dlock = me }
}

/* sched.c:164 KiThreadStartup: first run, the lock handed over. */
inline thread_startup(me)
{
	atomic { cur == me -> dlock = me }
	release_lower(me, PASSIVE_LEVEL)
}

inline busy(me)
{
	i = 0;
	do
	:: i < BUSY -> ipoint_top(me); i++
	:: else -> break
	od
}

/* sched.c:151 KiTerminateThread: never comes back. */
inline terminate(me)
{
	acquire_raise(me);
	atomic { cur == me -> state[me] = TERMINATED; swap_thread(me, bNext) }
}

#define LOCALS byte tOld, tNext, nOld, nNext, dNext, bNext, w, i; bool tGot, nGot, lowerIf

/* TA: KeWaitForSingleObject(&Event, ..., NULL), wait.c:96 KiWait. */
proctype Waiter()
{
	LOCALS;
	bool seen;
	thread_startup(TA);
	ipoint_top(TA);
#ifdef WAIT_TESTS_BEFORE_LOCK
	atomic { cur == TA -> seen = eventSignalled }
	busy(TA); /* the instructions between the test and the lock */
#endif
	acquire_raise(TA);
	ipoint_disp(TA);
	atomic {
		cur == TA ->
		if
#ifdef WAIT_TESTS_BEFORE_LOCK
		:: seen -> bNext = TA
		:: !seen -> eventWaiter = TA; state[TA] = WAITING; swap_thread(TA, bNext)
#else
		:: eventSignalled -> bNext = TA /* already signalled: no wait */
		:: else -> eventWaiter = TA; state[TA] = WAITING; swap_thread(TA, bNext)
#endif
		fi
	}
	atomic {
		cur == TA ->
		if
		:: bNext != TA -> dlock = TA /* resumed: sched.c:91 */
		:: else
		fi
	}
	release_lower(TA, PASSIVE_LEVEL); /* wait.c:125 KiReleaseDispatcherLock(WaitIrql) */
	busy(TA);
	terminate(TA)
}

/* TB: KeDelayExecutionThread (a timer), then KeSetEvent (wait.c:153). */
proctype Signaller()
{
	LOCALS;
	thread_startup(TB);
	acquire_raise(TB);
	atomic {
		cur == TB ->
		timerArmed = 1; /* clock.c:208 KiInsertTimer */
		timerDue = DELAY_TICKS;
		state[TB] = WAITING;
		swap_thread(TB, bNext)
	}
	atomic { cur == TB -> dlock = TB }
	release_lower(TB, PASSIVE_LEVEL);
	ipoint_top(TB);
	acquire_raise(TB);
	ipoint_disp(TB);
	atomic {
		cur == TB ->
		eventSignalled = 1;
		w = eventWaiter; /* wait.c:71 KiWaitTest */
		if
		:: w != NONE -> unwait(w)
		:: else
		fi
	}
	release_lower(TB, PASSIVE_LEVEL);
	busy(TB);
	terminate(TB)
}

/* sched.c:230 KiIdleLoop. */
proctype Idle()
{
	LOCALS;
	bool stopped;
	do
	:: atomic { cur == IDLE -> intf = 0 } ->
		if
		:: atomic {
			cur == IDLE && !dir && len(readyq) == 0 ->
			if
			:: !timerArmed && !stopped -> clockRunning = 0; stopped = 1 /* HalStopClock */
			:: else
			fi;
			/* Quiet for good: nothing may still be waiting (a lost wake-up). */
			assert(!stopped || (state[TA] == TERMINATED && state[TB] == TERMINATED));
			intf = 1 /* sti; hlt: no interrupt between the test and the halt */
		   } ->
end_halt:	clock_isr_top(IDLE)
		:: atomic {
			cur == IDLE && (dir || len(readyq) > 0) ->
			if
			:: stopped -> clockRunning = 1; stopped = 0 /* HalStartClock */
			:: else
			fi;
			dir = 1; /* KiRequestDispatchInterrupt */
			intf = 1
		   } ->
			ipoint_top(IDLE);
			atomic { cur == IDLE -> irql = DISPATCH_LEVEL } /* KiRaiseIrql(DISPATCH_LEVEL) */
			lower_irql(IDLE, PASSIVE_LEVEL)
		fi
	od
}

/* The APIC timer (periodic while running). */
proctype Clock()
{
end:	do
	:: atomic { clockRunning && !irr -> irr = 1 }
	od
}

init {
	atomic {
		state[IDLE] = RUNNING;
		swapIrql[TA] = DISPATCH_LEVEL; /* KeCreateThread: SwapIrql, rflags 0x202 */
		swapIf[TA] = 1;
		swapIrql[TB] = DISPATCH_LEVEL;
		swapIf[TB] = 1;
		dlock = IDLE; /* KeCreateThread under the dispatcher lock, from the boot thread */
		ready_thread(TA);
		ready_thread(TB);
		dlock = NONE;
		run Idle();
		run Waiter();
		run Signaller();
		run Clock()
	}
}

ltl done { <> (state[TA] == TERMINATED && state[TB] == TERMINATED) }
