/*
 * probe.c - the probe file parser (format: docs/probe.md).
 *
 * A probe file tells the tracer what a kernel's functions mean: which symbol is
 * a spinlock acquire, where its lock pointer is, where the current thread
 * lives. One directive per line; errors name the file and the line.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "tracer/tracer.h"

/* Per kind: operand names (index = slot in probe.op), which are required,
 * which are strings. */
struct kind_desc {
	const char *name;
	const char *ops[PROBE_MAX_OPS];
	unsigned required, strings;
	int has_return; /* the event (also) fires at the return */
};

static const struct kind_desc kinds[PROBE_KIND_MAX + 1] = {
    [PROBE_RAISE] = {"raise", {"new"}, 1, 0, 0},
    [PROBE_LOWER] = {"lower", {"new"}, 1, 0, 0},
    [PROBE_LOCK_ACQUIRE] = {"lock-acquire", {"lock", "subclass"}, 1, 0, 1},
    [PROBE_LOCK_TRYACQUIRE] = {"lock-tryacquire", {"lock", "subclass", "result"}, 1, 0, 1},
    [PROBE_LOCK_RELEASE] = {"lock-release", {"lock", "restore"}, 1, 0, 0},
    [PROBE_LOCK_INIT] = {"lock-init", {"lock"}, 1, 0, 0},
    [PROBE_SWITCH] = {"switch", {"old", "new"}, 3, 0, 0},
    [PROBE_WAIT] = {"wait", {"object", "timeout"}, 1, 0, 1},
    [PROBE_MUTEX_ACQUIRE] = {"mutex-acquire", {"mutex", "owner"}, 1, 0, 0},
    [PROBE_MUTEX_RELEASE] = {"mutex-release", {"mutex"}, 1, 0, 0},
    [PROBE_SIGNAL] = {"signal", {"object"}, 1, 0, 0},
    [PROBE_BUGCHECK] = {"bugcheck", {"code", "param", "text"}, 0, 4, 0},
    [PROBE_RESULT] = {"result", {"passed", "failed"}, 3, 0, 0},
    [PROBE_SCENARIO] = {"scenario", {"name"}, 1, 1, 0},
    [PROBE_MARKER] = {"marker", {"text"}, 1, 1, 0},
    [PROBE_CONTEXT] = {"context", {NULL}, 0, 0, 1},
    [PROBE_DEFER_QUEUE] = {"defer-queue", {"item"}, 1, 0, 0},
    [PROBE_DEFER_RUN] = {"defer-run", {"item"}, 0, 0, 0},
    [PROBE_SLEEP] = {"sleep", {"timeout"}, 0, 0, 0},
    [PROBE_PANIC] = {"panic", {"text"}, 0, 1, 0},
    [PROBE_SYSCALL] = {"syscall", {"number"}, 1, 0, 0},
    [PROBE_MODULE_LOAD] = {"module-load", {"module"}, 1, 0, 0},
    [PROBE_EOI] = {"eoi", {NULL}, 0, 0, 0},
};

/* Words of the lock attributes, by enum value (db/db.h). */
static const char *const flavors[] = {
    [DB_LF_SPIN] = "spin",         [DB_LF_READ] = "read",
    [DB_LF_WRITE] = "write",       [DB_LF_MUTEX] = "mutex",
    [DB_LF_RWSEM_READ] = "rwsem-read", [DB_LF_RWSEM_WRITE] = "rwsem-write",
    [DB_LF_SEM] = "sem",
};
static const char *const lock_irqs[] = {
    [DB_LI_NONE] = "none",
    [DB_LI_IRQSAVE] = "save",
    [DB_LI_IRQ] = "irq",
    [DB_LI_BH] = "bh",
    [DB_LI_RAISE_DISPATCH] = "raise-dispatch",
    [DB_LI_AT_DISPATCH] = "at-dispatch",
};
static const char *const contexts[] = {
    [DB_CTX_HARDIRQ] = "hardirq",
    [DB_CTX_SOFTIRQ] = "softirq",
    [DB_CTX_NMI] = "nmi",
};

/* Index of word in names[0..n) (NULL entries skipped), or -1. */
static int lookup_word(const char *word, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (names[i] && strcmp(names[i], word) == 0)
			return i;
	return -1;
}

