/*
 * mktrace.c - writes a trace database from a small text script, through the
 * db module's writer, so the CLI's end-to-end tests have exact, known traces.
 * Not installed; built for tests only.
 *
 * usage: mktrace OUT.db < SCRIPT
 * Script lines ('#' starts a comment):
 *   meta KEY VALUE...                    run metadata
 *   sym ADDR SIZE NAME                   a symbol
 *   thread ADDR [tid=N] NAME / lock ADDR NAME    names
 *   KIND [icount=N] [pc=A] [thread=A] [obj=A] [a=N] [b=N] [cpu=N]
 *        [ctx=process|hardirq|softirq|nmi] [if=0|1] [flags=N]
 *        [flavor=spin|read|write|mutex|rwsem-read|rwsem-write|sem]
 *        [irq=none|save|irq|bh|raise-dispatch|at-dispatch] [subclass=N]
 *        [preempt=N] [tid=N] [caller=A] [text=REST OF LINE]
 * KIND is an event kind name (trap, irql, lock_acq, ...). Numbers are decimal
 * or 0x hex; a and b may be negative. Schema 2 fields left out are as the
 * tracer writes them when it cannot tell: process context, IF off (flags 0),
 * a plain spin lock op, preempt and tid unknown (-1), no caller. flags= sets
 * the whole flags byte (enum db_flag); if= then sets or clears DB_F_IF.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"

static int num(const char *s, int64_t *out)
{
	char *end;
	int neg = 0;
	uint64_t v;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		return -1;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* Index of name in names[0..n), or -1. */
