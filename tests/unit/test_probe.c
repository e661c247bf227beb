/*
 * test_probe.c - the probe file parser and the ELF symbol loader.
 *
 * ELF files are written by the tests themselves with libelf (a tiny x86-64
 * executable with chosen symbols), so each case controls exactly what the
 * symbol table holds, including none at all (stripped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "db/db.h"
#include "tracer/tracer.h"

/* ------------------------------------------------------ synthetic ELF */

struct sym {
	const char *name;
	uint64_t addr, size;
	int type; /* STT_FUNC / STT_OBJECT / STT_NOTYPE (a code label) */
};

static Elf_Scn *add_section(Elf *e, const char *unused, Elf64_Word type, void *buf, size_t size, size_t align)
{
	Elf_Scn *scn = elf_newscn(e);
	Elf_Data *d = elf_newdata(scn);

	(void)unused;
	d->d_buf = buf;
	d->d_size = size;
	d->d_align = align;
	d->d_type = ELF_T_BYTE;
	elf64_getshdr(scn)->sh_type = type;
	return scn;
}

/* Writes a small ELF64 x86-64 executable to path: .text, the symbols (none:
 * no .symtab at all, as after strip), and a GNU build-id note if build_id. */
static void write_elf(const char *path, const struct sym *syms, size_t n, int with_symtab,
                      const uint8_t *build_id, size_t id_len)
{
	static uint8_t text[0x1000];
	size_t k;

	for (k = 0; k < sizeof(text); k++)
		text[k] = (uint8_t)(k * 7);
	char shstr[256], strtab[1024];
	Elf64_Sym symtab[32];
	uint8_t note[64];
	size_t shlen = 1, strlen_ = 1, i;
	Elf_Scn *scn;
	Elf64_Ehdr *eh;
	Elf *e;
	int fd;

	assert_true(n < 31);
	assert_int_not_equal(elf_version(EV_CURRENT), EV_NONE);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	e = elf_begin(fd, ELF_C_WRITE, NULL);
	assert_non_null(e);
	eh = elf64_newehdr(e);
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_machine = EM_X86_64;
	eh->e_type = ET_EXEC;
	eh->e_version = EV_CURRENT;
	memset(shstr, 0, sizeof(shstr));
	memset(strtab, 0, sizeof(strtab));

#define SHNAME(s) (memcpy(shstr + shlen, s, strlen(s) + 1), shlen += strlen(s) + 1, shlen - strlen(s) - 1)
	scn = add_section(e, ".text", SHT_PROGBITS, text, sizeof(text), 16);
	elf64_getshdr(scn)->sh_name = (Elf64_Word)SHNAME(".text");
	elf64_getshdr(scn)->sh_addr = 0x100000;
	elf64_getshdr(scn)->sh_flags = SHF_ALLOC | SHF_EXECINSTR;
	if (build_id) {
		Elf64_Nhdr nh = {.n_namesz = 4, .n_descsz = (Elf64_Word)id_len, .n_type = NT_GNU_BUILD_ID};

		memcpy(note, &nh, sizeof(nh));
		memcpy(note + sizeof(nh), "GNU", 4);
		memcpy(note + sizeof(nh) + 4, build_id, id_len);
		scn = add_section(e, NULL, SHT_NOTE, note, sizeof(nh) + 4 + ((id_len + 3) & ~3u), 4);
		elf64_getshdr(scn)->sh_name = (Elf64_Word)SHNAME(".note.gnu.build-id");
		elf64_getshdr(scn)->sh_flags = SHF_ALLOC;
	}
	if (with_symtab) {
		Elf_Scn *str;

		memset(symtab, 0, sizeof(symtab));
		for (i = 0; i < n; i++) {
			symtab[i + 1].st_name = (Elf64_Word)strlen_;
			memcpy(strtab + strlen_, syms[i].name, strlen(syms[i].name) + 1);
			strlen_ += strlen(syms[i].name) + 1;
			symtab[i + 1].st_value = syms[i].addr;
			symtab[i + 1].st_size = syms[i].size;
			symtab[i + 1].st_info = ELF64_ST_INFO(STB_GLOBAL, syms[i].type);
			symtab[i + 1].st_shndx = 1;
		}
		str = add_section(e, NULL, SHT_STRTAB, strtab, strlen_, 1);
		elf64_getshdr(str)->sh_name = (Elf64_Word)SHNAME(".strtab");
		scn = add_section(e, NULL, SHT_SYMTAB, symtab, (n + 1) * sizeof(Elf64_Sym), 8);
		elf_getdata(scn, NULL)->d_type = ELF_T_SYM;
		elf64_getshdr(scn)->sh_name = (Elf64_Word)SHNAME(".symtab");
		elf64_getshdr(scn)->sh_link = (Elf64_Word)elf_ndxscn(str);
		elf64_getshdr(scn)->sh_entsize = sizeof(Elf64_Sym);
		elf64_getshdr(scn)->sh_info = 1;
	}
	scn = add_section(e, NULL, SHT_STRTAB, shstr, sizeof(shstr), 1);
	elf64_getshdr(scn)->sh_name = (Elf64_Word)SHNAME(".shstrtab");
	eh->e_shstrndx = (Elf64_Half)elf_ndxscn(scn);
#undef SHNAME
	assert_true(elf_update(e, ELF_C_WRITE) > 0);
	elf_end(e);
	close(fd);
}

static const struct sym kernel_syms[] = {
    {"KeRaiseIrql", 0x100000, 0x20, STT_FUNC},
    {"KeLowerIrql", 0x100020, 0x20, STT_FUNC},
    {"KeAcquireSpinLockRaiseToDpc", 0x100040, 0x40, STT_FUNC},
    {"KeReleaseSpinLock", 0x100080, 0x30, STT_FUNC},
    {"KeAcquireSpinLockAtDpcLevel", 0x1000b0, 0x30, STT_FUNC},
    {"KeReleaseSpinLockFromDpcLevel", 0x1000e0, 0x20, STT_FUNC},
    {"KeAcquireInStackQueuedSpinLock", 0x100100, 0x40, STT_FUNC},
    {"KeReleaseInStackQueuedSpinLock", 0x100140, 0x40, STT_FUNC},
    {"KeInitializeSpinLock", 0x100180, 0x10, STT_FUNC},
    {"KiSwapContext", 0x100190, 0x50, STT_FUNC},
    {"KeWaitForSingleObject", 0x1001e0, 0x100, STT_FUNC},
    {"KiSatisfyMutexWait", 0x1002e0, 0x20, STT_FUNC},
    {"KeReleaseMutex", 0x100300, 0x40, STT_FUNC},
    {"KeSetEvent", 0x100340, 0x40, STT_FUNC},
    {"KeReleaseSemaphore", 0x100380, 0x40, STT_FUNC},
    {"KeBugCheckEx", 0x1003c0, 0x40, STT_FUNC},
    {"KiSelfTestReport", 0x100400, 0x40, STT_FUNC},
    {"KiScenarioStart", 0x100440, 0x40, STT_FUNC},
    {"KeDelayExecutionThread", 0x100480, 0x20, STT_FUNC},
    {"KeInsertQueueDpc", 0x1004a0, 0x20, STT_FUNC},
    {"KiRetireDpcList", 0x1004c0, 0x20, STT_FUNC},
    {"KiExecuteDpc", 0x1004e0, 0x20, STT_FUNC},
    {"ScenarioLockA", 0x200000, 8, STT_OBJECT},
    {"ScenarioLockB", 0x200008, 8, STT_OBJECT},
    {"AsmNoSize", 0x100500, 0, STT_FUNC},
};

