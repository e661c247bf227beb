#!/usr/bin/env bash
# Disk full while recording: the writer notices, stops cleanly, counts the
# loss, db_writer_close returns DB_E_FULL with a clear message, and what was
# committed before is intact. Needs a 2 MB tmpfs (root); skipped otherwise.
. "$(dirname "$0")/lib.sh"

push=$BUILD/db/db_push
if [ ! -x "$push" ]; then
	not_ok "db_push built" "missing $push (make $push)"
	done_testing
fi
mnt=$TMP/small
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=2m krewind-test "$mnt" 2>/dev/null; then
	skip "disk full is detected" "cannot mount a tmpfs (needs root)"
	done_testing
fi
trap 'umount "$mnt" 2>/dev/null; rm -rf "$TMP"' EXIT

trace=$mnt/full.db
"$push" fill "$trace" >"$TMP/out" 2>"$TMP/err"
rc=$?
echo "# $(cat "$TMP/out") / $(cat "$TMP/err")"
check "close reports disk full (DB_E_FULL)" test "$rc" -eq 3
check "with one clear line naming the file" grep -q "^db_push: $trace: disk full: [0-9]* events lost, [0-9]* kept$" "$TMP/err"
kept=$(sed -n 's/.*, \([0-9]*\) kept$/\1/p' "$TMP/err")
out=$("$push" count "$trace" 2>&1)
check "the trace still opens" test $? -eq 0
echo "# $out"
check "every kept event is there" test "$out" = "events=$kept max_icount=$((kept - 1))"
check "integrity_check ok" test "$(sqlite3 "$trace" 'PRAGMA integrity_check')" = ok
check "events_total recorded" test "$(sqlite3 "$trace" "SELECT value FROM meta WHERE key = 'events_total'")" = "$kept"
done_testing
