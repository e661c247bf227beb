#!/usr/bin/env bash
# Writes the krewind(1) man page from the help texts the binary prints: the
# overview of `krewind help` and, per command, `krewind help COMMAND` (usage
# lines, description, options). The help texts are the one source; this script
# only turns them into roff, so the page cannot drift from the commands.
#
# Usage: scripts/mkman.sh KREWIND OUT.1 [PREFIX]   (PREFIX for FILES; default /usr/local)
set -euo pipefail
krewind=$1 out=$2 prefix=${3:-/usr/local}

# roff-safe text: backslashes, a leading dot or quote, and dashes as \-.
esc() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

overview=$("$krewind" help)
version=$("$krewind" --version | awk '{print $2}')
commands=$(printf '%s\n' "$overview" | awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}')
[ -n "$commands" ] || { echo "mkman: no commands in '$krewind help'" >&2; exit 1; }

{
	echo '.TH KREWIND 1 "" "krewind '"$version"'" "krewind manual"'
	echo '.SH NAME'
	echo 'krewind \- record, check and replay a kernel'"'"'s run under QEMU'
	echo '.SH SYNOPSIS'
	printf '%s\n' "$overview" | sed -n 's/^usage: //p' | esc | sed 's/^/.B /'
	echo '.br'
	echo '.B krewind help'
	echo '.I COMMAND'
	echo '.SH DESCRIPTION'
	# The overview's paragraphs before and after the command list.
	printf '%s\n' "$overview" | awk '
		NR == 1 { next }
		/^commands:/ { skip = 1; next }
		skip && /^$/ { skip = 0; next }
		skip { next }
		/^$/ { print ".PP"; next }
		{ print }' | esc | sed 's/^\\&\.PP$/.PP/; s/^\.PP$/.PP/' | sed '1{/^\.PP$/d}'
	echo '.SH COMMANDS'
	for c in $commands; do
		summary=$(printf '%s\n' "$overview" | awk -v c="$c" '/^commands:/ {on = 1; next} on && $1 == c {sub(/^ *[^ ]+ +/, ""); print; exit}')
		echo ".SS $c"
		printf '%s\n' "$summary" | esc
		"$krewind" help "$c" | awk '
			function flush_para() { if (para) { print ".PP"; para = 0 } }
			/^usage: / || /^   or: / { sub(/^(usage|   or): /, ""); print ".PP\n.nf\n.B " $0 "\n.fi"; next }
			/^options:$/ { opts = 1; print ".PP\nOptions:"; next }
			opts && /^   / {
				line = substr($0, 4)
				if (match(line, /^(-[A-Za-z0-9], )?( *)--[a-z0-9-]+( [^ ]+)?/)) {
					left = substr(line, 1, RLENGTH); help = substr(line, RLENGTH + 1)
					sub(/^ +/, "", left); sub(/^ +/, "", help)
					print ".TP\n.B " left "\n" help
				}
				next
			}
			/^$/ { para = 1; next }
			{ flush_para(); print }' | esc | sed -e 's/^\\&\.\(PP\|nf\|fi\|TP\)$/.\1/' -e 's/^\\&\.B /.B /'
	done
	cat <<EOF
.SH FILES
.TP
.I traces/
recordings, one directory each (or \\fB\$KREWIND_TRACES\\fR)
.TP
.I $prefix/lib/krewind/libkrewind.so
the QEMU tracer plugin (\\fB\$KREWIND_PLUGIN\\fR)
.TP
.I $prefix/share/krewind/kernel.elf
krewind's kernel under test, booted by \\fBrecord \\-\\-scenario\\fR (\\fB\$KREWIND_KERNEL\\fR)
.TP
.I $prefix/share/krewind/probes/
probe files: what a kernel's functions mean to the tracer
.TP
.I $prefix/share/krewind/krewind\\-gdb.py
the gdb extension of \\fBgdb\\fR and \\fBbisect\\fR (\\fB\$KREWIND_GDB_PY\\fR)
.PP
In a build tree the same files are found beside the binary (build/).
EOF
} >"$out.tmp"
mv "$out.tmp" "$out"
