#!/usr/bin/env bash
# make demo: record the eoi-before-switch scenario, diagnose it with
# `krewind check`, show the events around the culprit, and print the command
# that replays the run to it.
#
# Usage: scripts/demo.sh [BUILD]   (BUILD: the build directory, default build)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
build=${1:-build}
krewind=$build/krewind
scenario=eoi-before-switch

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' reset=$'\033[0m'; else bold= reset=; fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

[ -x "$krewind" ] || die "$krewind is not built (run make)"
command -v jq >/dev/null || die "jq is missing (scripts/install-deps.sh installs it)"

say "$krewind record --scenario $scenario"
summary=$("$krewind" record --scenario "$scenario" --json) || die "recording failed"
rec=$(jq -r '.recording' <<<"$summary")
rec=${rec#"$top"/}
printf 'recorded %s: outcome %s, %s instructions, %s events\n' "$rec" \
	"$(jq -r '.outcome' <<<"$summary")" "$(jq -r '.icount_total' <<<"$summary")" \
	"$(jq -r '.events_total' <<<"$summary")"

say "$krewind check $rec"
"$krewind" check "$rec"
rc=$?
[ "$rc" -eq 2 ] && die "krewind check could not read $rec"
[ "$rc" -eq 0 ] && die "krewind check found nothing in $rec: the planted bug was not diagnosed"

report=$("$krewind" check "$rec" --json)
event=$(jq -r '[.findings[] | select(.kind == "eoi-before-switch")][0].event // .findings[0].event' <<<"$report")
kind=$(jq -r --argjson e "$event" '[.findings[] | select(.event == $e)][0].kind' <<<"$report")
[ -n "$event" ] && [ "$event" != null ] || die "the findings name no event to replay to"

say "$krewind events $rec --around $event --context 6"
"$krewind" events "$rec" --around "$event" --context 6

say "replay to the culprit ($kind, event $event)"
echo "$krewind replay $rec --to $event"
echo "$krewind gdb $rec --at $event        # the same, with gdb attached"
