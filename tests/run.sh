#!/usr/bin/env bash
# Runs krewind's tests and prints one summary line.
#
# Usage: tests/run.sh BUILD UNIT_BINARY... -- E2E_SCRIPT...
# Every test speaks TAP: cmocka binaries through CMOCKA_MESSAGE_OUTPUT=TAP, e2e
# scripts through tests/e2e/lib.sh. A test file that exits non-zero without a
# "not ok" line (a crash, a sanitizer report) counts as one failure; a
# "not ok ... # TODO" line is a known failure (counted, shown, not red). Logs go to
# BUILD/test-logs/. KREWIND_TESTS=PATTERN runs only matching files.
set -u
build=$1; shift
units=(); e2es=(); seen_sep=0
for a in "$@"; do
	if [ "$a" = -- ]; then seen_sep=1; continue; fi
	if [ $seen_sep -eq 0 ]; then units+=("$a"); else e2es+=("$a"); fi
done
logs=$build/test-logs
mkdir -p "$logs"
passed=0 failed=0 skipped=0 todo=0
failures=()

run_one() {
	local label=$1; shift
	local log=$logs/$(basename "$label").log rc p f s t
	if [ -n "${KREWIND_TESTS:-}" ] && [[ "$label" != *$KREWIND_TESTS* ]]; then return; fi
	printf '%-44s ' "$label"
	CMOCKA_MESSAGE_OUTPUT=TAP BUILD=$build "$@" >"$log" 2>&1
	rc=$?
	p=$(grep -cE '^ok [0-9]+' "$log")
	f=$(grep -cE '^not ok [0-9]+' "$log")
	s=$(grep -cE '^ok [0-9]+ .*# [Ss][Kk][Ii][Pp]' "$log")
	t=$(grep -cE '^not ok [0-9]+ .*# TODO' "$log")
	p=$((p - s)); f=$((f - t))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s)); todo=$((todo + t))
	if [ "$f" -gt 0 ]; then
		echo "FAIL ($p passed, $f failed) - log: $log"
		grep -E '^not ok' "$log" | head -n 20 | sed 's/^/    /'
		tail -n 15 "$log" | sed 's/^/    | /'
		failures+=("$label")
	else
		echo "ok ($p passed${s:+, $s skipped}${t:+, $t known failures})" | sed 's/, 0 skipped//; s/, 0 known failures//'
		grep -E '^not ok [0-9]+ .*# TODO' "$log" | head -n 20 | sed 's/^/    /'
	fi
}

for u in "${units[@]}"; do run_one "$u" "$u"; done
for e in "${e2es[@]}"; do run_one "$e" bash "$e"; done

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
summary="krewind: $passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
[ "$todo" -gt 0 ] && summary="$summary, $todo known failures (TODO)"
echo "$summary"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
