/*
 * gdbstub.c - a read-only gdb remote serial protocol server inside the plugin.
 *
 * QEMU's own gdbstub cannot stop a several-vCPU machine without perturbing
 * it (each resume gives the vCPU a fresh round-robin slice), so a re-executed
 * SMP recording is stopped by the plugin instead: plugin.c holds QEMU's one
 * vCPU thread inside an instruction callback, which freezes the whole machine
 * and its virtual time, and calls gdbstub_serve. gdb sees one thread per vCPU
 * (thread id = vCPU index + 1). While held:
 *   - registers (g, p) of the held vCPU come from qemu_plugin_read_register,
 *     in the layout of the target description served by qXfer (x86-64 core
 *     and system registers, x87, SSE). The plugin API reads only the vCPU
 *     that runs the callback, so of every other vCPU gdb gets only the pc of
 *     the last instruction it ran before it was switched out, the rest
 *     unavailable ('x'): step that thread to hold the machine on it instead;
 *   - memory (m) is read through the held vCPU's page tables;
 *   - writes (G, P, M, X) are refused: the run must stay the recorded one;
 *   - s steps the selected thread (Hc) to its next instruction, c continues
 *     to a breakpoint (Z0/Z1 are kept here and checked by the plugin at every
 *     instruction, nothing is written to guest memory) or to a count set by
 *     `monitor goto N` / `monitor replay_break N`; the other vCPUs run as
 *     they ran in the recording meanwhile;
 *   - `monitor info replay` gives the machine's instruction count, `monitor
 *     prev` the count of the held vCPU's previous instruction (what a
 *     reverse-stepi re-executes to, replay/krewind-gdb.py).
 */
#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <qemu-plugin.h>

#include "tracer/gdbstub.h"

#define PKT_MAX 16384

/* The registers gdb sees, in the order of the target description. */
static const struct reg {
	const char *name;
	int bits;
	const char *type;
	int sse; /* in the org.gnu.gdb.i386.sse feature */
} regs[] = {
	{"rax", 64, "int64"}, {"rbx", 64, "int64"}, {"rcx", 64, "int64"}, {"rdx", 64, "int64"},
	{"rsi", 64, "int64"}, {"rdi", 64, "int64"}, {"rbp", 64, "data_ptr"}, {"rsp", 64, "data_ptr"},
	{"r8", 64, "int64"}, {"r9", 64, "int64"}, {"r10", 64, "int64"}, {"r11", 64, "int64"},
	{"r12", 64, "int64"}, {"r13", 64, "int64"}, {"r14", 64, "int64"}, {"r15", 64, "int64"},
	{"rip", 64, "code_ptr"}, {"eflags", 32, "int32"},
	{"cs", 32, "int32"}, {"ss", 32, "int32"}, {"ds", 32, "int32"}, {"es", 32, "int32"},
	{"fs", 32, "int32"}, {"gs", 32, "int32"},
	{"fs_base", 64, "int64"}, {"gs_base", 64, "int64"}, {"k_gs_base", 64, "int64"},
	{"cr0", 64, "int64"}, {"cr2", 64, "int64"}, {"cr3", 64, "int64"}, {"cr4", 64, "int64"},
	{"cr8", 64, "int64"}, {"efer", 64, "int64"},
	{"st0", 80, "i387_ext"}, {"st1", 80, "i387_ext"}, {"st2", 80, "i387_ext"}, {"st3", 80, "i387_ext"},
	{"st4", 80, "i387_ext"}, {"st5", 80, "i387_ext"}, {"st6", 80, "i387_ext"}, {"st7", 80, "i387_ext"},
	{"fctrl", 32, "int"}, {"fstat", 32, "int"}, {"ftag", 32, "int"}, {"fiseg", 32, "int"},
	{"fioff", 32, "int"}, {"foseg", 32, "int"}, {"fooff", 32, "int"}, {"fop", 32, "int"},
	{"xmm0", 128, "uint128", 1}, {"xmm1", 128, "uint128", 1}, {"xmm2", 128, "uint128", 1},
	{"xmm3", 128, "uint128", 1}, {"xmm4", 128, "uint128", 1}, {"xmm5", 128, "uint128", 1},
	{"xmm6", 128, "uint128", 1}, {"xmm7", 128, "uint128", 1}, {"xmm8", 128, "uint128", 1},
	{"xmm9", 128, "uint128", 1}, {"xmm10", 128, "uint128", 1}, {"xmm11", 128, "uint128", 1},
	{"xmm12", 128, "uint128", 1}, {"xmm13", 128, "uint128", 1}, {"xmm14", 128, "uint128", 1},
	{"xmm15", 128, "uint128", 1}, {"mxcsr", 32, "int", 1},
};
#define NREGS (sizeof(regs) / sizeof(regs[0]))
#define RIP_INDEX 16

