/*
 * mktrace.c - writes a trace database from a small text script, through the
 * db module's writer, so the CLI's end-to-end tests have exact, known traces.
 * Not installed; built for tests only.
 *
 * usage: mktrace OUT.db < SCRIPT
 * Script lines ('#' starts a comment):
 *   meta KEY VALUE...                    run metadata
 *   sym ADDR SIZE NAME                   a symbol
 *   thread ADDR NAME / lock ADDR NAME    names
 *   KIND [icount=N] [pc=A] [thread=A] [obj=A] [a=N] [b=N] [cpu=N] [text=REST OF LINE]
 * KIND is an event kind name (trap, irql, lock_acq, ...). Numbers are decimal
 * or 0x hex; a and b may be negative.
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

static int event_line(struct db_writer *w, int kind, char *rest, int lineno)
{
	struct db_event ev = {0};
	char *tok, *text = NULL, *eq, *save = NULL;
	int64_t v;

	ev.kind = kind;
	ev.a = ev.b = 0;
	/* text= takes the rest of the line */
	tok = strstr(rest, "text=");
	if (tok) {
		text = tok + 5;
		*tok = '\0';
	}
	for (tok = strtok_r(rest, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		eq = strchr(tok, '=');
		if (eq == NULL || num(eq + 1, &v) != 0) {
			fprintf(stderr, "mktrace: line %d: bad field '%s'\n", lineno, tok);
			return -1;
		}
		*eq = '\0';
		if (strcmp(tok, "icount") == 0)
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

			if (sscanf(rest, "%63s %255[^\n]", a, name) != 2 || num(a, &addr)) {
				fprintf(stderr, "mktrace: line %d: %s ADDR NAME\n", lineno, word);
				rc = -1;
			} else {
				rc = db_writer_name(w, word[0] == 'l', addr, name);
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
