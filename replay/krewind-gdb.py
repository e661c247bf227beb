# krewind-gdb.py - gdb on a krewind replay behaves like `rr replay`
# (`krewind gdb REC --at EVENT`).
#
# krewind starts QEMU replaying the recording (rr=replay, -action
# shutdown=pause so the end of the log pauses it), stops it at the event, then
# runs gdb with this file. The environment says where things are:
#   KREWIND_DB        the recording's trace.db (read with python's sqlite3)
#   KREWIND_QMP       a QMP socket of the replaying QEMU (moves go through it)
#   KREWIND_GDB_SOCK  QEMU's gdbstub (a unix socket)
#   KREWIND_BIN       the krewind binary (kr-events, kr-goto finding:N)
#   KREWIND_REC       the recording directory
#   KREWIND_END       the exact last icount when krewind ended the run, else ""
#   KREWIND_ICOUNT_MAX  no replay goes past this icount (the recorded total)
#   KREWIND_WAIT      seconds one move may take before it is an error (600)
#   KREWIND_SMP_CTL   set for a recording with several vCPUs (below)
#
# Moving in time is krewind's, not the gdbstub's: QEMU 10.0.2's own reverse
# continue (the stub's "bc") hangs, and replay-seek with gdb attached
# confuses the stub. So every move detaches gdb, drives QEMU over QMP
# (replay-seek back: nearest snapshot + replay forward; replay-break + cont
# forward), waits for STOP with a bound, and reattaches.
#
# reverse-continue replays forward from the start with gdb's breakpoints and
# watchpoints inserted, notes every stop before the current icount, then moves
# to the last one: the cost is two replays of the segment. reverse-step,
# reverse-next and reverse-finish find their target the same way, with
# internal breakpoints on the frame's lines or entry (frames are told apart by
# function and CFA, as gdb does). At the end of the recording the replay
# pauses (like rr's end of history) and forward commands are refused there;
# `run` goes back to the start.
#
# A recording with several vCPUs has no replay log and no QMP: QEMU re-runs
# it and krewind's plugin holds the machine and is the gdb stub itself
# (tracer/gdbstub.c, threads = vCPUs). Forward moves are the stub's (monitor
# goto N + continue); a move back disconnects, asks krewind on the control
# socket KREWIND_SMP_CTL to re-execute from the start to the earlier count,
# and reattaches. reverse-stepi goes to the held vCPU's previous instruction
# (monitor prev), which another vCPU's instructions may separate from now.

import json
import os
import re
import socket
import sqlite3
import subprocess
import time

import gdb

MASK64 = (1 << 64) - 1
WAIT = float(os.environ.get("KREWIND_WAIT") or 600)
STALL = float(os.environ.get("KREWIND_STALL") or 60)

_state = {"end": None, "busy": False, "last_stop": None, "user_stop": False}
if os.environ.get("KREWIND_END"):
    _state["end"] = int(os.environ["KREWIND_END"])


def _icount_max():
    v = os.environ.get("KREWIND_ICOUNT_MAX")
    return int(v) if v else None


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


def _reg(name):
    return int(gdb.parse_and_eval("$" + name)) & MASK64


class _Quiet:
    """Sends gdb's own output (the stop reports of the moves krewind makes
    behind the user's back) to /dev/null; nests. gdb prints some of them
    ("Program received signal ...") past any redirection of its own, so the
    descriptor itself is swapped for the duration."""
    depth = 0
    saved = None

    def __enter__(self):
        if _Quiet.depth == 0:
            gdb.execute("set suppress-cli-notifications on", to_string=True)
            gdb.flush()
            null = os.open(os.devnull, os.O_WRONLY)
            _Quiet.saved = os.dup(1)
            os.dup2(null, 1)
            os.close(null)
        _Quiet.depth += 1

    def __exit__(self, *exc):
        _Quiet.depth -= 1
        if _Quiet.depth == 0:
            gdb.flush()
            os.dup2(_Quiet.saved, 1)
            os.close(_Quiet.saved)
            gdb.execute("set suppress-cli-notifications off", to_string=True)
        return False


