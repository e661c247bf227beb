#!/usr/bin/env bash
# Losses are loud: events the tracer's queue refused are counted (meta
# dropped) and located (DB_MARK_LOST markers, one per stretch, written when
# the queue takes events again); record, check, info and report say so
# before anything else (check --json and the HTML report's data too), and
# check marks a finding that comes after a lost stretch (its JSON and the
# page too). A known trace (mktrace) checks the marking exactly; the hobby
# kernel recorded through a 2-event queue (KREWIND_TRACE_QUEUE) loses events
# for real.
source "$(dirname "$0")/lib.sh"
K=$BUILD/krewind
MKTRACE=$BUILD/ui-cli/test/mktrace
IMG=build/tests/hobby/disk.img
ELF=build/tests/hobby/hobby.elf
q() { "$@" >/dev/null 2>&1; }
[ -x "$K" ] && [ -x "$MKTRACE" ] || { skip "losses" "not built"; done_testing; }

mkdir -p "$TMP/known"
"$MKTRACE" "$TMP/known/trace.db" <<'SCRIPT' || { not_ok "mktrace writes the test trace"; done_testing; }
thread 0x2000 A
lock 0x5000 L
lock 0x5008 M
lock_try icount=1 thread=0x2000 obj=0x5008
lock_acq icount=1 thread=0x2000 obj=0x5008
lock_try icount=2 thread=0x2000 obj=0x5008
lock_rel icount=3 thread=0x2000 obj=0x5008
lock_try icount=3 thread=0x2000 obj=0x5000
lock_acq icount=3 thread=0x2000 obj=0x5000
lock_rel icount=4 thread=0x2000 obj=0x5000
marker icount=9 thread=0x2000 a=4 obj=7 b=6 text=7 events lost (trace queue full) from icount 6 to 9
lock_try icount=10 thread=0x2000 obj=0x5000
lock_acq icount=11 thread=0x2000 obj=0x5000
lock_try icount=12 thread=0x2000 obj=0x5000
SCRIPT
$K check "$TMP/known" >"$TMP/check" 2>&1
check "check: the loss is the first thing said" [ "$(head -1 "$TMP/check")" = "WARNING: this trace lost 7 events (the tracer's queue was full) in 1 stretch:" ]
check "with where it was" grep -q "^  7 from icount 6 to 9 (event 8 says so)" "$TMP/check"
check "the finding after it is marked" grep -q "LOST: 7 events from icount 6 to 9 before this finding's last event" "$TMP/check"
check "the finding before it is not" [ "$(grep -c "^   LOST" "$TMP/check")" = 3 ] &&
	! grep -A12 "^2\. .*recursive-spinlock.*0x5008" "$TMP/check" | sed '/^$/q' | grep -q LOST
$K check "$TMP/known" --json >"$TMP/check.json" 2>&1
stretch='{"events": 7, "from_icount": 6, "to_icount": 9, "event": 8}'
check "check --json: dropped and the stretch" q jq -e ".dropped == 7 and .cut == false and .lost == [$stretch]" "$TMP/check.json"
check "check --json: the findings after it carry it, the one before has null" q jq -e \
	"[.findings[] | select(.icount >= 9) | .lost == $stretch] == [true, true, true] and
	 [.findings[] | select(.icount < 9) | .lost] == [null]" "$TMP/check.json"
$K report "$TMP/known" -q -o "$TMP/known.html" --json >"$TMP/known.report.json" 2>&1
check "report --json: dropped" q jq -e '.dropped == 7' "$TMP/known.report.json"
sed -n 's/.*<script id="krewind-data" type="application\/json">\(.*\)<\/script>.*/\1/p' "$TMP/known.html" >"$TMP/known.data"
check "report: the page's data carries dropped and the stretch" q jq -e \
	'.dropped == 7 and .cut == false and .lost == [{"events": 7, "from": 6, "to": 9, "event": 8}]' "$TMP/known.data"
check "report: the findings after it are marked in the page's data" q jq -e \
	'[.findings[] | .lost.event] == [8, null, 8, 8]' "$TMP/known.data"
