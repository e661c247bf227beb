#!/usr/bin/env bash
# krewind report: the HTML page, loaded in a real headless Chromium.
# The page writes its own self-check into the DOM (#selfcheck: errors caught
# by window.onerror / console.error, the timeline rows, the zoom self-test;
# #view: the visible icount range), and Chromium's console log goes to
# stderr; --dump-dom prints the DOM after the scripts ran. On a real
# recording of eoi-before-switch, one of the clean boot, a trace with known
# locks and hostile text (mktrace), one with a thread preempted inside its
# interrupt frame (mktrace), and a synthetic trace larger than the detail
# budget. The #selfcheck "frames:" line lists the trap frames drawn: how
# many stretches, the deepest nesting, the frames drawn as never returned
# (hatched) and those left by a thread switched out inside them.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
MKTRACE=$BUILD/ui-cli/test/mktrace
GEN=$BUILD/bench/check_gen
if [ ! -x "$KREWIND" ] || [ ! -x "$MKTRACE" ]; then
	skip "report" "$KREWIND or $MKTRACE not built"
	done_testing
fi
CHROMIUM=$(command -v chromium || command -v chromium-browser)
if [ -z "$CHROMIUM" ]; then
	skip "report in Chromium" "chromium is not installed and could not be (scripts/install-deps.sh installs it)"
	done_testing
fi

same() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi
}
expect() { # NAME PATTERN FILE
	if grep -qE -- "$2" "$3"; then ok "$1"; else not_ok "$1" "no match for /$2/ in $(head -c 400 "$3")"; fi
}
refuse() { # NAME PATTERN FILE
	if grep -qE -- "$2" "$3"; then not_ok "$1" "$(grep -oE -m3 -- ".{0,60}($2).{0,60}" "$3" | head -n 3)"; else ok "$1"; fi
}

# dom URL OUT: loads URL in headless Chromium, DOM after the scripts ran in
# OUT, Chromium's log (console messages included) in OUT.err.
dom() {
	local profile
	profile=$(mktemp -d "$TMP/chromium.XXXXXX")
	timeout -s KILL 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
		--user-data-dir="$profile" \
		--enable-logging=stderr --v=0 --window-size=1400,900 --virtual-time-budget=5000 --dump-dom "$1" \
		>"$2" 2>"$2.err" </dev/null
}
# loads NAME FILE: the page loaded with no error of its own nor on the console.
loads() {
	same "$1: the page ran, no error caught on it" "$(attr "$2" selfcheck errors)" 0
	refuse "$1: no console errors" 'CONSOLE.*(Uncaught|Error|error)' "$2.err"
}
attr() { # FILE ID ATTR: the attribute's value on the element with that id
	sed -n "s/.*id=\"$2\"[^>]*data-$3=\"\\([^\"]*\\)\".*/\\1/p; s/.*data-$3=\"\\([^\"]*\\)\"[^>]*id=\"$2\".*/\\1/p" "$1" | head -n1
}

# ---------------------------------------------------------------- known trace
T=0xffffffff80010000 U=0xffffffff80011000 L=0xffffffff80005000 M=0xffffffff80005008
db=$TMP/known.db
"$MKTRACE" "$db" <<SCRIPT || { not_ok "mktrace"; done_testing; }
meta outcome hang
sym 0xffffffff80001000 0x80 KeAcquireSpinLockRaiseToDpc
sym 0xffffffff80001080 0x40 KeReleaseSpinLock
sym 0xffffffff80001100 0x40 KiSwapContext
thread $T worker1
thread $U worker2
lock $L ScenarioLockA
lock $M ScenarioLockB
marker icount=1000 thread=$T a=3 text=</script><img src=x onerror="console.error('injected')"> & é
irql icount=1100 thread=$T a=0 b=2
lock_try icount=1200 pc=0xffffffff80001004 thread=$T obj=$L a=2
lock_acq icount=1250 pc=0xffffffff80001010 thread=$T obj=$L a=2 b=50
lock_rel icount=1400 pc=0xffffffff80001088 thread=$T obj=$L a=2
switch icount=1500 pc=0xffffffff80001100 thread=$T a=$T b=$U
lock_try icount=1600 pc=0xffffffff80001004 thread=$U obj=$M a=2
lock_acq icount=1610 pc=0xffffffff80001010 thread=$U obj=$M a=2
lock_try icount=1700 pc=0xffffffff80001004 thread=$U obj=$M a=2
SCRIPT
html=$TMP/known.html
"$KREWIND" report "$db" -o "$html" >"$TMP/out" 2>&1
same "report -o exits 0" "$?" 0
expect "report says what it wrote" "^wrote $html: 9 events, [0-9]+ findings?, " "$TMP/out"
refuse "the page loads nothing from elsewhere" '<link|<script[^>]* src=|<img|https?://' "$html"
dom "file://$html#selftest" "$TMP/known.dom"
loads "known trace" "$TMP/known.dom"
expect "lock rows for both locks, most acquired first" 'rows: density, irql, traps, runs, lock ScenarioLockA, lock ScenarioLockB, markers' "$TMP/known.dom"
refuse "hostile marker text did not become markup" '<img' "$TMP/known.dom"
expect "the recursive try is a finding in the side list" 'recursive-spinlock' "$TMP/known.dom"