static int is_lock_kind(enum probe_kind k)
{
	return k == PROBE_LOCK_ACQUIRE || k == PROBE_LOCK_TRYACQUIRE || k == PROBE_LOCK_RELEASE ||
	       k == PROBE_LOCK_INIT;
}

static const char *const regs[PROBE_NREGS] = {
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
    "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15",
};

const char *probe_kind_name(enum probe_kind k)
{
	return k >= PROBE_RAISE && k <= PROBE_KIND_MAX ? kinds[k].name : NULL;
}

const char *probe_reg_name(enum probe_reg r)
{
	return r < PROBE_NREGS ? regs[r] : NULL;
}

int probe_needs_return(const struct probe *p)
{
	return p->at_return || kinds[p->kind].has_return;
}

static int fail(char **err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		if (vasprintf(err, fmt, ap) < 0)
			*err = NULL;
		va_end(ap);
	}
	return code;
}

static int parse_reg(const char *s, size_t n)
{
	int r;

	for (r = 0; r < PROBE_NREGS; r++)
		if (strlen(regs[r]) == n && strncmp(s, regs[r], n) == 0)
			return r;
	return -1;
}

/* Parses a whole token as an integer (decimal or 0x hex, optional sign). */
static int parse_int(const char *s, int64_t *v)
{
	char *end;

	if (!*s)
		return -1;
	errno = 0;
	*v = strtoll(s, &end, 0);
	return errno || *end ? -1 : 0;
}

/* 1 if s[0..n) is a symbol name: [A-Za-z_.][A-Za-z0-9_.$]* */
static int is_symbol(const char *s, size_t n)
{
	size_t i;

	if (!n || (!isalpha((unsigned char)s[0]) && s[0] != '_' && s[0] != '.'))
		return 0;
	for (i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '$')
			return 0;
	return 1;
}

/*
 * REG | [REG] | [REG+N] | [REG-N] | [SYMBOL] | [SYMBOL+N] | [ADDRESS], then
 * optionally +N or -N (added to the value: `rdi-0x20`, `[rdi]-8`, the
 * object containing a member the operand points to), then optionally :WIDTH;
 * or str:REG | str:[REG+N] | str:[SYMBOL].
 */
static int parse_loc(const char *s, int want_string, struct probe_loc *l, const char **why)
{
	const char *p = s, *rest;
	char *colon;
	char buf[64];
	int64_t width = 8;
	size_t n;
	int r;

	memset(l, 0, sizeof(*l));
	if (strlen(s) >= sizeof(buf)) {
		*why = "operand too long";
		return -1;
	}
	if (strncmp(p, "str:", 4) == 0) {
		if (!want_string) {
			*why = "a string operand is not allowed here";
			return -1;
		}
		p += 4;
		l->kind = PROBE_LOC_STR;
	} else if (want_string) {
		*why = "expected a string operand (str:REG or str:[REG+N])";
		return -1;
	}
	strcpy(buf, p);
	colon = strrchr(buf, ':');
	if (colon) {
		if (l->kind == PROBE_LOC_STR || parse_int(colon + 1, &width) ||
		    (width != 1 && width != 2 && width != 4 && width != 8)) {
			*why = "bad width (expected :1, :2, :4 or :8)";
			return -1;
		}
		*colon = '\0';
	}
	l->width = (unsigned)width;
	if (buf[0] == '[') {
		char *inner = buf + 1, *close = strchr(buf, ']');

		if (!close) {
			*why = "expected [REG], [REG+N] or [REG-N]";
			return -1;
		}
		*close = '\0';
		rest = close + 1;
		n = strcspn(inner, "+-");
		r = parse_reg(inner, n);
		if (r >= 0) {
			l->reg = (enum probe_reg)r;
		} else if (is_symbol(inner, n)) {
			/* a global: its address, resolved by probe_resolve */
			l->reg = PROBE_NREGS;
			if (!(l->sym = strndup(inner, n))) {
				*why = "out of memory";
				return -1;
			}
		} else if (isdigit((unsigned char)inner[0])) {
			l->reg = PROBE_NREGS;
			if (parse_int(inner, &l->disp) || l->disp <= 0) {
				*why = "bad address";
				return -1;
			}
			n = strlen(inner);
		} else {
			*why = "unknown register in memory operand";
			return -1;
		}
		if (inner[n] && (parse_int(inner + n, &l->disp) || inner[n + 1] == '+' || inner[n + 1] == '-')) {
			free(l->sym);
			l->sym = NULL;
			*why = "bad displacement";
			return -1;
		}
		if (l->kind == PROBE_LOC_STR)
			l->deref = 1;
		else
			l->kind = PROBE_LOC_MEM;
	} else {
		n = strcspn(buf, "+-");
		r = parse_reg(buf, n);
		if (r < 0) {
			*why = "unknown register (rax..r15, [REG+N], str:REG)";
			return -1;
		}
		l->reg = (enum probe_reg)r;
		rest = buf + n;
		if (l->kind != PROBE_LOC_STR)
			l->kind = PROBE_LOC_REG;
	}
	if (*rest) {
		if (l->kind == PROBE_LOC_STR || parse_int(rest, &l->add) || rest[1] == '+' || rest[1] == '-') {
			free(l->sym);
			l->sym = NULL;
			*why = l->kind == PROBE_LOC_STR ? "a string operand takes no offset" : "bad offset (expected +N or -N)";
			return -1;
		}
	}
	return 0;
}

