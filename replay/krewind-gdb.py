# krewind-gdb.py - gdb commands for a krewind replay (`krewind gdb REC --at EVENT`).
#
# krewind starts QEMU replaying the recording, stops it at the event, then runs
# gdb with this file. The environment tells where things are:
#   KREWIND_DB        the recording's trace.db (read with python's sqlite3)
#   KREWIND_QMP       a QMP socket of the replaying QEMU (kr-goto seeks through it)
#   KREWIND_GDB_SOCK  QEMU's gdbstub (a unix socket)
#
# Commands: kr-icount, kr-events [N], kr-goto EVENT|icount:N, kr-locks, kr-irql,
# kr-threads. reverse-stepi / reverse-continue go through QEMU's own reverse
# debugging; kr-goto moves anywhere krewind's way: QEMU's replay-seek (snapshot
# at start + replay forward) for going back, replay-break for going forward.

import json
import os
import re
import socket
import sqlite3

import gdb

MASK64 = (1 << 64) - 1


def _db():
    path = os.environ.get("KREWIND_DB")
    if not path or not os.path.exists(path):
        raise gdb.GdbError("krewind: this recording has no trace.db")
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True)


def _icount():
    out = gdb.execute("monitor info replay", to_string=True)
    m = re.search(r"instruction count = (\d+)", out)
    if not m:
        raise gdb.GdbError("krewind: QEMU is not replaying (%s)" % out.strip())
    return int(m.group(1))


def _hex(v):
    return "0x%x" % (v & MASK64) if v is not None else "-"


