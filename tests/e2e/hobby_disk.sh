#!/usr/bin/env bash
# The hobby kernel of our own (tests/hobby/): booted from its raw disk image
# through its own boot sector, recorded with `record --image` and
# probes/hobby.probe and no change to the kernel: every construct of the
# probe gives what it should (threads from cpus[0].proc and swtch's context
# slot, the EOI through a register, int $0x30 as software traps), the clean
# run has no finding, the disk's writes go to the recording's overlay (the
# image is untouched), and the run replays and verifies with its disk. A
# planted AB-BA (a configuration sector on a copy of the disk) is named by
# check. Other ways to give the disk (-hda, -drive if=none + -device) record
# and verify too; -blockdev and a kernel QEMU refuses are errors with QEMU's
# own words and leave nothing behind (user -blockdev chains and q35's AHCI:
# boot_disks.sh).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../hobby/lib.sh"
[ -e "$K" ] && [ -e "$IMG" ] && [ -e "$ELF" ] || { skip "hobby kernel" "not built"; done_testing; }
before=$(sha256sum "$IMG" | cut -d' ' -f1)

rec=$TMP/clean
$K record -q --image "$IMG" --symbols "$ELF" --probe "$PROBE" -o "$rec" >"$TMP/out" 2>&1
check "record --image: exit 0" [ $? -eq 0 ]
check "the guest ran to its end (outcome pass)" grep -q "recorded .*: pass" "$TMP/out"
check "the serial log says done" grep -q "hobby: done, shared=40" "$rec/serial.log"
check "no -kernel on the recorded command line" [ "$(jq '[.qemu_args[] | select(. == "-kernel")] | length' "$rec/manifest.json")" = 0 ]
check "the disk goes through blkreplay over a qcow2 overlay" \
	q jq -e '[.qemu_args[] | select(test("driver=blkreplay"))] | length == 1' "$rec/manifest.json"
check "the image is an input of the recording" [ "$(jq -r '.inputs[] | select(.file=="disk0.img") | .sha256' "$rec/manifest.json")" = "$before" ]

# what the probe's constructs give
names=$(sql "$rec" "SELECT DISTINCT t1.name || '>' || t2.name FROM events e JOIN threads t1 ON t1.addr = e.a JOIN threads t2 ON t2.addr = e.b WHERE e.kind = 'switch' ORDER BY 1" | tr '\n' ' ')
check "switches name both threads from the context slot and cpus[0].proc ($names)" \
	[ "$names" = "init>worker-a worker-a>worker-b worker-b>init " ]
check "no event without a current thread after the first switch" \
	[ "$(sql "$rec" "SELECT count(*) FROM events WHERE thread = 0 AND id > (SELECT min(id) FROM events WHERE kind = 'switch')")" = 0 ]
eoi=$(sql "$rec" "SELECT count(*) FROM events WHERE kind = 'eoi' AND pc >= (SELECT addr FROM symbols WHERE name = 'lapiceoi') AND pc < (SELECT addr + size FROM symbols WHERE name = 'lapiceoi')")
timer=$(sql "$rec" "SELECT count(*) FROM events WHERE kind = 'trap' AND a = 32")
check "every timer interrupt's EOI through mov %esi,(%rax) is seen ($eoi EOIs, $timer timer traps)" [ "$eoi" -gt 0 ] && [ "$eoi" = "$timer" ]
check "int \$0x30 system calls are software traps in process context" \
	[ "$(sql "$rec" "SELECT count(*) FROM events WHERE kind = 'trap' AND a = 48 AND (flags & 4) = 0")" = 0 ]
check "the untyped swtch label is noted as sized to the next symbol" grep -q "swtch has no size" <($K info "$rec")
$K check "$rec" >"$TMP/check" 2>&1
check "check on the clean run: exit 0, no findings" [ $? -eq 0 ] && grep -qi "^no findings" "$TMP/check"

# the disk: written in the overlay, not in the image
check "the user's image is unchanged" [ "$(sha256sum "$IMG" | cut -d' ' -f1)" = "$before" ]
qemu-img convert -O raw "$rec/disk0.qcow2" "$TMP/after.raw"
check "the guest's write is in the overlay" grep -q "hobby: ran to the end" <(dd if="$TMP/after.raw" bs=512 skip=201 count=1 status=none)
check "and not in the image" [ "$(dd if="$IMG" bs=512 skip=201 count=1 status=none | tr -d '\0')" = "" ]

# replay and verify with the disk
last=$(sql "$rec" "SELECT max(id) FROM events WHERE kind = 'switch'")
$K replay "$rec" --to "$last" >"$TMP/replay" 2>&1
check "replay --to the last switch ($last) arrives" [ $? -eq 0 ] && grep -q "before event $last" "$TMP/replay"
$K verify "$rec" >"$TMP/verify" 2>&1
check "verify: deterministic with the disk" [ $? -eq 0 ] && grep -q "deterministic" "$TMP/verify"
$K verify "$rec" >"$TMP/verify2" 2>&1
check "and again (every replay starts from the disk as it was)" [ $? -eq 0 ]

