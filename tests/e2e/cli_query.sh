#!/usr/bin/env bash
# krewind ls / info / events / sql / check on traces with known contents
# (written by ui-cli/test/mktrace through db/'s writer), then on a real
# recording of the clean scenario when `krewind record` and the kernel exist.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
MKTRACE=$BUILD/ui-cli/test/mktrace
if [ ! -x "$KREWIND" ] || [ ! -x "$MKTRACE" ]; then
	skip "cli queries" "$KREWIND or $MKTRACE not built"
	done_testing
fi

# expect NAME PATTERN FILE: FILE has a line matching the extended regex PATTERN.
expect() {
	if grep -qE -- "$2" "$3"; then ok "$1"; else not_ok "$1" "no line matches /$2/ in: $(head -c 600 "$3")"; fi
}
# same NAME GOT WANT
same() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi
}

# A lock-order inversion: worker1 takes A then B, worker2 takes B then A.
# Event ids are 1.. in script order.
symbols='
sym 0xffffffff80001000 0x80 KeAcquireSpinLockRaiseToDpc
sym 0xffffffff80001080 0x40 KeReleaseSpinLock
sym 0xffffffff80001100 0x40 KiSwapContext
sym 0xffffffff80001200 0x100 KiTimerInterrupt
sym 0xffffffff80001300 0x40 KeRaiseIrql
sym 0xffffffff80001340 0x40 KeLowerIrql
sym 0xffffffff80005000 0x8 ScenarioLockA
sym 0xffffffff80005008 0x8 ScenarioLockB
thread 0xffffffff80010000 idle
thread 0xffffffff80011000 worker1
thread 0xffffffff80012000 worker2
lock 0xffffffff80005000 ScenarioLockA
lock 0xffffffff80005008 ScenarioLockB
'
I=0xffffffff80010000 W1=0xffffffff80011000 W2=0xffffffff80012000
A=0xffffffff80005000 B=0xffffffff80005008
CAFE=$'caf\xc3\xa9'
mkdir -p "$TMP/traces/lock-order-1" "$TMP/traces/clean-1"
"$MKTRACE" "$TMP/traces/lock-order-1/trace.db" <<SCRIPT || { not_ok "mktrace lock-order"; done_testing; }
meta outcome pass
meta started_at 2026-01-02T03:04:05Z
$symbols
marker icount=10 pc=0xffffffff80001100 thread=$I a=1 text=lock-order
switch icount=100 pc=0xffffffff80001110 thread=$I a=$I b=$W1
lock_try icount=200 pc=0xffffffff80001004 thread=$W1 obj=$A a=0
lock_acq icount=237 pc=0xffffffff80001010 thread=$W1 obj=$A a=2 b=37
lock_try icount=300 pc=0xffffffff80001004 thread=$W1 obj=$B a=2
lock_acq icount=310 pc=0xffffffff80001010 thread=$W1 obj=$B a=2
lock_rel icount=400 pc=0xffffffff80001088 thread=$W1 obj=$B a=2
lock_rel icount=410 pc=0xffffffff80001088 thread=$W1 obj=$A a=2
trap icount=500 pc=0xffffffff80001200 thread=$W1 a=0xd1
eoi icount=520 pc=0xffffffff80001220 thread=$W1 a=1
iret icount=530 pc=0xffffffff80001230 thread=$W1 a=0xd1
switch icount=600 pc=0xffffffff80001110 thread=$W1 a=$W1 b=$W2
lock_try icount=700 pc=0xffffffff80001004 thread=$W2 obj=$B a=0
lock_acq icount=705 pc=0xffffffff80001010 thread=$W2 obj=$B a=2
lock_try icount=710 pc=0xffffffff80001004 thread=$W2 obj=$A a=2
lock_acq icount=720 pc=0xffffffff80001010 thread=$W2 obj=$A a=2
lock_rel icount=800 pc=0xffffffff80001088 thread=$W2 obj=$A a=2
lock_rel icount=810 pc=0xffffffff80001088 thread=$W2 obj=$B a=2
marker icount=900 pc=0xffffffff80001100 thread=$W2 a=3 text=say "hi" \\ $CAFE
SCRIPT
REC=$TMP/traces/lock-order-1/trace.db

