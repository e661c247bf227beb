#!/usr/bin/env bash
# The krewind command's input errors: each gives exactly one line on stderr,
# starting with "krewind: error:", nothing on stdout, and exit status 2.
# Traces are written by ui-cli/test/mktrace (through db/'s writer) and broken
# by hand (garbage, truncation, newer schema, a foreign SQLite file).
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind
MKTRACE=$BUILD/ui-cli/test/mktrace
if [ ! -x "$KREWIND" ] || [ ! -x "$MKTRACE" ]; then
	skip "cli errors" "$KREWIND or $MKTRACE not built"
	done_testing
fi

# expect_error NAME PATTERN ARGS...: exit 2, one stderr line matching PATTERN, empty stdout.
expect_error() {
	local name=$1 pattern=$2 rc lines; shift 2
	"$KREWIND" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
	rc=$?
	lines=$(wc -l <"$TMP/err")
	if [ "$rc" -ne 2 ]; then
		not_ok "$name" "exit status $rc, expected 2 (stderr: $(head -c 300 "$TMP/err"))"
	elif [ "$lines" -ne 1 ]; then
		not_ok "$name" "$lines lines on stderr, expected 1: $(head -c 300 "$TMP/err")"
	elif ! grep -q '^krewind: error: ' "$TMP/err"; then
		not_ok "$name" "stderr does not start with 'krewind: error:': $(cat "$TMP/err")"
	elif ! grep -qE -- "$pattern" "$TMP/err"; then
		not_ok "$name" "stderr does not match /$pattern/: $(cat "$TMP/err")"
	elif [ -s "$TMP/out" ]; then
		not_ok "$name" "stdout is not empty: $(head -c 200 "$TMP/out")"
	else
		ok "$name"
	fi
}

mkdir -p "$TMP/good"
"$MKTRACE" "$TMP/good/trace.db" <<'SCRIPT' || { not_ok "mktrace writes the test trace"; done_testing; }
meta outcome pass
thread 0x1000 idle
thread 0x3000 twin
thread 0x4000 twin
lock 0x5000 LockA
switch icount=10 thread=0x1000 a=0x1000 b=0x2000
switch icount=15 thread=0x2000 a=0x2000 b=0x3000
switch icount=16 thread=0x3000 a=0x3000 b=0x4000
lock_acq icount=20 thread=0x2000 obj=0x5000 a=2
lock_rel icount=30 thread=0x2000 obj=0x5000 a=2
SCRIPT
GOOD=$TMP/good/trace.db

# The command line itself.
"$KREWIND" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 2 ] && grep -q '^usage: krewind' "$TMP/err" && [ ! -s "$TMP/out" ]; then
	ok "no command: usage on stderr, exit 2"
else
	not_ok "no command: usage on stderr, exit 2" "rc=$rc"
fi
expect_error "unknown command" "'frobnicate' is not a krewind command" frobnicate
expect_error "unknown global option" "unknown option '--frob'" --frob
expect_error "unknown long option" "events: unknown option '--bogus'" events "$GOOD" --bogus
expect_error "unknown short option" "info: unknown option '-z'" info -z "$GOOD"
expect_error "flag given a value" "option '--json' takes no argument" info "$GOOD" --json=yes
expect_error "option missing its argument" "option '--limit' needs an argument" events "$GOOD" --limit
expect_error "help for an unknown command" "'nope' is not a krewind command" help nope
for c in info events sql check; do
	expect_error "$c without REC" "$c: missing the recording" "$c"
done
expect_error "sql without a statement" "sql: missing the SQL statement" sql "$GOOD"
expect_error "sql with an empty statement" "sql: the SQL statement is empty" sql "$GOOD" "  "
expect_error "info with two RECs" "info: unexpected argument" info "$GOOD" "$GOOD"
expect_error "ls with an argument" "ls: unexpected argument" ls extra
expect_error "ls with a missing --dir" "ls: cannot read directory" ls --dir "$TMP/none"

# Recordings that are not there or not traces.
for c in info events check; do
	expect_error "$c: missing recording" "" "$c" "$TMP/no-such-recording"
