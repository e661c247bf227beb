#!/usr/bin/env bash
# Debian's stock Linux as a test subject: fetches, unpacks and builds what a
# recording of it needs, once, and prints where it is.
#
#   scripts/linux-subject.sh [--fetch-only]
#
# Prints shell assignments on stdout (eval them):
#   LINUX_KVER      e.g. 6.1.0-57-cloud-amd64
#   LINUX_VMLINUZ   the bzImage to boot (from linux-image-KVER)
#   LINUX_VMLINUX   its unstripped ELF with DWARF (from linux-image-KVER-dbg)
#   LINUX_HEADERS   /usr/src/linux-headers-KVER (the kbuild tree modules build against)
#   LINUX_INITRD    the initramfs: busybox, /init (tests/linux/init), the test modules
#
# Downloads (apt-get download, never installed: a kernel package would touch
# this machine's /boot) are unpacked with dpkg-deb under the cache directory,
# $KREWIND_LINUX_CACHE or build/linux, shared by every checkout that points
# there. Only the vmlinux of the -dbg package is extracted (not the debug files
# of every module). The headers are installed with apt-get, as a module
# developer would. The modules (tests/linux/modules) and the initramfs are
# built under $BUILD/linux (default build/linux), rebuilt when their sources
# change. KREWIND_LINUX_KVER pins a version (default: what the
# linux-image-cloud-amd64 meta-package depends on).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
cache=${KREWIND_LINUX_CACHE:-$top/build/linux}
out=$build/linux

say() { printf 'linux-subject: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"
	elif command -v sudo >/dev/null; then sudo "$@"
	else die "need root or sudo to run: $*"; fi
}

# The version the cloud meta-package points at, e.g. 6.1.0-57-cloud-amd64.
current_kver() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^ *Depends: linux-image-\([0-9].*-cloud-amd64\)$/\1/p' | head -n1
}

kver=${KREWIND_LINUX_KVER:-}
if [ -z "$kver" ]; then
	kver=$(current_kver)
	if [ -z "$kver" ]; then
		as_root apt-get update -qq
		kver=$(current_kver)
	fi
fi
[ -n "$kver" ] || die "apt-cache knows no linux-image-cloud-amd64 (is a bookworm mirror configured?)"
[[ $kver =~ ^[0-9][0-9a-z.+~-]*-cloud-amd64$ ]] || die "bad kernel version '$kver'"

kdir=$cache/$kver
vmlinuz=$kdir/vmlinuz
vmlinux=$kdir/vmlinux

# fetch PACKAGE: downloads PACKAGE's .deb into $kdir/debs once (a partial
# download is never mistaken for a whole one: apt-get writes it under a
# temporary directory first).
fetch() {
	local pkg=$1 tmp sandbox=()
	ls "$kdir"/debs/"${pkg}"_*.deb >/dev/null 2>&1 && return 0
	mkdir -p "$kdir/debs"
	tmp=$(mktemp -d "$kdir/debs/.dl.XXXXXX")
	say "downloading $pkg (once; cached in $kdir/debs)"
	# As root, apt's _apt sandbox user cannot write here: download as root.
	[ "$(id -u)" -eq 0 ] && chmod 755 "$tmp" && sandbox=(-o APT::Sandbox::User=root)
	if ! (cd "$tmp" && apt-get download -qq "${sandbox[@]}" "$pkg" >/dev/null); then
		rm -rf "$tmp"
		die "apt-get download $pkg failed"
	fi
	mv "$tmp"/*.deb "$kdir/debs/"
	rmdir "$tmp"
}

if [ ! -s "$vmlinuz" ]; then
	fetch "linux-image-$kver"
	rm -rf "$kdir/image.tmp"
	dpkg-deb -x "$kdir"/debs/linux-image-"${kver}"_*.deb "$kdir/image.tmp"
	cp "$kdir/image.tmp/boot/vmlinuz-$kver" "$vmlinuz.tmp"
	cp "$kdir/image.tmp/boot/config-$kver" "$kdir/config"
	rm -rf "$kdir/image.tmp"
	mv "$vmlinuz.tmp" "$vmlinuz"
fi
if [ ! -s "$vmlinux" ]; then
	fetch "linux-image-$kver-dbg"
	say "unpacking vmlinux from linux-image-$kver-dbg"
	rm -rf "$kdir/dbg.tmp"
	mkdir -p "$kdir/dbg.tmp"
	dpkg-deb --fsys-tarfile "$kdir"/debs/linux-image-"${kver}"-dbg_*.deb |
		tar -x -C "$kdir/dbg.tmp" "./usr/lib/debug/boot/vmlinux-$kver"
	mv "$kdir/dbg.tmp/usr/lib/debug/boot/vmlinux-$kver" "$vmlinux"
	rm -rf "$kdir/dbg.tmp"
fi
[ "${1:-}" = --fetch-only ] && { printf 'LINUX_KVER=%q\nLINUX_VMLINUZ=%q\nLINUX_VMLINUX=%q\n' "$kver" "$vmlinuz" "$vmlinux"; exit 0; }

headers=/usr/src/linux-headers-$kver
if [ ! -e "$headers/Makefile" ]; then
	say "installing linux-headers-$kver"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -o DPkg::Lock::Timeout=600 -y -qq "linux-headers-$kver" >/dev/null ||
		die "apt-get install linux-headers-$kver failed"
fi
busybox=/bin/busybox
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' && [ -x "$busybox" ] ||
	die "no static busybox (apt-get install busybox-static; scripts/install-deps.sh)"
command -v cpio >/dev/null || die "no cpio (scripts/install-deps.sh)"

# The test modules: built in a copy of tests/linux/modules (kbuild writes next
# to its sources), again when a source is newer than the last build.
src=$top/tests/linux/modules
mods=$out/modules-$kver
stamp=$mods/.built
if [ ! -e "$stamp" ] || [ -n "$(find "$src" -newer "$stamp" -print -quit)" ]; then
	say "building the test modules against $headers"
	rm -rf "$mods"
	mkdir -p "$mods"
	cp "$src"/* "$mods/"
	make -s -C "$headers" M="$mods" modules >"$mods/build.log" 2>&1 ||
		{ cat "$mods/build.log" >&2; die "building the test modules failed"; }
	touch "$stamp"
fi

# The initramfs: busybox, /init, the modules. Rebuilt when any input changed.
initrd=$out/initramfs-$kver.cpio
if [ ! -s "$initrd" ] || [ "$top/tests/linux/init" -nt "$initrd" ] || [ "$stamp" -nt "$initrd" ] ||
	[ "$busybox" -nt "$initrd" ]; then
	root=$out/initramfs.tmp
	rm -rf "$root"
	mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,lib/krbug}
	cp "$busybox" "$root/bin/busybox"
	cp "$top/tests/linux/init" "$root/init"
	chmod 755 "$root/init"
	cp "$mods"/*.ko "$root/lib/krbug/"
	(cd "$root" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --reproducible --quiet) >"$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$root"
fi

printf 'LINUX_KVER=%q\nLINUX_VMLINUZ=%q\nLINUX_VMLINUX=%q\nLINUX_HEADERS=%q\nLINUX_INITRD=%q\n' \
	"$kver" "$vmlinuz" "$vmlinux" "$headers" "$initrd"
