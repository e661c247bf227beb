/*
 * tracer.h - the tracer module: probe files, ELF symbols, instruction classes.
 *
 * The QEMU plugin (build/tracer/libkrewind.so, tracer/plugin.c) is built from
 * this module; the CLI links libkrprobe.a (probe_* and elfsym_*) to validate a
 * probe file against a kernel before it starts QEMU. The probe file format is
 * documented in docs/probe.md, the plugin in docs/tracer.md.
 *
 * Prefixes: probe_ (probe files), elfsym_ (ELF symbols), insn_ (instruction
 * classification with Capstone; plugin and tests only, needs -lcapstone).
 *
 * Error convention (as db/db.h): functions that can fail return 0 or a negative
 * TRACER_E* code and, when err is not NULL, set *err to a malloc'd one-line
 * message naming the file (and line) at fault; the caller prints and frees it.
 */
#ifndef KREWIND_TRACER_H
#define KREWIND_TRACER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum tracer_error {
	TRACER_OK = 0,
	TRACER_E_IO = -1,     /* cannot open or read a file */
	TRACER_E_SYNTAX = -2, /* probe file syntax error (message has file:line) */
	TRACER_E_SYMBOL = -3, /* a probe names a symbol missing from the ELF, or unusable */
	TRACER_E_ELF = -4,    /* not an ELF file, or a damaged one */
	TRACER_E_NOMEM = -5,
};

/* ------------------------------------------------------------ ELF symbols */

struct elfsym {
	uint64_t addr;
	uint64_t size; /* 0 when the ELF gives none (see size_from_next) */
	const char *name;
	int is_func;        /* 1 STT_FUNC or a code label, 0 STT_OBJECT */
	int is_label;       /* an STT_NOTYPE symbol in an executable section (assembly
	                       entry points: asm_exc_page_fault, irq_entries_start) */
	int size_from_next; /* the ELF gave no size: size is the distance to the next symbol */
};

struct elfsym_table;

/* Loads the function and object symbols (STT_FUNC, STT_OBJECT with a non-zero
 * address) of the ELF at path, the code labels (STT_NOTYPE in an executable
 * section; a label without a size gets the distance to the next symbol), and
 * its GNU build-id. A stripped ELF loads fine with zero symbols. Not an ELF:
 * TRACER_E_ELF. *out is freed by elfsym_free. */
int elfsym_load(const char *path, struct elfsym_table **out, char **err);
void elfsym_free(struct elfsym_table *t);

/* The path given to elfsym_load; owned by t. */
const char *elfsym_path(const struct elfsym_table *t);
/* Build-id as lowercase hex ("" if the ELF has no NT_GNU_BUILD_ID note); owned by t. */
const char *elfsym_build_id(const struct elfsym_table *t);
/* Symbols sorted by address; i < elfsym_count(t). Owned by t. */
size_t elfsym_count(const struct elfsym_table *t);
const struct elfsym *elfsym_at(const struct elfsym_table *t, size_t i);
/* The symbol called name (the first by address if several), or NULL. */
const struct elfsym *elfsym_find(const struct elfsym_table *t, const char *name);
/* The symbol whose [addr, addr+size) holds addr (size 0 counts as 1), or NULL. */
const struct elfsym *elfsym_lookup(const struct elfsym_table *t, uint64_t addr);
/* Copies len bytes of the ELF's loaded image at addr (from its allocated
 * sections) into buf. Returns 0, or TRACER_E_ELF if addr..addr+len is not
 * file-backed in one section (or TRACER_E_IO). */
int elfsym_read(const struct elfsym_table *t, uint64_t addr, void *buf, size_t len, char **err);

/* ------------------------------------------------------------- probe files */

/* Registers an operand can name (SysV order is irrelevant here). */
enum probe_reg {
	PROBE_RAX,
	PROBE_RBX,
	PROBE_RCX,
	PROBE_RDX,
	PROBE_RSI,
	PROBE_RDI,
	PROBE_RBP,
	PROBE_RSP,
	PROBE_R8,
	PROBE_R9,
	PROBE_R10,
	PROBE_R11,
	PROBE_R12,
	PROBE_R13,
	PROBE_R14,
	PROBE_R15,
	PROBE_NREGS,
};