# The same run without the inversion (and IRQL raised and lowered explicitly).
"$MKTRACE" "$TMP/traces/clean-1/trace.db" <<SCRIPT || { not_ok "mktrace clean"; done_testing; }
meta outcome pass
meta started_at 2026-01-02T03:04:06Z
$symbols
switch icount=100 pc=0xffffffff80001110 thread=$I a=$I b=$W1
irql icount=150 pc=0xffffffff80001308 thread=$W1 a=0 b=2
lock_try icount=200 pc=0xffffffff80001004 thread=$W1 obj=$A a=2
lock_acq icount=237 pc=0xffffffff80001010 thread=$W1 obj=$A a=2 b=37
lock_rel icount=410 pc=0xffffffff80001088 thread=$W1 obj=$A a=2
irql icount=420 pc=0xffffffff80001348 thread=$W1 a=2 b=0
trap icount=500 pc=0xffffffff80001200 thread=$W1 a=0xd1
eoi icount=520 pc=0xffffffff80001220 thread=$W1 a=1
iret icount=530 pc=0xffffffff80001230 thread=$W1 a=0xd1
SCRIPT
CLEAN=$TMP/traces/clean-1/trace.db

# ---- ls
KREWIND_TRACES=$TMP/traces "$KREWIND" ls >"$TMP/ls" 2>"$TMP/err"
same "ls: exit 0" "$?" 0
same "ls: header then two recordings, oldest first" "$(awk '{print $1}' "$TMP/ls" | tr '\n' ' ')" "NAME lock-order-1 clean-1 "
expect "ls: outcome, events and date" '^lock-order-1 +- +pass +19 ' "$TMP/ls"
"$KREWIND" ls --dir "$TMP/traces" --json >"$TMP/ls.json"
same "ls --json: names" "$(jq -r '[.recordings[].name] | join(",")' "$TMP/ls.json")" "lock-order-1,clean-1"
same "ls --json: events" "$(jq '.recordings[0].events' "$TMP/ls.json")" 19
mkdir -p "$TMP/empty"
same "ls: an empty directory prints nothing" "$("$KREWIND" ls --dir "$TMP/empty")" ""

# ---- info
"$KREWIND" info "$REC" >"$TMP/info"
same "info: exit 0" "$?" 0
expect "info: outcome" '^outcome +pass' "$TMP/info"
expect "info: count of lock_acq" '^  lock_acq +4$' "$TMP/info"
expect "info: total" '^  total +19$' "$TMP/info"
expect "info: thread worker1" '^  worker1 +0xffffffff80011000 ' "$TMP/info"
expect "info: lock A with its class and 2 acquisitions" '^  ScenarioLockA +ScenarioLockA +spinlock +0xffffffff80005000 +2$' "$TMP/info"
"$KREWIND" info "$REC" --json >"$TMP/info.json"
same "info --json: counts" "$(jq -c '[.counts.total, .counts.lock_acq, .counts.switch, .counts.eoi]' "$TMP/info.json")" "[19,4,2,1]"
same "info --json: lock acquisitions" "$(jq -c '[.locks[] | select(.name=="ScenarioLockB") | .acquisitions]' "$TMP/info.json")" "[2]"
same "info --json: metadata" "$(jq -r '.meta.started_at' "$TMP/info.json")" "2026-01-02T03:04:05Z"