# a planted AB-BA, chosen by the configuration sector of a copy of the disk
cp "$IMG" "$TMP/abba.img"
printf 'bug=abba\0' | dd of="$TMP/abba.img" bs=512 seek=200 conv=notrunc status=none
q $K record -q --image "$TMP/abba.img" --symbols "$ELF" --probe "$PROBE" -o "$TMP/abba"
$K check "$TMP/abba" >"$TMP/check-abba" 2>&1
check "check names the AB-BA (exit 1, lock-order lock_a/lock_b)" [ $? -eq 1 ] &&
	grep -q "lock-order: possible circular locking dependency: lock_a -> lock_b -> lock_a" "$TMP/check-abba"
check "and nothing else" grep -q "^1 finding" "$TMP/check-abba"

# a planted irq-unsafe lock: tickslock, taken by the timer interrupt, held
# by a worker with interrupts turned back on
cp "$IMG" "$TMP/irqlock.img"
printf 'bug=irqlock\0' | dd of="$TMP/irqlock.img" bs=512 seek=200 conv=notrunc status=none
q $K record -q --image "$TMP/irqlock.img" --symbols "$ELF" --probe "$PROBE" -o "$TMP/irqlock"
$K check "$TMP/irqlock" >"$TMP/check-irqlock" 2>&1
check "check names the irq-unsafe tickslock (exit 1)" [ $? -eq 1 ] &&
	grep -q "irq-unsafe-lock: inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage of tickslock" "$TMP/check-irqlock"

# xv6's preemption: the timer interrupt yields after its EOI, so threads
# switch inside interrupt frames and the scheduler lock is handed across
# those switches too; still no finding, and it replays exactly
cp "$IMG" "$TMP/preempt.img"
printf 'preempt work=300\0' | dd of="$TMP/preempt.img" bs=512 seek=200 conv=notrunc status=none
q $K record -q --image "$TMP/preempt.img" --symbols "$ELF" --probe "$PROBE" -o "$TMP/preempt"
inirq=$(sql "$TMP/preempt" "SELECT count(*) FROM events WHERE kind = 'switch' AND ctx = 'hardirq'")
check "preempted in the timer interrupt: $inirq switches in hardirq context" [ "$inirq" -gt 10 ]
$K check "$TMP/preempt" >"$TMP/check-preempt" 2>&1
check "check on it: no findings" [ $? -eq 0 ]
check "and it verifies" q $K verify "$TMP/preempt"

# other ways to give the disk
$K record -q --symbols "$ELF" --probe "$PROBE" -o "$TMP/hda" -- -hda "$IMG" >/dev/null 2>&1
check "record -- -hda DISK: pass" [ "$(jq -r .outcome "$TMP/hda/manifest.json")" = pass ]
$K record -q --symbols "$ELF" -o "$TMP/none" -- -drive "file=$IMG,format=raw,if=none,id=boot" \
	-device ide-hd,drive=boot,bus=ide.0,unit=0 >/dev/null 2>&1
check "record -- -drive if=none,id=boot -device ide-hd,drive=boot: pass" [ "$(jq -r .outcome "$TMP/none/manifest.json")" = pass ]
check "and it verifies" q $K verify "$TMP/none"

# more disks beside the boot disk: a qcow2 on AHCI (if=none + the user's
# -device), a raw one on virtio-blk; the firmware reads them at boot
qemu-img create -q -f qcow2 "$TMP/data1.qcow2" 8M
truncate -s 4M "$TMP/data2.img"
$K record -q --image "$IMG" --symbols "$ELF" --probe "$PROBE" -o "$TMP/multi" -- -device ahci,id=ahci \
	-drive "file=$TMP/data1.qcow2,if=none,id=d1" -device ide-hd,drive=d1,bus=ahci.0 \
	-drive "file=$TMP/data2.img,format=raw,if=virtio" >/dev/null 2>&1
check "record with AHCI and virtio-blk disks too: pass" [ "$(jq -r .outcome "$TMP/multi/manifest.json")" = pass ]
check "three blkreplay nodes" [ "$(jq '[.qemu_args[] | select(test("driver=blkreplay"))] | length' "$TMP/multi/manifest.json")" = 3 ]
check "and it verifies" q $K verify "$TMP/multi"

# errors: one message, exit 2, nothing left behind
$K record -q --image "$IMG" -o "$TMP/bd" -- -blockdev driver=nbd,node-name=n,server.type=unix,server.path=/x >/dev/null 2>"$TMP/err"
check "a -blockdev krewind cannot rewrite: exit 2 saying which option" [ $? -eq 2 ] &&
	grep -q "option 'server.type=unix' is not supported under record/replay" "$TMP/err"
check "and no recording" [ ! -e "$TMP/bd" ]
# an ELF with neither a PVH note nor a multiboot header (the hobby ELF has one)
printf 'hlt\n' | as -o "$TMP/nopvh.o" - && ld -Ttext=0x100000 -e 0x100000 -o "$TMP/nopvh.elf" "$TMP/nopvh.o"
$K record -q --kernel "$TMP/nopvh.elf" -o "$TMP/pvh" >/dev/null 2>"$TMP/err"
rc=$?
check "a kernel QEMU refuses: exit 2 ($rc)" [ $rc -eq 2 ]
check "with QEMU's own words" grep -q "Error loading uncompressed kernel without PVH ELF Note" "$TMP/err"
check "not a plugin assertion" [ "$(grep -ci assert "$TMP/err")" = 0 ]
check "and no recording" [ ! -e "$TMP/pvh" ]
check "the image is still unchanged" [ "$(sha256sum "$IMG" | cut -d' ' -f1)" = "$before" ]
done_testing