/* 1 if the symbol is a return thunk (its name contains "return_thunk": Linux's
 * __x86_return_thunk and its retbleed/SRSO variants): a `jmp` to it is a ret. */
int elfsym_is_return_thunk(const struct elfsym *s);

/* Where an operand's value comes from, read at function entry. */
enum probe_loc_kind {
	PROBE_LOC_NONE = 0,
	PROBE_LOC_REG, /* the register's value */
	PROBE_LOC_MEM, /* `width` bytes at [reg + disp] (a NULL reg reads as absent); reg
	                  PROBE_NREGS: at the absolute address disp (a global) */
	PROBE_LOC_STR, /* NUL-terminated string at reg, or at [reg+disp] when deref */
};

struct probe_loc {
	enum probe_loc_kind kind;
	enum probe_reg reg;
	int64_t disp;
	int deref;      /* PROBE_LOC_STR only: the string pointer is at [reg+disp] */
	unsigned width; /* bytes kept of the value: 1, 2, 4 or 8 (zero-extended) */
	int64_t add;    /* added to the value read (`rdi-0x20`: container_of); 0 for strings */
	char *sym;      /* `[SYMBOL+N]` before probe_resolve adds its address to disp; then NULL */
};

/* What a probed function means. Operand names per kind: see docs/probe.md. */
enum probe_kind {
	PROBE_RAISE = 1,       /* new=LOC: DB_IRQL at entry, obj=PROBE_IRQL_RAISE */
	PROBE_LOWER,           /* new=LOC: DB_IRQL at entry, obj=PROBE_IRQL_LOWER */
	PROBE_LOCK_ACQUIRE,    /* lock=LOC: DB_LOCK_TRY at entry, DB_LOCK_ACQ at return */
	PROBE_LOCK_TRYACQUIRE, /* lock=LOC: TRY at entry, ACQ at return if rax != 0 */
	PROBE_LOCK_RELEASE,    /* lock=LOC */
	PROBE_LOCK_INIT,       /* lock=LOC: a = return address read at [rsp] */
	PROBE_SWITCH,          /* old=LOC new=LOC */
	PROBE_WAIT,            /* object=LOC [timeout=LOC]: DB_WAIT at entry, DB_WAIT_END at return */
	PROBE_MUTEX_ACQUIRE,   /* mutex=LOC */
	PROBE_MUTEX_RELEASE,   /* mutex=LOC */
	PROBE_SIGNAL,          /* object=LOC */
	PROBE_BUGCHECK,        /* [code=LOC] [param=LOC] [text=STR] */
	PROBE_RESULT,          /* passed=LOC failed=LOC */
	PROBE_SCENARIO,        /* name=STR */
	PROBE_MARKER,          /* text=STR */
	PROBE_CONTEXT,         /* softirq|hardirq|nmi (a word, in probe.ctx): that context while it runs */
	PROBE_DEFER_QUEUE,     /* item=LOC: DB_DEFER_QUEUE */
	PROBE_DEFER_RUN,       /* [item=LOC]: DB_DEFER_RUN */
	PROBE_SLEEP,           /* [timeout=LOC]: DB_SLEEP */
	PROBE_PANIC,           /* [text=STR]: DB_BUGCHECK with a=0 and the text */
	PROBE_SYSCALL,         /* number=LOC: DB_SYSCALL */
	PROBE_MODULE_LOAD,     /* module=LOC: the module's symbols join the trace's (`module-layout`) */
	PROBE_EOI,             /* no operands: its 32-bit stores are checked for the xAPIC EOI (no event itself) */
	PROBE_KIND_MAX = PROBE_EOI,
};

/* DB_IRQL events' obj says where the change came from. */
enum probe_irql_source {
	PROBE_IRQL_CR8 = 0,   /* a `mov cr8, reg` executed */
	PROBE_IRQL_RAISE = 1, /* a probed raise function was called */
	PROBE_IRQL_LOWER = 2, /* a probed lower function was called */
};

#define PROBE_MAX_OPS 3