/* [gs:|fs:]OFFSET, [gs:|fs:]SYMBOL or [gs:|fs:]SYMBOL+N into seg, *sym
 * (malloc'd, or NULL for a number) and off. need_seg: the segment is
 * required. Returns 0, or -1 (syntax; *why says what) or TRACER_E_NOMEM. */
static int parse_place(char *arg, int need_seg, enum probe_seg *seg, char **sym, int64_t *off, const char **why)
{
	char *plus;

	*seg = PROBE_SEG_NONE;
	*sym = NULL;
	*off = 0;
	if (strncmp(arg, "gs:", 3) == 0)
		*seg = PROBE_SEG_GS;
	else if (strncmp(arg, "fs:", 3) == 0)
		*seg = PROBE_SEG_FS;
	else if (need_seg) {
		*why = "expected gs:OFFSET, fs:OFFSET or none";
		return -1;
	} else if (strchr(arg, ':')) {
		*why = "expected gs:OFFSET, fs:OFFSET, an address or SYMBOL[+N]";
		return -1;
	}
	if (*seg != PROBE_SEG_NONE)
		arg += 3;
	if (parse_int(arg, off) == 0)
		return 0;
	plus = strchr(arg, '+');
	if (plus) {
		*plus = '\0';
		if (parse_int(plus + 1, off)) {
			*why = "bad offset";
			return -1;
		}
	}
	if (!isalpha((unsigned char)arg[0]) && arg[0] != '_') {
		*why = "bad offset";
		return -1;
	}
	*sym = strdup(arg);
	return *sym ? 0 : TRACER_E_NOMEM;
}

/* `thread gs:OFF`, `thread fs:SYMBOL+N`, `thread SYMBOL+N` (a global: cpus[0].proc), `thread none` */
static int parse_thread(struct probe_file *pf, char *arg, int line, char **err)
{
	const char *why = "";
	char *sym = NULL;
	int rc;

	if (strcmp(arg, "none") == 0) {
		pf->thread_seg = PROBE_SEG_NONE;
		pf->thread_abs = 0;
		return 0;
	}
	rc = parse_place(arg, 0, &pf->thread_seg, &sym, &pf->thread_off, &why);
	if (rc == TRACER_E_NOMEM)
		return fail(err, rc, "out of memory");
	if (rc)
		return fail(err, TRACER_E_SYNTAX, "%s:%d: thread: %s", pf->path, line, why);
	pf->thread_abs = pf->thread_seg == PROBE_SEG_NONE;
	pf->thread_line = line;
	free(pf->thread_sym);
	pf->thread_sym = sym;
	return 0;
}

