#!/usr/bin/env bash
# krewind export --format perfetto|chrome-json|csv: on traces with known
# contents (mktrace: two CPUs, nested traps, a lock spin and hold, a lock
# still spun on at the end, a serial line with a comma and quotes; a thread
# preempted inside its interrupt frame and resumed, one never resumed) and on
# real recordings of the clean boot and of eoi-before-switch. Checks: valid
# JSON; B/E balanced and nested per track; slices named by what they are
# (lock names, vectors); unique thread names; per-CPU running-thread tracks
# and IRQL counters equal to the trace's CR8 values; frames that follow their
# thread across switches (nothing open on a clean boot but frames of threads
# switched out inside them); the perfetto protobuf decoded (protoc
# --decode_raw, and tests/e2e/export_perfetto.py) to the same timeline as
# chrome-json; one CSV record per event, quoting, hex addresses.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
MKTRACE=$BUILD/ui-cli/test/mktrace
if [ ! -x "$KREWIND" ] || [ ! -x "$MKTRACE" ]; then
	skip "export" "$KREWIND or $MKTRACE not built"
	done_testing
fi
if ! command -v jq >/dev/null || ! command -v python3 >/dev/null; then
	skip "export" "jq or python3 is not installed (scripts/install-deps.sh installs them)"
	done_testing
fi

same() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi
}