static int word(const char *name, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

static const char *const ctx_names[] = { "process", "hardirq", "softirq", "nmi" };
static const char *const flavor_names[] = { "spin", "read", "write", "mutex", "rwsem-read", "rwsem-write", "sem" };
static const char *const irq_names[] = { "none", "save", "irq", "bh", "raise-dispatch", "at-dispatch" };

static int event_line(struct db_writer *w, int kind, char *rest, int lineno)
{
	struct db_event ev = {0};
	char *tok, *text = NULL, *eq, *save = NULL;
	int64_t v;
	int flavor = 0, irq = 0, subclass = 0, ifset = -1, i;

	ev.kind = kind;
	ev.a = ev.b = 0;
	ev.preempt = ev.tid = -1;
	/* text= takes the rest of the line */
	tok = strstr(rest, "text=");
	if (tok) {
		text = tok + 5;
		*tok = '\0';
	}
	for (tok = strtok_r(rest, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		eq = strchr(tok, '=');
		if (eq && strncmp(tok, "ctx=", 4) == 0 && (i = word(eq + 1, ctx_names, 4)) >= 0) {
			ev.ctx = (uint8_t)i;
			continue;
		}
		if (eq && strncmp(tok, "flavor=", 7) == 0 && (i = word(eq + 1, flavor_names, 7)) >= 0) {
			flavor = i;
			continue;
		}
		if (eq && strncmp(tok, "irq=", 4) == 0 && (i = word(eq + 1, irq_names, 6)) >= 0) {
			irq = i;
			continue;
		}
		if (eq == NULL || num(eq + 1, &v) != 0) {
			fprintf(stderr, "mktrace: line %d: bad field '%s'\n", lineno, tok);
			return -1;
		}
		*eq = '\0';
		if (strcmp(tok, "if") == 0 && (v == 0 || v == 1))
			ifset = (int)v;
		else if (strcmp(tok, "flags") == 0 && v >= 0 && v < 64)
			ev.flags = (uint8_t)v;
		else if (strcmp(tok, "subclass") == 0 && v >= 0 && v < 256)
			subclass = (int)v;
		else if (strcmp(tok, "preempt") == 0)
			ev.preempt = (int32_t)v;
		else if (strcmp(tok, "tid") == 0)
			ev.tid = (int32_t)v;
		else if (strcmp(tok, "caller") == 0)
			ev.caller = (uint64_t)v;
		else if (strcmp(tok, "icount") == 0)
			ev.icount = v;
		else if (strcmp(tok, "pc") == 0)
			ev.pc = v;
		else if (strcmp(tok, "thread") == 0)
			ev.thread = v;
		else if (strcmp(tok, "obj") == 0)
			ev.obj = v;
		else if (strcmp(tok, "a") == 0)
			ev.a = v;
		else if (strcmp(tok, "b") == 0)
			ev.b = v;
		else if (strcmp(tok, "cpu") == 0)
			ev.vcpu = v;
		else {
			fprintf(stderr, "mktrace: line %d: unknown field '%s'\n", lineno, tok);
			return -1;
		}
	}
	if (ifset >= 0)
		ev.flags = (uint8_t)(ifset ? ev.flags | DB_F_IF : ev.flags & ~DB_F_IF);
	ev.lockop = DB_LOCKOP(flavor, irq, subclass);
	/* The queue may fill when scripts are big: wait for the writer rather than
	 * lose events (each refusal is counted in the trace's "dropped"). */
	for (;;) {
		int rc = text ? db_writer_push_text(w, &ev, text) : db_writer_push(w, &ev);

		if (rc != DB_E_FULL)
			return rc;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
}

int main(int argc, char **argv)
{
	struct db_writer *w = NULL;
	char line[4096], *err = NULL, *p, *word, *rest;
	int lineno = 0, rc = 0, kind;
	int64_t addr, size;

	if (argc != 2) {
		fprintf(stderr, "usage: mktrace OUT.db < SCRIPT\n");
		return 2;
	}
	if (db_writer_open(argv[1], NULL, NULL, &w, &err) != DB_OK) {
		fprintf(stderr, "mktrace: %s\n", err ? err : "cannot create the trace");
		free(err);
		return 1;
	}
	while (rc == 0 && fgets(line, sizeof(line), stdin)) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		p = line + strspn(line, " \t");
		if (*p == '#' || *p == '\0')
			continue;
		word = p;
		rest = p + strcspn(p, " \t");
		if (*rest)
			*rest++ = '\0';
		rest += strspn(rest, " \t");
		if (strcmp(word, "meta") == 0) {
			char *val = rest + strcspn(rest, " \t");

			if (*val)
				*val++ = '\0';
			rc = db_writer_set_meta(w, rest, val);
		} else if (strcmp(word, "sym") == 0) {
			char a[64], s[64], name[256];

			if (sscanf(rest, "%63s %63s %255s", a, s, name) != 3 || num(a, &addr) || num(s, &size)) {
				fprintf(stderr, "mktrace: line %d: sym ADDR SIZE NAME\n", lineno);
				rc = -1;
			} else {
				rc = db_writer_add_symbol(w, addr, size, name);
			}
		} else if (strcmp(word, "thread") == 0 || strcmp(word, "lock") == 0) {
			char a[64], name[256];
			int64_t tid = -1;
			int n = 0;

			if (sscanf(rest, "%63s %255[^\n]", a, name) != 2 || num(a, &addr) ||
			    (word[0] == 't' && sscanf(name, "tid=%" SCNd64 " %n", &tid, &n) == 1 && !name[n])) {
				fprintf(stderr, "mktrace: line %d: %s ADDR%s NAME\n", lineno, word,
					word[0] == 't' ? " [tid=N]" : "");
				rc = -1;
			} else if (word[0] == 'l') {
				rc = db_writer_name_lock(w, addr, name);
			} else {
				rc = db_writer_name_thread(w, addr, (int32_t)tid, name + n);
			}
		} else if ((kind = db_kind_from_name(word)) > 0) {
			rc = event_line(w, kind, rest, lineno);
		} else {
			fprintf(stderr, "mktrace: line %d: unknown directive '%s'\n", lineno, word);
			rc = -1;
		}
	}
	if (rc != 0)
		fprintf(stderr, "mktrace: line %d: writing failed (%d)\n", lineno, rc);
	if (db_writer_close(w, &err) != DB_OK) {
		fprintf(stderr, "mktrace: %s\n", err ? err : "closing the trace failed");
		free(err);
		return 1;
	}
	return rc == 0 ? 0 : 1;
}
