/*
 * qmp.c - a QMP client: greeting, capabilities, commands, events.
 *
 * QEMU writes one JSON object per line: the greeting, then for each command
 * exactly one {"return": ...} or {"error": ...}, with {"event": ...} lines
 * interleaved at any time. Events met while waiting for an answer are queued
 * for qmp_wait_event. Every wait polls the guard's signal descriptor too.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "replay/internal.h"

struct event_node {
	struct qmp_json *ev;
	struct event_node *next;
};

struct qmp {
	int fd;
	struct qemu_guard *guard;
	struct qmp_buf in;     /* bytes read but not yet parsed */
	struct event_node *head, *tail;
	int closed;
	int timeout_ms;        /* for command answers; -1: wait forever (never the default) */
	unsigned owed;         /* answers to commands that timed out: dropped when they come */
};

/* Takes one complete line from the input buffer, parsed. 1 if one was there. */
static int take_line(struct qmp *q, struct qmp_json **msg, char **err)
{
	char *nl = q->in.len ? memchr(q->in.buf, '\n', q->in.len) : NULL;
	size_t n;
	int rc;

	if (!nl)
		return 0;
	n = (size_t)(nl - q->in.buf) + 1;
	rc = qmp_json_parse(q->in.buf, n, msg, NULL, err);
	memmove(q->in.buf, q->in.buf + n, q->in.len - n);
	q->in.len -= n;
	if (rc < 0)
		return rc;
	if ((*msg)->type != QMP_JSON_OBJECT) {
		qmp_json_free(*msg);
		return replay_set_err(err, REPLAY_E_FORMAT, "QMP message is not an object");
	}
	return 1;
}