static const struct sym linux_syms[] = {
    {"pcpu_hot", 0x1f000, 0x40, STT_OBJECT},
    {"_raw_spin_lock", 0xffffffff81e00000, 0x30, STT_FUNC},
    {"_raw_spin_lock_irq", 0xffffffff81e00030, 0x30, STT_FUNC},
    {"_raw_spin_lock_irqsave", 0xffffffff81e00060, 0x40, STT_FUNC},
    {"_raw_spin_lock_bh", 0xffffffff81e000a0, 0x30, STT_FUNC},
    {"_raw_spin_trylock", 0xffffffff81e000d0, 0x40, STT_FUNC},
    {"_raw_spin_unlock", 0xffffffff81e00110, 0x20, STT_FUNC},
    {"_raw_spin_unlock_irq", 0xffffffff81e00130, 0x20, STT_FUNC},
    {"_raw_spin_unlock_irqrestore", 0xffffffff81e00150, 0x20, STT_FUNC},
    {"_raw_spin_unlock_bh", 0xffffffff81e00170, 0x20, STT_FUNC},
    {"__switch_to", 0xffffffff81000200, 0x300, STT_FUNC},
    {"mutex_lock", 0xffffffff81e00200, 0x30, STT_FUNC},
    {"mutex_unlock", 0xffffffff81e00230, 0x30, STT_FUNC},
    {"complete", 0xffffffff81100000, 0x60, STT_FUNC},
    {"wait_for_completion_timeout", 0xffffffff81e00300, 0x30, STT_FUNC},
    {"panic", 0xffffffff81e00400, 0x200, STT_FUNC},
};

static char tmpdir[64];

