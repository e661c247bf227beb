#!/usr/bin/env bash
# Large inputs are not copied into a recording (replay/recording.c): our
# kernel recorded with a 40 MB symbols ELF (the kernel padded past the 32 MB
# copy limit) gets a hard link, reflink or reference with its sha256 and
# build-id in the manifest; a changed or missing original stops any replay
# with exit 2; `krewind pack` copies it in; small inputs stay copies.
source "$(dirname "$0")/lib.sh"
K=$BUILD/krewind
[ -e "$K" ] && [ -e "$KERNEL" ] || { skip "record inputs" "not built"; done_testing; }

big=$TMP/big.elf
cp "$KERNEL" "$big"
truncate -s 40M "$big"
rec=$TMP/rec
$K record -q --scenario clean --symbols "$big" -o "$rec" >"$TMP/out" 2>&1
check "record with a 40 MB symbols ELF: exit 0" [ $? -eq 0 ]
quiet() { "$@" >/dev/null 2>&1; }
input() { jq -r --arg f "$1" ".inputs[] | select(.file==\$f) | .$2" "$rec/manifest.json"; }
check "the small kernel is copied ($(input kernel.elf stored))" [ "$(input kernel.elf stored)" = copy ]
stored=$(input symbols.elf stored)
check "the large symbols ELF is not copied ($stored)" [ "$stored" = hardlink ] || [ "$stored" = reflink ] || [ "$stored" = reference ]
check "its sha256 is in the manifest" [ "$(input symbols.elf sha256)" = "$(sha256sum "$big" | cut -d' ' -f1)" ]
id=$(readelf -n "$KERNEL" 2>/dev/null | sed -n 's/.*Build ID: //p')
if [ -n "$id" ]; then
	check "its build-id is in the manifest" [ "$(input symbols.elf build_id)" = "$id" ]
else
	skip "its build-id is in the manifest" "the kernel has no build-id note"
fi
check "an unchanged input replays" quiet $K replay "$rec" --to 5
cp -a "$rec" "$TMP/rec2"   # a copy whose symbols.elf is a file of its own
printf 'X' | dd of="$big" bs=1 seek=100 conv=notrunc 2>/dev/null
if [ "$stored" = reflink ]; then
	skip "a changed original is refused" "reflinked: the recording kept its own blocks"
else
	$K replay "$rec" --to 5 >/dev/null 2>"$TMP/err"
	rc=$?
	check "a changed original: replay exit 2, one line naming it" [ $rc -eq 2 ] && grep -q "symbols.elf.*changed since" "$TMP/err" &&
		[ "$(wc -l <"$TMP/err")" -eq 1 ]
fi
rm -f "$big"
$K pack "$TMP/rec2" >"$TMP/pack"
check "pack: exit 0 ($(head -n1 "$TMP/pack"))" [ $? -eq 0 ]
check "pack: the symbols ELF is a copy now" [ "$(jq -r '.inputs[] | select(.file=="symbols.elf") | .stored' "$TMP/rec2/manifest.json")" = copy ] &&
	[ ! -L "$TMP/rec2/symbols.elf" ] && [ "$(stat -c %h "$TMP/rec2/symbols.elf")" -eq 1 ]
check "pack: the packed recording replays" quiet $K replay "$TMP/rec2" --to 5
rm -f "$TMP/rec2/symbols.elf"
$K replay "$TMP/rec2" --to 5 >/dev/null 2>"$TMP/err"
rc=$?
check "a missing input: replay exit 2, says it is gone" [ $rc -eq 2 ] && grep -q "symbols.elf is gone" "$TMP/err"
$K pack "$TMP/rec2" >/dev/null 2>"$TMP/err"
check "pack of a recording with a missing input: exit 2" [ $? -eq 2 ]
$K pack "$TMP/no-such" >/dev/null 2>"$TMP/err"
check "pack of no recording: exit 2, one line" [ $? -eq 2 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ]
done_testing
