#!/bin/sh
# embed.sh OUT.c PAGE.html: writes the report page as a C byte array,
# cli_report_template[] (NUL-terminated) and cli_report_template_len, for
# cmd_report.c. Only POSIX od and sed: nothing to install.
set -e
out=$1
in=$2
{
	echo "/* Generated from $in by ui-cli/report/embed.sh; do not edit. */"
	echo "#include <stddef.h>"
	echo "const unsigned char cli_report_template[] = {"
	od -An -v -tx1 "$in" | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
	echo "0};"
	echo "const size_t cli_report_template_len = $(wc -c <"$in");"
} >"$out.tmp"
mv "$out.tmp" "$out"
