#!/usr/bin/env bash
# Runs each benchmark script with BUILD set; they print their own ratios.
set -u
build=$1; shift
status=0
for b in "$@"; do
	echo "== $(basename "$b" .sh)"
	BUILD=$build bash "$b" || { echo "bench $b failed" >&2; status=1; }
	echo
done
exit $status
