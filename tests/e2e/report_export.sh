#!/usr/bin/env bash
# krewind export --format chrome-json|csv: on a trace with known contents
# (mktrace: two CPUs, nested traps, a lock spin and hold, a lock still spun
# on at the end, a serial line with a comma, quotes and a newline) and on a
# real recording of eoi-before-switch. Checks: valid JSON, the event types,
# B/E balanced and nested per track, b/e balanced per async id, IRQL counter
# values equal to the trace's CR8 values, one CSV record per event, quoting.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
MKTRACE=$BUILD/ui-cli/test/mktrace
if [ ! -x "$KREWIND" ] || [ ! -x "$MKTRACE" ]; then
	skip "export" "$KREWIND or $MKTRACE not built"
	done_testing
fi
if ! command -v jq >/dev/null; then
	skip "export" "jq is not installed (scripts/install-deps.sh installs it)"
	done_testing
fi

same() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi
}

valid_json() { jq -e '.traceEvents | length > 0' "$1" >/dev/null; }
# balanced FILE: every B has its E on the same (pid, tid), properly nested
# (never below zero), and every async b its e with the same (cat, id).
balanced() {
	jq -e '
		.traceEvents as $t
		| ([$t[] | select(.ph == "B" or .ph == "E")] | group_by([.pid, .tid])
		   | all(reduce .[] as $e ({d: 0, ok: true};
			.d += (if $e.ph == "B" then 1 else -1 end) | .ok = (.ok and .d >= 0)) | .ok and .d == 0))
		and ([$t[] | select(.ph == "b" or .ph == "e")] | group_by([.cat, .id])
		   | all(reduce .[] as $e ({d: 0, ok: true};
			.d += (if $e.ph == "b" then 1 else -1 end) | .ok = (.ok and .d >= 0 and .d <= 1)) | .ok and .d == 0))
	' "$1" >/dev/null
}

T=0xffffffff80010000 U=0xffffffff80011000 L=0xffffffff80005000 M=0xffffffff80005008
db=$TMP/known.db
"$MKTRACE" "$db" <<SCRIPT || { not_ok "mktrace"; done_testing; }
meta outcome hang
sym 0xffffffff80001000 0x80 KeAcquireSpinLockRaiseToDpc
sym 0xffffffff80001080 0x40 KeReleaseSpinLock
sym 0xffffffff80001100 0x40 KiSwapContext
sym 0xffffffff80001200 0x100 KiTimerInterrupt
thread $T worker1
thread $U worker2
lock $L ScenarioLockA
lock $M ScenarioLockB
marker icount=1000 thread=$T a=3 text=hello, "world"
irql icount=1100 thread=$T a=0 b=2
lock_try icount=1200 pc=0xffffffff80001004 thread=$T obj=$L a=2
lock_acq icount=1250 pc=0xffffffff80001010 thread=$T obj=$L a=2 b=50
trap icount=1300 pc=0xffffffff80001200 thread=$T a=0xd1
irql icount=1310 thread=$T a=2 b=13
trap icount=1320 pc=0xffffffff80001200 thread=$T a=0xe
iret icount=1330 thread=$T a=0xe
eoi icount=1340 thread=$T a=1
irql icount=1350 thread=$T a=13 b=2
iret icount=1360 thread=$T a=0xd1
lock_rel icount=1400 pc=0xffffffff80001088 thread=$T obj=$L a=2
switch icount=1500 pc=0xffffffff80001100 thread=$T a=$T b=$U
irql icount=1510 thread=$U cpu=0 a=2 b=0
irql icount=900 thread=$U cpu=1 a=0 b=2
lock_try icount=950 pc=0xffffffff80001004 thread=$U cpu=1 obj=$M a=2
trap icount=960 pc=0xffffffff80001200 thread=$U cpu=1 a=0xd1
SCRIPT
# The serial line with a newline cannot be written by the script format; the
# CSV quoting of newlines is checked on the real recording's text too.

out=$TMP/known.json
"$KREWIND" export "$db" --format chrome-json >"$out" 2>"$TMP/err"
same "export chrome-json exits 0" "$?" 0
check "chrome-json is valid JSON" valid_json "$out"
for ph in M X B E C i b e; do
	n=$(jq "[.traceEvents[] | select(.ph == \"$ph\")] | length" "$out")
	if [ "$n" -gt 0 ]; then ok "chrome-json has '$ph' events ($n)"; else not_ok "chrome-json has '$ph' events"; fi
done
check "B/E and b/e are balanced and nested per track" balanced "$out"
same "IRQL counters: the CR8 values in order, per CPU pid" \
	"$(jq -c '[.traceEvents[] | select(.ph == "C") | [.pid, .args.IRQL]]' "$out")" \
	'[[100,2],[100,13],[100,2],[100,0],[101,2]]'
same "timestamps: icount / 1000 (1 instruction = 1 ns)" \
	"$(jq -c '[.traceEvents[] | select(.ph == "C" and .pid == 100) | .ts]' "$out")" '[1.1,1.31,1.35,1.51]'
same "threads are X slices from switch to switch" \
	"$(jq -c '[.traceEvents[] | select(.ph == "X") | [.name, .ts, .dur, .args.cpu]] | sort' "$out")" \
	'[["worker1",1,0.5,0],["worker2",0.9,0.06,1],["worker2",1.5,0.01,0]]'
same "nested traps: B 0xd1, B 0xe, E, E on CPU 0" \
	"$(jq -c '[.traceEvents[] | select((.ph == "B" or .ph == "E") and .pid == 100) | .ph + (.name // "")]' "$out")" \
	'["Btrap 0xd1","Btrap 0xe","E","E"]'
