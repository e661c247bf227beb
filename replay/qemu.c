/*
 * qemu.c - child processes that never outlive krewind.
 *
 * Why signalfd: a signal handler would need global state to find the
 * children. Blocking SIGINT/SIGTERM/SIGHUP/SIGQUIT and reading them from a
 * descriptor lets every wait loop notice them and stop the children in
 * order (QMP quit first, so QEMU's record/replay log is complete).
 * PR_SET_PDEATHSIG covers the cases no code of ours runs: SIGKILL, crashes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "replay/internal.h"

struct qemu_guard {
	int fd;
	sigset_t old;
	int pending; /* a signal already read from fd */
};

struct qemu_proc {
	pid_t pid;
	int own_group;
	int exited;
	int status;
};

static void guarded_set(sigset_t *s)
{
	sigemptyset(s);
	sigaddset(s, SIGINT);
	sigaddset(s, SIGTERM);
	sigaddset(s, SIGHUP);
	sigaddset(s, SIGQUIT);
}

int qemu_guard_begin(struct qemu_guard **out, char **err)
{
	struct qemu_guard *g = calloc(1, sizeof(*g));
	sigset_t set;

	if (!g)
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	guarded_set(&set);
	if (sigprocmask(SIG_BLOCK, &set, &g->old) < 0) {
		free(g);
		return replay_set_err(err, REPLAY_E_IO, "sigprocmask: %s", strerror(errno));
	}
	g->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (g->fd < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &g->old, NULL);
		free(g);
		return replay_set_err(err, REPLAY_E_IO, "signalfd: %s", strerror(e));
	}
	*out = g;
	return 0;
}