CHROMIUM=$(command -v chromium || command -v chromium-browser)
if [ -n "$CHROMIUM" ]; then
	timeout -s KILL 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
		--disable-component-update --disable-sync --disable-dev-shm-usage --user-data-dir="$TMP/chromium" \
		--virtual-time-budget=5000 --dump-dom "file://$TMP/known.html" >"$TMP/known.dom" 2>/dev/null </dev/null
	check "report in Chromium: the loss is shown above the findings" \
		grep -q '<div id="losses" data-lost="1" data-dropped="7"><div class="head">WARNING: this trace lost 7 events (the tracer.s queue was full) in 1 stretch</div>.*<h2 id="findings-title">' <(tr -d '\n' <"$TMP/known.dom")
	check "report in Chromium: three finding cards say LOST" [ "$(grep -o '<div class="lost">LOST: 7 events from icount 6 to 9' "$TMP/known.dom" | wc -l)" = 3 ]
else
	skip "report in Chromium" "chromium is not installed (scripts/install-deps.sh installs it)"
fi
$K info "$TMP/known" >"$TMP/info" 2>&1
check "info: the loss comes first" grep -q "^WARNING: this trace lost 7 events" <(head -1 "$TMP/info")
check "info --json: dropped, cut and the stretch" q jq -e '.dropped == 7 and .cut == false and .lost == [{"events": 7, "from_icount": 6, "to_icount": 9, "event": 8}]' <($K info "$TMP/known" --json)
$K events "$TMP/known" --kind marker >"$TMP/events" 2>&1
check "events describes the marker" grep -q "LOST 7 events (trace queue full) from icount 6 to 9" "$TMP/events"

if [ -e "$IMG" ] && [ -e "$ELF" ]; then
	rec=$TMP/lossy
	KREWIND_TRACE_QUEUE=2 $K record -q --image "$IMG" --symbols "$ELF" --probe probes/hobby.probe -o "$rec" >"$TMP/rec" 2>&1
	check "record through a 2-event queue: exit 0" [ $? -eq 0 ]
	dropped=$($K sql "$rec" "SELECT value FROM meta WHERE key = 'dropped'" --json | jq -r '.rows[0][0]')
	marked=$($K sql "$rec" "SELECT coalesce(sum(obj), 0) FROM events WHERE kind = 'marker' AND a = 4" --json | jq -r '.rows[0][0]')
	check "events were lost ($dropped) and the markers place most of them ($marked)" [ "$dropped" -gt 0 ] && [ "$marked" -gt 0 ] && [ "$marked" -le "$dropped" ]
	check "record says so" grep -q "WARNING: this trace lost $dropped events" "$TMP/rec"
	KREWIND_TRACE_QUEUE=2 $K record -q --json --image "$IMG" --symbols "$ELF" --probe probes/hobby.probe -o "$TMP/lossy2" >"$TMP/rec.json" 2>/dev/null
	check "record --json: dropped and the lost stretches" q jq -e '.dropped > 0 and (.lost | length) > 0 and (.lost[0] | has("from_icount") and has("to_icount") and has("events"))' "$TMP/rec.json"
	$K check "$rec" >"$TMP/check2" 2>&1
	check "check says so first" grep -q "^WARNING: this trace lost $dropped events" <(head -1 "$TMP/check2")
	$K report "$rec" -q -o "$TMP/r.html" >"$TMP/report" 2>&1
	check "report says so" grep -q "WARNING: this trace lost $dropped events" "$TMP/report"
	$K check "$rec" --json >"$TMP/check2.json" 2>/dev/null
	check "check --json on it: dropped $dropped and the stretches the markers place" q jq -e \
		".dropped == $dropped and (.lost | length) > 0 and ([.lost[].events] | add) == $marked" "$TMP/check2.json"
	$K record -q --image "$IMG" -o "$TMP/clean" >"$TMP/rec2" 2>&1
	check "a run without losses says nothing of them" [ "$(grep -c WARNING "$TMP/rec2")" = 0 ]
	KREWIND_TRACE_QUEUE=3 $K record -q --image "$IMG" -o "$TMP/bad" >/dev/null 2>"$TMP/err"
	check "a queue that is not a power of two: exit 2 with the plugin's words, nothing kept" [ $? -eq 2 ] &&
		grep -q "queue=3: expected a power of two" "$TMP/err" && [ ! -e "$TMP/bad" ]
else
	skip "losses on a real recording" "the hobby kernel is not built"
fi
done_testing