/* `preempt-count gs:__preempt_count 4`, `preempt-count gs:pcpu_hot+8 4`, `preempt-count cpus+0x10 4` */
static int parse_preempt(struct probe_file *pf, char *place, const char *size, int line, char **err)
{
	const char *why = "expected [gs:|fs:]OFFSET|SYMBOL[+N] SIZE (SIZE 1, 2, 4 or 8)";
	char *sym = NULL;
	int64_t v;
	int rc;

	if (parse_int(size, &v) || (v != 1 && v != 2 && v != 4 && v != 8))
		return fail(err, TRACER_E_SYNTAX, "%s:%d: preempt-count: %s", pf->path, line, why);
	rc = parse_place(place, 0, &pf->preempt_seg, &sym, &pf->preempt_off, &why);
	if (rc == TRACER_E_NOMEM)
		return fail(err, rc, "out of memory");
	if (rc)
		return fail(err, TRACER_E_SYNTAX, "%s:%d: preempt-count: %s", pf->path, line, why);
	free(pf->preempt_sym);
	pf->preempt_sym = sym;
	pf->preempt_len = (unsigned)v;
	pf->preempt_line = line;
	return 0;
}

/* `hardirq=0xf0000` and its kin after a preempt-count's SIZE. */
static int parse_ctx_mask(struct probe_file *pf, char *tok, int line, char **err)
{
	static const char *const names[4] = {"hardirq", "softirq", "bh", "nmi"};
	uint32_t *fields[4] = {&pf->ctx_hardirq, &pf->ctx_softirq, &pf->ctx_bh, &pf->ctx_nmi};
	char *eq = strchr(tok, '=');
	int64_t v;

	for (int i = 0; eq && i < 4; i++)
		if ((size_t)(eq - tok) == strlen(names[i]) && strncmp(tok, names[i], (size_t)(eq - tok)) == 0) {
			if (parse_int(eq + 1, &v) || v <= 0 || v > 0x7fffffff)
				break;
			*fields[i] = (uint32_t)v;
			return 0;
		}
	return fail(err, TRACER_E_SYNTAX, "%s:%d: preempt-count: %s: expected hardirq=, softirq=, bh= or nmi=MASK",
	            pf->path, line, tok);
}

/* Splits s on blanks into at most max tokens (in place). */
static int split(char *s, char **tok, int max)
{
	int n = 0;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			return n;
		if (n == max)
			return max + 1;
		tok[n++] = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		if (*s)
			*s++ = '\0';
	}
}

static void free_ops(struct probe *pr)
{
	for (int j = 0; j < PROBE_MAX_OPS; j++) {
		free(pr->op[j].sym);
		pr->op[j].sym = NULL;
	}
}

/* Fills *out from one probe line (operands may own symbol names, freed by
 * free_ops when the line is refused). */
