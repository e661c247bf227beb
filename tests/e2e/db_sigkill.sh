#!/usr/bin/env bash
# A recording killed with SIGKILL: the trace opens, passes integrity_check,
# and lost at most the events of its last 250 ms.
#
# db_push pushes 100000 events/s (a tenth of the writer's pace, so a loaded
# machine still keeps up) with icount = sequence number, and logs
# "<ms> <events pushed>" every 10 ms. After ~1 s it is killed. Asserted:
# - db_reader_open accepts the trace and PRAGMA integrity_check says ok;
# - the stored events are exactly icounts 0..N-1 (no holes, nothing invented);
# - N >= the count the log shows 250 ms before its last line (the last line
#   is at most one log period before the kill, or older if the logger was
#   starved, which only loosens the bound);
# - the per-kind counts and the block summary were committed with the rows;
# - db_update_meta then works on it.
. "$(dirname "$0")/lib.sh"

push=$BUILD/db/db_push
if [ ! -x "$push" ]; then
	not_ok "db_push built" "missing $push (make $push)"
	done_testing
fi

trace=$TMP/killed.db log=$TMP/push.log
"$push" push "$trace" "$log" &
pid=$!
# Wait for the first log line, then let it run for a second.
for _ in $(seq 100); do [ -s "$log" ] && break; sleep 0.05; done
sleep 1
kill -9 "$pid"
wait "$pid" 2>/dev/null

read -r last_ms last_n < <(tail -n 1 "$log")
bound_n=$(awk -v t=$((last_ms - 250)) '$1 <= t { n = $2 } END { print n + 0 }' "$log")
echo "# pushed $last_n by ${last_ms} ms, $bound_n by $((last_ms - 250)) ms"

out=$("$push" count "$trace" 2>&1)
check "the killed trace opens with db_reader_open" test $? -eq 0
echo "# $out"
events=$(sed -n 's/.*events=\([0-9]*\).*/\1/p' <<<"$out")
max=$(sed -n 's/.*max_icount=\(-\?[0-9]*\).*/\1/p' <<<"$out")
check "integrity_check ok" test "$(sqlite3 "$trace" 'PRAGMA integrity_check')" = ok
check "events are icounts 0..N-1, no holes" test "$((max + 1))" -eq "${events:-x}"
if [ "${events:-0}" -ge "$bound_n" ] && [ "$bound_n" -gt 0 ]; then
	ok "lost at most 250 ms of events ($((last_n - events)) of $last_n lost)"
else
	not_ok "lost at most 250 ms of events" "stored ${events:-?}, pushed $bound_n by 250 ms before the end"
fi

check "kinds.events matches the rows" test "$(sqlite3 "$trace" 'SELECT count(*) FROM event_rows')" = "${events:-x}"
check "event_blocks covers every block" test \
	"$(sqlite3 "$trace" 'SELECT count(DISTINCT block) FROM event_blocks')" = "$(( (${events:-0} + 255) / 256 ))"
check "db_update_meta works on the killed trace" "$push" finish "$trace"
check "outcome recorded" test "$(sqlite3 "$trace" "SELECT value FROM meta WHERE key = 'outcome'")" = killed
out2=$("$push" count "$trace" 2>&1)
check "same events after db_update_meta" test "$out2" = "$out"
done_testing