int qemu_guard_pending(struct qemu_guard *g)
{
	struct signalfd_siginfo si;

	if (!g)
		return 0;
	if (!g->pending && read(g->fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		g->pending = (int)si.ssi_signo;
	return g->pending;
}

void qemu_guard_clear(struct qemu_guard *g)
{
	if (g)
		g->pending = 0;
}

int qemu_guard_fd(const struct qemu_guard *g)
{
	return g ? g->fd : -1;
}

void qemu_guard_end(struct qemu_guard *g)
{
	if (!g)
		return;
	close(g->fd);
	sigprocmask(SIG_SETMASK, &g->old, NULL);
	free(g);
}

static int redirect(const char *path, int fd, int flags)
{
	int nfd;

	if (path && strcmp(path, "-") == 0)
		return 0;
	nfd = open(path ? path : "/dev/null", flags, 0644);
	if (nfd < 0)
		return -1;
	if (nfd != fd) {
		if (dup2(nfd, fd) < 0)
			return -1;
		close(nfd);
	}
	return 0;
}

int qemu_spawn(char *const argv[], const struct qemu_spawn_opts *o, struct qemu_proc **out, char **err)
{
	static const struct qemu_spawn_opts defaults = { 0 };
	struct qemu_proc *p;
	int pipefd[2], child_errno = 0;
	pid_t parent = getpid();
	ssize_t n;

	if (!o)
		o = &defaults;
	p = calloc(1, sizeof(*p));
	if (!p)
		return replay_set_err(err, REPLAY_E_NOMEM, "out of memory");
	/* The pipe tells the parent whether exec worked (CLOEXEC: EOF = ok). */
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		free(p);
		return replay_set_err(err, REPLAY_E_IO, "pipe: %s", strerror(errno));
	}
	p->own_group = o->own_group;
	p->pid = fork();
	if (p->pid < 0) {
		int e = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		free(p);
		return replay_set_err(err, REPLAY_E_QEMU, "fork: %s", strerror(e));
	}
	if (p->pid == 0) {
		sigset_t none;
		int e;

		close(pipefd[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) /* the parent died before prctl */
			_exit(127);
		if (o->own_group)
			setpgid(0, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if ((o->cwd && chdir(o->cwd) < 0) || (!o->stdin_inherit && redirect(NULL, 0, O_RDONLY) < 0) ||
		    redirect(o->stdout_path, 1, O_WRONLY | O_CREAT | O_APPEND) < 0 ||
		    redirect(o->stderr_path, 2, O_WRONLY | O_CREAT | O_APPEND) < 0) {
			e = errno;
			n = write(pipefd[1], &e, sizeof(e));
			(void)n;
			_exit(127);
		}
		execvp(argv[0], argv);
		e = errno;
		n = write(pipefd[1], &e, sizeof(e));
		(void)n;
		_exit(127);
	}
	if (o->own_group)
		setpgid(p->pid, p->pid); /* also in the parent: no race with kill(-pid) */
	close(pipefd[1]);
	do
		n = read(pipefd[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == (ssize_t)sizeof(child_errno)) {
		waitpid(p->pid, NULL, 0);
		free(p);
		return replay_set_err(err, REPLAY_E_QEMU, "cannot run %s: %s", argv[0], strerror(child_errno));
	}
	*out = p;
	return 0;
}

pid_t qemu_proc_pid(const struct qemu_proc *p)
{
	return p->pid;
}

static int decode(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

int qemu_proc_poll(struct qemu_proc *p, int *status)
{
	int st;
	pid_t r;

	if (p->exited) {
		*status = p->status;
		return 1;
	}
	r = waitpid(p->pid, &st, WNOHANG);
	if (r < 0)
		return REPLAY_E_QEMU;
	if (r == 0)
		return 0;
	p->exited = 1;
	p->status = decode(st);
	/* QEMU's helpers (if any) go with it. */
	if (p->own_group)
		kill(-p->pid, SIGKILL);
	*status = p->status;
	return 1;
}

int qemu_proc_wait(struct qemu_proc *p, struct qemu_guard *g, int timeout_ms, int *status)
{
	int64_t deadline = timeout_ms < 0 ? -1 : replay_now_ms() + timeout_ms;
	int r;

	for (;;) {
		struct pollfd pfd = { qemu_guard_fd(g), POLLIN, 0 };
		int wait = 20;

		r = qemu_proc_poll(p, status);
		if (r != 0)
			return r < 0 ? r : 0;
		if (qemu_guard_pending(g))
			return REPLAY_E_INTERRUPTED;
		if (deadline >= 0) {
			int64_t left = deadline - replay_now_ms();
			if (left <= 0)
				return REPLAY_E_TIMEOUT;
			if (left < wait)
				wait = (int)left;
		}
		if (pfd.fd >= 0)
			poll(&pfd, 1, wait);
		else
			poll(NULL, 0, wait);
	}
}

int qemu_proc_stop(struct qemu_proc *p, int grace_ms)
{
	int status = -1;

	if (qemu_proc_poll(p, &status) == 1)
		return status;
	kill(p->own_group ? -p->pid : p->pid, SIGTERM);
	if (qemu_proc_wait(p, NULL, grace_ms, &status) == 0)
		return status;
	kill(p->own_group ? -p->pid : p->pid, SIGKILL);
	kill(p->pid, SIGKILL);
	qemu_proc_wait(p, NULL, -1, &status);
	return status;
}

void qemu_proc_free(struct qemu_proc *p)
{
	if (!p)
		return;
	if (!p->exited)
		qemu_proc_stop(p, 0);
	free(p);
}

const char *qemu_binary(void)
{
	const char *q = getenv("KREWIND_QEMU");
	return q && *q ? q : "qemu-system-x86_64";
}

char *qemu_version(const char *binary)
{
	char *cmd = NULL, line[256], *ver = NULL, *s;
	FILE *f;

	if (asprintf(&cmd, "'%s' --version 2>/dev/null", binary) < 0)
		return NULL;
	f = popen(cmd, "r");
	free(cmd);
	if (!f)
		return NULL;
	if (fgets(line, sizeof(line), f) && (s = strstr(line, "version "))) {
		s += 8;
		s[strcspn(s, " \n(")] = 0;
		ver = strdup(s);
	}
	pclose(f);
	return ver;
}
