#!/usr/bin/env bash
# make install / uninstall (scripts/install.mk): into a temporary DESTDIR, the
# installed copy alone records and checks a scenario from another working
# directory (no KREWIND_* overrides, nothing taken from the build tree), its man
# page renders, its bash completion completes commands, options, scenarios and
# recording names, and uninstall leaves no file behind.
. "$(dirname "$0")/lib.sh"

if [ ! -x build/krewind ] || [ ! -e build/kernel/kernel.elf ] || [ ! -e build/tracer/libkrewind.so ]; then
	skip "install" "krewind, the kernel or the plugin is not built"
	done_testing
fi
unset KREWIND_PLUGIN KREWIND_KERNEL KREWIND_GDB_PY KREWIND_TRACES
stage=$TMP/stage prefix=/opt/kr-test
root=$stage$prefix

same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi; }

make --no-print-directory -s install DESTDIR="$stage" PREFIX="$prefix" >"$TMP/install.log" 2>&1
same "make install DESTDIR=... PREFIX=... exits 0" "$?" 0
for f in bin/krewind lib/krewind/libkrewind.so share/krewind/kernel.elf share/krewind/probes/krewind.probe \
	share/krewind/probes/linux.probe share/krewind/krewind-gdb.py share/krewind/krewind-bisect.py \
	share/man/man1/krewind.1 share/bash-completion/completions/krewind; do
	check "installed $f" test -s "$root/$f"
done
check "the binary is executable" test -x "$root/bin/krewind"

# Run the installed copy from elsewhere, with the build tree out of its PATH and
# cwd and, where a private mount namespace can be had (root), out of reach: an
# empty tmpfs mounted over the checkout for the command's lifetime.
work=$TMP/work
mkdir -p "$work"
case $TMP in "$TOP"/*) hide=0 ;; *) hide=1 ;; esac
[ $hide -eq 1 ] && unshare -m sh -c 'mount -t tmpfs tmpfs "$1" && [ -z "$(ls -A "$1")" ]' _ "$TOP" 2>/dev/null || hide=0
inst() {
	if [ $hide -eq 1 ]; then
		(cd "$work" && PATH="$root/bin:/usr/bin:/bin" unshare -m sh -c \
			'mount -t tmpfs tmpfs "$1" && shift && exec krewind "$@"' _ "$TOP" "$@")
	else
		(cd "$work" && PATH="$root/bin:/usr/bin:/bin" krewind "$@")
	fi
}
if [ $hide -eq 1 ]; then ok "the build tree is hidden from the installed copy (tmpfs over $TOP)"
else skip "the build tree is hidden from the installed copy" "no private mount namespace here"; fi
inst record --scenario eoi-before-switch -q >"$TMP/rec.out" 2>"$TMP/rec.err"
same "the installed krewind records a scenario from another directory" "$?" 0
rec=$work/traces/eoi-before-switch-1
check "the recording is in that directory's traces/" test -s "$rec/manifest.json"
if grep -qF "$TOP" "$rec/manifest.json"; then
	not_ok "the recording names nothing in the build tree" "$(grep -F "$TOP" "$rec/manifest.json" | head -3)"
else
	ok "the recording names nothing in the build tree"
fi
check "it used the installed plugin" grep -qF "$root/lib/krewind/libkrewind.so" "$rec/manifest.json"
check "and the installed kernel" grep -qF "$root/share/krewind/kernel.elf" "$rec/manifest.json"
inst check eoi-before-switch-1 >"$TMP/check.out" 2>&1
same "the installed krewind checks it (findings: exit 1)" "$?" 1
check "check names the eoi-before-switch bug" grep -qi 'eoi' "$TMP/check.out"
inst replay eoi-before-switch-1 --to 5 --json >"$TMP/replay.out" 2>"$TMP/replay.err"
same "the installed krewind replays it to event 5" "$?" 0

# The man page: renders without warnings and documents every command.
man=$root/share/man/man1/krewind.1
MANWIDTH=100 man -l "$man" >"$TMP/man.txt" 2>"$TMP/man.err"
same "man -l renders krewind.1" "$?" 0
check "the page is titled krewind(1)" grep -q '^KREWIND(1)' "$TMP/man.txt"
warnings=$(groff -man -ww -z "$man" 2>&1)
same "groff has no warnings on it" "$warnings" ""
missing=
for c in $(build/krewind help | awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}'); do
	grep -qE "^   $c\$" "$TMP/man.txt" || missing="$missing $c"
done
same "every command has a section" "$missing" ""
check "options come from the help texts (events --around)" grep -q -- '--around ID' "$TMP/man.txt"
check "FILES names the installed prefix" grep -qF "$prefix/lib/krewind/libkrewind.so" "$TMP/man.txt"

# Completion, as bash calls it: COMP_WORDS / COMP_CWORD, the function complete -p names.
complete_words() { # WORD... (the last is the one being completed)
	(cd "$work" && PATH="$root/bin:/usr/bin:/bin" bash -c '
		. "$1"; shift
		fn=$(complete -p krewind | sed -n "s/.*-F \([^ ]*\) krewind$/\1/p")
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		"$fn" krewind "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$root/share/bash-completion/completions/krewind" "$@")
}
same "completes a command (krewind ev)" "$(complete_words krewind ev)" events
same "completes an option (krewind events --ar)" "$(complete_words krewind events --ar)" --around
same "completes a scenario (krewind record --scenario eoi-b)" \
	"$(complete_words krewind record --scenario eoi-b)" eoi-before-switch
same "completes a recording name (krewind check eoi)" "$(complete_words krewind check eoi)" eoi-before-switch-1

make --no-print-directory -s uninstall DESTDIR="$stage" PREFIX="$prefix" >"$TMP/uninstall.log" 2>&1
same "make uninstall exits 0" "$?" 0
same "uninstall leaves no file" "$(find "$stage" ! -type d | head -5)" ""
same "nor a krewind directory" "$(find "$stage" -name '*krewind*' | head -5)" ""

done_testing