static int make_tmp(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/krewind-probe.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int rm_tmp(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp(const char *name)
{
	static char path[128];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

/* Parses text; asserts success; returns the probe file. */
static struct probe_file *parse_ok(const char *text)
{
	struct probe_file *p = NULL;
	char *err = NULL;
	int rc = probe_parse(text, "t.probe", &p, &err);

	if (rc)
		fail_msg("unexpected error: %s", err);
	assert_non_null(p);
	return p;
}

/* Parses text expecting failure with this code and exactly this message. */
static void parse_fails(const char *text, int code, const char *msg)
{
	struct probe_file *p = NULL;
	char *err = NULL;

	assert_int_equal(probe_parse(text, "t.probe", &p, &err), code);
	assert_null(p);
	assert_non_null(err);
	assert_string_equal(err, msg);
	free(err);
}

/* ----------------------------------------------------------- the parser */

static void test_probe_parses_register_operand(void **state)
{
	struct probe_file *p = parse_ok("KeReleaseSpinLock lock-release lock=rdi\n");

	(void)state;
	assert_int_equal(p->nprobes, 1);
	assert_string_equal(p->probes[0].symbol, "KeReleaseSpinLock");
	assert_int_equal(p->probes[0].kind, PROBE_LOCK_RELEASE);
	assert_int_equal(p->probes[0].op[0].kind, PROBE_LOC_REG);
	assert_int_equal(p->probes[0].op[0].reg, PROBE_RDI);
	assert_int_equal(p->probes[0].op[0].width, 8);
	assert_int_equal(p->probes[0].line, 1);
	probe_free(p);
}

static void test_probe_parses_memory_operand_with_displacement(void **state)
{
	struct probe_file *p =
	    parse_ok("# comment\n\nKeReleaseInStackQueuedSpinLock lock-release lock=[rdi+8]\n"
	             "X lock-release lock=[rsp-0x10]:4\n");

	(void)state;
	assert_int_equal(p->nprobes, 2);
	assert_int_equal(p->probes[0].line, 3);
	assert_int_equal(p->probes[0].op[0].kind, PROBE_LOC_MEM);
	assert_int_equal(p->probes[0].op[0].reg, PROBE_RDI);
	assert_int_equal(p->probes[0].op[0].disp, 8);
	assert_int_equal(p->probes[0].op[0].width, 8);
	assert_int_equal(p->probes[1].op[0].reg, PROBE_RSP);
	assert_int_equal(p->probes[1].op[0].disp, -0x10);
	assert_int_equal(p->probes[1].op[0].width, 4);
	probe_free(p);
}

static void test_probe_parses_width_suffix(void **state)
{
	struct probe_file *p = parse_ok("KeLowerIrql lower new=rdi:1\nKeRaiseIrql raise new=rdi:2\n");

	(void)state;
	assert_int_equal(p->probes[0].kind, PROBE_LOWER);
	assert_int_equal(p->probes[0].op[0].width, 1);
	assert_int_equal(p->probes[1].kind, PROBE_RAISE);
	assert_int_equal(p->probes[1].op[0].width, 2);
	probe_free(p);
}

static void test_probe_parses_string_operands(void **state)
{
	struct probe_file *p = parse_ok("KiScenarioStart scenario name=str:rdi\n"
	                                "Note marker text=str:[rsi+16]\n");

	(void)state;
	assert_int_equal(p->probes[0].kind, PROBE_SCENARIO);
	assert_int_equal(p->probes[0].op[0].kind, PROBE_LOC_STR);
	assert_int_equal(p->probes[0].op[0].deref, 0);
	assert_int_equal(p->probes[0].op[0].reg, PROBE_RDI);
	assert_int_equal(p->probes[1].kind, PROBE_MARKER);
	assert_int_equal(p->probes[1].op[0].kind, PROBE_LOC_STR);
	assert_int_equal(p->probes[1].op[0].deref, 1);
	assert_int_equal(p->probes[1].op[0].reg, PROBE_RSI);
	assert_int_equal(p->probes[1].op[0].disp, 16);
	probe_free(p);
}

static void test_probe_parses_every_event_kind(void **state)
{
	static const char text[] =
	    "a raise new=rdi\nb lower new=rdi\nc lock-acquire lock=rdi\n"
	    "d lock-tryacquire lock=rdi\ne lock-release lock=rdi\nf lock-init lock=rdi\n"
	    "g switch old=rdi new=rsi\nh wait object=rdi timeout=[r8]\n"
	    "i mutex-acquire mutex=rdi\nj mutex-release mutex=rdi\nk signal object=rdi\n"
	    "l bugcheck code=rdi param=rsi text=str:rdx\nm result passed=rdi failed=rsi\n"
	    "n scenario name=str:rdi\no marker text=str:rdi\np context softirq\n"
	    "q defer-queue item=rdi\nr defer-run item=rdi\ns sleep timeout=[rdx]\nt panic text=str:rdi\n"
	    "u syscall number=rax\nv module-load module=rdi\nw eoi\nmodule-layout 0x18 0x220 0 8 0x10\n";
	struct probe_file *p = parse_ok(text);
	int k;

	(void)state;
	assert_int_equal(p->nprobes, PROBE_KIND_MAX);
	for (k = PROBE_RAISE; k <= PROBE_KIND_MAX; k++) {
		assert_int_equal(p->probes[k - 1].kind, k);
		assert_int_equal(p->probes[k - 1].line, k);
	}
	assert_int_equal(p->probes[PROBE_SWITCH - 1].op[1].reg, PROBE_RSI);
	assert_int_equal(p->probes[PROBE_WAIT - 1].op[1].reg, PROBE_R8);
	assert_int_equal(p->probes[PROBE_BUGCHECK - 1].op[2].kind, PROBE_LOC_STR);
	probe_free(p);
}

/* A hobby kernel's places: the current thread in a global (cpus[0].proc),
 * container_of operands (rdi-0x20, [rdi]-8), globals as memory operands. */
static void test_probe_parses_globals_and_offsets(void **state)
{
	struct probe_file *p = parse_ok("thread cpus+0x10\n"
	                                "swtch switch old=rdi-0x20 new=[cpus+0x10]\n"
	                                "f lock-release lock=[rdi]-8 restore=[0x5000]:4\n"
	                                "g marker text=str:[banner]\n");

	(void)state;
	assert_int_equal(p->thread_seg, PROBE_SEG_NONE);
	assert_int_equal(p->thread_abs, 1);
	assert_string_equal(p->thread_sym, "cpus");
	assert_int_equal(p->thread_off, 0x10);
	assert_int_equal(p->probes[0].op[0].kind, PROBE_LOC_REG);
	assert_int_equal(p->probes[0].op[0].reg, PROBE_RDI);
	assert_int_equal(p->probes[0].op[0].add, -0x20);
	assert_int_equal(p->probes[0].op[1].kind, PROBE_LOC_MEM);
	assert_int_equal(p->probes[0].op[1].reg, PROBE_NREGS);
	assert_string_equal(p->probes[0].op[1].sym, "cpus");
	assert_int_equal(p->probes[0].op[1].disp, 0x10);
	assert_int_equal(p->probes[1].op[0].kind, PROBE_LOC_MEM);
	assert_int_equal(p->probes[1].op[0].reg, PROBE_RDI);
	assert_int_equal(p->probes[1].op[0].disp, 0);
	assert_int_equal(p->probes[1].op[0].add, -8);
	assert_int_equal(p->probes[1].op[1].reg, PROBE_NREGS);
	assert_null(p->probes[1].op[1].sym);
	assert_int_equal(p->probes[1].op[1].disp, 0x5000);
	assert_int_equal(p->probes[1].op[1].width, 4);
	assert_int_equal(p->probes[2].op[0].kind, PROBE_LOC_STR);
	assert_int_equal(p->probes[2].op[0].deref, 1);
	assert_string_equal(p->probes[2].op[0].sym, "banner");
	probe_free(p);
	p = parse_ok("thread none\n");
	assert_int_equal(p->thread_abs, 0);
	probe_free(p);
	parse_fails("a switch old=rdi-x new=rsi\n", TRACER_E_SYNTAX,
	            "t.probe:1: old=rdi-x: bad offset (expected +N or -N)");
	parse_fails("a marker text=str:rdi+8\n", TRACER_E_SYNTAX,
	            "t.probe:1: text=str:rdi+8: a string operand takes no offset");
	parse_fails("a switch old=[9zz] new=rsi\n", TRACER_E_SYNTAX, "t.probe:1: old=[9zz]: bad address");
}

static void test_probe_parses_thread_declarations(void **state)
{
	struct probe_file *p = parse_ok("thread gs:0x188\nthread-name 0x40 16\n");

	(void)state;
	assert_int_equal(p->thread_seg, PROBE_SEG_GS);
	assert_int_equal(p->thread_off, 0x188);
	assert_null(p->thread_sym);
	assert_int_equal(p->name_off, 0x40);
	assert_int_equal(p->name_len, 16);
	assert_int_equal(p->nprobes, 0);
	probe_free(p);
	p = parse_ok("thread fs:pcpu_hot+8\n");
	assert_int_equal(p->thread_seg, PROBE_SEG_FS);
	assert_string_equal(p->thread_sym, "pcpu_hot");
	assert_int_equal(p->thread_off, 8);
	probe_free(p);
}

/* flavor=, irq=, subclass=, restore=, result= on lock events. */
static void test_probe_parses_lock_attributes(void **state)
{
	struct probe_file *p = parse_ok("a lock-acquire lock=rdi irq=raise-dispatch\n"
	                                "b lock-acquire lock=rdi flavor=write irq=save subclass=rsi:1\n"
	                                "c lock-release lock=rdi irq=raise-dispatch restore=rsi:1\n"
	                                "d lock-tryacquire lock=rdi flavor=read result=eax\n"
	                                "e lock-tryacquire lock=[rdi+8] irq=bh result=al\n"
	                                "f lock-init lock=rdi flavor=rwsem-write\n"
	                                "g lock-acquire lock=rdi flavor=mutex irq=at-dispatch\n"
	                                "h lock-acquire lock=rdi flavor=sem irq=irq\n"
	                                "i lock-tryacquire lock=rdi flavor=sem result=!eax\n");

	(void)state;
	assert_int_equal(p->nprobes, 9);
	assert_int_equal(p->probes[0].flavor, DB_LF_SPIN);
	assert_int_equal(p->probes[0].irq, DB_LI_RAISE_DISPATCH);
	assert_int_equal(p->probes[1].flavor, DB_LF_WRITE);
	assert_int_equal(p->probes[1].irq, DB_LI_IRQSAVE);
	assert_int_equal(p->probes[1].op[PROBE_OP_SUBCLASS].kind, PROBE_LOC_REG);
	assert_int_equal(p->probes[1].op[PROBE_OP_SUBCLASS].reg, PROBE_RSI);
	assert_int_equal(p->probes[1].op[PROBE_OP_SUBCLASS].width, 1);
	assert_int_equal(p->probes[2].op[PROBE_OP_RESTORE].reg, PROBE_RSI);
	assert_int_equal(p->probes[3].flavor, DB_LF_READ);
	assert_int_equal(p->probes[3].op[PROBE_OP_RESULT].reg, PROBE_RAX);
	assert_int_equal(p->probes[3].op[PROBE_OP_RESULT].width, 4);
	assert_int_equal(p->probes[4].op[PROBE_OP_RESULT].width, 1);
	assert_int_equal(p->probes[4].irq, DB_LI_BH);
	assert_int_equal(p->probes[5].flavor, DB_LF_RWSEM_WRITE);
	assert_int_equal(p->probes[6].flavor, DB_LF_MUTEX);
	assert_int_equal(p->probes[6].irq, DB_LI_AT_DISPATCH);
	assert_int_equal(p->probes[7].flavor, DB_LF_SEM);
	assert_int_equal(p->probes[7].irq, DB_LI_IRQ);
	assert_int_equal(p->probes[3].result_zero, 0);
	assert_int_equal(p->probes[8].result_zero, 1); /* down_trylock: 0 is success */
	assert_int_equal(p->probes[8].op[PROBE_OP_RESULT].width, 4);
	probe_free(p);
}

static void test_probe_rejects_bad_lock_attributes(void **state)
{
	(void)state;
	parse_fails("a lock-acquire lock=rdi flavor=ticket\n", TRACER_E_SYNTAX,
	            "t.probe:1: flavor=ticket: expected spin, read, write, mutex, rwsem-read, rwsem-write or sem");
	parse_fails("a lock-acquire lock=rdi irq=off\n", TRACER_E_SYNTAX,
	            "t.probe:1: irq=off: expected none, save, irq, bh, raise-dispatch or at-dispatch");
	parse_fails("a signal object=rdi irq=save\n", TRACER_E_SYNTAX, "t.probe:1: irq= is for lock events, not signal");
	parse_fails("a lock-release lock=rdi subclass=rsi\n", TRACER_E_SYNTAX,
	            "t.probe:1: lock-release has no operand 'subclass'");
	parse_fails("a lock-acquire lock=rdi restore=rsi\n", TRACER_E_SYNTAX,
	            "t.probe:1: lock-acquire has no operand 'restore'");
	parse_fails("a lock-tryacquire lock=rdi result=[rax]\n", TRACER_E_SYNTAX,
	            "t.probe:1: result=[rax]: expected a register (rax:1, eax, al)");
}

/* context, defer-queue, defer-run, sleep, panic, syscall. */
static void test_probe_parses_new_events(void **state)
{
	struct probe_file *p = parse_ok("__do_softirq context softirq\n"
	                                "handle_irq context hardirq\n"
	                                "exc_nmi context nmi\n"
	                                "KeInsertQueueDpc defer-queue item=rdi\n"
	                                "KiCallDpc defer-run item=rdi\n"
	                                "tasklet_action defer-run\n"
	                                "KeDelayExecutionThread sleep timeout=[rdx]\n"
	                                "schedule sleep\n"
	                                "panic panic text=str:rdi\n"
	                                "do_syscall_64 syscall number=rsi:4\n");

	(void)state;
	assert_int_equal(p->nprobes, 10);
	assert_int_equal(p->probes[0].kind, PROBE_CONTEXT);
	assert_int_equal(p->probes[0].ctx, DB_CTX_SOFTIRQ);
	assert_int_equal(p->probes[1].ctx, DB_CTX_HARDIRQ);
	assert_int_equal(p->probes[2].ctx, DB_CTX_NMI);
	assert_true(probe_needs_return(&p->probes[0]));
	assert_int_equal(p->probes[3].kind, PROBE_DEFER_QUEUE);
	assert_int_equal(p->probes[3].op[0].reg, PROBE_RDI);
	assert_int_equal(p->probes[4].kind, PROBE_DEFER_RUN);
	assert_int_equal(p->probes[5].op[0].kind, PROBE_LOC_NONE);
	assert_int_equal(p->probes[6].kind, PROBE_SLEEP);
	assert_int_equal(p->probes[6].op[0].kind, PROBE_LOC_MEM);
	assert_int_equal(p->probes[7].op[0].kind, PROBE_LOC_NONE);
	assert_int_equal(p->probes[8].kind, PROBE_PANIC);
	assert_int_equal(p->probes[8].op[0].kind, PROBE_LOC_STR);
	assert_int_equal(p->probes[9].kind, PROBE_SYSCALL);
	assert_int_equal(p->probes[9].op[0].width, 4);
	assert_false(probe_needs_return(&p->probes[3]));
	probe_free(p);
}

static void test_probe_rejects_bad_new_events(void **state)
{
	(void)state;
	parse_fails("f context\n", TRACER_E_SYNTAX, "t.probe:1: usage: SYMBOL context softirq|hardirq|nmi");
	parse_fails("f context process\n", TRACER_E_SYNTAX, "t.probe:1: usage: SYMBOL context softirq|hardirq|nmi");
	parse_fails("f defer-queue\n", TRACER_E_SYNTAX, "t.probe:1: defer-queue needs item=OPERAND");
	parse_fails("f syscall\n", TRACER_E_SYNTAX, "t.probe:1: syscall needs number=OPERAND");
	parse_fails("f panic text=rdi\n", TRACER_E_SYNTAX,
	            "t.probe:1: text=rdi: expected a string operand (str:REG or str:[REG+N])");
}

/* thread-id and preempt-count. */
static void test_probe_parses_tid_and_preempt_declarations(void **state)
{
	struct probe_file *p = parse_ok("thread-id 0x598 4\npreempt-count gs:__preempt_count 4\n");

	(void)state;
	assert_int_equal(p->tid_off, 0x598);
	assert_int_equal(p->tid_len, 4);
	assert_int_equal(p->preempt_seg, PROBE_SEG_GS);
	assert_string_equal(p->preempt_sym, "__preempt_count");
	assert_int_equal(p->preempt_off, 0);
	assert_int_equal(p->preempt_len, 4);
	probe_free(p);
	p = parse_ok("preempt-count gs:pcpu_hot+8 4\n");
	assert_string_equal(p->preempt_sym, "pcpu_hot");
	assert_int_equal(p->preempt_off, 8);
	probe_free(p);
	p = parse_ok("preempt-count gs:0x10 2\n");
	assert_null(p->preempt_sym);
	assert_int_equal(p->preempt_off, 0x10);
	assert_int_equal(p->preempt_len, 2);
	probe_free(p);
	/* no segment: a plain address (a uniprocessor hobby kernel's counter) */
	p = parse_ok("preempt-count cpu0+0x10 4\n");
	assert_int_equal(p->preempt_seg, PROBE_SEG_NONE);
	assert_string_equal(p->preempt_sym, "cpu0");
	assert_int_equal(p->preempt_off, 0x10);
	probe_free(p);
	parse_fails("thread-id 0x598\n", TRACER_E_SYNTAX, "t.probe:1: usage: thread-id OFFSET SIZE (SIZE 1, 2, 4 or 8)");
	parse_fails("thread-id 0x598 3\n", TRACER_E_SYNTAX, "t.probe:1: usage: thread-id OFFSET SIZE (SIZE 1, 2, 4 or 8)");
	parse_fails("preempt-count gs:x 3\n", TRACER_E_SYNTAX,
	            "t.probe:1: preempt-count: expected [gs:|fs:]OFFSET|SYMBOL[+N] SIZE (SIZE 1, 2, 4 or 8)");
	parse_fails("preempt-count gs:x+y 4\n", TRACER_E_SYNTAX, "t.probe:1: preempt-count: bad offset");
	/* the bits of the count that mean a context (Linux's) */
	p = parse_ok("preempt-count gs:__preempt_count 4 hardirq=0xf0000 softirq=0x100 bh=0xff00 nmi=0xf00000\n");
	assert_int_equal(p->ctx_hardirq, 0xf0000);
	assert_int_equal(p->ctx_softirq, 0x100);
	assert_int_equal(p->ctx_bh, 0xff00);
	assert_int_equal(p->ctx_nmi, 0xf00000);
	probe_free(p);
	p = parse_ok("preempt-count gs:__preempt_count 4\n");
	assert_int_equal(p->ctx_hardirq | p->ctx_softirq | p->ctx_bh | p->ctx_nmi, 0);
	probe_free(p);
	parse_fails("preempt-count gs:__preempt_count 4 irq=0xf0000\n", TRACER_E_SYNTAX,
	            "t.probe:1: preempt-count: irq=0xf0000: expected hardirq=, softirq=, bh= or nmi=MASK");
	parse_fails("preempt-count gs:__preempt_count 4 hardirq=0\n", TRACER_E_SYNTAX,
	            "t.probe:1: preempt-count: hardirq=0: expected hardirq=, softirq=, bh= or nmi=MASK");
}

/* module-layout and module-load (Linux's loadable modules). */
static void test_probe_parses_module_layout(void **state)
{
	struct probe_file *p = parse_ok("module-layout 0x18 0x220 0 8 0x10\ndo_init_module module-load module=rdi\n");

	(void)state;
	assert_int_equal(p->has_module_layout, 1);
	assert_int_equal(p->mod_name_off, 0x18);
	assert_int_equal(p->mod_kallsyms_off, 0x220);
	assert_int_equal(p->mod_symtab_off, 0);
	assert_int_equal(p->mod_num_off, 8);
	assert_int_equal(p->mod_strtab_off, 0x10);
	assert_int_equal(p->probes[0].kind, PROBE_MODULE_LOAD);
	assert_int_equal(p->probes[0].op[0].kind, PROBE_LOC_REG);
	probe_free(p);
	parse_fails("do_init_module module-load module=rdi\n", TRACER_E_SYNTAX,
	            "t.probe:1: module-load needs a module-layout line (where a module keeps its name and symbols)");
	parse_fails("module-layout 0x18 0x220 0 8\n", TRACER_E_SYNTAX,
	            "t.probe:1: usage: module-layout NAME KALLSYMS SYMTAB NUM STRTAB (offsets)");
	parse_fails("module-layout 0x18 0x220 0 8 -1\n", TRACER_E_SYNTAX,
	            "t.probe:1: usage: module-layout NAME KALLSYMS SYMTAB NUM STRTAB (offsets)");
	parse_fails("module-layout 1 2 3 4 5\nf module-load\n", TRACER_E_SYNTAX, "t.probe:2: module-load needs module=OPERAND");
}

static void test_probe_at_return_is_recorded(void **state)
{
	struct probe_file *p = parse_ok("mutex_lock mutex-acquire mutex=rdi at=return\n"
	                                "KeSetEvent signal object=rdi at=entry\n");

	(void)state;
	assert_int_equal(p->probes[0].at_return, 1);
	assert_int_equal(probe_needs_return(&p->probes[0]), 1);
	assert_int_equal(p->probes[1].at_return, 0);
	assert_int_equal(probe_needs_return(&p->probes[1]), 0);
	probe_free(p);
}

static void test_probe_rejects_unknown_event_with_line(void **state)
{
	(void)state;
	parse_fails("# x\nFoo lok-acquire lock=rdi\n", TRACER_E_SYNTAX,
	            "t.probe:2: unknown event 'lok-acquire' for symbol 'Foo'");
}

static void test_probe_rejects_unknown_register(void **state)
{
	(void)state;
	parse_fails("\n\nFoo lock-release lock=rzz\n", TRACER_E_SYNTAX,
	            "t.probe:3: lock=rzz: unknown register (rax..r15, [REG+N], str:REG)");
}

static void test_probe_rejects_bad_memory_operand(void **state)
{
	(void)state;
	parse_fails("Foo lock-release lock=[rdi+8\n", TRACER_E_SYNTAX,
	            "t.probe:1: lock=[rdi+8: expected [REG], [REG+N] or [REG-N]");
	parse_fails("Foo lock-release lock=[rdi+x]\n", TRACER_E_SYNTAX,
	            "t.probe:1: lock=[rdi+x]: bad displacement");
}

static void test_probe_rejects_bad_width(void **state)
{
	(void)state;
	parse_fails("Foo lower new=rdi:3\n", TRACER_E_SYNTAX,
	            "t.probe:1: new=rdi:3: bad width (expected :1, :2, :4 or :8)");
}

static void test_probe_rejects_unknown_operand_name(void **state)
{
	(void)state;
	parse_fails("Foo lock-release mutex=rdi\n", TRACER_E_SYNTAX,
	            "t.probe:1: lock-release has no operand 'mutex'");
}

static void test_probe_rejects_missing_operand(void **state)
{
	(void)state;
	parse_fails("Foo switch old=rdi\n", TRACER_E_SYNTAX, "t.probe:1: switch needs new=OPERAND");
}

static void test_probe_rejects_duplicate_operand(void **state)
{
	(void)state;
	parse_fails("Foo switch old=rdi old=rsi new=rdx\n", TRACER_E_SYNTAX,
	            "t.probe:1: operand 'old' given twice");
}

static void test_probe_rejects_string_where_value_expected(void **state)
{
	(void)state;
	parse_fails("Foo lock-release lock=str:rdi\n", TRACER_E_SYNTAX,
	            "t.probe:1: lock=str:rdi: a string operand is not allowed here");
	parse_fails("Foo scenario name=rdi\n", TRACER_E_SYNTAX,
	            "t.probe:1: name=rdi: expected a string operand (str:REG or str:[REG+N])");
}

static void test_probe_rejects_at_return_on_kinds_with_returns(void **state)
{
	(void)state;
	parse_fails("Foo lock-acquire lock=rdi at=return\n", TRACER_E_SYNTAX,
	            "t.probe:1: at=return: expected at=entry or at=return (not for lock-acquire)");
}

static void test_probe_rejects_duplicate_symbol(void **state)
{
	(void)state;
	parse_fails("Foo signal object=rdi\nFoo signal object=rsi\n", TRACER_E_SYNTAX,
	            "t.probe:2: symbol 'Foo' already probed at line 1");
}

static void test_probe_rejects_bad_thread_declarations(void **state)
{
	(void)state;
	parse_fails("thread ds:0x10\n", TRACER_E_SYNTAX,
	            "t.probe:1: thread: expected gs:OFFSET, fs:OFFSET, an address or SYMBOL[+N]");
	parse_fails("thread-name 0x40\n", TRACER_E_SYNTAX,
	            "t.probe:1: usage: thread-name OFFSET LENGTH (LENGTH 1..64)");
	parse_fails("thread-name 0x40 100\n", TRACER_E_SYNTAX,
	            "t.probe:1: usage: thread-name OFFSET LENGTH (LENGTH 1..64)");
}

static void test_probe_rejects_lone_symbol(void **state)
{
	(void)state;
	parse_fails("KeRaiseIrql\n", TRACER_E_SYNTAX, "t.probe:1: expected SYMBOL EVENT [NAME=OPERAND...]");
}

static void test_probe_load_missing_file_is_io_error(void **state)
{
	struct probe_file *p = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(probe_load(tmp("nope.probe"), &p, &err), TRACER_E_IO);
	assert_null(p);
	assert_non_null(strstr(err, "cannot open probe file "));
	assert_non_null(strstr(err, "nope.probe"));
	free(err);
}

static void test_probe_shipped_krewind_probe_parses(void **state)
{
	struct probe_file *p = NULL;
	char *err = NULL;

	(void)state;
	if (probe_load("probes/krewind.probe", &p, &err))
		fail_msg("%s", err);
	assert_int_equal(p->nprobes, 22);
	/* what analysis/ used to hard-code, now said by the probe */
	assert_string_equal(p->probes[2].symbol, "KeAcquireSpinLockRaiseToDpc");
	assert_int_equal(p->probes[2].irq, DB_LI_RAISE_DISPATCH);
	assert_int_equal(p->probes[3].irq, DB_LI_AT_DISPATCH);
	assert_string_equal(p->probes[5].symbol, "KeReleaseSpinLock");
	assert_int_equal(p->probes[5].op[PROBE_OP_RESTORE].reg, PROBE_RSI);
	assert_int_equal(p->probes[17].kind, PROBE_CONTEXT);
	assert_int_equal(p->probes[17].ctx, DB_CTX_SOFTIRQ);
	assert_int_equal(p->thread_seg, PROBE_SEG_GS);
	assert_int_equal(p->thread_off, 0x188);
	assert_int_equal(p->name_off, 0x40);
	assert_int_equal(p->name_len, 16);
	probe_free(p);
}

/* ---------------------------------------------------------- ELF symbols */

static void test_elfsym_loads_functions_and_objects(void **state)
{
	struct elfsym_table *t = NULL;
	const struct elfsym *s;
	char *err = NULL;

	(void)state;
	write_elf(tmp("k.elf"), kernel_syms, sizeof(kernel_syms) / sizeof(kernel_syms[0]), 1, NULL, 0);
	if (elfsym_load(tmp("k.elf"), &t, &err))
		fail_msg("%s", err);
	assert_int_equal(elfsym_count(t), sizeof(kernel_syms) / sizeof(kernel_syms[0]));
	s = elfsym_find(t, "KiSwapContext");
	assert_non_null(s);
	assert_int_equal(s->addr, 0x100190);
	assert_int_equal(s->size, 0x50);
	assert_int_equal(s->is_func, 1);
	s = elfsym_find(t, "ScenarioLockB");
	assert_non_null(s);
	assert_int_equal(s->is_func, 0);
	assert_null(elfsym_find(t, "NoSuchThing"));
	assert_int_equal(elfsym_at(t, 0)->addr, 0x100000);
	assert_string_equal(elfsym_build_id(t), "");
	elfsym_free(t);
}

static void test_elfsym_lookup_by_address(void **state)
{
	struct elfsym_table *t = NULL;
	char *err = NULL;

	(void)state;
	write_elf(tmp("k.elf"), kernel_syms, sizeof(kernel_syms) / sizeof(kernel_syms[0]), 1, NULL, 0);
	assert_int_equal(elfsym_load(tmp("k.elf"), &t, &err), 0);
	assert_string_equal(elfsym_lookup(t, 0x100190)->name, "KiSwapContext");
	assert_string_equal(elfsym_lookup(t, 0x1001df)->name, "KiSwapContext");
	assert_string_equal(elfsym_lookup(t, 0x1001e0)->name, "KeWaitForSingleObject");
	assert_string_equal(elfsym_lookup(t, 0x20000c)->name, "ScenarioLockB");
	assert_string_equal(elfsym_lookup(t, 0x100500)->name, "AsmNoSize");
	assert_null(elfsym_lookup(t, 0x100501));
	assert_null(elfsym_lookup(t, 0x200010));
	assert_null(elfsym_lookup(t, 0x1000));
	elfsym_free(t);
}

static void test_elfsym_reads_build_id(void **state)
{
	static const uint8_t id[20] = {0xde, 0xad, 0xbe, 0xef, 1,  2,  3,  4,  5,  6,
	                               7,    8,    9,    10,   11, 12, 13, 14, 15, 0xff};
	struct elfsym_table *t = NULL;
	char *err = NULL;

	(void)state;
	write_elf(tmp("id.elf"), kernel_syms, 2, 1, id, sizeof(id));
	assert_int_equal(elfsym_load(tmp("id.elf"), &t, &err), 0);
	assert_string_equal(elfsym_build_id(t), "deadbeef0102030405060708090a0b0c0d0e0fff");
	elfsym_free(t);
}

static void test_elfsym_stripped_elf_loads_with_no_symbols(void **state)
{
	struct elfsym_table *t = NULL;
	char *err = NULL;

	(void)state;
	write_elf(tmp("s.elf"), NULL, 0, 0, NULL, 0);
	assert_int_equal(elfsym_load(tmp("s.elf"), &t, &err), 0);
	assert_int_equal(elfsym_count(t), 0);
	assert_null(elfsym_find(t, "KeRaiseIrql"));
	assert_null(elfsym_lookup(t, 0x100000));
	elfsym_free(t);
}

static void test_elfsym_refuses_non_elf(void **state)
{
	struct elfsym_table *t = NULL;
	char *err = NULL;
	FILE *f = fopen(tmp("junk"), "w");

	(void)state;
	fputs("this is not an ELF file\n", f);
	fclose(f);
	assert_int_equal(elfsym_load(tmp("junk"), &t, &err), TRACER_E_ELF);
	assert_null(t);
	assert_non_null(strstr(err, "junk: not an ELF file"));
	free(err);
	assert_int_equal(elfsym_load(tmp("missing.elf"), &t, &err), TRACER_E_IO);
	free(err);
}

static void test_elfsym_says_truncated(void **state)
{
	struct elfsym_table *t = NULL;
	char *err = NULL;
	struct stat st;

	(void)state;
	write_elf(tmp("cut.elf"), kernel_syms, sizeof(kernel_syms) / sizeof(kernel_syms[0]), 1, NULL, 0);
	assert_int_equal(stat(tmp("cut.elf"), &st), 0);
	/* a download cut short: the section headers at the end are gone */
	assert_int_equal(truncate(tmp("cut.elf"), st.st_size / 2), 0);
	assert_int_equal(elfsym_load(tmp("cut.elf"), &t, &err), TRACER_E_ELF);
	assert_null(t);
	assert_non_null(strstr(err, "cut.elf is truncated"));
	free(err);
}

static void test_elfsym_read_copies_code_bytes(void **state)
{
	struct elfsym_table *t = NULL;
	uint8_t buf[4];
	char *err = NULL;

	(void)state;
	write_elf(tmp("k.elf"), kernel_syms, 2, 1, NULL, 0);
	assert_int_equal(elfsym_load(tmp("k.elf"), &t, &err), 0);
	assert_int_equal(elfsym_read(t, 0x100010, buf, sizeof(buf), &err), 0);
	assert_int_equal(buf[0], (uint8_t)(0x10 * 7));
	assert_int_equal(buf[3], (uint8_t)(0x13 * 7));
	assert_int_equal(elfsym_read(t, 0x100ffe, buf, sizeof(buf), &err), TRACER_E_ELF);
	assert_non_null(strstr(err, "no code at 0x100ffe"));
	free(err);
	assert_int_equal(elfsym_read(t, 0x500000, buf, 1, &err), TRACER_E_ELF);
	free(err);
	elfsym_free(t);
}

/* ------------------------------------------------------------ resolving */

static void test_probe_resolves_shipped_probe_against_kernel_symbols(void **state)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = NULL;
	char *err = NULL;
	size_t i;

	(void)state;
	write_elf(tmp("k.elf"), kernel_syms, sizeof(kernel_syms) / sizeof(kernel_syms[0]), 1, NULL, 0);
	assert_int_equal(elfsym_load(tmp("k.elf"), &t, &err), 0);
	assert_int_equal(probe_load("probes/krewind.probe", &p, &err), 0);
	if (probe_resolve(p, t, &err))
		fail_msg("%s", err);
	for (i = 0; i < p->nprobes; i++)
		assert_int_equal(p->probes[i].addr, elfsym_find(t, p->probes[i].symbol)->addr);
	assert_int_equal(p->probes[9].addr, 0x190 + 0x100000); /* KiSwapContext */
	probe_free(p);
	elfsym_free(t);
}

static void test_probe_resolves_linux_probe_against_synthetic_vmlinux(void **state)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = NULL;
	char *err = NULL;

	(void)state;
	write_elf(tmp("vmlinux"), linux_syms, sizeof(linux_syms) / sizeof(linux_syms[0]), 1, NULL, 0);
	assert_int_equal(elfsym_load(tmp("vmlinux"), &t, &err), 0);
	/* probes/linux.probe is generated for a real build (krewind probe linux,
	 * tests/e2e/linux_boot.sh); this is its pcpu_hot (v6.2+) shape. */
	if (probe_parse("thread gs:pcpu_hot\nthread-name 0x5e8 16\n"
			"_raw_spin_lock lock-acquire lock=rdi\n_raw_spin_lock_irq lock-acquire lock=rdi\n"
			"_raw_spin_lock_irqsave lock-acquire lock=rdi\n_raw_spin_lock_bh lock-acquire lock=rdi\n"
			"_raw_spin_trylock lock-tryacquire lock=rdi\n__switch_to switch old=rdi new=rsi\n",
			"linux-6.2.probe", &p, &err))
		fail_msg("%s", err);
	if (probe_resolve(p, t, &err))
		fail_msg("%s", err);
	assert_int_equal(p->thread_seg, PROBE_SEG_GS);
	assert_int_equal(p->thread_off, 0x1f000);
	assert_null(p->thread_sym);
	assert_string_equal(p->probes[0].symbol, "_raw_spin_lock");
	assert_int_equal(p->probes[0].addr, 0xffffffff81e00000);
	assert_int_equal(p->probes[0].kind, PROBE_LOCK_ACQUIRE);
	assert_int_equal(p->probes[4].kind, PROBE_LOCK_TRYACQUIRE);
	probe_free(p);
	elfsym_free(t);
}

static void test_probe_missing_symbol_names_symbol_and_file(void **state)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = parse_ok("KeRaiseIrql raise new=rdi\n\nKeFrobnicate signal object=rdi\n");
	char *err = NULL;

	(void)state;
	write_elf(tmp("k.elf"), kernel_syms, sizeof(kernel_syms) / sizeof(kernel_syms[0]), 1, NULL, 0);
	assert_int_equal(elfsym_load(tmp("k.elf"), &t, &err), 0);
	assert_int_equal(probe_resolve(p, t, &err), TRACER_E_SYMBOL);
	assert_non_null(strstr(err, "t.probe:3: symbol 'KeFrobnicate' not found in "));
	assert_non_null(strstr(err, "/k.elf"));
	free(err);
	probe_free(p);
	elfsym_free(t);
}

