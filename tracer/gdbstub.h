/*
 * gdbstub.h - the plugin's own gdb remote serial protocol server (gdbstub.c),
 * served while plugin.c holds a re-executed SMP machine at an instruction.
 *
 * Internal to libkrewind.so. Everything here runs on QEMU's one vCPU thread
 * (single-threaded TCG), inside an instruction callback: registers and memory
 * are those of the vCPU running that callback.
 */
#ifndef KREWIND_TRACER_GDBSTUB_H
#define KREWIND_TRACER_GDBSTUB_H

#include <stdint.h>

/* Where the machine is held (filled by plugin.c for each hold). */
struct gdbstub_stop {
	int vcpu;       /* the vCPU running the held instruction (thread vcpu + 1) */
	int nvcpus;
	uint64_t pc;     /* the held instruction's address */
	uint64_t icount; /* the machine's instructions retired before it */
	uint64_t prev;   /* the machine count of this vCPU's previous instruction, UINT64_MAX if none */
	int signal;      /* reported: 5 (trap), 2 (interrupted), 3 (end of the recording) */
	/* per vCPU: the pc (0 unknown) and machine count of its last instruction
	 * before it was switched out: all gdb sees of a vCPU not held */
	const uint64_t *out_pc, *out_ic;
};

/* What gdb asked for when gdbstub_serve returns. */
enum gdbstub_action { GDBSTUB_END, GDBSTUB_STEP, GDBSTUB_CONTINUE };

struct gdbstub_resume {
	enum gdbstub_action action;
	int vcpu;        /* GDBSTUB_STEP: hold at this vCPU's next instruction */
	uint64_t until;  /* GDBSTUB_CONTINUE: also hold before this machine count (UINT64_MAX: none) */
	int ignore_bps;  /* GDBSTUB_CONTINUE: breakpoints off until `until` (monitor goto) */
};

/* Binds and listens on the unix socket path (an old socket file there is
 * replaced). 0, or -1 with a message on stderr. */
int gdbstub_listen(const char *path);

/* Serves gdb at stop s until it resumes the machine or ends the session.
 * The first call waits (up to 10 minutes) for gdb to connect; a later call
 * first sends gdb the stop reply of the resume it asked for. Writes of
 * registers or memory are refused with an error; a lost connection, `kill`
 * and `detach` give GDBSTUB_END. */
void gdbstub_serve(const struct gdbstub_stop *s, struct gdbstub_resume *r);

/* Whether gdb has a breakpoint (Z0/Z1) at pc. The running machine's check. */
int gdbstub_breakpoint(uint64_t pc);

/* Whether gdb sent an interrupt (Ctrl-C) since the machine resumed; cheap
 * enough to call every million instructions. */
int gdbstub_interrupted(void);

#endif