static int probe_fields(struct probe_file *pf, char **tok, int ntok, int line, struct probe *out, char **err)
{
	const struct kind_desc *kd = NULL;
	unsigned seen = 0;
	int k, i, j;

	for (k = PROBE_RAISE; k <= PROBE_KIND_MAX; k++)
		if (strcmp(tok[1], kinds[k].name) == 0)
			kd = &kinds[k];
	if (!kd)
		return fail(err, TRACER_E_SYNTAX, "%s:%d: unknown event '%s' for symbol '%s'", pf->path, line,
		            tok[1], tok[0]);
	out->kind = (enum probe_kind)(kd - kinds);
	out->line = line;
	i = 2;
	if (out->kind == PROBE_CONTEXT) {
		int c = ntok > 2 ? lookup_word(tok[2], contexts, DB_CTX_NMI + 1) : -1;

		if (c < 0)
			return fail(err, TRACER_E_SYNTAX, "%s:%d: usage: SYMBOL context softirq|hardirq|nmi",
			            pf->path, line);
		out->ctx = (uint8_t)c;
		i = 3;
	}
	for (; i < ntok; i++) {
		char *eq = strchr(tok[i], '=');
		const char *why = NULL, *val;

		if (!eq || eq == tok[i])
			return fail(err, TRACER_E_SYNTAX, "%s:%d: expected NAME=OPERAND, got '%s'", pf->path,
			            line, tok[i]);
		*eq = '\0';
		if (strcmp(tok[i], "at") == 0) {
			if (strcmp(eq + 1, "return") == 0 && !kd->has_return)
				out->at_return = 1;
			else if (strcmp(eq + 1, "entry") != 0)
				return fail(err, TRACER_E_SYNTAX,
				            "%s:%d: at=%s: expected at=entry or at=return (not for %s)",
				            pf->path, line, eq + 1, kd->name);
			continue;
		}
		if (strcmp(tok[i], "flavor") == 0 || strcmp(tok[i], "irq") == 0) {
			int fl = tok[i][0] == 'f';
			int w = fl ? lookup_word(eq + 1, flavors, DB_LF_SEM + 1)
			           : lookup_word(eq + 1, lock_irqs, DB_LI_AT_DISPATCH + 1);

			if (!is_lock_kind(out->kind))
				return fail(err, TRACER_E_SYNTAX, "%s:%d: %s= is for lock events, not %s",
				            pf->path, line, tok[i], kd->name);
			if (w < 0)
				return fail(err, TRACER_E_SYNTAX,
				            fl ? "%s:%d: flavor=%s: expected spin, read, write, mutex, rwsem-read, "
				                 "rwsem-write or sem"
				               : "%s:%d: irq=%s: expected none, save, irq, bh, raise-dispatch or "
				                 "at-dispatch",
				            pf->path, line, eq + 1);
			if (fl)
				out->flavor = (uint8_t)w;
			else
				out->irq = (uint8_t)w;
			continue;
		}
		for (j = 0; j < PROBE_MAX_OPS; j++)
			if (kd->ops[j] && strcmp(kd->ops[j], tok[i]) == 0)
				break;
		if (j == PROBE_MAX_OPS)
			return fail(err, TRACER_E_SYNTAX, "%s:%d: %s has no operand '%s'", pf->path, line,
			            kd->name, tok[i]);
		if (seen & (1u << j))
			return fail(err, TRACER_E_SYNTAX, "%s:%d: operand '%s' given twice", pf->path, line,
			            tok[i]);
		val = eq + 1;
		/* result=eax / result=al: the register's low 4 bytes / low byte;
		 * result=!eax: success is 0 (down_trylock, down_timeout) */
		if (out->kind == PROBE_LOCK_TRYACQUIRE && j == PROBE_OP_RESULT) {
			if (*val == '!') {
				out->result_zero = 1;
				val++;
			}
			val = strcmp(val, "eax") == 0 ? "rax:4" : strcmp(val, "al") == 0 ? "rax:1" : val;
		}
		if (parse_loc(val, !!(kd->strings & (1u << j)), &out->op[j], &why))
			return fail(err, TRACER_E_SYNTAX, "%s:%d: %s=%s: %s", pf->path, line, tok[i], eq + 1,
			            why);
		if (out->kind == PROBE_LOCK_TRYACQUIRE && j == PROBE_OP_RESULT && out->op[j].kind != PROBE_LOC_REG)
			return fail(err, TRACER_E_SYNTAX, "%s:%d: result=%s: expected a register (rax:1, eax, al)",
			            pf->path, line, eq + 1);
		seen |= 1u << j;
	}
	for (j = 0; j < PROBE_MAX_OPS; j++)
		if ((kd->required & (1u << j)) && !(seen & (1u << j)))
			return fail(err, TRACER_E_SYNTAX, "%s:%d: %s needs %s=OPERAND", pf->path, line,
			            kd->name, kd->ops[j]);
	for (j = 0; j < (int)pf->nprobes; j++)
		if (strcmp(pf->probes[j].symbol, tok[0]) == 0)
			return fail(err, TRACER_E_SYNTAX, "%s:%d: symbol '%s' already probed at line %d",
			            pf->path, line, tok[0], pf->probes[j].line);
	return 0;
}

static int parse_probe(struct probe_file *pf, char **tok, int ntok, int line, char **err)
{
	struct probe pr = {0};
	struct probe *grown;
	int rc = probe_fields(pf, tok, ntok, line, &pr, err);

	if (rc) {
		free_ops(&pr);
		return rc;
	}
	pr.symbol = strdup(tok[0]);
	grown = realloc(pf->probes, (pf->nprobes + 1) * sizeof(*grown));
	if (!pr.symbol || !grown) {
		free(pr.symbol);
		free_ops(&pr);
		if (grown)
			pf->probes = grown;
		return fail(err, TRACER_E_NOMEM, "out of memory");
	}
	pf->probes = grown;
	pf->probes[pf->nprobes++] = pr;
	return 0;
}

