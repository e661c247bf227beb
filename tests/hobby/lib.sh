#!/usr/bin/env bash
# Sourced by the hobby kernel's e2e tests (tests/e2e/hobby_disk.sh,
# boot_disks.sh, boot_loaders.sh) after tests/e2e/lib.sh:
#
#   K IMG ELF PROBE       krewind, the hobby disk, its ELF and probe
#   q CMD...              CMD with its output dropped
#   sql REC QUERY         the rows of QUERY on REC, one per line
#   hobby_replays NAME REC
#                         check has no finding on REC, replay --to its last
#                         switch arrives, verify says deterministic
K=$BUILD/krewind
IMG=build/tests/hobby/disk.img
ELF=build/tests/hobby/hobby.elf
PROBE=probes/hobby.probe
export KREWIND_TRACES=$TMP/traces
q() { "$@" >/dev/null 2>&1; }
sql() { $K sql "$1" "$2" --json 2>/dev/null | jq -r '.rows[] | join(" ")'; }

hobby_replays() {
	local name=$1 rec=$2 last
	$K check "$rec" >"$rec.check" 2>&1
	check "$name: check: no findings" [ $? -eq 0 ] && grep -q "^no findings" "$rec.check"
	last=$(sql "$rec" "SELECT max(id) FROM events WHERE kind = 'switch'")
	timeout 300 $K replay "$rec" --to "$last" >"$rec.replay" 2>&1
	check "$name: replay --to the last switch ($last) arrives" [ $? -eq 0 ] && grep -q "before event $last" "$rec.replay"
	timeout 300 $K verify "$rec" >"$rec.verify" 2>&1
	check "$name: verify: deterministic" [ $? -eq 0 ] && grep -q "deterministic" "$rec.verify"
}