# ---- events
"$KREWIND" events "$REC" >"$TMP/ev"
same "events: exit 0" "$?" 0
same "events: header + 19 lines" "$(wc -l <"$TMP/ev")" 20
expect "events: acquire, symbolized, thread named" '^ +4 +237 +0 worker1 +lock_acq +KeAcquireSpinLockRaiseToDpc\+0x10 +acquire ScenarioLockA \(irql 2, spun 37\)$' "$TMP/ev"
expect "events: switch" '^ +12 +600 +0 worker1 +switch +KiSwapContext\+0x10 +switch worker1 -> worker2$' "$TMP/ev"
expect "events: trap" ' trap +KiTimerInterrupt +trap 0xd1$' "$TMP/ev"
expect "events: eoi" ' eoi +KiTimerInterrupt\+0x20 +eoi \(x2apic\)$' "$TMP/ev"
expect "events: scenario marker" ' marker .* scenario lock-order$' "$TMP/ev"
"$KREWIND" events "$REC" --kind lock_acq,lock_rel --thread worker2 >"$TMP/ev"
same "events --kind --thread: ids" "$(awk 'NR > 1 {print $1}' "$TMP/ev" | tr '\n' ' ')" "14 16 17 18 "
"$KREWIND" events "$REC" --thread 0xffffffff80012000 --kind lock_acq >"$TMP/ev"
same "events --thread ADDRESS" "$(awk 'NR > 1 {print $1}' "$TMP/ev" | tr '\n' ' ')" "14 16 "
"$KREWIND" events "$REC" --lock ScenarioLockB --kind lock_acq >"$TMP/ev"
same "events --lock NAME" "$(awk 'NR > 1 {print $1}' "$TMP/ev" | tr '\n' ' ')" "6 14 "
"$KREWIND" events "$REC" --from 5 --to 8 >"$TMP/ev"
same "events --from ID --to ID" "$(awk 'NR > 1 {print $1}' "$TMP/ev" | tr '\n' ' ')" "5 6 7 8 "
"$KREWIND" events "$REC" --from icount:500 --to icount:600 >"$TMP/ev"
same "events --from/--to icount" "$(awk 'NR > 1 {print $1}' "$TMP/ev" | tr '\n' ' ')" "9 10 11 12 "
"$KREWIND" events "$REC" --limit 3 >"$TMP/ev"
same "events --limit" "$(awk 'NR > 1 {print $1}' "$TMP/ev" | tr '\n' ' ')" "1 2 3 "
"$KREWIND" events "$REC" --around 10 --context 2 >"$TMP/ev"
same "events --around: ids" "$(awk 'NR > 1 {print ($1 == ">" ? $2 : $1)}' "$TMP/ev" | tr '\n' ' ')" "8 9 10 11 12 "
expect "events --around: the event is marked" '^> +10 ' "$TMP/ev"
"$KREWIND" events "$REC" --around 2 --context 3 --kind lock_acq >"$TMP/ev"
same "events --around with a kind filter" "$(awk 'NR > 1 {print ($1 == ">" ? $2 : $1)}' "$TMP/ev" | tr '\n' ' ')" "4 6 14 "
"$KREWIND" events "$REC" --json --kind lock_acq,marker >"$TMP/ev.json"
same "events --json: ids" "$(jq -c '[.[].id]' "$TMP/ev.json")" "[1,4,6,14,16,19]"
same "events --json: fields" "$(jq -c '.[1] | [.icount, .cpu, .thread, .thread_name, .kind, .pc, .symbol, .obj_name, .a, .b]' "$TMP/ev.json")" \
	'[237,0,"0xffffffff80011000","worker1","lock_acq","0xffffffff80001010","KeAcquireSpinLockRaiseToDpc+0x10","ScenarioLockA",2,37]'
same "events --json: text with quotes, backslash, UTF-8 survives" "$(jq -r '.[5].text' "$TMP/ev.json")" 'say "hi" \ café'
same "events: a filter that matches nothing prints the header only" "$("$KREWIND" events "$REC" --kind bugcheck | wc -l)" 1

# ---- sql
"$KREWIND" sql "$REC" "SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY n DESC, kind" >"$TMP/sql"
same "sql: exit 0" "$?" 0
same "sql: header" "$(head -n1 "$TMP/sql" | tr -s ' ')" "kind n"
expect "sql: rows aligned" '^lock_acq +4$' "$TMP/sql"
same "sql: header, rule and 8 rows" "$(wc -l <"$TMP/sql")" 10
"$KREWIND" sql "$REC" "SELECT id, kind, text FROM events WHERE kind = 'marker' ORDER BY id" --json >"$TMP/sql.json"
same "sql --json" "$(jq -c '[.columns, .rows[0]]' "$TMP/sql.json")" '[["id","kind","text"],["1","marker","lock-order"]]'
same "sql --json: no rows" "$("$KREWIND" sql "$REC" "SELECT 1 WHERE 0" --json | jq -c .)" '{"columns":[],"rows":[]}'
echo "SELECT count(*) FROM events WHERE kind = 'eoi'" | "$KREWIND" sql "$REC" - >"$TMP/sql"
same "sql -: the statement from stdin" "$(tail -n1 "$TMP/sql")" 1