same "a trap never left is closed at the CPU's last event, marked open" \
	"$(jq -c '[.traceEvents[] | select(.ph == "E" and .pid == 101) | [.ts, .args.open]]' "$out")" '[[0.96,true]]'
same "lock hold and spin slices (in event order; the spin never acquired is closed at the end)" \
	"$(jq -c '[.traceEvents[] | select(.ph == "b" or .ph == "e") | [.ph, .name, .cat, .ts]]' "$out")" \
	'[["b","spin","ScenarioLockA",1.2],["e","spin","ScenarioLockA",1.25],["b","hold","ScenarioLockA",1.25],["e","hold","ScenarioLockA",1.4],["b","spin","ScenarioLockB",0.95],["e","spin","ScenarioLockB",1.51]]'
same "metadata names the processes and threads" \
	"$(jq -c '[.traceEvents[] | select(.ph == "M") | .args.name] | sort' "$out")" \
	'["CPU 0","CPU 1","locks","locks","markers","markers","other","other","threads","traps","traps","worker1","worker2"]'
same "the marker is an instant event with its text" \
	"$(jq -c '[.traceEvents[] | select(.ph == "i" and .tid == 2) | .name]' "$out")" '["serial: hello, \"world\""]'

csv=$TMP/known.csv
"$KREWIND" export "$db" --format csv -o "$csv"
same "export csv -o exits 0" "$?" 0
same "CSV header" "$(head -n 1 "$csv" | tr -d '\r')" "id,icount,vcpu,kind,pc,symbol,thread,obj,lock,a,b,text"
same "CSV: the lock acquire row" "$(sed -n 5p "$csv" | tr -d '\r')" \
	"4,1250,0,lock_acq,0xffffffff80001010,KeAcquireSpinLockRaiseToDpc+0x10,worker1,0xffffffff80005000,ScenarioLockA,2,50,"
same "CSV: quotes doubled, fields with commas quoted" "$(sed -n 2p "$csv" | tr -d '\r')" \
	'1,1000,0,marker,0x0,0x0,worker1,,,3,0,"hello, ""world"""'
"$KREWIND" export "$db" --format csv -o "$csv" 2>"$TMP/err"
same "an existing -o file is refused (exit 2)" "$?" 2
"$KREWIND" export "$db" --format csv -o "$csv" --force --json >"$TMP/j"
same "--force overwrites; --json tells the count" "$(jq -c '[.format, .events]' "$TMP/j")" '["csv",17]'
"$KREWIND" export "$db" --format xml >/dev/null 2>"$TMP/err"
same "unknown format: exit 2" "$?" 2
same "unknown format: one line on stderr" "$(wc -l <"$TMP/err")" 1
"$KREWIND" export "$db" >/dev/null 2>"$TMP/err"
same "missing --format: exit 2" "$?" 2
"$KREWIND" export "$TMP/nope.db" --format csv >/dev/null 2>"$TMP/err"
same "missing recording: exit 2" "$?" 2
printf 'not a trace' >"$TMP/bad.db"
"$KREWIND" export "$TMP/bad.db" --format chrome-json >/dev/null 2>"$TMP/err"
same "corrupt trace: exit 2" "$?" 2

# A real recording.
if [ ! -e "$KERNEL" ] || ! command -v qemu-system-x86_64 >/dev/null; then
	skip "export of a real recording" "no kernel or QEMU"
	done_testing
fi
rec=$TMP/ebs
if ! "$KREWIND" record --scenario eoi-before-switch -o "$rec" >"$TMP/rec.log" 2>&1 && [ ! -e "$rec/trace.db" ]; then
	not_ok "record eoi-before-switch" "$(tail -3 "$TMP/rec.log")"
	done_testing
fi
real=$TMP/real.json
"$KREWIND" export "$rec" --format chrome-json -o "$real"
same "real: export exits 0" "$?" 0
check "real: valid JSON" valid_json "$real"
check "real: B/E and b/e balanced" balanced "$real"
same "real: IRQL counters equal the CR8 values of the trace" \
	"$(jq -c '[.traceEvents[] | select(.ph == "C") | .args.IRQL]' "$real")" \
	"$("$KREWIND" sql "$rec" "SELECT b FROM events WHERE kind = 'irql' ORDER BY id" --json | jq -c '[.rows[][0] | tonumber]')"
same "real: one X slice per switch plus the first thread" \
	"$(jq '[.traceEvents[] | select(.ph == "X")] | length' "$real")" \
	"$(("$("$KREWIND" sql "$rec" "SELECT count(*) FROM events WHERE kind = 'switch'" --json | jq -r '.rows[0][0]')" + 1))"
same "real: one trap slice per trap" "$(jq '[.traceEvents[] | select(.ph == "B")] | length' "$real")" \
	"$("$KREWIND" sql "$rec" "SELECT count(*) FROM events WHERE kind = 'trap'" --json | jq -r '.rows[0][0]')"
events=$("$KREWIND" sql "$rec" "SELECT count(*) FROM events" --json | jq -r '.rows[0][0]')
"$KREWIND" export "$rec" --format csv >"$TMP/real.csv"
if command -v python3 >/dev/null; then
	same "real: CSV records = events + 1 (parsed as CSV)" \
		"$(python3 -c 'import csv,sys; print(len(list(csv.reader(open(sys.argv[1], newline="")))))' "$TMP/real.csv")" \
		"$((events + 1))"
	same "real: every CSV record has 12 fields" \
		"$(python3 -c 'import csv,sys; print(sorted({len(r) for r in csv.reader(open(sys.argv[1], newline=""))}))' "$TMP/real.csv")" "[12]"
else
	same "real: CSV lines = events + 1" "$(wc -l <"$TMP/real.csv")" "$((events + 1))"
fi
done_testing