class _Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(30)
        self.s.connect(path)
        self.buf = b""
        self.events = []
        self._read()
        self.execute("qmp_capabilities")

    def _line(self):
        """One line from QEMU; socket.timeout if none within the socket's timeout."""
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise gdb.GdbError("krewind: QEMU closed its QMP socket (the replay died)")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def _read(self):
        try:
            return json.loads(self._line())
        except socket.timeout:
            raise gdb.GdbError("krewind: QEMU did not answer on QMP in time")

    def execute(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.s.sendall((json.dumps(msg) + "\n").encode())
        while True:
            m = self._read()
            if "event" in m:
                self.events.append(m)
                continue
            if "error" in m:
                raise gdb.GdbError("krewind: QEMU refused %s: %s" % (cmd, m["error"].get("desc")))
            if "return" in m:
                return m["return"]

    def wait_stop(self, timeout, stall=60):
        """Waits for STOP; True if the guest's (replayed) shutdown came first.
        A replay whose icount does not move for stall seconds, or that has
        not stopped after timeout seconds, is an error."""
        shutdown = False
        start = last_move = time.time()
        last = None
        self.s.settimeout(1)
        try:
            while True:
                if self.events:
                    m = self.events.pop(0)
                else:
                    try:
                        m = json.loads(self._line())
                    except socket.timeout:
                        now = time.time()
                        ic = self.execute("query-replay")["icount"]
                        if ic != last:
                            last, last_move = ic, now
                        elif now - last_move > stall:
                            raise gdb.GdbError("krewind: the replay is stuck: icount %d did not move for %.0f s "
                                               "(QEMU hung)" % (ic, stall))
                        if now - start > timeout:
                            raise gdb.GdbError("krewind: the replay did not stop within %.0f s (KREWIND_WAIT)"
                                               % timeout)
                        continue
                if m.get("event") == "SHUTDOWN":
                    shutdown = True
                if m.get("event") == "STOP":
                    return shutdown
        finally:
            self.s.settimeout(30)

    def close(self):
        self.s.close()


SMP_CTL = os.environ.get("KREWIND_SMP_CTL")


def _smp_ctl(line):
    """Asks krewind (SMP) for a re-execution; raises gdb.GdbError with its answer."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(WAIT + 60)
    try:
        s.connect(SMP_CTL)
        s.sendall((line + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except (OSError, socket.timeout) as e:
        raise gdb.GdbError("krewind: no answer to %r: %s" % (line, e))
    finally:
        s.close()
    reply = data.decode(errors="replace").strip()
    if reply != "ok":
        raise gdb.GdbError(reply[7:] if reply.startswith("error: ") else "krewind: %r" % reply)


def _smp_goto(icount, now):
    """SMP: forward by the plugin's stub, backward by a re-execution."""
    stub = os.environ.get("KREWIND_GDB_SOCK")
    if icount > now:
        _state["busy"] = True
        try:
            gdb.execute("monitor goto %d" % icount, to_string=True)
            with _Quiet():
                gdb.execute("continue", to_string=True)
        finally:
            _state["busy"] = False
    else:
        with _Quiet():
            gdb.execute("disconnect", to_string=True)
        try:
            _smp_ctl("goto %d" % icount)
        finally:
            with _Quiet():
                gdb.execute("target remote %s" % stub, to_string=True)
    got = _icount()
    if got != icount:
        if got < icount:
            _state["end"] = got
            raise gdb.GdbError("krewind: the recording ends at icount %d, before icount %d: stopped at its end"
                               % (got, icount))
        raise gdb.GdbError("krewind: the re-execution stopped at icount %d, not %d" % (got, icount))


def _prev_insn(now):
    """The count of the current vCPU's previous instruction: now - 1 with one
    vCPU; with several, the plugin's (another vCPU may have run between)."""
    if not SMP_CTL:
        return now - 1
    out = gdb.execute("monitor prev", to_string=True)
    m = re.search(r"prev (\d+)", out)
    if not m:
        raise gdb.GdbError("No more reverse-execution history.")
    return int(m.group(1))


def goto(icount):
    """Moves the replay to exactly icount instructions, gdb reattached.
    Raises gdb.GdbError (the replay stays where it stopped) if the recording
    ends before icount."""
    if SMP_CTL:
        top = _icount_max()
        if icount < 0 or (top is not None and icount > top):
            raise gdb.GdbError("krewind: icount %d is outside the recording (0 to %s)" % (icount, top))
        now = _icount()
        if now != icount:
            _smp_goto(icount, now)
        return
    qmp_path = os.environ.get("KREWIND_QMP")
    stub = os.environ.get("KREWIND_GDB_SOCK")
    if not qmp_path or not stub:
        raise gdb.GdbError("krewind: moving needs KREWIND_QMP and KREWIND_GDB_SOCK (run through `krewind gdb`)")
    top = _icount_max()
    end = _state["end"]
    if icount < 0:
        raise gdb.GdbError("krewind: icount %d is before the start of the recording" % icount)
    if (end is not None and icount > end) or (top is not None and icount > top):
        raise gdb.GdbError("krewind: the recording ends at icount %d; icount %d is past its end"
                           % (end if end is not None else top, icount))
    now = _icount()
    if now == icount:
        return
    # gdb must not watch while QEMU resumes on its own: detach the stub first.
    with _Quiet():
        gdb.execute("disconnect", to_string=True)
    q = _Qmp(qmp_path)
    shutdown = False
    try:
        try:
            if icount > now:
                q.execute("replay-break", icount=icount)
                q.execute("cont")
            else:
                q.execute("replay-seek", icount=icount)
            shutdown = q.wait_stop(WAIT, STALL)
        except gdb.GdbError:
            try:
                q.execute("stop")  # a stuck replay must not run on under gdb
            except gdb.GdbError:
                pass
            raise
        except KeyboardInterrupt:
            q.execute("stop")
            q.wait_stop(30)
            got = q.execute("query-replay")["icount"]
            raise gdb.GdbError("krewind: interrupted; the replay stopped at icount %d" % got)
        got = q.execute("query-replay")["icount"]
    finally:
        q.close()
        with _Quiet():
            gdb.execute("target remote %s" % stub, to_string=True)
            gdb.execute("monitor info replay", to_string=True)  # the stub's stop reply is consumed
    if got != icount:
        if shutdown or got < icount:
            before = _state["end"]
            _state["end"] = got
            if before is not None and got < icount <= before:
                # QEMU stops a replayed guest shutdown at the next TB
                # boundary after it: a few instructions later some times.
                raise gdb.GdbError("krewind: the recording ends at icount %d this time (%d before: QEMU's replay "
                                   "of the guest's shutdown stops a few instructions late at random); "
                                   "stopped at its end" % (got, before))
            raise gdb.GdbError("krewind: the recording ends at icount %d, before icount %d: stopped at its end"
                               % (got, icount))
        raise gdb.GdbError("krewind: QEMU stopped at icount %d, not %d" % (got, icount))


def _where():
    """One line like gdb's stop line: 'func (args) at file:line' + the source line."""
    out = gdb.execute("frame", to_string=True)
    return re.sub(r"^#0\s+(0x[0-9a-f]+ in )?", "", out)


def _say_stop(prefix=""):
    now = _icount()
    gdb.write("%s%s" % (prefix, _where()))
    gdb.write("icount %d\n" % now)


# ------------------------------------------------------------ end of the recording

def _on_stop(ev):
    _state["last_stop"] = ev
    if _state["busy"]:
        return
    if isinstance(ev, gdb.SignalEvent) and ev.stop_signal == "SIGQUIT":
        try:
            n = _icount()
        except gdb.error:
            return
        _state["end"] = n
        gdb.write("krewind: end of the recording at icount %d; the replay stays here "
                  "(reverse-*, kr-goto and run still work)\n" % n)


gdb.events.stop.connect(_on_stop)


class KrCheckForward(gdb.Command):
    """kr-check-forward: errors if the replay stands at the end of the recording
    (the pre-hook of gdb's forward commands)."""

    def __init__(self):
        super().__init__("kr-check-forward", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        if _state["busy"] or _state["end"] is None:
            return
        try:
            now = _icount()
        except gdb.error:
            return
        if now >= _state["end"]:
            raise gdb.GdbError("krewind: the replay is at the end of the recording (icount %d): nothing to run "
                               "forward; use reverse-continue, reverse-stepi, kr-goto or run" % now)


KrCheckForward()
for _cmd in ("continue", "next", "step", "stepi", "nexti", "finish", "until", "advance", "jump", "signal"):
    gdb.execute("define hook-%s\nkr-check-forward\nend" % _cmd, to_string=True)


# ------------------------------------------------------------ searching back in time

_WATCH = (gdb.BP_HARDWARE_WATCHPOINT, gdb.BP_WATCHPOINT, gdb.BP_ACCESS_WATCHPOINT, gdb.BP_READ_WATCHPOINT)
_users = []  # the user's breakpoint/watchpoint stops seen by the last searches


def _note_user_stops(n, ev):
    for b in ev.breakpoints:
        if not b.visible or b.number <= 0:
            continue
        if b.type in _WATCH:
            # A watchpoint stops after the access: the accessing
            # instruction is the one before.
            try:
                after = str(gdb.parse_and_eval(b.expression))
            except gdb.error:
                after = "?"
            _users.append((n - 1, b, after))
        else:
            _users.append((n, b, None))


def _stop_at_user(lo, hi):
    """If the user's breakpoints stopped in (lo, hi), going backward from hi
    meets the last of them first: goes there, reports it, True."""
    inside = [u for u in _users if lo < u[0] < hi]
    if not inside:
        return False
    _state["user_stop"] = True
    n, b, after = inside[-1]
    goto(n)
    if after is not None:
        try:
            before = str(gdb.parse_and_eval(b.expression))
        except gdb.error:
            before = "?"
        gdb.write("\nHardware watchpoint %d: %s\n\nOld value = %s\nNew value = %s\n" % (b.number, b.expression,
                                                                                    after, before))
    else:
        gdb.write("\nBreakpoint %d, " % b.number)
    _say_stop()
    return True


class _Search:
    """Replays [start, stop) with breakpoints inserted (gdb's own and
    internal ones) and calls on_hit for every stop; the user's stops are
    noted in _users, since going backward they come first."""

    def run(self, start, stop, on_hit):
        goto(start)
        del _users[:]
        _state["busy"] = True
        quiet = _Quiet()
        quiet.__enter__()
        try:
            while True:
                gdb.execute("monitor replay_break %d" % stop, to_string=True)
                _state["last_stop"] = None
                gdb.execute("continue", to_string=True)
                now = _icount()
                ev = _state["last_stop"]
                if now >= stop or (isinstance(ev, gdb.SignalEvent) and ev.stop_signal == "SIGQUIT"):
                    break
                if isinstance(ev, gdb.BreakpointEvent):
                    _note_user_stops(now, ev)
                    on_hit(now, ev)
        finally:
            quiet.__exit__()
            _state["busy"] = False


def _temp_breaks(addrs):
    bps = []
    for a in sorted(set(addrs)):
        bps.append(gdb.Breakpoint("*0x%x" % a, internal=True))
    return bps


def _delete(bps):
    for b in bps:
        try:
            b.delete()
        except RuntimeError:
            pass


def _frame_id(frame=None):
    """(function start, CFA) of a frame, gdb's frame identity, or None."""
    f = frame or gdb.newest_frame()
    try:
        while f.type() == gdb.INLINE_FRAME and f.older():
            f = f.older()  # inlined code belongs to the frame it is in
        fn = f.block().function
        start = fn.value().address if fn else None
        start = int(start) & MASK64 if start is not None else f.pc()
        older = f.older()
        cfa = int(older.read_register("rsp")) & MASK64 if older else None
        return (start, cfa)
    except (RuntimeError, gdb.error):
        return None


def _function_range(pc):
    """[start, end) of the function pc is in; for inlined code, of the
    function it was inlined into."""
    b, top = gdb.block_for_pc(pc), None
    while b and not b.is_static and not b.is_global:
        if b.function:
            top = b
        b = b.superblock
    return (top.start, top.end) if top else None


def _line_starts(pc):
    """Addresses where a source line of pc's function starts (is_stmt entries)."""
    rng = _function_range(pc)
    sal = gdb.find_pc_line(pc)
    if not rng or not sal.symtab:
        return None, []
    lt = sal.symtab.linetable()
    addrs = set()
    for e in lt:
        if rng[0] <= e.pc < rng[1] and e.line > 0 and getattr(e, "is_stmt", True):
            addrs.add(e.pc)
    return rng, sorted(addrs)


def _reverse_continue():
    now = _icount()
    if now == 0:
        raise gdb.GdbError("No more reverse-execution history.")
    if [b for b in gdb.breakpoints() if b.enabled and not b.pending and b.visible]:
        _Search().run(0, now, lambda n, ev: None)
        if _stop_at_user(-1, now):
            return
    goto(0)
    gdb.write("\nNo more reverse-execution history.\n")
    _say_stop()


def _frame_hits(addrs, fid, start, stop):
    """icounts in [start, stop) where the frame fid reaches one of addrs."""
    bps = _temp_breaks(addrs)
    found = []

    def hit(n, ev):
        if _frame_id() == fid:
            found.append((n, gdb.newest_frame().pc()))

    try:
        _Search().run(start, stop, hit)
    finally:
        _delete(bps)
    return found


def _reverse_line(step):
    """reverse-next (step=False) / reverse-step (step=True)."""
    now = _icount()
    if now == 0:
        raise gdb.GdbError("No more reverse-execution history.")
    pc = _reg("pc")
    fid = _frame_id()
    rng, starts = _line_starts(pc)
    if not starts or not fid:
        raise gdb.GdbError("krewind: no line information for pc %s: use reverse-stepi" % _hex(pc))
    if step:
        # Just after a call returned, the previous line executed is the
        # callee's last one: reverse-step stops at its start.
        goto(_prev_insn(now))
        prev = _reg("pc")
        if not (rng[0] <= prev < rng[1]) and gdb.find_pc_line(prev).symtab:
            cfid = _frame_id()
            crng, cstarts = _line_starts(prev)
            if cfid and cstarts:
                hits = _frame_hits(cstarts, cfid, 0, now)
                if hits:
                    line = gdb.find_pc_line(hits[-1][1]).line
                    target = hits[-1][0]
                    for n, a in reversed(hits):
                        if gdb.find_pc_line(a).line != line:
                            break
                        target = n
                    if not _stop_at_user(target, now):
                        goto(target)
                        _say_stop()
                    return
        goto(now)
    cur_line = gdb.find_pc_line(pc).line
    hits = [h for h in _frame_hits(starts, fid, 0, now + 1) if h[0] < now]
    if not hits:
        _reverse_finish()
        return
    at_start = pc in starts
    last_line = gdb.find_pc_line(hits[-1][1]).line
    want = cur_line if (not at_start and last_line == cur_line) else last_line
    target = None
    for n, a in reversed(hits):
        if gdb.find_pc_line(a).line != want:
            break
        target = n
    if target is None:
        _reverse_finish()
        return
    if _stop_at_user(target, now):
        return
    goto(target)
    _say_stop()


def _reverse_finish(quiet=False):
    """Back to the call of the current function: its entry's icount - 1.
    Returns False (not moved) if no call of this frame is in the recording."""
    now = _icount()
    fid = _frame_id()
    if not fid or fid[1] is None:
        raise gdb.GdbError("krewind: cannot find the caller of this frame")
    entries = []
    if _reg("pc") == fid[0] and (_reg("rsp") + 8) & MASK64 == fid[1]:
        entries.append((now, _prev_insn(now)))  # at the entry itself: the search below stops before it
    bps = _temp_breaks([fid[0]])

    def hit(n, ev):
        if (_reg("rsp") + 8) & MASK64 == fid[1]:
            entries.append((n, _prev_insn(n)))  # held at the entry: the call is its vCPU's instruction before

    try:
        if entries:
            del _users[:]  # no search: no user stops seen between
        else:
            _Search().run(0, now, hit)
    finally:
        _delete(bps)
    entries = [e for n, e in entries if 0 < n <= now]
    if not entries:
        goto(now)
        if quiet:
            return False
        raise gdb.GdbError("krewind: the call of this frame is not in the recording "
                           "(entered before it started, or by an interrupt)")
    if _stop_at_user(entries[-1], now):
        return True
    goto(entries[-1])
    if not quiet:
        gdb.write("Run back to call of #0  %s" % _where())
    else:
        _say_stop()
    return True


class _Reverse(gdb.Command):
    def __init__(self, name, fn, doc):
        self.__doc__ = doc
        super().__init__(name, gdb.COMMAND_RUNNING)
        self.fn = fn

    def invoke(self, arg, from_tty):
        self.fn(arg.strip())


def _repeat(fn):
    """COMMAND [N]: N times, or until one stops at the user's breakpoint."""
    def run(arg):
        try:
            n = int(arg, 0) if arg else 1
        except ValueError:
            raise gdb.GdbError("krewind: want a count, not %r" % arg)
        _state["user_stop"] = False
        for _ in range(n):
            fn()
            if _state["user_stop"]:
                break
    return run


def _reverse_stepi():
    now = _icount()
    if now == 0:
        raise gdb.GdbError("No more reverse-execution history.")
    goto(_prev_insn(now))
    gdb.execute("x/i $pc")


def _reverse_nexti():
    now = _icount()
    if now == 0:
        raise gdb.GdbError("No more reverse-execution history.")
    fid = _frame_id()
    rng = _function_range(fid[0]) if fid else None
    goto(_prev_insn(now))
    pc = _reg("pc")
    # The instruction before is a callee's (its ret): back to the call.
    if rng and not (rng[0] <= pc < rng[1]) and _reverse_finish(quiet=True):
        return
    gdb.execute("x/i $pc")


_Reverse("reverse-continue", lambda a: _reverse_continue(),
         "reverse-continue: run backward to the last breakpoint or watchpoint hit before now (krewind: one replay "
         "of the segment to find it, one to go there).")
_Reverse("reverse-next", _repeat(lambda: _reverse_line(False)),
         "reverse-next [N]: back to the start of the previous line in this frame, over calls.")
_Reverse("reverse-step", _repeat(lambda: _reverse_line(True)),
         "reverse-step [N]: back to the start of the previous line, into the last line of a call it returned from.")
_Reverse("reverse-finish", lambda a: _reverse_finish(),
         "reverse-finish: back to the call instruction of the current function.")
_Reverse("reverse-stepi", _repeat(_reverse_stepi), "reverse-stepi [N]: back N instructions.")
_Reverse("reverse-nexti", _repeat(_reverse_nexti), "reverse-nexti [N]: back N instructions, over calls.")
def _restart(arg):
    goto(0)
    gdb.write("krewind: back at the start of the recording\n")
    _say_stop()


_Reverse("run", _restart, "run: go back to the start of the recording (icount 0), like rr's restart.")
# gdb's own aliases (rc, rs, rn, rsi, rni, r) now reach these commands.


# ------------------------------------------------------------ krewind's commands

def _krewind(*args):
    exe = os.environ.get("KREWIND_BIN") or "krewind"
    try:
        p = subprocess.run([exe] + list(args), capture_output=True, text=True, timeout=WAIT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise gdb.GdbError("krewind: cannot run %s: %s" % (exe, e))
    return p


def _resolve(spec):
    """EVENT id, icount:N or finding:N -> (icount, event id or None)."""
    spec = spec.strip()
    if spec.startswith("icount:"):
        try:
            return int(spec[7:], 0), None
        except ValueError:
            raise gdb.GdbError("krewind: want icount:N with a number, not %r" % spec)
    if spec.startswith("finding:"):
        try:
            k = int(spec[8:], 0)
        except ValueError:
            raise gdb.GdbError("krewind: want finding:N with a number, not %r" % spec)
        p = _krewind("check", os.environ.get("KREWIND_REC", ""), "--json")
        try:
            findings = json.loads(p.stdout)["findings"]
        except (ValueError, KeyError):
            raise gdb.GdbError("krewind: krewind check failed: %s" % p.stderr.strip())
        if k < 1 or k > len(findings) or not findings[k - 1].get("event"):
            raise gdb.GdbError("krewind: the recording has %d findings, none numbered %d" % (len(findings), k))
        return findings[k - 1]["icount"], findings[k - 1]["event"]
    try:
        eid = int(spec, 0)
    except ValueError:
        raise gdb.GdbError("krewind: want an event id, icount:N or finding:N, not %r" % spec)
    row = _db().execute("SELECT icount FROM events WHERE id = ?", (eid,)).fetchone()
    if not row:
        raise gdb.GdbError("krewind: no event %d" % eid)
    return row[0], eid


class KrIcount(gdb.Command):
    """kr-icount: instructions retired so far in this replay."""

    def __init__(self):
        super().__init__("kr-icount", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        n = _icount()
        gdb.write("icount %d (0x%x)\n" % (n, n))


class KrEvents(gdb.Command):
    """kr-events [N]: the trace's events around the current icount (N each side,
    default 5), described as `krewind events` describes them; => marks the next one."""

    def __init__(self):
        super().__init__("kr-events", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        try:
            n = int(arg) if arg.strip() else 5
        except ValueError:
            raise gdb.GdbError("krewind: kr-events wants a number")
        now = _icount()
        db = _db()
        lo = db.execute("SELECT min(id) FROM (SELECT id FROM events WHERE icount < ? ORDER BY id DESC LIMIT ?)",
                        (now, n)).fetchone()[0]
        hi = db.execute("SELECT max(id) FROM (SELECT id FROM events WHERE icount >= ? ORDER BY id LIMIT ?)",
                        (now, n)).fetchone()[0]
        first = lo or hi
        if not first:
            gdb.write("(no events)\n")
            return
        p = _krewind("events", os.environ.get("KREWIND_REC", ""), "--from", str(first), "--to",
                     str(hi or lo), "--json")
        try:
            rows = json.loads(p.stdout)
        except ValueError:
            raise gdb.GdbError("krewind: krewind events failed: %s" % p.stderr.strip())
        marked = False
        for r in rows:
            mark = "  "
            if not marked and r["icount"] >= now:
                mark, marked = "=>", True
            gdb.write("%s %7d %#14x %-14s %-28s %s\n" % (mark, r["id"], r["icount"], r.get("thread_name") or "-",
                                                        r.get("symbol") or r["pc"], r["description"]))
        if not marked:
            gdb.write("=> (no event at or after icount %d)\n" % now)


class KrGoto(gdb.Command):
    """kr-goto EVENT|icount:N|finding:N: move the replay just before event EVENT,
    to icount N, or to the event of the Nth finding of `krewind check`."""

    def __init__(self):
        super().__init__("kr-goto", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        if not arg.strip():
            raise gdb.GdbError("krewind: kr-goto EVENT|icount:N|finding:N")
        icount, eid = _resolve(arg)
        goto(icount)
        gdb.write(_where())
        pc = _reg("pc")
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