/* Operand slots of the lock kinds (probe.op[]). */
enum { PROBE_OP_LOCK = 0, PROBE_OP_SUBCLASS = 1, PROBE_OP_RESTORE = 1, PROBE_OP_RESULT = 2 };

struct probe {
	char *symbol;
	enum probe_kind kind;
	int at_return; /* `at=return`: the event is emitted when the function returns */
	int line;
	struct probe_loc op[PROBE_MAX_OPS]; /* by kind, in the order of docs/probe.md */
	/* Lock kinds: flavor= and irq= (enum db_lock_flavor, enum db_lock_irq,
	 * default spin and none); subclass=, restore= and result= are operands. */
	uint8_t flavor, irq;
	uint8_t ctx; /* PROBE_CONTEXT: enum db_ctx */
	uint8_t result_zero; /* lock-tryacquire result=!REG: got it when the register is 0 (down_trylock) */
	/* Filled by probe_resolve: */
	uint64_t addr, size;
	int size_from_next; /* a code label without an ELF size: size is up to the next symbol */
};

/* Where the current thread pointer lives: a read of 8 bytes at segbase+off. */
enum probe_seg { PROBE_SEG_NONE = 0, PROBE_SEG_GS, PROBE_SEG_FS };

struct probe_file {
	char *path;
	struct probe *probes;
	size_t nprobes;
	enum probe_seg thread_seg;
	int thread_abs;     /* `thread SYMBOL+N`: at the absolute address thread_off, no segment */
	char *thread_sym;   /* `thread gs:SYMBOL+N`: offset is the symbol's address + off */
	int64_t thread_off; /* final offset after probe_resolve */
	int thread_line;
	int64_t name_off; /* `thread-name OFF LEN`; name_len 0 = not declared */
	unsigned name_len;
	int64_t tid_off; /* `thread-id OFF SIZE`; tid_len 0 = not declared */
	unsigned tid_len;
	/* `preempt-count [gs:|fs:]OFFSET|SYMBOL[+N] SIZE`: preempt_len 0 = not
	 * declared; preempt_seg NONE = a plain address (preempt_off after
	 * probe_resolve). */
	enum probe_seg preempt_seg;
	char *preempt_sym;
	int64_t preempt_off;
	unsigned preempt_len;
	int preempt_line;
	/* `preempt-count ... hardirq=M softirq=M bh=M nmi=M`: the bits of the
	 * count that mean a context (Linux: 0xf0000, 0x100 serving softirqs,
	 * 0xff00 softirqs disabled, 0xf00000); 0 = not declared. Where declared
	 * the count says each event's context, as it does for lockdep. */
	uint32_t ctx_hardirq, ctx_softirq, ctx_bh, ctx_nmi;
	/* `module-layout NAME KALLSYMS SYMTAB NUM STRTAB`: offsets of a loaded
	 * module's name and symbol table pointer (Linux: struct module's name,
	 * kallsyms; struct mod_kallsyms's symtab, num_symtab, strtab). */
	int has_module_layout;
	int64_t mod_name_off, mod_kallsyms_off, mod_symtab_off, mod_num_off, mod_strtab_off;
};

/* Parses the probe file text (NUL-terminated); path is used in messages.
 * On success *out (free with probe_free) holds the probes in file order. */
int probe_parse(const char *text, const char *path, struct probe_file **out, char **err);
/* Reads and parses the file at path. */
int probe_load(const char *path, struct probe_file **out, char **err);
/* Resolves every symbol against syms: sets addr/size. A missing symbol, or a
 * symbol without size for a probe that needs its returns: TRACER_E_SYMBOL, with
 * a message naming the symbol, the probe line and the ELF file. */
int probe_resolve(struct probe_file *p, const struct elfsym_table *syms, char **err);
void probe_free(struct probe_file *p);

/* Names as written in probe files; NULL if out of range. */
const char *probe_kind_name(enum probe_kind k);
const char *probe_reg_name(enum probe_reg r);
/* 1 if the kind needs the function's return (so a symbol size). */
int probe_needs_return(const struct probe *p);

/* ------------------------------------------- Linux probes (linuxprobe.c) */