# ---------------------------------------------------------------- preemption inside an interrupt
# worker takes 0xd1 and is switched out inside it (preempted on the way out),
# other takes and leaves its own 0xd1, worker comes back and leaves its frame;
# then worker is switched out inside a second 0xd1 (after its EOI, as in the
# first: without it check names a switch before the EOI, and the page hatches
# the frame as the bug) and never runs again.
P=0xffffffff80010000 Q=0xffffffff80011000
"$MKTRACE" "$TMP/preempt.db" <<SCRIPT || { not_ok "mktrace"; done_testing; }
thread $P worker
thread $Q other
trap icount=100 thread=$P a=0xd1
eoi icount=110 thread=$P a=1
switch icount=120 thread=$P a=$P b=$Q
trap icount=200 thread=$Q a=0xd1
iret icount=210 thread=$Q a=0xd1
switch icount=300 thread=$Q a=$Q b=$P
iret icount=310 thread=$P a=0xd1
trap icount=400 thread=$P a=0xd1
eoi icount=405 thread=$P a=1
switch icount=410 thread=$P a=$P b=$Q
irql icount=500 thread=$Q a=0 b=0
SCRIPT
"$KREWIND" report "$TMP/preempt.db" -o "$TMP/preempt.html" >/dev/null
dom "file://$TMP/preempt.html#selftest" "$TMP/preempt.dom"
loads "preempted frames" "$TMP/preempt.dom"
expect "frames follow their thread: 4 stretches, no nesting, none drawn as never returned, the last one suspended" \
	'frames: 4, deepest 1, never-returned \[\], suspended-at-end \[8\]' "$TMP/preempt.dom"

# ---------------------------------------------------------------- real recording
if [ ! -e "$KERNEL" ] || ! command -v qemu-system-x86_64 >/dev/null; then
	skip "report of a real recording" "no kernel or QEMU"
	done_testing
fi
rec=$TMP/ebs
if ! "$KREWIND" record --scenario eoi-before-switch -o "$rec" >"$TMP/rec.log" 2>&1 && [ ! -e "$rec/trace.db" ]; then
	not_ok "record eoi-before-switch" "$(tail -3 "$TMP/rec.log")"
	done_testing
fi
"$KREWIND" check "$rec" --json >"$TMP/check.json"
nfind=$(jq '.findings | length' "$TMP/check.json")
culprit=$(jq '.findings[0].event' "$TMP/check.json")
culprit_ic=$(jq '.findings[0].icount' "$TMP/check.json")

"$KREWIND" report "$rec" --json >"$TMP/report.json"
same "report REC exits 0" "$?" 0
same "--json: path (REC/report.html), events, findings as check counts them" \
	"$(jq -c '[.path, .events, .findings, .complete]' "$TMP/report.json")" \
	"[\"$rec/report.html\",$(jq '.events' "$TMP/check.json"),$nfind,true]"
"$KREWIND" report "$rec" >/dev/null 2>"$TMP/err"
same "an existing report is not overwritten (exit 2)" "$?" 2
same "... with one line on stderr" "$(wc -l <"$TMP/err")" 1
"$KREWIND" report "$rec" --force >/dev/null
same "--force overwrites it" "$?" 0
"$KREWIND" report "$TMP/nope" >/dev/null 2>&1
same "a missing recording: exit 2" "$?" 2
"$KREWIND" report "$rec" --detail 0 -o "$TMP/x.html" >/dev/null 2>&1
same "a bad --detail: exit 2" "$?" 2
"$KREWIND" report "$rec" -o "$TMP/no/such/dir/r.html" >/dev/null 2>"$TMP/err"
same "an unwritable output: exit 1, one line" "$?:$(wc -l <"$TMP/err")" "1:1"

page=$rec/report.html
dom "file://$page#selftest" "$TMP/ebs.dom"
loads "eoi-before-switch" "$TMP/ebs.dom"
expect "self-test with real events: keys, wheel, drag, hover tooltip" \
	'selftest: key-zoom-in ok, key-zoom-out ok, wheel-zoom ok, drag-pan ok, key-all ok, tooltip ok, drawn-items [1-9]' "$TMP/ebs.dom"