done
expect_error "sql: missing recording" "" sql "$TMP/no-such-recording" "SELECT 1"

mkdir -p "$TMP/garbage"
head -c 8192 /dev/urandom >"$TMP/garbage/trace.db"
for c in info events check; do
	expect_error "$c: garbage trace" "" "$c" "$TMP/garbage/trace.db"
done

mkdir -p "$TMP/trunc"
head -c 2048 "$GOOD" >"$TMP/trunc/trace.db"
for c in info events check; do
	expect_error "$c: truncated trace" "" "$c" "$TMP/trunc/trace.db"
done

mkdir -p "$TMP/newer"
cp "$GOOD" "$TMP/newer/trace.db"
sqlite3 "$TMP/newer/trace.db" "PRAGMA user_version = 99;"
for c in info events check; do
	expect_error "$c: newer schema" "99" "$c" "$TMP/newer/trace.db"
done
expect_error "sql: newer schema" "99" sql "$TMP/newer/trace.db" "SELECT 1"

mkdir -p "$TMP/foreign"
sqlite3 "$TMP/foreign/trace.db" "CREATE TABLE t (x); INSERT INTO t VALUES (1);"
expect_error "info: a SQLite file that is not a krewind trace" "" info "$TMP/foreign/trace.db"

# Bad arguments that need the trace to be judged.
expect_error "events: unknown kind" "unknown event kind 'tarp'" events "$GOOD" --kind trap,tarp
expect_error "events: bad --from" "--from wants an event id or icount:N" events "$GOOD" --from icount:x
expect_error "events: bad --to" "--to wants an event id or icount:N" events "$GOOD" --to -3
expect_error "events: bad --limit" "--limit wants a positive number" events "$GOOD" --limit 0
expect_error "events: --around with --limit" "cannot be combined" events "$GOOD" --around 1 --limit 3
expect_error "events: --context without --around" "--context only goes with --around" events "$GOOD" --context 3
expect_error "events: unknown thread name" "no thread named 'nobody'" events "$GOOD" --thread nobody
expect_error "events: a thread name shared by two threads" "2 threads are named 'twin'; give the address" events "$GOOD" --thread twin
expect_error "events: unknown lock name" "no lock or object named 'LockZ'" events "$GOOD" --lock LockZ
expect_error "events: --around a missing event" "no event 999" events "$GOOD" --around 999
expect_error "sql: a statement that writes" "" sql "$GOOD" "DELETE FROM meta"
expect_error "sql: a syntax error" "" sql "$GOOD" "SELEKT 1"
expect_error "sql: two statements" "" sql "$GOOD" "SELECT 1; SELECT 2"
expect_error "sql: an unknown table" "no such table" sql "$GOOD" "SELECT * FROM nope"
expect_error "sql: ATTACH is refused" "" sql "$GOOD" "ATTACH DATABASE '$TMP/x.db' AS x"

# A failure that is not the input's fault: exit 1, one line.
if [ -w /dev/full ]; then
	"$KREWIND" info "$GOOD" >/dev/full 2>"$TMP/err"
	rc=$?
	if [ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^krewind: error: writing the output failed' "$TMP/err"; then
		ok "a full disk on stdout: exit 1, one line"
	else
		not_ok "a full disk on stdout: exit 1, one line" "rc=$rc: $(cat "$TMP/err")"
	fi
else
	skip "a full disk on stdout" "no /dev/full"
fi

# Help is not an error.
for c in ls info events sql check; do
	if "$KREWIND" help "$c" >"$TMP/out" 2>"$TMP/err" && grep -q "^usage: krewind $c" "$TMP/out" &&
		[ ! -s "$TMP/err" ] && "$KREWIND" "$c" --help | cmp -s - "$TMP/out"; then
		ok "help $c == $c --help, exit 0"
	else
		not_ok "help $c == $c --help, exit 0"
	fi
done
if "$KREWIND" help >"$TMP/out" && grep -q '^   events ' "$TMP/out"; then
	ok "help lists the commands"
else
	not_ok "help lists the commands"
fi

done_testing