static void test_probe_against_stripped_elf_fails_on_first_symbol(void **state)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = parse_ok("KeRaiseIrql raise new=rdi\n");
	char *err = NULL;

	(void)state;
	write_elf(tmp("s.elf"), NULL, 0, 0, NULL, 0);
	assert_int_equal(elfsym_load(tmp("s.elf"), &t, &err), 0);
	assert_int_equal(probe_resolve(p, t, &err), TRACER_E_SYMBOL);
	assert_non_null(strstr(err, "t.probe:1: symbol 'KeRaiseIrql' not found in "));
	free(err);
	probe_free(p);
	elfsym_free(t);
}

static void test_probe_return_needs_symbol_size(void **state)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = parse_ok("AsmNoSize lock-acquire lock=rdi\n");
	char *err = NULL;

	(void)state;
	write_elf(tmp("k.elf"), kernel_syms, sizeof(kernel_syms) / sizeof(kernel_syms[0]), 1, NULL, 0);
	assert_int_equal(elfsym_load(tmp("k.elf"), &t, &err), 0);
	assert_int_equal(probe_resolve(p, t, &err), TRACER_E_SYMBOL);
	assert_non_null(strstr(err, "t.probe:1: symbol 'AsmNoSize' in "));
	assert_non_null(strstr(err, "has no size, needed to find its returns"));
	free(err);
	probe_free(p);
	elfsym_free(t);
}