same "every finding of check is listed" "$(grep -o 'class="finding ' "$TMP/ebs.dom" | wc -l)" "$nfind"
expect "the first finding is eoi-before-switch" 'id="finding-1".*eoi-before-switch' "$TMP/ebs.dom"
expect "its replay command to copy" "<code>krewind replay $rec --to $culprit</code>" "$TMP/ebs.dom"
expect "its gdb command to copy" "<code>krewind gdb $rec --at $culprit</code>" "$TMP/ebs.dom"
expect "the timeline has IRQL, traps, runs and markers rows" 'rows: density, irql, traps, runs, markers' "$TMP/ebs.dom"
trap_ev=$(jq '[.findings[] | select(.kind == "eoi-before-switch") | .steps[] | select(.role == "trap") | .event][0]' "$TMP/check.json")
expect "the real bug still shows: the frame of the culprit's trap (#$trap_ev) is drawn as never returned" \
	"frames: [0-9]+, deepest [0-9]+, never-returned \[([0-9]+,)*$trap_ev(,[0-9]+)*\]" "$TMP/ebs.dom"

crec=$TMP/clean
if "$KREWIND" record --scenario clean -o "$crec" >"$TMP/crec.log" 2>&1 || [ -e "$crec/trace.db" ]; then
	same "clean boot: check finds nothing" "$("$KREWIND" check "$crec" --json | jq '.findings | length')" 0
	"$KREWIND" report "$crec" -q >/dev/null
	dom "file://$crec/report.html#selftest" "$TMP/clean.dom"
	loads "clean boot" "$TMP/clean.dom"
	expect "clean boot: no false bug, no frame drawn as never returned (preempted frames follow their thread)" \
		'frames: [1-9][0-9]*, deepest [0-9]+, never-returned \[\]' "$TMP/clean.dom"
	expect "clean boot: no false nesting, the clock interrupt never nests on itself" 'frames: [0-9]+, deepest 1,' "$TMP/clean.dom"
else
	not_ok "record clean" "$(tail -3 "$TMP/crec.log")"
fi

dom "file://$page#zoom=6800000-6820000" "$TMP/zoom.dom"
loads "#zoom" "$TMP/zoom.dom"
same "#zoom=FROM-TO zooms to exactly that range" "$(attr "$TMP/zoom.dom" view from)-$(attr "$TMP/zoom.dom" view to)" \
	"6800000-6820000"

dom "file://$page#finding=1" "$TMP/finding.dom"
loads "#finding" "$TMP/finding.dom"
same "#finding=1 selects the first finding" "$(attr "$TMP/finding.dom" selfcheck finding)" 1
from=$(attr "$TMP/finding.dom" view from) to=$(attr "$TMP/finding.dom" view to)
# The finding's steps lie within a few hundred instructions; the trace spans ~750000.
if [ -n "$from" ] && [ "$from" -le "$culprit_ic" ] && [ "$to" -ge "$culprit_ic" ] && [ $((to - from)) -lt 10000 ]; then
	ok "clicking a finding zooms onto its events ($from-$to holds icount $culprit_ic)"
else
	not_ok "clicking a finding zooms onto its events" "view $from-$to, culprit icount $culprit_ic"
fi
expect "its card is selected" 'class="finding error sel"' "$TMP/finding.dom"

# ---------------------------------------------------------------- beyond the detail budget
if [ -x "$GEN" ]; then
	"$GEN" "$TMP/big.db" 30000 >/dev/null 2>&1
	"$KREWIND" report "$TMP/big.db" --detail 2000 -o "$TMP/big.html" --json >"$TMP/big.json"
	same "a trace larger than --detail: exit 0" "$?" 0
	same "... detail for 2000 events around the culprit, not all" "$(jq -c '[.complete, .detail_events]' "$TMP/big.json")" \
		"[false,2000]"
	dom "file://$TMP/big.html#selftest" "$TMP/big.dom"
	loads "large trace" "$TMP/big.dom"
	expect "zoomed out: the overview, said so" 'id="notice">overview' "$TMP/big.dom"
	expect "large trace: keys, wheel, drag and tooltip work on the overview" \
		'selftest: key-zoom-in ok, key-zoom-out ok, wheel-zoom ok, drag-pan ok, key-all ok, tooltip ok' "$TMP/big.dom"
	big_ic=$("$KREWIND" check "$TMP/big.db" --json | jq '.findings[0].icount')
	dom "file://$TMP/big.html#zoom=$((big_ic - 500))-$((big_ic + 500))" "$TMP/bigzoom.dom"
	loads "large trace zoomed" "$TMP/bigzoom.dom"
	expect "zoomed onto the culprit: the detail" 'id="notice"></span>' "$TMP/bigzoom.dom"
else
	skip "report beyond the detail budget" "$GEN not built"
fi
done_testing