static int parse_line(struct probe_file *pf, char *s, int line, char **err)
{
	char *tok[8];
	char *hash = strchr(s, '#');
	int n;
	int64_t v;

	if (hash)
		*hash = '\0';
	n = split(s, tok, 8);
	if (n == 0)
		return 0;
	if (n > 8)
		return fail(err, TRACER_E_SYNTAX, "%s:%d: too many fields", pf->path, line);
	if (strcmp(tok[0], "thread") == 0) {
		if (n != 2)
			return fail(err, TRACER_E_SYNTAX, "%s:%d: usage: thread gs:OFFSET", pf->path, line);
		return parse_thread(pf, tok[1], line, err);
	}
	if (strcmp(tok[0], "thread-id") == 0) {
		if (n != 3 || parse_int(tok[1], &pf->tid_off) || parse_int(tok[2], &v) ||
		    (v != 1 && v != 2 && v != 4 && v != 8) || pf->tid_off < 0)
			return fail(err, TRACER_E_SYNTAX, "%s:%d: usage: thread-id OFFSET SIZE (SIZE 1, 2, 4 or 8)",
			            pf->path, line);
		pf->tid_len = (unsigned)v;
		return 0;
	}
	if (strcmp(tok[0], "preempt-count") == 0) {
		if (n < 3)
			return fail(err, TRACER_E_SYNTAX,
			            "%s:%d: usage: preempt-count [gs:|fs:]OFFSET|SYMBOL[+N] SIZE "
			            "[hardirq=MASK] [softirq=MASK] [bh=MASK] [nmi=MASK]", pf->path, line);
		int rc = parse_preempt(pf, tok[1], tok[2], line, err);
		for (int i = 3; i < n && !rc; i++)
			rc = parse_ctx_mask(pf, tok[i], line, err);
		return rc;
	}
	if (strcmp(tok[0], "module-layout") == 0) {
		int64_t *f[5] = {&pf->mod_name_off, &pf->mod_kallsyms_off, &pf->mod_symtab_off, &pf->mod_num_off,
		                 &pf->mod_strtab_off};
		int bad = n != 6;
		for (int i = 0; i < 5 && !bad; i++)
			bad = parse_int(tok[i + 1], f[i]) || *f[i] < 0;
		if (bad)
			return fail(err, TRACER_E_SYNTAX,
			            "%s:%d: usage: module-layout NAME KALLSYMS SYMTAB NUM STRTAB (offsets)", pf->path,
			            line);
		pf->has_module_layout = 1;
		return 0;
	}
	if (strcmp(tok[0], "thread-name") == 0) {
		if (n != 3 || parse_int(tok[1], &pf->name_off) || parse_int(tok[2], &v) || v < 1 || v > 64 ||
		    pf->name_off < 0)
			return fail(err, TRACER_E_SYNTAX,
			            "%s:%d: usage: thread-name OFFSET LENGTH (LENGTH 1..64)", pf->path, line);
		pf->name_len = (unsigned)v;
		return 0;
	}
	if (n < 2)
		return fail(err, TRACER_E_SYNTAX, "%s:%d: expected SYMBOL EVENT [NAME=OPERAND...]", pf->path,
		            line);
	return parse_probe(pf, tok, n, line, err);
}

int probe_parse(const char *text, const char *path, struct probe_file **out, char **err)
{
	struct probe_file *pf;
	char *copy = NULL, *s, *nl;
	int line = 1, rc = 0;

	*out = NULL;
	pf = calloc(1, sizeof(*pf));
	if (!pf || !(pf->path = strdup(path)) || !(copy = strdup(text))) {
		rc = fail(err, TRACER_E_NOMEM, "out of memory");
		goto out;
	}
	for (s = copy; *s; s = nl + 1, line++) {
		nl = strchr(s, '\n');
		if (nl)
			*nl = '\0';
		if ((rc = parse_line(pf, s, line, err)))
			goto out;
		if (!nl)
			break;
	}
	for (size_t i = 0; i < pf->nprobes && !rc; i++)
		if (pf->probes[i].kind == PROBE_MODULE_LOAD && !pf->has_module_layout)
			rc = fail(err, TRACER_E_SYNTAX, "%s:%d: module-load needs a module-layout line (where a module "
			          "keeps its name and symbols)", pf->path, pf->probes[i].line);
out:
	free(copy);
	if (rc) {
		probe_free(pf);
		return rc;
	}
	*out = pf;
	return 0;
}