/* Code labels (STT_NOTYPE in .text) load as functions, sized up to the next
 * symbol, and can be probed; return thunks are recognised by name; NOTYPE
 * symbols outside code are not loaded. */
static const struct sym asm_syms[] = {
    {"asm_exc_page_fault", 0x100000, 0, STT_NOTYPE},
    {"asm_sysvec_apic_timer_interrupt", 0x100030, 0, STT_NOTYPE},
    {"__x86_return_thunk", 0x100040, 0, STT_NOTYPE},
    {"handler", 0x100080, 0x40, STT_FUNC},
    {"srso_return_thunk", 0x1000c0, 0x10, STT_FUNC},
    {".Llocal", 0x1000d0, 0, STT_NOTYPE},
    {"last_label", 0x100ff0, 0, STT_NOTYPE},
    /* linker markers at the address of a better name are dropped */
    {"__entry_text_start", 0x100080, 0, STT_NOTYPE},
    {"_sinittext", 0x100e00, 0, STT_NOTYPE},
    {"early_handler", 0x100e00, 0, STT_NOTYPE},
};

static void test_elfsym_loads_code_labels_sized_to_next_symbol(void **state)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = parse_ok("asm_exc_page_fault context hardirq\n");
	const struct elfsym *s;
	char *err = NULL;

	(void)state;
	write_elf(tmp("asm.elf"), asm_syms, sizeof(asm_syms) / sizeof(asm_syms[0]), 1, NULL, 0);
	assert_int_equal(elfsym_load(tmp("asm.elf"), &t, &err), 0);
	assert_int_equal(elfsym_count(t), 7); /* not .Llocal, __entry_text_start, _sinittext */
	assert_string_equal(elfsym_lookup(t, 0x100090)->name, "handler");
	assert_string_equal(elfsym_lookup(t, 0x100e10)->name, "early_handler");
	assert_null(elfsym_find(t, "_sinittext"));
	s = elfsym_find(t, "asm_exc_page_fault");
	assert_non_null(s);
	assert_true(s->is_func);
	assert_true(s->is_label);
	assert_true(s->size_from_next);
	assert_int_equal(s->size, 0x30);
	assert_ptr_equal(elfsym_lookup(t, 0x10002f), s);
	s = elfsym_find(t, "handler");
	assert_false(s->is_label);
	assert_false(s->size_from_next);
	/* the last label has no next symbol within 64 KiB: no size */
	assert_int_equal(elfsym_find(t, "last_label")->size, 0);
	assert_true(elfsym_is_return_thunk(elfsym_find(t, "__x86_return_thunk")));
	assert_true(elfsym_is_return_thunk(elfsym_find(t, "srso_return_thunk")));
	assert_false(elfsym_is_return_thunk(elfsym_find(t, "handler")));
	assert_null(elfsym_find(t, ".Llocal"));
	assert_int_equal(probe_resolve(p, t, &err), 0);
	assert_int_equal(p->probes[0].addr, 0x100000);
	assert_int_equal(p->probes[0].size, 0x30);
	assert_true(p->probes[0].size_from_next);
	probe_free(p);
	elfsym_free(t);
}

