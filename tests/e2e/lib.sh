# Sourced by end-to-end tests: TAP output, QEMU helpers, temporary directories.
#
#   ok "name" / not_ok "name" "why" / check "name" CMD... / skip "name" "why"
#   done_testing   (last line of every test; exits non-zero if anything failed)
# BUILD is set by tests/run.sh (default build). TMP is removed on exit.
set -u
BUILD=${BUILD:-build}
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$TOP" || exit 2
TMP=$(mktemp -d "${TMPDIR:-/tmp}/krewind-e2e.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
_tap_n=0 _tap_failed=0

ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1"; }
not_ok() {
	_tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $1"
	[ $# -gt 1 ] && printf '#   %s\n' "$2"
	return 0
}
skip() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1 # SKIP ${2:-}"; }
# check NAME CMD...: passes if CMD exits 0.
check() {
	local name=$1; shift
	if "$@"; then ok "$name"; else not_ok "$name" "command failed: $*"; fi
}
done_testing() {
	echo "1..$_tap_n"
	[ "$_tap_failed" -eq 0 ]
	exit $?
}

KERNEL=$BUILD/kernel/kernel.elf
[ -e "$KERNEL" ] || KERNEL=build/kernel/kernel.elf

# boot_kernel SCENARIO TIMEOUT_S OUTFILE [extra qemu args]: boots our kernel under
# plain QEMU; sets BOOT_RC to QEMU's exit status (124 = timed out, i.e. a hang).
boot_kernel() {
	local scenario=$1 timeout_s=$2 out=$3; shift 3
	timeout -s KILL "$timeout_s" qemu-system-x86_64 -cpu max -m 128M -kernel "$KERNEL" \
		-append "scenario=$scenario" -serial stdio -display none -no-reboot -monitor none \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 "$@" </dev/null >"$out" 2>&1
	BOOT_RC=$?
	[ "$BOOT_RC" -eq 137 ] && BOOT_RC=124
	return 0
}
