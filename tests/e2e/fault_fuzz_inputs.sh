#!/usr/bin/env bash
# The fuzz targets (tests/fuzz/) replayed over their seed corpora and every
# regression input (crashers found by `make fuzz`, kept with their fix): each
# input runs once under ASan+UBSan; any crash fails. Deterministic, seconds.
. "$(dirname "$0")/lib.sh"

while IFS= read -r line; do
	case $line in
	"ok "*) ok "${line#ok * - }" ;;
	"not ok "*) not_ok "${line#not ok * - }" ;;
	"#"*) echo "$line" ;;
	esac
done < <(tests/fuzz/run.sh regress build/fuzz probe elfsym trace json 2>&1)
done_testing
