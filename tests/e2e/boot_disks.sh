#!/usr/bin/env bash
# Disks given the ways QEMU users give them, rewritten for record/replay
# (replay/disk.c, docs/disks.md), on the hobby kernel booted from its disk:
# a user's -blockdev chain (a raw node on a file node, a qcow2 node with its
# file inline, a bare file node) becomes the recording's qcow2 overlay and
# blkreplay, the top node's name kept for the user's -device; `-machine
# q35` with the disk on its AHCI (-drive if=none + -device ide-hd,bus=ide.0,
# and --image by index). Each records, has no finding, replays to its last
# switch and verifies; the user's images are left untouched. A chain
# krewind cannot rewrite is exit 2 with nothing left behind.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../hobby/lib.sh"
[ -e "$K" ] && [ -e "$IMG" ] && [ -e "$ELF" ] || { skip "boot disks" "the hobby kernel is not built"; done_testing; }
before=$(sha256sum "$IMG" | cut -d' ' -f1)
qemu-img convert -O qcow2 "$IMG" "$TMP/disk.qcow2"
qbefore=$(sha256sum "$TMP/disk.qcow2" | cut -d' ' -f1)

# records NAME REC ARGS...: records the hobby disk given by ARGS; it passed,
# has no finding, replays to its last switch and verifies.
records() {
	local name=$1 rec=$2
	shift 2
	$K record -q --symbols "$ELF" --probe "$PROBE" -o "$rec" "$@" >"$rec.out" 2>&1
	check "$name: recorded, outcome pass" [ "$(jq -r .outcome "$rec/manifest.json" 2>/dev/null)" = pass ]
	check "$name: ran to its end" grep -q "hobby: done, shared=40" "$rec/serial.log"
	check "$name: one blkreplay node over the overlay" \
		q jq -e '[.qemu_args[] | select(test("driver=blkreplay"))] | length == 1' "$rec/manifest.json"
	hobby_replays "$name" "$rec"
}
# the guest's result sector (LBA 201) as the recording's overlay holds it
result() { qemu-img convert -O raw "$1/disk0.qcow2" "$TMP/after.raw" && dd if="$TMP/after.raw" bs=512 skip=201 count=1 status=none | tr -d '\0'; }

# -blockdev chains
records "-blockdev raw on file" "$TMP/raw" -- -blockdev "driver=file,node-name=f0,filename=$IMG" \
	-blockdev driver=raw,node-name=boot,file=f0 -device ide-hd,drive=boot,bus=ide.0,unit=0
check "the user's nodes are gone, the top node's name is the blkreplay node's" \
	q jq -e '([.qemu_args[] | select(test("node-name=f0"))] | length) == 0 and
		 ([.qemu_args[] | select(. == "driver=blkreplay,node-name=boot,image=boot-overlay")] | length) == 1 and
		 (.qemu_args | index("ide-hd,drive=boot,bus=ide.0,unit=0")) != null' "$TMP/raw/manifest.json"
check "the guest's write is in the overlay" [ "$(result "$TMP/raw")" = "hobby: ran to the end" ]
records "-blockdev qcow2 with its file inline" "$TMP/qcow2" -- \
	-blockdev "driver=qcow2,node-name=hd,file.driver=file,file.filename=$TMP/disk.qcow2,cache.direct=off" \
	-device ide-hd,drive=hd,bus=ide.0,unit=0
check "the overlay is over the qcow2 as qcow2" q grep -q '"format": "qcow2"' <(qemu-img info --output=json "$TMP/qcow2/disk0.qcow2" | jq '{format: ."backing-filename-format"}')
records "-blockdev file node alone" "$TMP/file" -- -blockdev "driver=file,node-name=plain,filename=$IMG" \
	-device ide-hd,drive=plain,bus=ide.0,unit=0

# q35: the disk on its AHCI
records "q35 AHCI (-drive if=none + ide-hd,bus=ide.0)" "$TMP/q35" -- -machine q35 \
	-drive "file=$IMG,format=raw,if=none,id=d" -device ide-hd,drive=d,bus=ide.0
check "q35: the firmware booted it from AHCI, the kernel found no legacy IDE" \
	grep -q "no IDE disk at 0x1f0" "$TMP/q35/serial.log"
records "q35 --image (AHCI port 0)" "$TMP/q35i" --image "$IMG" -- -machine q35
check "q35 --image: ide-hd on AHCI port 0" q jq -e '(.qemu_args | index("ide-hd,drive=disk0,bus=ide.0,bootindex=0")) != null' "$TMP/q35i/manifest.json"

check "the user's raw image is unchanged" [ "$(sha256sum "$IMG" | cut -d' ' -f1)" = "$before" ]
check "the user's qcow2 image is unchanged" [ "$(sha256sum "$TMP/disk.qcow2" | cut -d' ' -f1)" = "$qbefore" ]

# a chain krewind cannot rewrite
$K record -q --symbols "$ELF" -o "$TMP/luks" -- -blockdev "driver=file,node-name=f,filename=$IMG" \
	-blockdev driver=luks,node-name=l,file=f -device ide-hd,drive=l >/dev/null 2>"$TMP/err"
check "-blockdev driver=luks: exit 2, one line naming it" [ $? -eq 2 ] && [ "$(wc -l <"$TMP/err")" = 1 ] &&
	grep -q "^krewind: error: .*driver=luks is not supported under record/replay (file, raw, qcow2)" "$TMP/err"
check "and no recording" [ ! -e "$TMP/luks" ]
$K record -q --symbols "$ELF" -o "$TMP/json" -- -blockdev '{"driver": "file", "node-name": "n", "filename": "x"}' >/dev/null 2>"$TMP/err"
check "-blockdev in JSON: exit 2" [ $? -eq 2 ] && grep -q "JSON is not supported, give key=value options" "$TMP/err"
check "and no recording" [ ! -e "$TMP/json" ]
done_testing
