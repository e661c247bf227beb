#!/usr/bin/env bash
# Replay against recording on long runs and on hangs (issue #15's targets),
# our kernel and Debian's stock Linux boot side by side in one run:
#   replay --to   an event at about 80% of the run (FRACTION), against the
#                 record time of that prefix (the prefix's share of the run's
#                 instructions times the wall time of `krewind record`);
#   gdb --at      the same event, gdb attached and one command run;
#   reverse-stepi in that gdb session (one instruction back), seconds;
#   drift         where QEMU executes the event's instruction minus the
#                 trace's icount (`replay --json` icount_drift);
#   hang          a spinning deadlock (recursive-spinlock: it spins with
#                 `pause`), its full replay (`verify --no-plugin`) against its
#                 record time.
# With KREWIND_SNAPSHOT_EVERY=S recordings take a snapshot every S seconds and
# replay --to starts from the nearest one (replay/snapshot.c, opt-in); the
# table says how many each recording has. Ratios, never assertions. Our kernel's
# subject is SCENARIO (default clean); the Linux boot is skipped when scripts/linux-subject.sh fails.
set -u
BUILD=${BUILD:-build}
cd "$(dirname "$0")/.." || exit 2
KREWIND=$BUILD/krewind
FRACTION=${FRACTION:-0.8}
SCENARIO=${SCENARIO:-clean}
[ -x "$KREWIND" ] || { echo "replay_targets: $KREWIND not built" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/krewind-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export KREWIND_TRACES=$tmp/traces

now() { date +%s.%N; }
secs() { local t0; t0=$(now); "$@" >/dev/null 2>&1 || return 1; echo "$(now) - $t0" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }

# measure NAME DIR RECORD_SECONDS: fills the result variables NAME_*.
measure() {
	local name=$1 dir=$2 rec=$3 total id ic prefix to at rsi drift
	total=$(jq -r .icount_total "$dir/manifest.json")
	read -r id ic < <("$KREWIND" sql "$dir" --json "SELECT id, icount FROM events WHERE kind <> 'trap' AND icount >= $FRACTION * $total ORDER BY icount LIMIT 1" |
		jq -r '.rows[0] | "\(.[0]) \(.[1])"')
	prefix=$(echo "$rec * $ic / $total" | bc -l)
	to=$(secs "$KREWIND" replay "$dir" --to "$id" -q) || to=fail
	drift=$("$KREWIND" replay "$dir" --to "$id" --json -q 2>/dev/null | jq -r '.icount_drift // 0')
	printf 'kr-icount\n' >"$tmp/attach.gdb"
	at=$(secs "$KREWIND" gdb "$dir" --at "$id" --batch "$tmp/attach.gdb" -q) || at=fail
	cat >"$tmp/rsi.gdb" <<'GDB'
python import time; t = time.time()
reverse-stepi
python print("KRB rsi=%.2f" % (time.time() - t))
GDB
	rsi=$("$KREWIND" gdb "$dir" --at "$id" --batch "$tmp/rsi.gdb" -q 2>&1 | sed -n 's/^KRB rsi=//p')
	eval "${name}_rec=\$rec ${name}_prefix=\$prefix ${name}_to=\$to ${name}_at=\$at ${name}_rsi=\${rsi:-fail}"
	eval "${name}_snaps=\$(ls \"\$dir/snapshots\" 2>/dev/null | wc -l)"
	eval "${name}_drift=\$drift ${name}_event=\$id ${name}_pct=\$(echo \"100 * \$ic / \$total\" | bc)"
}

# ours: a scenario run to its end
rec_s=$(secs "$KREWIND" record --scenario "$SCENARIO" -q) || { echo "replay_targets: record failed" >&2; exit 1; }
measure ours "$KREWIND_TRACES/$SCENARIO-1" "$rec_s"

# hang: a spinning deadlock recorded until krewind sees no progress
hang_rec=$(secs "$KREWIND" record --scenario recursive-spinlock --hang-after 3 -q) ||
	{ echo "replay_targets: record of the hang failed" >&2; exit 1; }
hang_rep=$(secs timeout 600 "$KREWIND" verify "$KREWIND_TRACES/recursive-spinlock-1" --no-plugin -q) || hang_rep=fail

# the Linux boot to poweroff
linux=1
if env=$(scripts/linux-subject.sh 2>"$tmp/subject.err"); then
	eval "$env"
	"$KREWIND" probe linux "$LINUX_VMLINUX" -o "$tmp/linux.probe" >/dev/null || linux=0
	[ $linux = 1 ] && lrec=$(secs "$KREWIND" record --kernel "$LINUX_VMLINUZ" --symbols "$LINUX_VMLINUX" \
		--initrd "$LINUX_INITRD" --probe "$tmp/linux.probe" --append "console=ttyS0 nokaslr panic=-1" \
		--timeout 300 -o "$tmp/linux" -q) || linux=0
	[ $linux = 1 ] && measure linux "$tmp/linux" "$lrec"
else
	linux=0
	echo "(no Linux subject: $(tail -n1 "$tmp/subject.err"))"
fi

row() { # LABEL OURS LINUX
	printf '  %-34s %-24s %s\n' "$1" "$2" "$3"
}
cell() { # SECONDS AGAINST: "12.3 s (1.40x)"
	case $1 in fail|'') echo "failed" ;; *) printf '%.2f s (%sx)' "$1" "$(ratio "$1" "$2")" ;; esac
}
lx() { [ $linux = 1 ] && eval "echo \"\$$1\"" || echo "-"; }
echo "replay targets (one run each; ratios against the record time of the prefix)"
row "" "ours ($SCENARIO)" "Linux boot"
row "record (whole run)" "$(printf '%.2f s' "$ours_rec")" "$([ $linux = 1 ] && printf '%.2f s' "$linux_rec" || echo -)"
row "event (position in the run)" "$ours_event ($ours_pct%)" "$([ $linux = 1 ] && echo "$linux_event ($linux_pct%)" || echo -)"
row "snapshots taken while recording" "$ours_snaps" "$(lx linux_snaps)"
row "prefix recorded" "$(printf '%.2f s' "$ours_prefix")" "$([ $linux = 1 ] && printf '%.2f s' "$linux_prefix" || echo -)"
row "replay --to (target 1.2x)" "$(cell "$ours_to" "$ours_prefix")" "$([ $linux = 1 ] && cell "$linux_to" "$linux_prefix" || echo -)"
row "gdb --at (target 1.2x)" "$(cell "$ours_at" "$ours_prefix")" "$([ $linux = 1 ] && cell "$linux_at" "$linux_prefix" || echo -)"
row "reverse-stepi (target 2 s)" "$ours_rsi s" "$(lx linux_rsi) s"
row "drift at the event (instructions)" "$ours_drift" "$(lx linux_drift)"
echo "hang: recursive-spinlock recorded $(printf '%.2f' "$hang_rec") s, replayed $([ "$hang_rep" = fail ] && echo "failed (over 600 s)" || printf '%.2f s (%sx, target 2x)' "$hang_rep" "$(ratio "$hang_rep" "$hang_rec")")"
