#!/usr/bin/env bash
# The build on a fresh machine: nothing may depend on an installed package while
# make reads the Makefiles, because on a fresh machine scripts/install-deps.sh only
# runs later, as the first recipe ($(DEPS_STAMP)). A `:=` on `$(shell pkg-config ...)`
# is the classic way to break this (issue #10: glib.h not found on the first run).
#
# A copy of the tracked tree is built with the package tools replaced by shims that
# fail, and log, until a stub install-deps.sh has "installed" them. The real
# check on a debootstrap chroot is `make check-fresh` (../shared/tools/fresh-machine.sh).
. "$(dirname "$0")/lib.sh"

if ! git -C "$TOP" rev-parse --is-inside-work-tree >/dev/null 2>&1 || [ ! -s build/qemu/include/qemu-plugin.h ]; then
	skip "fresh build" "not a git checkout, or no plugin header in build/ yet"
	done_testing
fi
src=$TMP/src shims=$TMP/shims installed=$TMP/installed early=$TMP/early.log
mkdir -p "$src" "$shims"
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$src"/ 2>/dev/null
[ -s "$src/Makefile" ] || { not_ok "copy of the tracked tree" "no Makefile in $src"; done_testing; }

# Package tools a Makefile might be tempted to call at parse time.
for tool in pkg-config qemu-system-x86_64 clang gdb sqlite3 jq chromium; do
	real=$(command -v "$tool" || echo /nonexistent)
	cat >"$shims/$tool" <<SH
#!/bin/sh
if [ -e "$installed" ]; then exec "$real" "\$@"; fi
echo "$tool \$*" >>"$early"
exit 127
SH
	chmod +x "$shims/$tool"
done
# The stub install script: --check fails until it has run once; a run "installs"
# (lets the shims through) and seeds the plugin header as the real one would.
cat >"$src/scripts/install-deps.sh" <<SH
#!/bin/sh
if [ "\${1:-}" = --check ]; then [ -e "$installed" ]; exit; fi
touch "$installed"
mkdir -p build/qemu/include && cp "$TOP/build/qemu/include/qemu-plugin.h" build/qemu/include/
SH
chmod +x "$src/scripts/install-deps.sh"

fresh_make() { (cd "$src" && PATH="$shims:$PATH" make --no-print-directory "$@"); }

# 1. Reading the Makefiles runs no package tool. Every target parses the same
# files; deps and clean have recipes that expand nothing of the build's, so
# whatever is called under -n is called by the parse itself.
for target in deps clean; do
	rm -f "$early"
	fresh_make -n "$target" >"$TMP/n-$target.log" 2>&1
	if [ -s "$early" ]; then
		not_ok "reading the Makefiles (make -n $target) runs no package tool" \
			"called before install-deps: $(sort -u "$early" | tr '\n' ';')"
	else
		ok "reading the Makefiles (make -n $target) runs no package tool"
	fi
done
[ ! -e "$installed" ] && ok "make -n installed nothing" || not_ok "make -n installed nothing"

# 2. The first real build: install-deps runs first, then the plugin (glib) compiles.
rm -f "$early"
if fresh_make build/tracer/obj/tracer/plugin.o >"$TMP/plugin.log" 2>&1; then
	ok "first build on a fresh tree compiles the plugin (glib found after install-deps)"
else
	not_ok "first build on a fresh tree compiles the plugin (glib found after install-deps)" \
		"$(grep -m1 -E 'error|Error' "$TMP/plugin.log")"
fi
check "the install script ran before the plugin was compiled" test -e "$installed"
glib_inc=$(pkg-config --cflags-only-I glib-2.0 | awk '{print $1}')
check "the plugin was compiled with glib's include path" grep -qF -- "$glib_inc" "$TMP/plugin.log"

done_testing
