#!/usr/bin/env bash
# Boot paths other than a kernel's own boot sector, on the hobby kernel of
# our own (tests/hobby/: one ELF with a Multiboot header using the address
# fields, the a.out kludge of 64-bit hobby kernels, and a Multiboot2
# header; hobby-pvh.elf with a PVH note instead): Multiboot (v1) and PVH by
# QEMU's -kernel (`record --kernel ELF`, the command line from --append),
# and Multiboot2 through real GRUB from a
# grub-mkrescue image given as a CD (-cdrom) and as a hard disk (-drive
# ...,format=raw). Each is recorded with probes/hobby.probe and no change to
# the kernel, says which loader booted it, has no finding, replays to its
# last switch and verifies (the boot image's reads through blkreplay); the
# images are left untouched. A planted AB-BA given on the command line is
# found.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../hobby/lib.sh"
ISO=build/tests/hobby/grub.iso
[ -e "$K" ] && [ -e "$ELF" ] || { skip "boot paths" "the hobby kernel is not built"; done_testing; }

# boots NAME REC LOADER: the run passed, says LOADER booted it, has the
# hobby kernel's threads, no finding, replays to its last switch and
# verifies.
boots() {
	local name=$1 rec=$2 loader=$3
	check "$name: recorded, outcome pass" [ "$(jq -r .outcome "$rec/manifest.json" 2>/dev/null)" = pass ]
	check "$name: booted by $loader" grep -q "^hobby: booted by $loader\$" "$rec/serial.log"
	check "$name: ran to its end" grep -q "hobby: done, shared=40" "$rec/serial.log"
	check "$name: the probe names the switches" \
		[ "$(sql "$rec" "SELECT count(DISTINCT t.name) FROM events e JOIN threads t ON t.addr = e.b WHERE e.kind = 'switch'")" = 3 ]
	hobby_replays "$name" "$rec"
}

# Multiboot (v1) by QEMU's -kernel
$K record -q --kernel "$ELF" --probe "$PROBE" --append "preempt work=300" -o "$TMP/mb1" >"$TMP/mb1.out" 2>&1
check "record --kernel ELF (Multiboot): exit 0" [ $? -eq 0 ]
check "-kernel on the recorded command line, no disk" \
	q jq -e '(.qemu_args | index("-kernel")) != null and ([.qemu_args[] | select(test("blkreplay"))] | length) == 0' "$TMP/mb1/manifest.json"
boots "Multiboot -kernel" "$TMP/mb1" "a Multiboot loader"
check "the command line reached the kernel: preempted in the timer interrupt" \
	[ "$(sql "$TMP/mb1" "SELECT count(*) FROM events WHERE kind = 'switch' AND ctx = 'hardirq'")" -gt 0 ]
q $K record -q --kernel "$ELF" --probe "$PROBE" --append "bug=abba" -o "$TMP/mb1-abba"
$K check "$TMP/mb1-abba" >"$TMP/mb1-abba.check" 2>&1
check "--append bug=abba: check names the AB-BA (exit 1)" [ $? -eq 1 ] &&
	grep -q "lock-order: possible circular locking dependency: lock_a -> lock_b -> lock_a" "$TMP/mb1-abba.check"

# PVH by QEMU's -kernel
$K record -q --kernel build/tests/hobby/hobby-pvh.elf --probe "$PROBE" -o "$TMP/pvh" >"$TMP/pvh.out" 2>&1
check "record --kernel hobby-pvh.elf (PVH): exit 0" [ $? -eq 0 ]
boots "PVH -kernel" "$TMP/pvh" "a PVH loader"
q $K record -q --kernel build/tests/hobby/hobby-pvh.elf --probe "$PROBE" --append "bug=abba" -o "$TMP/pvh-abba"
$K check "$TMP/pvh-abba" >"$TMP/pvh-abba.check" 2>&1
check "PVH --append bug=abba: check names the AB-BA (exit 1)" [ $? -eq 1 ] &&
	grep -q "lock-order: possible circular locking dependency: lock_a -> lock_b -> lock_a" "$TMP/pvh-abba.check"

# Multiboot2 through GRUB, from its rescue image
if [ -e "$ISO" ]; then
	before=$(sha256sum "$ISO" | cut -d' ' -f1)
	$K record -q --symbols "$ELF" --probe "$PROBE" -o "$TMP/cd" -- -cdrom "$ISO" >"$TMP/cd.out" 2>&1
	check "record -- -cdrom grub.iso: exit 0" [ $? -eq 0 ]
	check "the CD is an ide-cd on blkreplay over the recording's overlay" \
		q jq -e '[.qemu_args[] | select(test("^ide-cd,drive=disk0"))] | length == 1' "$TMP/cd/manifest.json"
	boots "GRUB CD" "$TMP/cd" "a Multiboot2 loader"
	check "GRUB ran first (tens of millions of instructions before the kernel's first event)" \
		[ "$(sql "$TMP/cd" "SELECT min(icount) FROM events")" -gt 10000000 ]
	$K record -q --symbols "$ELF" --probe "$PROBE" -o "$TMP/hd" -- -drive "file=$ISO,format=raw" >"$TMP/hd.out" 2>&1
	check "record -- -drive file=grub.iso,format=raw (a GRUB disk image): exit 0" [ $? -eq 0 ]
	boots "GRUB hard disk" "$TMP/hd" "a Multiboot2 loader"
	check "the GRUB image is unchanged" [ "$(sha256sum "$ISO" | cut -d' ' -f1)" = "$before" ]
else
	skip "GRUB boots" "build/tests/hobby/grub.iso is not built (needs grub-pc-bin, xorriso: scripts/install-deps.sh)"
fi
done_testing
