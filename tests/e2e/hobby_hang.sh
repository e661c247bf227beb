#!/usr/bin/env bash
# Hangs judged by guest instructions and event kinds (replay/record.c): on the
# hobby kernel, chosen by its configuration sector, a 1.2 G-instruction
# lock-free loop at boot with no event in it is not a hang although it runs
# far longer than --hang-after (the CPU is busy and no lock spin or wait is
# open: it gets --hang-insns instructions too); an endless such loop is a
# hang once it has run --hang-insns instructions; a thread spinning on a lock
# its switched-out holder keeps is a hang after --hang-after seconds, and
# check names the lock, the spinner and the holder.
source "$(dirname "$0")/lib.sh"
K=$BUILD/krewind
IMG=build/tests/hobby/disk.img
ELF=build/tests/hobby/hobby.elf
[ -x "$K" ] && [ -e "$IMG" ] && [ -e "$ELF" ] || { skip "hobby hangs" "not built"; done_testing; }
disk() { cp "$IMG" "$TMP/$1.img"; printf '%s\0' "$2" | dd of="$TMP/$1.img" bs=512 seek=200 conv=notrunc status=none; }
rec() { local name=$1; shift; $K record -q --image "$TMP/$name.img" --symbols "$ELF" --probe probes/hobby.probe -o "$TMP/$name" "$@" >/dev/null 2>&1; }
field() { jq -r ".$2" "$TMP/$1/manifest.json"; }

disk loop loop=200
rec loop --hang-after 0.3 --hang-insns 4000000000 --timeout 120
check "a long lock-free loop is not a hang (outcome $(field loop outcome), $(field loop icount_total) instructions in $(field loop wall_seconds) s)" \
	[ "$(field loop outcome)" = pass ]
check "it ran longer than --hang-after without an event" [ "$(field loop icount_total)" -gt 1000000000 ]

disk endless loop=100000000
rec endless --hang-after 0.3 --hang-insns 300000000 --timeout 120
check "an endless lock-free loop is a hang by instructions ($(field endless outcome_detail))" \
	[ "$(field endless outcome)" = hang ] && field endless outcome_detail | grep -Eq "and [0-9]+ instructions"
n=$(field endless outcome_detail | sed -n 's/.* and \([0-9]*\) instructions.*/\1/p')
check "after at least --hang-insns instructions ($n)" [ "${n:-0}" -ge 300000000 ]

disk deadlock bug=deadlock
rec deadlock --hang-after 1 --timeout 120
check "a spin on a lock its holder keeps is a hang by seconds ($(field deadlock outcome_detail))" \
	[ "$(field deadlock outcome)" = hang ] && field deadlock outcome_detail | grep -q "while a thread spins on a lock"
$K check "$TMP/deadlock" >"$TMP/check" 2>&1
check "check names it: worker-b spins on lock_a held by worker-a" grep -q "hang: worker-b spins on lock_a held by worker-a" "$TMP/check"
done_testing