static void test_probe_resolves_preempt_symbol(void **state)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = parse_ok("preempt-count gs:pcpu_hot+8 4\n");
	char *err = NULL;

	(void)state;
	write_elf(tmp("vmlinux"), linux_syms, sizeof(linux_syms) / sizeof(linux_syms[0]), 1, NULL, 0);
	assert_int_equal(elfsym_load(tmp("vmlinux"), &t, &err), 0);
	assert_int_equal(probe_resolve(p, t, &err), 0);
	assert_int_equal(p->preempt_off, 0x1f008);
	assert_null(p->preempt_sym);
	probe_free(p);
	p = parse_ok("\npreempt-count gs:__preempt_count 4\n");
	assert_int_equal(probe_resolve(p, t, &err), TRACER_E_SYMBOL);
	assert_non_null(strstr(err, "t.probe:2: symbol '__preempt_count' not found in "));
	free(err);
	probe_free(p);
	elfsym_free(t);
}

/* [SYMBOL+N] operands get the symbol's address; an eoi function needs a size. */
static void test_probe_resolves_global_operands(void **state)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = parse_ok("asm_exc_page_fault switch old=rdi-0x20 new=[handler+0x10]\nhandler eoi\n");
	char *err = NULL;

	(void)state;
	write_elf(tmp("asm2.elf"), asm_syms, sizeof(asm_syms) / sizeof(asm_syms[0]), 1, NULL, 0);
	assert_int_equal(elfsym_load(tmp("asm2.elf"), &t, &err), 0);
	assert_int_equal(probe_resolve(p, t, &err), 0);
	assert_null(p->probes[0].op[1].sym);
	assert_int_equal(p->probes[0].op[1].disp, (int64_t)elfsym_find(t, "handler")->addr + 0x10);
	probe_free(p);
	p = parse_ok("handler switch old=rdi new=[nowhere]\n");
	assert_int_equal(probe_resolve(p, t, &err), TRACER_E_SYMBOL);
	assert_non_null(strstr(err, "t.probe:1: symbol 'nowhere' not found in "));
	free(err), err = NULL;
	probe_free(p);
	p = parse_ok("last_label eoi\n");
	assert_int_equal(probe_resolve(p, t, &err), TRACER_E_SYMBOL);
	assert_non_null(strstr(err, "has no size, needed to find its stores"));
	free(err);
	probe_free(p);
	elfsym_free(t);
}

