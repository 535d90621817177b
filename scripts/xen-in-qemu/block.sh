#!/bin/sh
# /etc/xen/scripts/block of the emulated dom0 (installed by build.sh over
# Debian's). Debian's script (bash, locking, sharing checks) forks so much
# that under QEMU TCG it outlives libxl's 40 s hotplug timeout; this one does
# the same job for what the tests use, a VBD on a file or a block device:
#   add     attach the file to a free loop device (read-only for mode r) and
#           tell blkback which device: physical-device (major:minor, hex)
#   remove  detach the loop device
# libxl runs it with XENBUS_PATH=backend/vbd/DOMID/DEVID (relative to dom0's
# xenstore home). util-linux's losetup by path: libxl's PATH may find
# busybox's first, which has no --show.
set -u
fail() {
	xenstore-write "$XENBUS_PATH/hotplug-error" "$*" "$XENBUS_PATH/hotplug-status" error
	echo "block: $*" >&2
	exit 1
}
case "${1:-}" in
add)
	params=$(xenstore-read "$XENBUS_PATH/params") || fail "no params"
	mode=$(xenstore-read "$XENBUS_PATH/mode" 2>/dev/null || echo w)
	if [ -b "$params" ]; then
		dev=$params
	else
		[ -f "$params" ] || fail "$params: no such file"
		ro=
		[ "$mode" = r ] && ro=-r
		dev=$(/usr/sbin/losetup -f --show $ro "$params") || fail "losetup $params failed"
		xenstore-write "$XENBUS_PATH/node" "$dev"
	fi
	mm=$(stat -L -c '%t:%T' "$dev") || fail "stat $dev failed"
	xenstore-write "$XENBUS_PATH/physical-device" "$mm" "$XENBUS_PATH/physical-device-path" "$dev" \
		"$XENBUS_PATH/hotplug-status" connected
	;;
remove)
	node=$(xenstore-read "$XENBUS_PATH/node" 2>/dev/null || true)
	case "$node" in /dev/loop*) /usr/sbin/losetup -d "$node" ;; esac
	;;
*) exit 0 ;;
esac
