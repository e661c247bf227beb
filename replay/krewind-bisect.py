# krewind-bisect.py - the gdb side of `krewind bisect REC --until gdb:EXPR`.
#
# Sourced after krewind-gdb.py (which defines goto). Binary search for the
# first candidate event before which EXPR is true, assuming it stays true once
# it turned true. A step forward replays only the segment from the current
# point (replay-break); a step back seeks (replay-seek: the snapshot taken at
# start, then forward). QEMU 10.0.2 hangs in replay-seek once a snapshot was
# saved during the replay (savevm), so krewind adds none (docs/replay.md).
# Input: KREWIND_BISECT (a JSON file: {"expr": ..., "candidates": [[id, icount], ...]}).
# Output: lines "KRBISECT {json}" on stdout.

import json
import os

import gdb


def _bisect():
    with open(os.environ["KREWIND_BISECT"]) as f:
        job = json.load(f)
    expr, cands = job["expr"], job["candidates"]
    steps = [0]

    def holds(i):
        goto(cands[i][1])  # noqa: F821 (defined by krewind-gdb.py)
        steps[0] += 1
        try:
            v = bool(gdb.parse_and_eval(expr))
        except gdb.error as e:
            print("KRBISECT " + json.dumps({"error": "cannot evaluate %s at event %d: %s" % (expr, cands[i][0], e)}))
            raise
        print("KRBISECT " + json.dumps({"step": steps[0], "event": cands[i][0], "icount": cands[i][1], "value": v}))
        return v

    lo, hi = 0, len(cands) - 1
    if holds(lo):
        print("KRBISECT " + json.dumps({"first_bad": 0, "last_good": None, "replays": steps[0]}))
        return
    if not holds(hi):
        print("KRBISECT " + json.dumps({"first_bad": None, "last_good": hi, "replays": steps[0]}))
        return
    # Invariant: not holds(lo), holds(hi).
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if holds(mid):
            hi = mid
        else:
            lo = mid
    print("KRBISECT " + json.dumps({"first_bad": hi, "last_good": lo, "replays": steps[0]}))


_bisect()