static void test_probe_object_symbol_is_not_a_function(void **state)
{
	struct elfsym_table *t = NULL;
	struct probe_file *p = parse_ok("ScenarioLockA signal object=rdi\n");
	char *err = NULL;

	(void)state;
	write_elf(tmp("k.elf"), kernel_syms, sizeof(kernel_syms) / sizeof(kernel_syms[0]), 1, NULL, 0);
	assert_int_equal(elfsym_load(tmp("k.elf"), &t, &err), 0);
	assert_int_equal(probe_resolve(p, t, &err), TRACER_E_SYMBOL);
	assert_non_null(strstr(err, "is not a function"));
	free(err);
	probe_free(p);
	elfsym_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_probe_parses_register_operand),
	    cmocka_unit_test(test_probe_parses_memory_operand_with_displacement),
	    cmocka_unit_test(test_probe_parses_width_suffix),
	    cmocka_unit_test(test_probe_parses_string_operands),
	    cmocka_unit_test(test_probe_parses_every_event_kind),
	    cmocka_unit_test(test_probe_parses_globals_and_offsets),
	    cmocka_unit_test(test_probe_parses_thread_declarations),
	    cmocka_unit_test(test_probe_at_return_is_recorded),
	    cmocka_unit_test(test_probe_parses_lock_attributes),
	    cmocka_unit_test(test_probe_rejects_bad_lock_attributes),
	    cmocka_unit_test(test_probe_parses_new_events),
	    cmocka_unit_test(test_probe_rejects_bad_new_events),
	    cmocka_unit_test(test_probe_parses_tid_and_preempt_declarations),
		cmocka_unit_test(test_probe_parses_module_layout),
	    cmocka_unit_test(test_probe_rejects_unknown_event_with_line),
	    cmocka_unit_test(test_probe_rejects_unknown_register),
	    cmocka_unit_test(test_probe_rejects_bad_memory_operand),
	    cmocka_unit_test(test_probe_rejects_bad_width),
	    cmocka_unit_test(test_probe_rejects_unknown_operand_name),
	    cmocka_unit_test(test_probe_rejects_missing_operand),
	    cmocka_unit_test(test_probe_rejects_duplicate_operand),
	    cmocka_unit_test(test_probe_rejects_string_where_value_expected),
	    cmocka_unit_test(test_probe_rejects_at_return_on_kinds_with_returns),
	    cmocka_unit_test(test_probe_rejects_duplicate_symbol),
	    cmocka_unit_test(test_probe_rejects_bad_thread_declarations),
	    cmocka_unit_test(test_probe_rejects_lone_symbol),
	    cmocka_unit_test(test_probe_load_missing_file_is_io_error),
	    cmocka_unit_test(test_probe_shipped_krewind_probe_parses),
	    cmocka_unit_test(test_elfsym_loads_functions_and_objects),
	    cmocka_unit_test(test_elfsym_lookup_by_address),
	    cmocka_unit_test(test_elfsym_reads_build_id),
	    cmocka_unit_test(test_elfsym_stripped_elf_loads_with_no_symbols),
	    cmocka_unit_test(test_elfsym_refuses_non_elf),
	    cmocka_unit_test(test_elfsym_says_truncated),
	    cmocka_unit_test(test_elfsym_read_copies_code_bytes),
	    cmocka_unit_test(test_probe_resolves_shipped_probe_against_kernel_symbols),
	    cmocka_unit_test(test_probe_resolves_linux_probe_against_synthetic_vmlinux),
	    cmocka_unit_test(test_probe_missing_symbol_names_symbol_and_file),
	    cmocka_unit_test(test_probe_against_stripped_elf_fails_on_first_symbol),
	    cmocka_unit_test(test_probe_return_needs_symbol_size),
	    cmocka_unit_test(test_probe_object_symbol_is_not_a_function),
	    cmocka_unit_test(test_elfsym_loads_code_labels_sized_to_next_symbol),
	    cmocka_unit_test(test_probe_resolves_preempt_symbol),
	    cmocka_unit_test(test_probe_resolves_global_operands),
	};

	return cmocka_run_group_tests_name("probe", tests, make_tmp, rm_tmp);
}