/* Writes to out the probe file for the Linux vmlinux at path (`krewind probe
 * linux`): `current`, task_struct's comm and pid and the preemption count from
 * its DWARF (libdw), and the locking, switch, completion, deferred-work, sleep
 * and panic entry points its ELF has out of line. schema 2: the full probe
 * language (docs/probe.md); schema 1: only what the schema-1 parser reads. An
 * ELF without symbols or DWARF, or not a Linux x86-64 vmlinux:
 * TRACER_E_SYMBOL / TRACER_E_ELF with a message. Needs -ldw. */
int linuxprobe_write(const char *vmlinux, int schema, FILE *out, char **err);

/* ------------------------------------------------------ instruction classes */

enum insn_class {
	INSN_OTHER = 0,
	INSN_LIDT,       /* lidt m: mem operand in .mem */
	INSN_MOV_CR8,    /* mov cr8, r64: source register in .reg */
	INSN_WRMSR,      /* wrmsr (ecx selects the MSR) */
	INSN_IRETQ,      /* iretq (64-bit operand size) */
	INSN_OUT_DX_AL,  /* out dx, al */
	INSN_RET,        /* ret / ret imm16 (near) */
	INSN_STORE32_B0, /* 32-bit store that may hit the xAPIC EOI register (APIC base + 0xb0):
	                    displacement ending in 0xb0, or a register-based store with a
	                    page-aligned displacement at least 1 MiB from 0 (a fixmap base:
	                    Linux's `mov %esi,-0xa03000(%rdi)`, rdi = 0xb0) */
	INSN_JMP,        /* direct jmp rel8/rel32: target in .target */
	INSN_INT,        /* int N / int3 / int1 (a software interrupt): N in .reg */
	INSN_STORE32,    /* any other 32-bit store to memory (an EOI candidate only inside a
	                    probe's `eoi` function: `mov %esi,(%rax)`) */
};

/* A memory operand: address = base + index*scale + disp; base may be PROBE_NREGS
 * (none) or INSN_REG_RIP (then disp is relative to the next instruction). */
#define INSN_REG_NONE PROBE_NREGS
#define INSN_REG_RIP  (PROBE_NREGS + 1)
struct insn_mem {
	int base, index; /* enum probe_reg, INSN_REG_NONE or INSN_REG_RIP */
	int scale;
	int64_t disp;
	int seg_gs, seg_fs; /* a segment override prefix (gs:/fs:) */
};

struct insn_info {
	enum insn_class cls;
	unsigned len;
	int reg; /* INSN_MOV_CR8: source register (enum probe_reg); INSN_INT: the vector */
	uint64_t target; /* INSN_JMP */
	struct insn_mem mem;
};

struct insn_decoder;
/* Opens a Capstone x86-64 decoder; free with insn_decoder_free. */
int insn_decoder_open(struct insn_decoder **out, char **err);
void insn_decoder_free(struct insn_decoder *d);
/* Decodes the instruction at code[0..len) (at guest address addr) and
 * classifies it. Returns 0 (info filled; INSN_OTHER for anything not listed or
 * undecodable). Not thread-safe: one decoder per thread or a lock. */
int insn_classify(struct insn_decoder *d, const uint8_t *code, size_t len, uint64_t addr,
                  struct insn_info *info);
/* 0 for an instruction QEMU always ends its translated block with (a control
 * transfer, a rep string instruction), else 1: only those can be cut short by
 * an MMIO access in the middle of a block (count.c). Opcode bytes only. */
int insn_mid_block(const uint8_t *code, size_t len);
/* Tail calls: the targets of direct jumps (jmp, jcc) in code[0..len) (a
 * function at addr) that leave [addr, addr+len). Fills up to max targets and
 * returns how many were found (possibly more than max). */
size_t insn_jump_targets_out(struct insn_decoder *d, const uint8_t *code, size_t len, uint64_t addr,
                             uint64_t *targets, size_t max);
/* Effective address of a memory operand given the register file and the
 * instruction's address and length (segment bases are added by the caller). */
uint64_t insn_mem_addr(const struct insn_mem *m, const uint64_t regs[PROBE_NREGS], uint64_t pc, unsigned len);

#endif
