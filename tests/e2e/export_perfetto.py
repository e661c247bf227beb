#!/usr/bin/env python3
"""export_perfetto.py TRACE: decodes a `krewind export --format perfetto` file
with a small protobuf reader of its own (wire format only, no generated code)
and prints the timeline as chrome-json-like JSON for the tests to compare:
{"packets": N, "tracks": {uuid: {...}}, "events": [[ph, uuid, ts_ns, name, args]],
 "errors": [...]}. Field numbers: perfetto/protos/perfetto/trace (TracePacket,
TrackEvent, TrackDescriptor, InternedData, DebugAnnotation)."""
import json
import sys


def fields(buf):
    """Yields (field, wire type, value) of one message; raises on bad input."""
    i, n = 0, len(buf)
    while i < n:
        key, i = varint(buf, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            ln, i = varint(buf, i)
            if i + ln > n:
                raise ValueError("length past the end")
            v, i = buf[i:i + ln], i + ln
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        yield f, wt, v


def varint(buf, i):
    v = shift = 0
    while True:
        if i >= len(buf):
            raise ValueError("varint past the end")
        b = buf[i]
        i += 1
        v |= (b & 0x7f) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def msg(buf):
    out = {}
    for f, _, v in fields(buf):
        out.setdefault(f, []).append(v)
    return out


def main():
    data = open(sys.argv[1], "rb").read()
    names, annots, tracks, events, errors = {}, {}, {}, [], []
    packets = 0
    for f, wt, pkt in fields(data):
        if f != 1 or wt != 2:
            errors.append("top-level field %d is not Trace.packet" % f)
            continue
        packets += 1
        p = msg(pkt)
        if p.get(10) != [1]:
            errors.append("packet without trusted_packet_sequence_id 1")
        if packets == 1 and (p.get(13) != [3] or p.get(87) != [1]):
            errors.append("first packet does not start the sequence (flags cleared | needs state, first on sequence)")
        for interned in p.get(12, []):
            d = msg(interned)
            for en in d.get(2, []):
                e = msg(en)
                names[e[1][0]] = e[2][0].decode()
            for an in d.get(3, []):
                a = msg(an)
                annots[a[1][0]] = a[2][0].decode()
        for td in p.get(60, []):
            d = msg(td)
            uuid = d[1][0]
            t = {"parent": d.get(5, [None])[0], "name": d[2][0].decode() if 2 in d else None}
            if 3 in d:
                pd = msg(d[3][0])
                t.update(kind="process", pid=pd[1][0], name=pd[6][0].decode())
            elif 4 in d:
                th = msg(d[4][0])
                if tracks.get(t["parent"], {}).get("kind") != "process":
                    errors.append("thread track %d before its process (parent_uuid)" % uuid)
                t.update(kind="thread", pid=th[1][0], tid=th[2][0], name=th[5][0].decode())
            elif 8 in d:
                t.update(kind="counter")
                if tracks.get(t["parent"], {}).get("kind") != "process":
                    errors.append("counter track %d before its process (parent_uuid)" % uuid)
            if uuid in tracks:
                errors.append("track %d described twice" % uuid)
            tracks[uuid] = t
        for te in p.get(11, []):
            e = msg(te)
            ts = p[8][0]
            uuid = e[11][0]
            if uuid not in tracks:
                errors.append("event on undescribed track %d" % uuid)
            if 10 in e and e[10][0] not in names:
                errors.append("name iid %d not interned before use" % e[10][0])
            name = names.get(e[10][0]) if 10 in e else e[23][0].decode() if 23 in e else None
            args = {}
            for da in e.get(4, []):
                a = msg(da)
                key = annots.get(a[1][0], "?%d" % a[1][0])
                args[key] = (a[6][0].decode() if 6 in a else bool(a[2][0]) if 2 in a else
                             a[4][0] - (1 << 64) if a.get(4, [0])[0] >= 1 << 63 else a[4][0])
            ph = {1: "B", 2: "E", 3: "i", 4: "C"}[e[9][0]]
            if ph == "C":
                args = {"value": e[30][0]}
            events.append([ph, uuid, ts, name, args])
    json.dump({"packets": packets, "tracks": {str(k): v for k, v in tracks.items()}, "events": events,
               "errors": errors}, sys.stdout)


main()