valid_json() { jq -e '.traceEvents | length > 0' "$1" >/dev/null; }
# balanced FILE: every B has its E on the same (pid, tid), properly nested
# (never below zero), with ts never going back on a track.
balanced() {
	jq -e '
		[.traceEvents[] | select(.ph == "B" or .ph == "E")] | group_by([.pid, .tid])
		| all(reduce .[] as $e ({d: 0, ok: true, ts: 0};
			.d += (if $e.ph == "B" then 1 else -1 end) | .ok = (.ok and .d >= 0 and $e.ts >= .ts) | .ts = $e.ts)
		      | .ok and .d == 0)
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
for ph in M B E C i; do
	n=$(jq "[.traceEvents[] | select(.ph == \"$ph\")] | length" "$out")
	if [ "$n" -gt 0 ]; then ok "chrome-json has '$ph' events ($n)"; else not_ok "chrome-json has '$ph' events"; fi
done
check "B/E balanced and nested per track" balanced "$out"
same "IRQL counters: the CR8 values in order, per CPU pid" \
	"$(jq -c '[.traceEvents[] | select(.ph == "C") | [.pid, .args.IRQL]]' "$out")" \
	'[[100,2],[100,13],[100,2],[100,0],[101,2]]'
same "timestamps: icount / 1000 (1 instruction = 1 ns)" \
	"$(jq -c '[.traceEvents[] | select(.ph == "C" and .pid == 100) | .ts]' "$out")" '[1.1,1.31,1.35,1.51]'
same "one running-thread track per CPU: slices named by the thread, from switch to switch" \
	"$(jq -c '[.traceEvents[] | select(.pid >= 100 and (.ph == "B" or .ph == "E")) | [.pid, .ph, .name, .ts]]' "$out")" \
	'[[100,"B","worker1 @80010000",1],[100,"E",null,1.5],[100,"B","worker2 @80011000",1.5],[101,"B","worker2 @80011000",0.9],[100,"E",null,1.51],[101,"E",null,0.96]]'
same "CPU tracks are named" \
	"$(jq -c '[.traceEvents[] | select(.ph == "M" and .pid >= 100) | .args.name]' "$out")" \
	'["CPU 0","running","markers","CPU 1","running"]'
same "nested traps on worker1's track, named by vector, with the spin of ScenarioLockA before them" \
	"$(jq -c '[.traceEvents[] | select(.pid == 1 and .tid == 1 and (.ph == "B" or .ph == "E")) | .ph + (.name // "")]' "$out")" \
	'["Bspin ScenarioLockA","E","Birq 0xd1","Bexception 0xe #PF","E","E"]'
same "the EOI is an instant inside its frame on the thread's track" \
	"$(jq -c '[.traceEvents[] | select(.ph == "i" and .name == "eoi") | [.pid, .tid, .ts]]' "$out")" '[[1,1,1.34]]'
same "worker2's spin and its trap never left: closed at the end, marked open" \
	"$(jq -c '[.traceEvents[] | select(.pid == 1 and .tid == 2 and (.ph == "B" or .ph == "E")) | [.ph, .name, .args.open]]' "$out")" \
	'[["B","spin ScenarioLockB",null],["B","irq 0xd1",null],["E",null,true],["E",null,true]]'
same "lock holds on the lock's own track, named by the lock and its holder" \
	"$(jq -c '[.traceEvents[] | select(.pid == 2 and (.ph == "B" or .ph == "E")) | [.ph, .name, .ts]]' "$out")" \
	'[["B","hold ScenarioLockA (worker1 @80010000)",1.25],["E",null,1.4]]'
same "metadata names the processes and tracks, every thread uniquely" \
	"$(jq -c '[.traceEvents[] | select(.ph == "M" and .pid < 100) | .args.name]' "$out")" \
	'["threads","worker1 @80010000","locks","ScenarioLockA","worker2 @80011000"]'
same "the marker is an instant on its CPU's markers track" \
	"$(jq -c '[.traceEvents[] | select(.ph == "i" and .tid == 2000001) | .name]' "$out")" '["serial: hello, \"world\""]'

# ---------------------------------------------------------------- preemption inside an interrupt
# worker1 takes 0xd1 and is switched out inside it (preempted on the way out of
# the interrupt); worker2 takes and leaves its own 0xd1; worker1 comes back and
# leaves its frame. Then worker1 is preempted inside a second 0xd1 and never
# runs again. Two threads have the same name and the same low 32 address bits.
# roamer takes 0xd1 on CPU 1 at icount 1000 and leaves it on CPU 0, whose
# instruction count is behind (610).
P=0xffff888000010000 Q=0xffff999000010000 R=0xffff888000020000
pdb=$TMP/preempt.db
"$MKTRACE" "$pdb" <<SCRIPT || { not_ok "mktrace"; done_testing; }
thread $P worker
thread $Q worker
trap icount=100 thread=$P a=0xd1
eoi icount=110 thread=$P a=1
switch icount=120 thread=$P a=$P b=$Q
trap icount=200 thread=$Q a=0xd1
iret icount=210 thread=$Q a=0xd1
switch icount=300 thread=$Q a=$Q b=$P
iret icount=310 thread=$P a=0xd1
trap icount=400 thread=$P a=0xd1
switch icount=410 thread=$P a=$P b=$Q
irql icount=500 thread=$Q a=0 b=0
thread $R roamer
trap icount=1000 thread=$R cpu=1 a=0xd1
switch icount=1010 thread=$R cpu=1 a=$R b=0
switch icount=600 thread=$Q a=$Q b=$R
iret icount=610 thread=$R a=0xd1
SCRIPT
"$KREWIND" export "$pdb" --format chrome-json >"$TMP/preempt.json"
check "preempt: B/E balanced per track" balanced "$TMP/preempt.json"
same "same names and low address bits: the full address tells the threads apart" \
	"$(jq -c '[.traceEvents[] | select(.ph == "M" and .pid == 1 and .tid > 0) | .args.name]' "$TMP/preempt.json")" \
	'["worker @ffff888000010000","worker @ffff999000010000","roamer @20000"]'
same "frames follow their thread: worker1's 0xd1 ends at its own iretq after the switch back" \
	"$(jq -c '[.traceEvents[] | select(.pid == 1 and .tid == 1 and (.ph == "B" or .ph == "E")) | [.ph, .ts, .args.iret_event, .args.open, .args.suspended]]' "$TMP/preempt.json")" \
	'[["B",0.1,null,null,null],["E",0.31,7,null,null],["B",0.4,null,null,null],["E",1.01,null,true,true]]'
same "a frame that moved to a CPU whose icount is behind: its end is placed at its beginning, never before" \
	"$(jq -c '[.traceEvents[] | select(.pid == 1 and .tid == 3 and (.ph == "B" or .ph == "E")) | [.ph, .ts, .args.iret_event]]' "$TMP/preempt.json")" \
	'[["B",1,null],["E",1,14]]'
same "... and worker2's own 0xd1 is not nested in it" \
	"$(jq -c '[.traceEvents[] | select(.pid == 1 and .tid == 2 and (.ph == "B" or .ph == "E")) | [.ph, .ts]]' "$TMP/preempt.json")" \
	'[["B",0.2],["E",0.21]]'

# ---------------------------------------------------------------- perfetto protobuf
pf=$TMP/known.pftrace
"$KREWIND" export "$db" --format perfetto -o "$pf" --json >"$TMP/j"
same "export perfetto -o exits 0, --json tells the size" "$?:$(jq -c '[.format, .events, .bytes]' "$TMP/j")" \
	"0:[\"perfetto\",17,$(stat -c %s "$pf")]"
"$KREWIND" export "$db" --format perfetto </dev/null >/dev/null 2>"$TMP/err"
same "perfetto to stdout that is not a terminal: allowed" "$?" 0
script -qec "$KREWIND export $db --format perfetto" /dev/null >"$TMP/tty" </dev/null
same "perfetto to a terminal: refused (exit 2, one line), nothing binary written" \
	"$?:$(grep -c 'krewind: error: export: the perfetto format is binary' "$TMP/tty"):$(tr -d '\r' <"$TMP/tty" | wc -l)" "2:1:1"
if command -v protoc >/dev/null; then
	protoc --decode_raw <"$pf" >"$TMP/raw" 2>"$TMP/err"
	same "protoc --decode_raw reads it" "$?" 0
	same "protoc: one Trace.packet (field 1) per top-level message, as many as our decoder counts" \
		"$(grep -c '^1 {' "$TMP/raw")" "$(python3 "$(dirname "$0")/export_perfetto.py" "$pf" | jq '.packets')"
	same "protoc: nothing at the top level but Trace.packet" "$(grep -vcE '^(1 \{| |\})' "$TMP/raw")" 0
	protoc --proto_path="$(dirname "$0")" --decode=perfetto.protos.Trace "$(dirname "$0")/export_perfetto.proto" \
		<"$pf" >"$TMP/typed" 2>"$TMP/err"
	same "protoc --decode=perfetto.protos.Trace (export_perfetto.proto: Perfetto's field numbers and types) reads it" \
		"$?:$(wc -c <"$TMP/err")" "0:0"
	same "... every field is one of Perfetto's, with its wire type (no unknown fields)" \
		"$(grep -cE '^ *[0-9]+( \{|:)' "$TMP/typed")" 0
	same "... the tracks: processes threads, locks, CPU 0, CPU 1; 2 threads, 2 running, 1 markers, 1 lock; 2 IRQL counters" \
		"$(grep -c '^    process {' "$TMP/typed"):$(grep -c '^    thread {' "$TMP/typed"):$(grep -c '^    counter {' "$TMP/typed")" \
		"4:6:2"
	same "... slice begins and ends pair up" \
		"$(grep -c 'type: TYPE_SLICE_BEGIN' "$TMP/typed")" "$(grep -c 'type: TYPE_SLICE_END' "$TMP/typed")"
else
	skip "protoc --decode_raw" "protoc is not installed (scripts/install-deps.sh installs protobuf-compiler)"
fi
# pfjson FILE: the perfetto timeline as [[ph, track name, ts ns, name]] in file order
pf_decode() { python3 "$(dirname "$0")/export_perfetto.py" "$1"; }
pf_decode "$pf" >"$TMP/pf.json"
same "perfetto: decoded without an error (interned names before use, tracks described once, before use)" \
	"$(jq -c '.errors' "$TMP/pf.json")" '[]'
same "perfetto: the same slices, instants and counters as chrome-json, in order, on the same tracks, ts in ns" \
	"$(jq -c '.tracks as $t | [.events[] | [.[0], ($t[.[1] | tostring].name), .[2], .[3]]]' "$TMP/pf.json")" \
	"$(jq -c '([.traceEvents[] | select(.ph == "M" and .name == "thread_name") | {key: "\(.pid):\(.tid)", value: .args.name}] | from_entries) as $n
		| [.traceEvents[] | select(.ph != "M") | [.ph, (if .ph == "C" then .name else $n["\(.pid):\(.tid)"] end), (.ts * 1000 | round), .name | if . == null then . else . end]
		| if .[0] == "C" then .[3] = null else . end]' "$out")"
same "perfetto: B/E balanced per track" \
	"$(jq '[.events[] | select(.[0] == "B" or .[0] == "E")] | group_by(.[1]) | all(reduce .[] as $e ({d: 0, ok: true}; .d += (if $e[0] == "B" then 1 else -1 end) | .ok = (.ok and .d >= 0)) | .ok and .d == 0)' "$TMP/pf.json")" true
same "perfetto: thread tracks in process 1 with unique names; IRQL counter tracks under each CPU" \
	"$(jq -c '[.tracks[] | select(.kind == "thread" and .pid == 1) | .name] | [length, (unique | length)]' "$TMP/pf.json"):$(jq -c '[.tracks as $t | .tracks[] | select(.kind == "counter") | [.name, $t[.parent | tostring].name]]' "$TMP/pf.json")" \
	'[2,2]:[["IRQL","CPU 0"],["IRQL","CPU 1"]]'
same "perfetto: IRQL counter values" "$(jq -c '[.events[] | select(.[0] == "C") | .[4].value]' "$TMP/pf.json")" '[2,13,2,0,2]'
same "perfetto: args as debug annotations (the trap's event id)" \
	"$(jq -c '[.events[] | select(.[3] == "irq 0xd1") | .[4].event]' "$TMP/pf.json")" '[5,17]'
"$KREWIND" export "$pdb" --format perfetto -o "$TMP/preempt.pftrace"
same "perfetto: the preempted frame carries open/suspended args" \
	"$(pf_decode "$TMP/preempt.pftrace" | jq -c '.tracks as $t | [.events[] | select(.[0] == "E" and .[4].open and $t[.[1] | tostring].pid == 1) | .[4]]')" '[{"open":true,"suspended":true}]'

# Progress: a line on a terminal (script(1) gives the command one), none with
# -q, none when stderr is a file.
same "no progress when stderr is not a terminal" "$(wc -c <"$TMP/err")" 0
for cmd in "export $db --format chrome-json -o $TMP/tty.json --force" "report $db -o $TMP/tty.html --force"; do
	script -qec "$KREWIND $cmd" /dev/null >"$TMP/tty" </dev/null
	name=${cmd%% *}
	if grep -q "$name: " "$TMP/tty"; then ok "$name shows progress on a terminal"; else not_ok "$name shows progress on a terminal" "$(head -c 300 "$TMP/tty")"; fi
	script -qec "$KREWIND $cmd -q" /dev/null >"$TMP/tty" </dev/null
	if grep -q "$name: " "$TMP/tty"; then not_ok "$name -q: no progress" "$(head -c 300 "$TMP/tty")"; else ok "$name -q: no progress"; fi
done

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
"$KREWIND" export "$pdb" --format csv >"$TMP/preempt.csv"
same "CSV: a switch's threads as hex addresses" "$(sed -n 4p "$TMP/preempt.csv" | tr -d '\r' | cut -d, -f4,10,11)" \
	"switch,0xffff888000010000,0xffff999000010000"
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

# Real recordings: eoi-before-switch and the clean boot.
if [ ! -e "$KERNEL" ] || ! command -v qemu-system-x86_64 >/dev/null; then
	skip "export of a real recording" "no kernel or QEMU"
	done_testing
fi
for scen in eoi-before-switch clean; do
	rec=$TMP/$scen
	if ! "$KREWIND" record --scenario $scen -o "$rec" >"$TMP/rec.log" 2>&1 && [ ! -e "$rec/trace.db" ]; then
		not_ok "record $scen" "$(tail -3 "$TMP/rec.log")"
		done_testing
	fi
	real=$TMP/$scen.json
	"$KREWIND" export "$rec" --format chrome-json -o "$real"
	same "$scen: export exits 0" "$?" 0
	check "$scen: valid JSON" valid_json "$real"
	check "$scen: B/E balanced per track" balanced "$real"
	same "$scen: IRQL counters equal the CR8 values of the trace" \
		"$(jq -c '[.traceEvents[] | select(.ph == "C" and .name == "IRQL") | .args.IRQL]' "$real")" \
		"$("$KREWIND" sql "$rec" "SELECT b FROM events WHERE kind = 'irql' ORDER BY id" --json | jq -c '[.rows[][0] | tonumber]')"
	same "$scen: one running slice per switch plus the first thread" \
		"$(jq '[.traceEvents[] | select(.ph == "B" and .pid == 100 and .tid == 2000000)] | length' "$real")" \
		"$(("$("$KREWIND" sql "$rec" "SELECT count(*) FROM events WHERE kind = 'switch'" --json | jq -r '.rows[0][0]')" + 1))"
	same "$scen: one trap slice per trap, named by its vector" \
		"$(jq '[.traceEvents[] | select(.ph == "B" and .pid == 1 and (.name | test("^(irq|exception|int) 0x")))] | length' "$real")" \
		"$("$KREWIND" sql "$rec" "SELECT count(*) FROM events WHERE kind = 'trap'" --json | jq -r '.rows[0][0]')"
	same "$scen: thread names are unique" \
		"$(jq '[.traceEvents[] | select(.ph == "M" and .pid == 1 and .tid > 0) | .args.name] | (length == (unique | length))' "$real")" true
	same "$scen: no trap frame is left open on a running thread" \
		"$(jq -c '[.traceEvents[] | select(.ph == "E" and .pid == 1 and .args.open == true and .args.suspended != true)] | length' "$real")" \
		"$([ $scen = clean ] && echo 0 || echo 1)"
	"$KREWIND" export "$rec" --format perfetto -o "$TMP/$scen.pftrace"
	same "$scen: perfetto decodes to the same number of events as chrome-json has" \
		"$(pf_decode "$TMP/$scen.pftrace" | jq -c '[.errors, (.events | length)]')" \
		"$(jq -c '[[], ([.traceEvents[] | select(.ph != "M")] | length)]' "$real")"
	pf_size=$(stat -c %s "$TMP/$scen.pftrace") json_size=$(stat -c %s "$real")
	if [ $scen = clean ]; then # a trace of thousands of events: the descriptors no longer count
		if [ $((pf_size * 3)) -lt "$json_size" ]; then ok "$scen: perfetto is over 3x smaller than chrome-json ($pf_size vs $json_size bytes)"
		else not_ok "$scen: perfetto is over 3x smaller than chrome-json" "$pf_size vs $json_size bytes"; fi
	fi
done
# IF counters (schema 2): per CPU, from the first event that carries IF, one
# value per change of RFLAGS.IF, in both formats.
db=$TMP/if.db
"$MKTRACE" "$db" <<SCRIPT || not_ok "mktrace (IF)"
sym 0xffffffff80001000 0x80 _raw_spin_lock_irqsave
thread $T worker1
thread $U worker2
lock $L lockA
marker icount=100 thread=$T text=start
lock_try icount=200 pc=0xffffffff80001000 thread=$T obj=$L if=1
lock_acq icount=210 pc=0xffffffff80001010 thread=$T obj=$L if=0
lock_rel icount=300 pc=0xffffffff80001020 thread=$T obj=$L if=0
marker icount=310 thread=$T if=1 text=after
marker icount=320 thread=$T if=1 text=again
lock_try icount=150 pc=0xffffffff80001000 thread=$U cpu=1 obj=$M if=0
SCRIPT
"$KREWIND" export "$db" --format chrome-json >"$TMP/if.json" 2>"$TMP/err"
same "IF counters: per CPU, from the first event with IF, one value per change" \
	"$(jq -c '[.traceEvents[] | select(.ph == "C" and .name == "IF") | [.pid, .args.IF, .ts]]' "$TMP/if.json")" \
	'[[100,1,0.2],[100,0,0.21],[100,1,0.31],[101,0,0.15]]'
"$KREWIND" export "$db" --format perfetto -o "$TMP/if.pftrace" 2>"$TMP/err"
python3 tests/e2e/export_perfetto.py "$TMP/if.pftrace" >"$TMP/if.pf.json" 2>"$TMP/err"
same "perfetto: the same IF counter values" \
	"$(jq -c '[.tracks as $t | .events[] | select(.[0] == "C" and $t[.[1] | tostring].name == "IF") | .[4].value]' "$TMP/if.pf.json")" \
	'[1,0,1,0]'

rec=$TMP/eoi-before-switch real=$TMP/eoi-before-switch.json
trap_ev=$("$KREWIND" check "$rec" --json | jq '[.findings[] | select(.kind == "eoi-before-switch") | .steps[] | select(.role == "trap") | .event][0]')
same "eoi-before-switch: the culprit's frame never returns: open at the end, its thread switched out inside it" \
	"$(jq -c --argjson ev "$trap_ev" '[.traceEvents[] | select(.pid == 1 and .ph == "B" and .args.event == $ev) | .tid] as $tid
		| [.traceEvents[] | select(.pid == 1 and .tid == $tid[0] and .ph == "E")] | last | .args' "$real")" \
	'{"open":true,"suspended":true}'
same "clean: frames left open are only those of threads switched out inside them (not run again)" \
	"$(jq -c '[.traceEvents[] | select(.ph == "E" and .pid == 1 and .args.open == true) | .args.suspended] | unique' "$TMP/clean.json")" \
	'[true]'
rec=$TMP/clean
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
same "real: every switch row has hex thread addresses" \
	"$(awk -F, '$4 == "switch" && ($10 !~ /^0x/ || $11 !~ /^0x/)' "$TMP/real.csv" | wc -l)" 0
"$KREWIND" export "$TMP/eoi-before-switch" --format csv >"$TMP/ebs.csv"
same "real: the bugcheck's code and first parameter (a thread) in hex" \
	"$(awk -F, '$4 == "bugcheck" { print $10 "," $11 }' "$TMP/ebs.csv")" \
	"0xe2,$("$KREWIND" sql "$TMP/eoi-before-switch" "SELECT printf('0x%x', b) FROM events WHERE kind = 'bugcheck'" --json | jq -r '.rows[0][0]')"
done_testing