static struct {
	int lfd, fd;          /* listening socket, gdb's connection (-1: none) */
	int noack;
	int resumed;          /* gdb waits for the stop reply of a resume */
	int g_thread;         /* Hg: 0 the held vCPU, else vCPU + 1 */
	int c_thread;         /* Hc: 0 the held vCPU, else vCPU + 1 */
	uint64_t until;       /* for the next continue (monitor goto / replay_break) */
	int ignore_bps;
	int interrupted;
	GHashTable *bps;      /* pc -> number of Z0/Z1 inserted there */
	struct qemu_plugin_register *handle[NREGS];
	int have_handles;
	GString *xml;
	GByteArray *buf;
	char in[PKT_MAX + 1];
} gs = { .lfd = -1, .fd = -1, .until = UINT64_MAX };

int gdbstub_listen(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(a.sun_path)) {
		fprintf(stderr, "krewind: error: gdb socket path too long: %s\n", path);
		return -1;
	}
	strcpy(a.sun_path, path);
	unlink(path);
	if ((gs.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(gs.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(gs.lfd, 1) < 0) {
		fprintf(stderr, "krewind: error: cannot listen on %s: %s\n", path, strerror(errno));
		return -1;
	}
	gs.bps = g_hash_table_new(NULL, NULL);
	gs.buf = g_byte_array_new();
	return 0;
}

int gdbstub_breakpoint(uint64_t pc)
{
	return !gs.ignore_bps && g_hash_table_size(gs.bps) && g_hash_table_contains(gs.bps, GSIZE_TO_POINTER(pc));
}

int gdbstub_interrupted(void)
{
	struct pollfd p = { .fd = gs.fd, .events = POLLIN };
	char c;

	while (gs.fd >= 0 && poll(&p, 1, 0) == 1 && recv(gs.fd, &c, 1, MSG_DONTWAIT) == 1)
		if (c == 0x03)
			gs.interrupted = 1;
	return gs.interrupted;
}

/* ------------------------------------------------------------ packets */

static int put_raw(const char *s, size_t n)
{
	while (n) {
		ssize_t k = send(gs.fd, s, n, MSG_NOSIGNAL);

		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			return -1;
		}
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

static int get_char(void)
{
	unsigned char c;
	ssize_t k;

	do
		k = recv(gs.fd, &c, 1, 0);
	while (k < 0 && errno == EINTR);
	return k == 1 ? c : -1;
}

/* Sends $data#checksum; waits for gdb's '+' unless in no-ack mode. */
static int put_packet(const char *data)
{
	GString *p = g_string_new("$");
	unsigned sum = 0;
	const char *c;
	int rc, tries;

	for (c = data; *c; c++)
		sum += (unsigned char)*c;
	g_string_append(p, data);
	g_string_append_printf(p, "#%02x", sum & 0xff);
	for (tries = 0; tries < 3; tries++) {
		int a = 0;

		if ((rc = put_raw(p->str, p->len)) < 0 || gs.noack)
			break;
		while ((a = get_char()) >= 0 && a != '+' && a != '-')
			;
		if (a != '-') {
			rc = a < 0 ? -1 : 0;
			break;
		}
	}
	g_string_free(p, TRUE);
	return rc;
}

/* Reads one packet into gs.in (NUL-terminated); -1 when gdb is gone. */
static int get_packet(void)
{
	for (;;) {
		int c, hi, lo, n = 0, i, bad = 0;
		unsigned sum = 0;
		char want[3];

		while ((c = get_char()) >= 0 && c != '$')
			; /* acks, and a Ctrl-C while stopped: nothing to interrupt */
		if (c < 0)
			return -1;
		while ((c = get_char()) >= 0 && c != '#') {
			if (n < PKT_MAX)
				gs.in[n++] = (char)c;
			else
				bad = 1;
		}
		if (c < 0 || (hi = get_char()) < 0 || (lo = get_char()) < 0)
			return -1;
		gs.in[n] = '\0';
		for (i = 0; i < n; i++)
			sum += (unsigned char)gs.in[i];
		snprintf(want, sizeof(want), "%02x", sum & 0xff);
		if (!gs.noack && (g_ascii_tolower((gchar)hi) != want[0] || g_ascii_tolower((gchar)lo) != want[1]))
			bad = 1;
		if (!gs.noack && put_raw(bad ? "-" : "+", 1) < 0)
			return -1;
		if (!bad)
			return 0;
	}
}

static void hex_bytes(GString *out, const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		g_string_append_printf(out, "%02x", b[i]);
}

static void hex_text(GString *out, const char *s)
{
	hex_bytes(out, (const uint8_t *)s, strlen(s));
}

/* ------------------------------------------------------------ what gdb reads */

static const char *target_xml(void)
{
	size_t i;
	int sse = 0;

	if (gs.xml)
		return gs.xml->str;
	gs.xml = g_string_new("<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
	                      "<target>\n<architecture>i386:x86-64</architecture>\n"
	                      "<feature name=\"org.gnu.gdb.i386.core\">\n");
	for (i = 0; i < NREGS; i++) {
		if (regs[i].sse && !sse) {
			g_string_append(gs.xml, "</feature>\n<feature name=\"org.gnu.gdb.i386.sse\">\n");
			sse = 1;
		}
		g_string_append_printf(gs.xml, "<reg name=\"%s\" bitsize=\"%d\" type=\"%s\"%s/>\n", regs[i].name,
		                       regs[i].bits, regs[i].type, i == 0 ? " regnum=\"0\"" : "");
	}
	g_string_append(gs.xml, "</feature>\n</target>\n");
	return gs.xml->str;
}

/* qXfer:features:read:ANNEX:OFF,LEN */
static void xfer_features(GString *out, const char *args)
{
	const char *xml = target_xml();
	size_t len = strlen(xml);
	unsigned long off, n;
	char annex[64];

	if (sscanf(args, "%63[^:]:%lx,%lx", annex, &off, &n) != 3 || strcmp(annex, "target.xml")) {
		g_string_append(out, "E00");
		return;
	}
	if (off >= len) {
		g_string_append(out, "l");
		return;
	}
	if (n > PKT_MAX / 2)
		n = PKT_MAX / 2;
	g_string_append_c(out, off + n < len ? 'm' : 'l');
	g_string_append_len(out, xml + off, (gssize)(off + n < len ? n : len - off));
}

static void find_handles(void)
{
	GArray *d = qemu_plugin_get_registers();
	size_t i;
	guint k;

	for (i = 0; d && i < NREGS; i++)
		for (k = 0; k < d->len; k++) {
			qemu_plugin_reg_descriptor *r = &g_array_index(d, qemu_plugin_reg_descriptor, k);

			if (strcmp(r->name, regs[i].name) == 0)
				gs.handle[i] = r->handle;
		}
	if (d)
		g_array_free(d, TRUE);
	gs.have_handles = 1;
}

/* Register i of vCPU t-1 (t = 0: the held one): of the held vCPU from QEMU,
 * but rip, the plugin's pc (QEMU syncs its own only at some instructions);
 * of another vCPU only rip, the pc of its last instruction (gdb cannot
 * resume threads without a pc), the rest 'x' (unavailable). */
static void one_reg(GString *out, size_t i, int t, const struct gdbstub_stop *s)
{
	size_t bytes = (size_t)regs[i].bits / 8, k;
	int held = t == 0 || t == s->vcpu + 1, n = 0;
	uint64_t pc = held ? s->pc : s->out_pc[t - 1];

	if (i == RIP_INDEX && pc) {
		for (k = 0; k < 8; k++)
			g_string_append_printf(out, "%02x", (unsigned)(pc >> (8 * k)) & 0xff);
		return;
	}
	if (held && gs.handle[i]) {
		g_byte_array_set_size(gs.buf, 0);
		n = qemu_plugin_read_register(gs.handle[i], gs.buf);
	}
	if (n <= 0) {
		for (k = 0; k < bytes; k++)
			g_string_append(out, "xx");
		return;
	}
	for (k = 0; k < bytes; k++)
		g_string_append_printf(out, "%02x", k < (size_t)n ? gs.buf->data[k] : 0);
}

static int thread_ok(long t, int nvcpus)
{
	return t == -1 || t == 0 || (t >= 1 && t <= nvcpus);
}

/* m ADDR,LEN through the held vCPU's page tables; partial reads allowed. */
static void read_mem(GString *out, const char *args)
{
	uint64_t addr, len, done = 0;

	if (sscanf(args, "%" SCNx64 ",%" SCNx64, &addr, &len) != 2) {
		g_string_append(out, "E01");
		return;
	}
	if (len > PKT_MAX / 2)
		len = PKT_MAX / 2;
	while (done < len) {
		uint64_t chunk = 4096 - ((addr + done) & 4095);

		if (chunk > len - done)
			chunk = len - done;
		g_byte_array_set_size(gs.buf, 0);
		if (!qemu_plugin_read_memory_vaddr(addr + done, gs.buf, chunk))
			break;
		hex_bytes(out, gs.buf->data, chunk);
		done += chunk;
	}
	if (!done)
		g_string_append(out, "E14");
}

/* A stop reply also makes the stopped thread gdb's general one (Hg). */
static void stop_reply(GString *out, const struct gdbstub_stop *s)
{
	gs.g_thread = 0;
	g_string_append_printf(out, "T%02xthread:%x;", s->signal, s->vcpu + 1);
	if (s->signal == 5 && g_hash_table_contains(gs.bps, GSIZE_TO_POINTER(s->pc)))
		g_string_append(out, "swbreak:;");
}

/* monitor CMD: krewind's, for replay/krewind-gdb.py. */
static void monitor(GString *out, const char *hex, const struct gdbstub_stop *s)
{
	char cmd[256];
	GString *text = g_string_new(NULL);
	size_t n = 0;
	uint64_t v;
	unsigned b;

	while (n + 1 < sizeof(cmd) && sscanf(hex + 2 * n, "%2x", &b) == 1)
		cmd[n++] = (char)b;
	cmd[n] = '\0';
	if (strcmp(cmd, "info replay") == 0 || strcmp(cmd, "icount") == 0) {
		g_string_printf(text, "re-executing: held vCPU %d, instruction count = %" PRIu64 "\n", s->vcpu,
		                s->icount);
	} else if (strcmp(cmd, "prev") == 0) {
		if (s->prev == UINT64_MAX)
			g_string_printf(text, "prev none\n");
		else
			g_string_printf(text, "prev %" PRIu64 "\n", s->prev);
	} else if (sscanf(cmd, "replay_break %" SCNu64, &v) == 1) {
		gs.until = v;
		gs.ignore_bps = 0;
	} else if (sscanf(cmd, "goto %" SCNu64, &v) == 1) {
		gs.until = v;
		gs.ignore_bps = 1;
	} else {
		g_string_printf(text, "krewind's stub knows: info replay, prev, goto N, replay_break N "
		                      "(%s: unknown)\n", cmd);
	}
	if (text->len) {
		GString *o = g_string_new("O");

		hex_text(o, text->str);
		put_packet(o->str);
		g_string_free(o, TRUE);
	}
	g_string_append(out, "OK");
	g_string_free(text, TRUE);
}

/* ------------------------------------------------------------ serving */

/* A continue (c, or vCont;c): to a breakpoint or to the count `monitor goto`
 * set, which is used once. */
static void resume_continue(struct gdbstub_resume *r)
{
	r->action = GDBSTUB_CONTINUE;
	r->until = gs.until;
	r->ignore_bps = gs.ignore_bps;
	gs.until = UINT64_MAX;
}

static int accept_gdb(void)
{
	struct pollfd p = { .fd = gs.lfd, .events = POLLIN };

	if (poll(&p, 1, 600000) != 1)
		return -1;
	gs.fd = accept4(gs.lfd, NULL, NULL, SOCK_CLOEXEC);
	return gs.fd < 0 ? -1 : 0;
}

void gdbstub_serve(const struct gdbstub_stop *s, struct gdbstub_resume *r)
{
	GString *out = g_string_new(NULL);

	memset(r, 0, sizeof(*r));
	r->action = GDBSTUB_END;
	r->until = UINT64_MAX;
	if (!gs.have_handles)
		find_handles();
	if (gs.fd < 0 && accept_gdb() < 0)
		goto out;
	gs.ignore_bps = 0;
	if (gs.resumed) {
		stop_reply(out, s);
		gs.resumed = 0;
		if (put_packet(out->str) < 0)
			goto out;
	}
	while (get_packet() == 0) {
		const char *p = gs.in;
		long t;
		uint64_t addr;
		unsigned kind, type;

		g_string_truncate(out, 0);
		if (strncmp(p, "qSupported", 10) == 0) {
			g_string_append_printf(out, "PacketSize=%x;qXfer:features:read+;QStartNoAckMode+;swbreak+",
			                       PKT_MAX);
		} else if (strcmp(p, "QStartNoAckMode") == 0) {
			put_packet("OK");
			gs.noack = 1;
			continue;
		} else if (strcmp(p, "?") == 0) {
			stop_reply(out, s);
		} else if (strncmp(p, "qXfer:features:read:", 20) == 0) {
			xfer_features(out, p + 20);
		} else if (strcmp(p, "qAttached") == 0) {
			g_string_append(out, "1");
		} else if (strcmp(p, "qC") == 0) {
			g_string_append_printf(out, "QC%x", s->vcpu + 1);
		} else if (strcmp(p, "qfThreadInfo") == 0) {
			int i;

			for (i = 0; i < s->nvcpus; i++)
				g_string_append_printf(out, "%s%x", i ? "," : "m", i + 1);
		} else if (strcmp(p, "qsThreadInfo") == 0) {
			g_string_append(out, "l");
		} else if (sscanf(p, "qThreadExtraInfo,%lx", &t) == 1) {
			char *d = t == s->vcpu + 1 || t < 1 || t > s->nvcpus
			                  ? g_strdup_printf("vCPU %ld, held", t - 1)
			                  : s->out_pc[t - 1]
			                  ? g_strdup_printf("vCPU %ld, not running, last pc at count %" PRIu64,
			                                    t - 1, s->out_ic[t - 1])
			                  : g_strdup_printf("vCPU %ld, not run yet", t - 1);
			hex_text(out, d);
			g_free(d);
		} else if (strncmp(p, "qSymbol", 7) == 0) {
			g_string_append(out, "OK");
		} else if (strncmp(p, "qRcmd,", 6) == 0) {
			monitor(out, p + 6, s);
		} else if (p[0] == 'H' && (p[1] == 'g' || p[1] == 'c')) {
			t = strtol(p + 2, NULL, 16);
			if (!thread_ok(t, s->nvcpus)) {
				g_string_append(out, "E01");
			} else {
				int *sel = p[1] == 'g' ? &gs.g_thread : &gs.c_thread;

				*sel = t <= 0 ? 0 : (int)t;
				g_string_append(out, "OK");
			}
		} else if (p[0] == 'T') {
			t = strtol(p + 1, NULL, 16);
			g_string_append(out, t >= 1 && t <= s->nvcpus ? "OK" : "E01");
		} else if (strcmp(p, "g") == 0) {
			size_t i;

			for (i = 0; i < NREGS; i++)
				one_reg(out, i, gs.g_thread, s);
		} else if (p[0] == 'p') {
			unsigned long i = strtoul(p + 1, NULL, 16);

			if (i < NREGS)
				one_reg(out, i, gs.g_thread, s);
			else
				g_string_append(out, "E00");
		} else if (p[0] == 'm') {
			read_mem(out, p + 1);
		} else if (p[0] == 'G' || p[0] == 'P' || p[0] == 'M' || p[0] == 'X') {
			g_string_append(out, "E01"); /* read-only: the run must stay the recorded one */
		} else if (sscanf(p, "%*[Zz]%u,%" SCNx64 ",%u", &type, &addr, &kind) == 3 && type <= 1) {
			gpointer k = GSIZE_TO_POINTER(addr);
			guint count = GPOINTER_TO_UINT(g_hash_table_lookup(gs.bps, k));

			if (p[0] == 'Z')
				g_hash_table_insert(gs.bps, k, GUINT_TO_POINTER(count + 1));
			else if (count > 1)
				g_hash_table_insert(gs.bps, k, GUINT_TO_POINTER(count - 1));
			else
				g_hash_table_remove(gs.bps, k);
			g_string_append(out, "OK");
		} else if (strcmp(p, "vCont?") == 0) {
			g_string_append(out, "vCont;c;C;s;S");
		} else if (strncmp(p, "vCont;", 6) == 0) {
			/* vCont;s:T;c: step T, the others run as recorded meanwhile */
			const char *a = strstr(p, ";s") ? strstr(p, ";s") : strstr(p, ";S");

			if (a) {
				const char *colon = a[2] == ':' ? a + 3 : NULL;

				t = colon ? strtol(colon, NULL, 16) : 0;
				r->action = GDBSTUB_STEP;
				r->vcpu = t >= 1 && t <= s->nvcpus ? (int)t - 1 : s->vcpu;
			} else
				resume_continue(r);
			gs.resumed = 1;
			break;
		} else if (p[0] == 's' || p[0] == 'S') {
			r->action = GDBSTUB_STEP;
			r->vcpu = gs.c_thread > 0 ? gs.c_thread - 1 : s->vcpu;
			gs.resumed = 1;
			break;
		} else if (p[0] == 'c' || p[0] == 'C') {
			resume_continue(r);
			gs.resumed = 1;
			break;
		} else if (p[0] == 'D') {
			put_packet("OK");
			break;
		} else if (p[0] == 'k' || strncmp(p, "vKill", 5) == 0) {
			if (p[0] == 'v')
				put_packet("OK");
			break;
		}
		/* anything else: the empty reply, "not supported" */
		if (put_packet(out->str) < 0)
			break;
	}
out:
	if (r->action == GDBSTUB_END && gs.fd >= 0) {
		close(gs.fd);
		gs.fd = -1;
	}
	if (r->action == GDBSTUB_CONTINUE)
		gs.ignore_bps = r->ignore_bps;
	gs.interrupted = 0;
	g_string_free(out, TRUE);
}
