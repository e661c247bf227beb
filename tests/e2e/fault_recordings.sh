#!/usr/bin/env bash
# Damaged and awkward recordings, on a real recording of eoi-before-switch:
# a trace.db with a page overwritten in the middle, a truncated replay log, a
# recording whose trace has a newer schema (replay and verify; info, events,
# check and sql are in cli_errors.sh), two `check` at once on one trace, an
# output directory that holds someone else's files, and a stripped kernel
# recorded with its unstripped twin as --symbols. (Stripped kernel + probe,
# a probe naming a missing symbol and -o over a recording: record_errors.sh
# and record_replay.sh.) Errors must be one line starting "krewind: error:".
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
if [ ! -x "$KREWIND" ]; then
	not_ok "krewind built" "missing $KREWIND"
	done_testing
fi
export KREWIND_TRACES=$TMP/traces
rec=$TMP/traces/ebs
if ! "$KREWIND" record --scenario eoi-before-switch -o "$rec" -q >"$TMP/rec.out" 2>&1; then
	not_ok "record eoi-before-switch" "$(cat "$TMP/rec.out")"
	done_testing
fi

# one_error NAME RC_WANTED CMD...: exit RC_WANTED, one stderr line "krewind: error: ...".
one_error() {
	local name=$1 want=$2 rc; shift 2
	timeout -s KILL 120 "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		not_ok "$name" "exit $rc, want $want: $(head -c 300 "$TMP/err")"
	elif [ "$(wc -l <"$TMP/err")" -ne 1 ] || ! grep -q '^krewind: error: ' "$TMP/err"; then
		not_ok "$name" "stderr is not one error line: $(head -c 300 "$TMP/err")"
	else
		echo "#   $(cat "$TMP/err")"
		ok "$name"
	fi
}

# A b-tree page of trace.db overwritten with noise (the first page of
# event_rows, found with SQLite's dbstat): SQLite notices, krewind says so.
# (Noise inside row payloads is not detectable: SQLite keeps no checksums.)
cp -r "$rec" "$TMP/corrupt"
psize=$(sqlite3 -readonly "$rec/trace.db" 'PRAGMA page_size')
pno=$(sqlite3 -readonly "$rec/trace.db" "SELECT min(pageno) FROM dbstat WHERE name = 'event_rows'")
head -c "$psize" /dev/urandom | dd of="$TMP/corrupt/trace.db" bs="$psize" seek=$((pno - 1)) conv=notrunc status=none
for c in check events; do
	one_error "$c on a trace with a corrupt event page: exit 2, one line" 2 "$KREWIND" "$c" "$TMP/corrupt"
done

# The replay log cut short.
cp -r "$rec" "$TMP/cutlog"
truncate -s $(($(stat -c %s "$rec/replay.bin") / 3)) "$TMP/cutlog/replay.bin"
last=$(sqlite3 -readonly "$rec/trace.db" 'SELECT max(id) FROM event_rows')
one_error "replay past the end of a truncated replay log: exit 2, one line" 2 \
	"$KREWIND" replay "$TMP/cutlog" --to "$last"
grep -q 'replay ended' "$TMP/err" && ok "the error says the replay ended early" ||
	not_ok "the error says the replay ended early" "$(cat "$TMP/err")"
"$KREWIND" replay "$rec" --to "$last" >/dev/null 2>&1
check "the intact recording replays to the same event" test $? -eq 0

# A recording made by a newer krewind (schema version 99).
cp -r "$rec" "$TMP/newer"
sqlite3 "$TMP/newer/trace.db" 'PRAGMA user_version = 99'
one_error "replay of a newer-schema recording: exit 2, one line" 2 "$KREWIND" replay "$TMP/newer" --to 3
grep -q 99 "$TMP/err" && ok "the error names the schema version" || not_ok "the error names the schema version"
one_error "verify of a newer-schema recording: refused up front, exit 2, one line" 2 "$KREWIND" verify "$TMP/newer"
grep -q 'schema version 99' "$TMP/err" && ok "verify's error names the schema version" || not_ok "verify's error names the schema version"

# Two check processes on one trace at once: same report as one alone.
"$KREWIND" check "$rec" >"$TMP/solo" 2>&1
solo_rc=$?
"$KREWIND" check "$rec" >"$TMP/c1" 2>&1 &
p1=$!
"$KREWIND" check "$rec" >"$TMP/c2" 2>&1 &
p2=$!
wait $p1; rc1=$?
wait $p2; rc2=$?
check "check finds eoi-before-switch (exit 1)" test "$solo_rc" -eq 1
check "two concurrent checks exit like one alone" test "$rc1/$rc2" = "$solo_rc/$solo_rc"
check "first concurrent check's report is identical" cmp -s "$TMP/solo" "$TMP/c1"
check "second concurrent check's report is identical" cmp -s "$TMP/solo" "$TMP/c2"
check "the trace is unchanged afterwards" test "$(sqlite3 -readonly "$rec/trace.db" 'PRAGMA integrity_check')" = ok

# -o into a directory holding someone else's files: refused, nothing touched.
mkdir -p "$TMP/busy"
echo "not a recording" >"$TMP/busy/notes.txt"
sum=$(sha256sum "$TMP/busy/notes.txt")
one_error "record -o into a non-empty directory: exit 2, one line" 2 \
	"$KREWIND" record --scenario clean -o "$TMP/busy"
check "its file is untouched" test "$(sha256sum "$TMP/busy/notes.txt")" = "$sum"
check "nothing was added to it" test "$(ls -A "$TMP/busy")" = notes.txt

# A stripped kernel, symbols from its unstripped twin.
strip -o "$TMP/stripped.elf" "$KERNEL"
"$KREWIND" record --kernel "$TMP/stripped.elf" --symbols "$KERNEL" --probe probes/krewind.probe --append scenario=eoi-before-switch \
	-o "$TMP/traces/stripped" -q >"$TMP/out" 2>&1
check "record of a stripped kernel with --symbols works" test $? -eq 0
check "the recording keeps the symbols file" test -s "$TMP/traces/stripped/symbols.elf"
"$KREWIND" check "$TMP/traces/stripped" >"$TMP/scheck" 2>&1
check "check on it still finds eoi-before-switch by name" grep -q 'EbsWorker' "$TMP/scheck"
done_testing