# ---- check
"$KREWIND" check "$REC" >"$TMP/check"
same "check: findings exit 1" "$?" 1
expect "check: a lock-order finding" 'lock-order' "$TMP/check"
expect "check: both classes named" 'ScenarioLockA.*ScenarioLockB|ScenarioLockB.*ScenarioLockA' "$TMP/check"
expect "check: the replay command" "krewind replay $REC --to [0-9]+" "$TMP/check"
"$KREWIND" check "$REC" --json >"$TMP/check.json"
same "check --json: exit 1" "$?" 1
same "check --json: the finding kinds" "$(jq -r '[.findings[].kind] | index("lock-order") != null' "$TMP/check.json")" true
"$KREWIND" check "$CLEAN" >"$TMP/check"
same "check clean: exit 0" "$?" 0
same "check clean: one summary line" "$(cat "$TMP/check")" "no findings (9 events checked, outcome pass)"
same "check clean --json: no findings" "$("$KREWIND" check "$CLEAN" --json | jq '.findings | length')" 0

# ---- a real recording (needs krewind record and the kernel)
if ! "$KREWIND" help record >/dev/null 2>&1; then
	skip "real recording" "krewind record is not built yet"
elif [ ! -e "$KERNEL" ]; then
	skip "real recording" "no kernel at $KERNEL"
else
	if "$KREWIND" record --scenario clean -o "$TMP/rec" >"$TMP/record.out" 2>&1; then
		ok "record clean"
		"$KREWIND" ls --dir "$TMP" >"$TMP/ls"
		expect "ls shows the recording with its scenario and outcome" '^rec +clean +pass ' "$TMP/ls"
		"$KREWIND" info "$TMP/rec" >"$TMP/info"
		expect "info: scenario from the manifest" '^scenario +clean$' "$TMP/info"
		expect "info: the trace has switches" '^  switch +[1-9]' "$TMP/info"
		"$KREWIND" events "$TMP/rec" --kind switch --limit 1 >"$TMP/ev"
		expect "events: a symbolized switch between named threads" 'switch +[A-Za-z_]+(\+0x[0-9a-f]+)? +switch [^ ]+ -> [^ ]+( \[[a-z]+, IF (on|off)[^]]*\])?$' "$TMP/ev"
		"$KREWIND" check "$TMP/rec" >"$TMP/check"
		rc=$?
		if [ $rc -eq 0 ]; then
			ok "check clean recording: exit 0"
		else
			not_ok "check clean recording: exit 0" "exit $rc: $(grep -E '^[0-9]+\. ' "$TMP/check" | head -n 3)"
		fi
	else
		not_ok "record clean" "$(tail -n 5 "$TMP/record.out")"
	fi
	# What make demo shows: the eoi-before-switch diagnosis points at the switch.
	if "$KREWIND" record --scenario eoi-before-switch -o "$TMP/ebs" >"$TMP/record.out" 2>&1; then
		ok "record eoi-before-switch"
		"$KREWIND" check "$TMP/ebs" --json >"$TMP/check.json"
		same "check eoi-before-switch: exit 1" "$?" 1
		event=$(jq '[.findings[] | select(.kind == "eoi-before-switch")][0].event' "$TMP/check.json")
		same "check eoi-before-switch: the culprit is a switch" \
			"$("$KREWIND" events "$TMP/ebs" --from "$event" --limit 1 --json | jq -r '.[0].kind')" switch
		"$KREWIND" check "$TMP/ebs" >"$TMP/check"
		expect "check eoi-before-switch: prints the replay command" "krewind replay $TMP/ebs --to $event\$" "$TMP/check"
	else
		not_ok "record eoi-before-switch" "$(tail -n 5 "$TMP/record.out")"
	fi
fi

done_testing
