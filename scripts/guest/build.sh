#!/bin/sh
# Builds Xenith's test guest from Debian packages, cached between runs:
#   vmlinuz        Debian's kernel (linux-image-amd64, extracted with dpkg -x, not installed)
#   initramfs.gz   busybox-static + a few modules + init.sh as /init
#   disk1.ext4     a 16 MiB ext4 image holding MARKER "disk1" (mkfs.ext4 -d)
#   disk2.ext4     the same with MARKER "disk2" (for hotplug tests)
# Prints the cache directory on stdout (the only stdout line). The cache is
# $XENITH_GUEST_CACHE, else $XDG_CACHE_HOME/xenith/guest, else
# ~/.cache/xenith/guest. Needs: apt-get (Debian), dpkg, cpio, gzip, kmod
# (depmod), e2fsprogs, busybox-static (the host's /bin/busybox is copied).
# A second run with the same inputs does nothing.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${XENITH_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xenith/guest}
mkdir -p "$CACHE"
log() { echo "guest/build.sh: $*" >&2; }

BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || { log "need busybox-static (/bin/busybox)"; exit 1; }

# 1. The kernel package: the one linux-image-amd64 depends on.
KPKG=$(cat "$CACHE/kpkg.name" 2>/dev/null || true)
if [ -z "$KPKG" ] || ! ls "$CACHE/$KPKG"_*.deb >/dev/null 2>&1; then
	KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
	if [ -z "$KPKG" ]; then
		log "apt-get update (linux-image-amd64 unknown)"
		apt-get update -q >&2
		KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
	fi
	log "apt-get download $KPKG"
	(cd "$CACHE" && apt-get download -q "$KPKG" >&2)
	echo "$KPKG" >"$CACHE/kpkg.name"
fi
DEB=$(ls "$CACHE/$KPKG"_*.deb | head -n1)

# 2. Everything else is rebuilt when its inputs change.
KEY=$( (echo "$DEB"; cat "$HERE/build.sh" "$HERE/init.sh"; sha256sum "$BUSYBOX") | sha256sum | cut -c1-16)
if [ "$(cat "$CACHE/stamp" 2>/dev/null)" = "$KEY" ] && [ -f "$CACHE/vmlinuz" ] && [ -f "$CACHE/initramfs.gz" ] &&
	[ -f "$CACHE/disk1.ext4" ] && [ -f "$CACHE/disk2.ext4" ]; then
	echo "$CACHE"
	exit 0
fi
log "building the guest in $CACHE"
WORK=$(mktemp -d "$CACHE/work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
dpkg -x "$DEB" "$WORK/k"
KVER=$(ls "$WORK/k/lib/modules")
depmod -b "$WORK/k" "$KVER"
cp "$WORK/k/boot/vmlinuz-$KVER" "$WORK/vmlinuz"

R=$WORK/root
mkdir -p "$R/bin" "$R/sbin" "$R/proc" "$R/sys" "$R/dev" "$R/mnt" "$R/etc/acpi/PWRF" "$R/lib/modules/$KVER"
cp "$BUSYBOX" "$R/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
cp "$HERE/init.sh" "$R/init"
chmod 755 "$R/init"
printf '#!/bin/sh\necho XENITH-ACPI-POWEROFF >/dev/console\nsync\npoweroff -f\n' >"$R/etc/acpi/PWRF/00000080"
chmod 755 "$R/etc/acpi/PWRF/00000080"
DEP=$WORK/k/lib/modules/$KVER/modules.dep
files=""
for m in virtio_pci virtio_blk virtio_net virtio_balloon button evdev ext4 crc32c_generic ata_piix sr_mod; do
	line=$(grep -E "/$m\.ko(\.xz|\.zst)?:" "$DEP" || true)
	[ -n "$line" ] || continue # built in
	files="$files ${line%%:*} ${line#*:}"
done
for f in $(echo $files | tr ' ' '\n' | sort -u); do
	mkdir -p "$R/lib/modules/$KVER/$(dirname "$f")"
	cp "$WORK/k/lib/modules/$KVER/$f" "$R/lib/modules/$KVER/$f"
done
cp "$WORK/k/lib/modules/$KVER/modules.order" "$WORK/k/lib/modules/$KVER/modules.builtin" "$R/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$R" "$KVER"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -6) >"$WORK/initramfs.gz"

for n in 1 2; do
	mkdir -p "$WORK/d$n"
	echo "disk$n" >"$WORK/d$n/MARKER"
	rm -f "$WORK/disk$n.ext4"
	mkfs.ext4 -q -F -L "xdisk$n" -d "$WORK/d$n" "$WORK/disk$n.ext4" 16M >&2
done

for f in vmlinuz initramfs.gz disk1.ext4 disk2.ext4; do mv -f "$WORK/$f" "$CACHE/$f"; done
echo "$KEY" >"$CACHE/stamp"
log "kernel $KVER, initramfs $(wc -c <"$CACHE/initramfs.gz") bytes"
echo "$CACHE"
