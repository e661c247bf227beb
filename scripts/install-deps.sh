#!/usr/bin/env bash
# Installs what krewind needs on Debian 12, and nothing that is already there.
#
# QEMU >= 10 comes from bookworm-backports: Debian 12's own 7.2 lacks the plugin
# register/memory API. The backports suite (and a deb-src entry for it) is derived
# from the mirror this machine already uses, so no mirror host is named here.
# qemu-plugin.h is not packaged: it is taken from the Debian source tarball of the
# installed QEMU, and only that header is extracted into build/.
#
# Usage: scripts/install-deps.sh [--check]   (--check: exit 1 if anything is missing)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
header=$build/qemu/include/qemu-plugin.h
min_qemu_major=10

packages=(gcc clang libclang-rt-14-dev make binutils gdb pkg-config sqlite3 libsqlite3-dev libcapstone-dev
          libelf-dev libdw-dev libcmocka-dev libglib2.0-dev qemu-utils xz-utils spin jq bc time chromium man-db
          python3 procps protobuf-compiler cpio busybox-static
          grub-pc-bin grub-common xorriso mtools) # grub-*, xorriso, mtools: the hobby kernel's GRUB ISO (tests/hobby)

say() { printf 'install-deps: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"
	elif command -v sudo >/dev/null; then sudo "$@"
	else die "need root or sudo to run: $*"; fi
}

qemu_major() {
	local v
	v=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p')
	echo "${v:-0}"
}

missing_packages() {
	local p
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
	done
}

# The base URI of the Debian archive this machine already uses (not the security one).
debian_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -e "$f" ] || continue
		uri=$(awk '
			/^[[:space:]]*$/ { if (deb && suite) { print uri; exit } deb = suite = 0; uri = "" }
			/^Types:/   { deb = ($0 ~ /(^|[ \t])deb([ \t]|$)/) }
			/^URIs:/    { uri = $2 }
			/^Suites:/  { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
			END         { if (deb && suite) print uri }' "$f" | head -n1)
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	if [ -e /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
			/etc/apt/sources.list)
		[ -n "$uri" ] && { echo "$uri"; return; }
	fi
	return 1
}

add_backports() {
	local list=/etc/apt/sources.list.d/krewind-backports.sources mirror
	[ -e "$list" ] && return 0
	mirror=$(debian_mirror) || die "no bookworm mirror found in /etc/apt/sources.list{,.d/*.sources}"
	say "adding bookworm-backports (deb, deb-src) from the configured mirror"
	as_root tee "$list" >/dev/null <<SRC
# Added by krewind's scripts/install-deps.sh: QEMU >= 10 and its source (for qemu-plugin.h).
Types: deb deb-src
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	apt_updated=0
}

# Another apt (a second checkout's make test, unattended-upgrades) may hold
# the dpkg lock: wait for it, a bounded while, rather than fail at once.
apt_wait="-o DPkg::Lock::Timeout=600"

apt_updated=0
apt_update() {
	[ "$apt_updated" -eq 1 ] && return 0
	as_root apt-get update -qq
	apt_updated=1
}

install_qemu() {
	[ "$(qemu_major)" -ge "$min_qemu_major" ] && return 0
	add_backports
	apt_update
	say "installing qemu-system-x86 from bookworm-backports"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install $apt_wait -y -qq -t bookworm-backports \
		qemu-system-x86 qemu-utils >/dev/null
	[ "$(qemu_major)" -ge "$min_qemu_major" ] || die "qemu-system-x86_64 is still older than $min_qemu_major.0"
}

fetch_plugin_header() {
	local version srcdir tarball
	[ -s "$header" ] && return 0
	add_backports
	version=$(dpkg-query -W -f='${source:Version}' qemu-system-x86 2>/dev/null) ||
		die "qemu-system-x86 is not installed from a Debian package"
	srcdir=$(mktemp -d)
	trap 'rm -rf "$srcdir"' RETURN
	say "fetching qemu-plugin.h from the Debian source of qemu $version"
	if ! (cd "$srcdir" && apt-get source -qq --download-only --tar-only "qemu=$version" >/dev/null 2>&1); then
		apt_updated=0
		apt_update
		(cd "$srcdir" && apt-get source -qq --download-only --tar-only "qemu=$version" >/dev/null) ||
			die "apt-get source qemu=$version failed"
	fi
	tarball=$(ls "$srcdir"/qemu_*.orig.tar.* 2>/dev/null | head -n1)
	[ -n "$tarball" ] || die "no qemu orig tarball downloaded"
	tar -xf "$tarball" -C "$srcdir" --wildcards --no-anchored 'include/qemu/qemu-plugin.h'
	mkdir -p "$(dirname "$header")"
	cp "$(find "$srcdir" -path '*include/qemu/qemu-plugin.h' | head -n1)" "$header.tmp"
	mv "$header.tmp" "$header"
}

if [ "${1:-}" = --check ]; then
	[ -z "$(missing_packages)" ] && [ "$(qemu_major)" -ge "$min_qemu_major" ] && [ -s "$header" ]
	exit
fi

missing=$(missing_packages | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
	apt_update
	say "installing: $missing"
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install $apt_wait -y -qq $missing >/dev/null
fi
install_qemu
fetch_plugin_header
say "ok: $(qemu-system-x86_64 --version | head -n1), plugin header in ${header#"$top"/}"