class _Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rw")
        self._read()
        self.execute("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise gdb.GdbError("krewind: QEMU closed its QMP socket")
        return json.loads(line)

    def execute(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            m = self._read()
            if "error" in m:
                raise gdb.GdbError("krewind: QEMU refused %s: %s" % (cmd, m["error"].get("desc")))
            if "return" in m:
                return m["return"]

    def wait_event(self, name):
        while True:
            m = self._read()
            if m.get("event") == name:
                return m

    def close(self):
        self.s.close()


def _resolve(spec):
    """EVENT id or icount:N -> (icount, event id or None)."""
    spec = spec.strip()
    if spec.startswith("icount:"):
        return int(spec[7:], 0), None
    try:
        eid = int(spec, 0)
    except ValueError:
        raise gdb.GdbError("krewind: want an event id or icount:N, not %r" % spec)
    row = _db().execute("SELECT icount FROM events WHERE id = ?", (eid,)).fetchone()
    if not row:
        raise gdb.GdbError("krewind: no event %d" % eid)
    return row[0], eid


def goto(icount):
    """Moves the replay to exactly icount instructions, gdb reattached."""
    qmp_path = os.environ.get("KREWIND_QMP")
    stub = os.environ.get("KREWIND_GDB_SOCK")
    if not qmp_path or not stub:
        raise gdb.GdbError("krewind: kr-goto needs KREWIND_QMP and KREWIND_GDB_SOCK (run through `krewind gdb`)")
    now = _icount()
    if now == icount:
        return
    # gdb must not watch while QEMU resumes on its own: detach the stub first.
    gdb.execute("disconnect", to_string=True)
    q = _Qmp(qmp_path)
    try:
        if icount > now:
            q.execute("replay-break", icount=icount)
            q.execute("cont")
        else:
            q.execute("replay-seek", icount=icount)
        q.wait_event("STOP")
        got = q.execute("query-replay")["icount"]
    finally:
        q.close()
        gdb.execute("target remote %s" % stub, to_string=True)
    if got != icount:
        raise gdb.GdbError("krewind: QEMU stopped at icount %d, not %d (end of the recording?)" % (got, icount))


class KrIcount(gdb.Command):
    """kr-icount: instructions retired so far in this replay."""

    def __init__(self):
        super().__init__("kr-icount", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        n = _icount()
        gdb.write("icount %d (0x%x)\n" % (n, n))


class KrEvents(gdb.Command):
    """kr-events [N]: the trace's events around the current icount (N each side, default 5)."""

    def __init__(self):
        super().__init__("kr-events", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        n = int(arg) if arg.strip() else 5
        now = _icount()
        db = _db()
        before = db.execute(
            "SELECT id, icount, kind, pc, thread_name, lock_name, a, b, text FROM events "
            "WHERE icount < ? ORDER BY id DESC LIMIT ?", (now, n)).fetchall()
        after = db.execute(
            "SELECT id, icount, kind, pc, thread_name, lock_name, a, b, text FROM events "
            "WHERE icount >= ? ORDER BY id LIMIT ?", (now, n)).fetchall()
        for i, row in enumerate(list(reversed(before)) + after):
            mark = "=>" if i == len(before) else "  "
            eid, ic, kind, pc, th, lk, a, b, text = row
            gdb.write("%s %7d %#14x %-9s %-18s %-14s %s a=%d b=%d %s\n" % (
                mark, eid, ic, kind, _hex(pc), th or "-", lk or "", a, b, text or ""))
        if not after:
            gdb.write("=> (no event at or after icount %d)\n" % now)


class KrGoto(gdb.Command):
    """kr-goto EVENT|icount:N: stop the replay just before event EVENT (or at icount N)."""

    def __init__(self):
        super().__init__("kr-goto", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        icount, eid = _resolve(arg)
        goto(icount)
        pc = int(gdb.parse_and_eval("$pc")) & MASK64
        gdb.write("icount %d (0x%x), pc %s%s\n" % (icount, icount, _hex(pc),
                                                 ", before event %d" % eid if eid else ""))


def _held_locks(now):
    held = []
    for eid, kind, lock, th, lk, pc in _db().execute(
            "SELECT id, kind, obj, thread_name, lock_name, pc FROM events "
            "WHERE icount < ? AND kind IN ('lock_acq','lock_rel','mutex_acq','mutex_rel') ORDER BY id", (now,)):
        if kind.endswith("_acq"):
            held.append((lock, lk, th, eid, pc))
        else:
            for i in range(len(held) - 1, -1, -1):
                if held[i][0] == lock:
                    del held[i]
                    break
    return held


class KrLocks(gdb.Command):
    """kr-locks: locks held at the current icount, from the trace."""

    def __init__(self):
        super().__init__("kr-locks", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        held = _held_locks(_icount())
        if not held:
            gdb.write("no locks held\n")
        for lock, name, th, eid, pc in held:
            gdb.write("%-24s held by %-16s since event %d (pc %s)\n" % (name or _hex(lock), th or "-", eid, _hex(pc)))


class KrIrql(gdb.Command):
    """kr-irql: the IRQL now: CR8 from the CPU and the last IRQL event of the trace."""

    def __init__(self):
        super().__init__("kr-irql", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        cr8 = int(gdb.parse_and_eval("$cr8"))
        gdb.write("cr8 %d" % cr8)
        try:
            row = _db().execute("SELECT b FROM events WHERE icount < ? AND kind = 'irql' ORDER BY id DESC LIMIT 1",
                                (_icount(),)).fetchone()
            if row:
                gdb.write(" (trace: %d)" % row[0])
        except gdb.GdbError:
            pass
        gdb.write("\n")


class KrThreads(gdb.Command):
    """kr-threads: the threads of the trace; * marks the current one (gs:[0x188])."""

    def __init__(self):
        super().__init__("kr-threads", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        cur = None
        try:
            cur = int(gdb.parse_and_eval("*(unsigned long long *)($gs_base + 0x188)")) & MASK64
        except gdb.error:
            pass
        for addr, name in _db().execute("SELECT addr, name FROM threads ORDER BY id"):
            a = addr & MASK64
            gdb.write("%s %s %s\n" % ("*" if a == cur else " ", _hex(a), name or ""))


KrIcount()
KrEvents()
KrGoto()
KrLocks()
KrIrql()
KrThreads()
