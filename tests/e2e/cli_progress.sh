#!/usr/bin/env bash
# Progress of long commands (cli_progress_*): `krewind check` on a large trace
# draws "check: N/TOTAL events" on a terminal (a pty from script(1)) and erases
# it before the result; nothing with -q, nothing when stderr is not a terminal.
. "$(dirname "$0")/lib.sh"

KREWIND=$BUILD/krewind MKTRACE=$BUILD/ui-cli/test/mktrace
if [ ! -x "$KREWIND" ] || [ ! -x "$MKTRACE" ]; then
	skip "progress" "krewind or mktrace is not built"
	done_testing
fi
n=1000000
awk -v n=$n 'BEGIN { print "meta outcome pass"
	for (i = 1; i <= n; i++) printf "irql icount=%d pc=0x1000 thread=0x2000 a=%d b=%d\n", i * 10, i % 3, (i + 1) % 3 }' |
	"$MKTRACE" "$TMP/big.db" || { not_ok "mktrace of $n events"; done_testing; }

on_tty() { script -qec "$*" /dev/null </dev/null; }
on_tty "$KREWIND" check "$TMP/big.db" >"$TMP/tty.out"
check "on a terminal: a count of events checked against the total" grep -qaE "check: [0-9]+/$n events \([0-9]+%" "$TMP/tty.out"
check "then what it is doing after the read" grep -qa "check: $n events read, building the report" "$TMP/tty.out"
# (the result may start with a WARNING: mktrace's writer can drop events at this pace, and check says so first)
check "the line is erased before the result" grep -qaE $'\r\033\\[K(WARNING: this trace lost|no findings \\('"$n"' events checked)' "$TMP/tty.out"
on_tty "$KREWIND" check -q "$TMP/big.db" >"$TMP/q.out"
if grep -qa 'check: ' "$TMP/q.out"; then not_ok "-q: no progress line on a terminal"; else ok "-q: no progress line on a terminal"; fi
check "-q: the result is still printed" grep -qa "no findings ($n events checked" "$TMP/q.out"
"$KREWIND" check "$TMP/big.db" >"$TMP/pipe.out" 2>"$TMP/pipe.err"
check "not a terminal: check exits 0" test $? -eq 0
check "not a terminal: nothing on stderr" test ! -s "$TMP/pipe.err"
done_testing