int probe_load(const char *path, struct probe_file **out, char **err)
{
	FILE *f;
	char *text = NULL;
	size_t len = 0, cap = 0, got;
	int rc;

	*out = NULL;
	f = fopen(path, "r");
	if (!f)
		return fail(err, TRACER_E_IO, "cannot open probe file %s: %s", path, strerror(errno));
	do {
		if (len + 4096 + 1 > cap) {
			char *grown = realloc(text, cap = 2 * cap + 4096 + 1);

			if (!grown) {
				free(text);
				fclose(f);
				return fail(err, TRACER_E_NOMEM, "out of memory");
			}
			text = grown;
		}
		got = fread(text + len, 1, 4096, f);
		len += got;
	} while (got > 0);
	if (ferror(f)) {
		rc = fail(err, TRACER_E_IO, "cannot read probe file %s", path);
	} else if (memchr(text, '\0', len)) {
		rc = fail(err, TRACER_E_SYNTAX, "%s: not a text file", path);
	} else {
		text[len] = '\0';
		rc = probe_parse(text, path, out, err);
	}
	free(text);
	fclose(f);
	return rc;
}

int probe_resolve(struct probe_file *p, const struct elfsym_table *syms, char **err)
{
	size_t i;

	if (p->thread_sym) {
		const struct elfsym *s = elfsym_find(syms, p->thread_sym);

		if (!s)
			return fail(err, TRACER_E_SYMBOL, "%s:%d: symbol '%s' not found in %s", p->path,
			            p->thread_line, p->thread_sym, elfsym_path(syms));
		p->thread_off += (int64_t)s->addr;
		free(p->thread_sym);
		p->thread_sym = NULL;
	}
	if (p->preempt_sym) {
		const struct elfsym *s = elfsym_find(syms, p->preempt_sym);

		if (!s)
			return fail(err, TRACER_E_SYMBOL, "%s:%d: symbol '%s' not found in %s", p->path,
			            p->preempt_line, p->preempt_sym, elfsym_path(syms));
		p->preempt_off += (int64_t)s->addr;
		free(p->preempt_sym);
		p->preempt_sym = NULL;
	}
	for (i = 0; i < p->nprobes; i++) {
		struct probe *pr = &p->probes[i];
		const struct elfsym *s = elfsym_find(syms, pr->symbol);

		if (!s)
			return fail(err, TRACER_E_SYMBOL, "%s:%d: symbol '%s' not found in %s", p->path,
			            pr->line, pr->symbol, elfsym_path(syms));
		if (!s->is_func)
			return fail(err, TRACER_E_SYMBOL, "%s:%d: symbol '%s' in %s is not a function or code label",
			            p->path, pr->line, pr->symbol, elfsym_path(syms));
		if (probe_needs_return(pr) && s->size == 0)
			return fail(err, TRACER_E_SYMBOL,
			            "%s:%d: symbol '%s' in %s has no size, needed to find its returns",
			            p->path, pr->line, pr->symbol, elfsym_path(syms));
		if (pr->kind == PROBE_EOI && s->size == 0)
			return fail(err, TRACER_E_SYMBOL,
			            "%s:%d: symbol '%s' in %s has no size, needed to find its stores",
			            p->path, pr->line, pr->symbol, elfsym_path(syms));
		for (size_t j = 0; j < PROBE_MAX_OPS; j++) {
			struct probe_loc *l = &pr->op[j];
			const struct elfsym *g;

			if (!l->sym)
				continue;
			if (!(g = elfsym_find(syms, l->sym)))
				return fail(err, TRACER_E_SYMBOL, "%s:%d: symbol '%s' not found in %s", p->path,
				            pr->line, l->sym, elfsym_path(syms));
			l->disp += (int64_t)g->addr;
			free(l->sym);
			l->sym = NULL;
		}
		pr->addr = s->addr;
		pr->size = s->size;
		pr->size_from_next = s->size_from_next;
	}
	return 0;
}

void probe_free(struct probe_file *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->nprobes; i++) {
		free(p->probes[i].symbol);
		for (size_t j = 0; j < PROBE_MAX_OPS; j++)
			free(p->probes[i].op[j].sym);
	}
	free(p->probes);
	free(p->thread_sym);
	free(p->preempt_sym);
	free(p->path);
	free(p);
}