/* Reads what arrives within timeout_ms (0: only what is there). */
static int fill(struct qmp *q, int timeout_ms, char **err)
{
	struct pollfd pfd[2] = { { q->fd, POLLIN, 0 }, { qemu_guard_fd(q->guard), POLLIN, 0 } };
	char buf[4096];
	ssize_t n;
	int r;

	if (q->closed)
		return replay_set_err(err, REPLAY_E_QEMU, "QEMU closed the QMP connection");
	r = poll(pfd, pfd[1].fd >= 0 ? 2 : 1, timeout_ms);
	if (r < 0 && errno != EINTR)
		return replay_set_err(err, REPLAY_E_IO, "poll: %s", strerror(errno));
	if (qemu_guard_pending(q->guard))
		return replay_set_err(err, REPLAY_E_INTERRUPTED, "interrupted");
	if (r <= 0 || !(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	n = read(q->fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		q->closed = 1;
		return replay_set_err(err, REPLAY_E_QEMU, "QEMU closed the QMP connection");
	}
	qmp_buf_add(&q->in, buf, (size_t)n);
	return q->in.oom ? replay_set_err(err, REPLAY_E_NOMEM, "out of memory") : 0;
}

static void queue_event(struct qmp *q, struct qmp_json *ev)
{
	struct event_node *e = calloc(1, sizeof(*e));

	if (!e) {
		qmp_json_free(ev);
		return;
	}
	e->ev = ev;
	if (q->tail)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
}

/* Next message that is not an event (events are queued). */
static int read_reply(struct qmp *q, int timeout_ms, struct qmp_json **msg, char **err)
{
	int64_t deadline = timeout_ms < 0 ? -1 : replay_now_ms() + timeout_ms;
	int rc;

	for (;;) {
		struct qmp_json *m = NULL;
		int wait = 1000;

		while ((rc = take_line(q, &m, err)) == 1) {
			if (qmp_json_get(m, "event")) {
				queue_event(q, m);
				continue;
			}
			if (q->owed) { /* the late answer to a command given up on */
				q->owed--;
				qmp_json_free(m);
				continue;
			}
			*msg = m;
			return 0;
		}
		if (rc < 0)
			return rc;
		if (deadline >= 0) {
			int64_t left = deadline - replay_now_ms();
			if (left <= 0)
				return replay_set_err(err, REPLAY_E_TIMEOUT, "QEMU did not answer on QMP");
			wait = left < wait ? (int)left : wait;
		}
		if ((rc = fill(q, wait, err)) < 0)
			return rc;
	}
}

static int send_text(struct qmp *q, const char *s, size_t n, char **err)
{
	while (n) {
		ssize_t w = send(q->fd, s, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return replay_set_err(err, REPLAY_E_QEMU, "QMP write: %s", strerror(errno));
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int qmp_execute(struct qmp *q, const char *command, const char *args, struct qmp_json **ret, char **err)
{
	struct qmp_buf b = { 0 };
	struct qmp_json *m = NULL;
	const struct qmp_json *e;
	int rc;

	qmp_buf_add(&b, "{\"execute\":", sizeof("{\"execute\":") - 1);
	qmp_buf_str(&b, command);
	if (args)
		qmp_buf_printf(&b, ",\"arguments\":%s", args);
	qmp_buf_add(&b, "}\n", sizeof("}\n") - 1);
	if (b.oom) {
		rc = replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = send_text(q, b.buf, b.len, err)) < 0)
		goto out;
	if ((rc = read_reply(q, q->timeout_ms, &m, err)) < 0) {
		q->owed += rc == REPLAY_E_TIMEOUT;
		goto out;
	}
	if ((e = qmp_json_get(m, "error"))) {
		const char *desc = qmp_json_get_str(e, "desc");
		rc = replay_set_err(err, REPLAY_E_QEMU, "QEMU refused %s: %s", command, desc ? desc : "(no description)");
		goto out;
	}
	if (!qmp_json_get(m, "return")) {
		rc = replay_set_err(err, REPLAY_E_FORMAT, "QMP answer without return or error");
		goto out;
	}
	if (ret) {
		/* Detach the return value from the message. */
		size_t i;
		for (i = 0; i < m->n; i++)
			if (strcmp(m->keys[i], "return") == 0) {
				*ret = m->items[i];
				m->items[i] = NULL;
			}
	}
out:
	qmp_json_free(m);
	free(b.buf);
	return rc;
}

int qmp_hmp(struct qmp *q, const char *cmdline, char **out, char **err)
{
	struct qmp_buf a = { 0 };
	struct qmp_json *r = NULL;
	int rc;

	qmp_buf_add(&a, "{\"command-line\":", sizeof("{\"command-line\":") - 1);
	qmp_buf_str(&a, cmdline);
	qmp_buf_add(&a, "}", sizeof("}") - 1);
	if (a.oom) {
		free(a.buf);
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	}
	rc = qmp_execute(q, "human-monitor-command", a.buf, &r, err);
	free(a.buf);
	if (rc < 0)
		return rc;
	if (r->type != QMP_JSON_STRING) {
		qmp_json_free(r);
		return replay_set_err(err, REPLAY_E_FORMAT, "HMP answer is not a string");
	}
	*out = r->str;
	r->str = NULL;
	qmp_json_free(r);
	return 0;
}

static int match_queued(struct qmp *q, const char *name, struct qmp_json **ev, int drop_others)
{
	struct event_node **pp = &q->head, *e;
	int found = 0;

	while (!found && (e = *pp)) {
		const char *en = qmp_json_get_str(e->ev, "event");
		int match = !name || (en && strcmp(en, name) == 0);

		if (!match && !drop_others) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		if (match && ev)
			*ev = e->ev;
		else
			qmp_json_free(e->ev);
		free(e);
		found = match;
	}
	q->tail = NULL;
	for (e = q->head; e; e = e->next)
		q->tail = e;
	return found;
}

/* Moves complete lines into the event queue (answers cannot be pending here:
 * commands are synchronous). */
static int drain_lines(struct qmp *q, char **err)
{
	struct qmp_json *m;
	int rc;

	while ((rc = take_line(q, &m, err)) == 1) {
		if (qmp_json_get(m, "event"))
			queue_event(q, m);
		else
			qmp_json_free(m);
	}
	return rc;
}

int qmp_wait_event(struct qmp *q, const char *name, int timeout_ms, struct qmp_json **ev, char **err)
{
	int64_t deadline = timeout_ms < 0 ? -1 : replay_now_ms() + timeout_ms;
	int rc;

	for (;;) {
		int wait = 1000;

		if ((rc = drain_lines(q, err)) < 0)
			return rc;
		if (match_queued(q, name, ev, 1))
			return 0;
		if (deadline >= 0) {
			int64_t left = deadline - replay_now_ms();
			if (left <= 0)
				return replay_set_err(err, REPLAY_E_TIMEOUT, "timed out waiting for QMP event %s",
					       name ? name : "(any)");
			wait = left < wait ? (int)left : wait;
		}
		if ((rc = fill(q, wait, err)) < 0)
			return rc;
	}
}

int qmp_take_event(struct qmp *q, const char *name, struct qmp_json **ev)
{
	if (!q->closed)
		fill(q, 0, NULL);
	drain_lines(q, NULL);
	return match_queued(q, name, ev, 0);
}

int qmp_replay_icount(struct qmp *q, uint64_t *icount, char **err)
{
	struct qmp_json *r = NULL;
	int rc = qmp_execute(q, "query-replay", NULL, &r, err);

	if (rc < 0)
		return rc;
	if (qmp_json_get_u64(r, "icount", icount) < 0)
		rc = replay_set_err(err, REPLAY_E_FORMAT, "query-replay without icount");
	qmp_json_free(r);
	return rc;
}

int qmp_connect(const char *path, struct qemu_proc *proc, struct qemu_guard *g, int timeout_ms, struct qmp **out,
		char **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t deadline = replay_now_ms() + timeout_ms;
	struct qmp *q;
	struct qmp_json *greeting = NULL;
	int rc, status;

	if (strlen(path) >= sizeof(sa.sun_path))
		return replay_set_err(err, REPLAY_E_ARG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	q = calloc(1, sizeof(*q));
	if (!q)
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	q->guard = g;
	q->timeout_ms = QMP_ANSWER_MS;
	for (;;) {
		q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (q->fd < 0) {
			rc = replay_set_err(err, REPLAY_E_IO, "socket: %s", strerror(errno));
			goto fail;
		}
		if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(q->fd);
		q->fd = -1;
		if (proc && qemu_proc_poll(proc, &status) == 1) {
			rc = replay_set_err(err, REPLAY_E_QEMU, "QEMU exited with status %d before QMP was up", status);
			goto fail;
		}
		if (qemu_guard_pending(g)) {
			rc = replay_set_err(err, REPLAY_E_INTERRUPTED, "interrupted");
			goto fail;
		}
		if (replay_now_ms() > deadline) {
			rc = replay_set_err(err, REPLAY_E_TIMEOUT, "no QMP socket at %s", path);
			goto fail;
		}
		poll(NULL, 0, 10);
	}
	if ((rc = read_reply(q, timeout_ms, &greeting, err)) < 0)
		goto fail;
	if (!qmp_json_get(greeting, "QMP")) {
		rc = replay_set_err(err, REPLAY_E_FORMAT, "no QMP greeting");
		goto fail;
	}
	qmp_json_free(greeting);
	greeting = NULL;
	if ((rc = qmp_execute(q, "qmp_capabilities", NULL, NULL, err)) < 0)
		goto fail;
	*out = q;
	return 0;
fail:
	qmp_json_free(greeting);
	qmp_close(q);
	return rc;
}

int qmp_set_timeout(struct qmp *q, int timeout_ms)
{
	int old = q->timeout_ms;

	q->timeout_ms = timeout_ms;
	return old;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	while (q->head) {
		struct event_node *e = q->head;
		q->head = e->next;
		qmp_json_free(e->ev);
		free(e);
	}
	free(q->in.buf);
	free(q);
}
