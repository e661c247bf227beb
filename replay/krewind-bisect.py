# krewind-bisect.py - the gdb side of `krewind bisect REC --until gdb:EXPR`.
#
# Sourced after krewind-gdb.py (which defines goto). Binary search for the
# first candidate event before which EXPR is true, assuming it stays true once
# it turned true; then the answer is checked: EXPR is evaluated again on a
# fresh replay just before the answer (must be true) and before the candidate
# preceding it (must be false), and at earlier candidates (all of them up to
# 64, else 64 spread evenly, in order: forward steps replay only a segment):
# one that is true there means EXPR is not monotone and the binary search
# found *a* transition, maybe not the first. Steps back seek from the start
# snapshot (QEMU 10.0.2 hangs in replay-seek once a snapshot was saved during
# a replay, so krewind adds none: docs/replay.md).
# Input: KREWIND_BISECT (a JSON file: {"expr": ..., "candidates": [[id, icount], ...]}).
# Output: lines "KRBISECT {json}" on stdout, one per evaluation, then the result.

import json
import os

import gdb

SAMPLES = 64


def _out(obj):
    gdb.write("KRBISECT " + json.dumps(obj) + "\n")
    gdb.flush()


def _bisect():
    with open(os.environ["KREWIND_BISECT"]) as f:
        job = json.load(f)
    expr, cands = job["expr"], job["candidates"]
    steps = [0]
    seen = {}

    def holds(i, phase="search"):
        goto(cands[i][1])  # noqa: F821 (defined by krewind-gdb.py)
        steps[0] += 1
        try:
            v = bool(gdb.parse_and_eval(expr))
        except gdb.error as e:
            _out({"error": "cannot evaluate %s at event %d: %s" % (expr, cands[i][0], e)})
            raise
        seen.setdefault(i, v)
        _out({"step": steps[0], "phase": phase, "event": cands[i][0], "icount": cands[i][1], "value": v})
        return v

    result = {"first_bad": None, "last_good": None}
    lo, hi = 0, len(cands) - 1
    if holds(lo):
        result["first_bad"] = 0
    elif not holds(hi):
        result["last_good"] = hi
    else:
        # Invariant: not holds(lo), holds(hi).
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if holds(mid):
                hi = mid
            else:
                lo = mid
        result["first_bad"], result["last_good"] = hi, lo
        # The boundary again, on a fresh replay (a step back: from the start).
        bad_again = holds(hi, "verify")
        good_again = holds(lo, "verify")
        result["verified"] = bad_again and not good_again
        # Earlier candidates, in order.
        if lo > 0:
            n = min(lo, SAMPLES)
            picks = sorted(set(int(k * lo / n) for k in range(n)))
            result["sampled"] = len(picks)
            for i in picks:
                v = seen[i] if i in seen else holds(i, "sample")
                if v:
                    result["also_true"] = i
                    break
    result["replays"] = steps[0]
    _out(result)


_bisect()
