#!/bin/bash
# Builds what tests/e2e/xen_test.go boots: Debian 12's Xen 4.17 hypervisor with
# a Linux PV dom0 (Debian's kernel) running from an initramfs that holds
# busybox, the Xen tools (xl, xenstored, xenconsoled, hotplug scripts) and
# their libraries, plus a tiny busybox PV guest for dom0 to run.
#
# Everything is cached (default $XDG_CACHE_HOME/xenith/xen-in-qemu, or
# $XENITH_XEN_CACHE) and rebuilt only when this script, dom0-init.sh or the
# downloaded packages change. Prints the cache directory (the only stdout line):
#   xen.elf        the hypervisor (ELF32 multiboot, what QEMU -kernel wants)
#   vmlinuz        the kernel, for dom0 and for the guest
#   vmlinux        the same kernel uncompressed (xl creates a PV guest from
#                  it in ~2 s under TCG instead of ~8 s for the xz bzImage)
#   dom0.cpio.gz   dom0's initramfs (/init = dom0-init.sh)
#   domU.cpio.gz   the guest's initramfs (busybox init; prints DOMU_READY,
#                  DOMU_TICK n on hvc0; obeys xl shutdown / sysrq)
#   guest/         tests/peers/python/driver_scenario.py's guest for Xen
#                  (vmlinuz, initramfs.gz, disk1.ext4, disk2.ext4)
# xenithd is not in the initramfs: boot.sh shares a host folder over 9p and
# dom0 runs its run.sh, so a rebuilt xenithd needs no new initramfs.
#
# Needs: apt-get/apt-cache/dpkg (Debian 12), cpio, gzip, xz, kmod (depmod),
# file, ldd, bash, flock and losetup (util-linux, copied into dom0 for the
# hotplug scripts), mkfs.ext4.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${XENITH_XEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xenith/xen-in-qemu}
DEBS=$CACHE/debs
X=$CACHE/x
log() { echo "xen-in-qemu/build.sh: $*" >&2; }
export PATH=$PATH:/usr/sbin:/sbin
mkdir -p "$DEBS"

for t in cpio gzip xz depmod modprobe file ldd ldconfig dpkg apt-get mkfs.ext4 flock losetup; do
	command -v "$t" >/dev/null || { log "missing host tool: $t"; exit 1; }
done

# ------------------------------------------------------------- 1. packages
PKGS="xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils
      libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenmisc4.17
      libxenstore4 libxentoollog1 libxentoolcore1 libxenhypfs1 libxendevicemodel1
      libyajl2 libncurses6 libtinfo6 busybox-static qemu-system-xen"
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$KPKG" ]; then
	log "apt-get update (linux-image-amd64 unknown)"
	apt-get update -q >&2
	KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
FETCHED=.fetched-$KPKG-$(echo $PKGS | sha256sum | cut -c1-8) # new packages: fetch again
if [ ! -f "$CACHE/$FETCHED" ]; then
	log "apt-get download (kernel $KPKG)"
	rm -f "$DEBS"/*.deb
	chmod 777 "$DEBS" # apt's _apt sandbox user writes here
	# shellcheck disable=SC2086
	(cd "$DEBS" && apt-get download -q $PKGS "$KPKG" >&2)
	rm -rf "$X" && mkdir -p "$X"
	for d in "$DEBS"/*.deb; do dpkg -x "$d" "$X"; done
	rm -f "$CACHE"/.fetched-*
	touch "$CACHE/$FETCHED"
fi

GUEST_INIT=$HERE/../guest/init.sh # the driver scenario's guest, shared with the qemu tests
KEY=$( (ls "$DEBS"; cat "$HERE/build.sh" "$HERE/dom0-init.sh" "$HERE/block.sh" "$GUEST_INIT") | sha256sum | cut -c1-16)
if [ "$(cat "$CACHE/stamp" 2>/dev/null)" = "$KEY" ]; then
	echo "$CACHE"
	exit 0
fi
log "building images in $CACHE"
KVER=$(ls "$X/lib/modules" | head -1)
[ -f "$X/lib/modules/$KVER/modules.dep" ] || depmod -b "$X" "$KVER" # the guest's and dom0's modprobe need it
cp "$X/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"
zcat "$X/boot/xen-4.17-amd64.gz" >"$CACHE/xen.elf"
off=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$CACHE/vmlinuz" | awk -F: 'NR==1{print $1}')
tail -c +$((off + 1)) "$CACHE/vmlinuz" | xz -dc --single-stream >"$CACHE/vmlinux" 2>/dev/null || true
[ -s "$CACHE/vmlinux" ] || { log "cannot extract vmlinux from the bzImage"; exit 1; }

busybox_tree() { # $1 = root
	mkdir -p "$1"/{bin,proc,sys,dev,etc,tmp,run,root,mnt}
	cp "$X/bin/busybox" "$1/bin/busybox"
	for a in $("$X/bin/busybox" --list); do [ -e "$1/bin/$a" ] || ln -s busybox "$1/bin/$a"; done
	ln -sfn bin "$1/sbin"
}

# ------------------------------------------------------------- 2. the guest
RU=$CACHE/domuroot
rm -rf "$RU" && busybox_tree "$RU"
ln -s bin/busybox "$RU/init" # busybox init as PID 1: xl shutdown / sysrq work
cat >"$RU/etc/inittab" <<'EOT'
::sysinit:/etc/rc
::respawn:/bin/ticker
::shutdown:/bin/echo DOMU_SHUTDOWN
EOT
cat >"$RU/etc/rc" <<'EOT'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev 2>/dev/null
echo 1 > /proc/sys/kernel/sysrq # every SysRq key, c (crash) included, for xl sysrq
echo "DOMU_READY uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"
EOT
cat >"$RU/bin/ticker" <<'EOT'
#!/bin/sh
i=0; while :; do i=$((i+1)); echo "DOMU_TICK $i"; sleep 1; done
EOT
chmod +x "$RU/etc/rc" "$RU/bin/ticker"
(cd "$RU" && find . | cpio -o -H newc --quiet | gzip -1) >"$CACHE/domU.cpio.gz"

# ------------------------------------------- 2b. the driver scenario's guest
# guest/: what tests/peers/python/driver_scenario.py boots (--guest), as
# scripts/guest/build.sh makes it for qemu, but for a Xen PV domain: the
# uncompressed kernel (named vmlinuz, as the scenario expects), xen-blkfront
# and xen-netfront, scripts/guest/init.sh with Xen's disk names (xvdX)
# reported as the scenario knows them (vdX), and, for the power-off request
# Xen sends through xenstore (the kernel runs /sbin/poweroff), the same
# XENITH-ACPI-POWEROFF line as the ACPI button under qemu, ignored once
# "xcmd hang" was typed.
RG=$CACHE/guestroot
rm -rf "$RG" "$CACHE/guest" && busybox_tree "$RG" && mkdir -p "$CACHE/guest" "$RG/etc/acpi/PWRF"
sed -e 's|^for m in virtio_pci |for m in xen-blkfront xen-netfront virtio_pci |' \
	-e 's|for b in /sys/block/vd\* /sys/block/sd\*; do|for b in /sys/block/vd* /sys/block/sd* /sys/block/xvd*; do|' \
	-e 's|echo "XENITH-DISK \$n |echo "XENITH-DISK ${n#x} |' \
	-e "s#ls /sys/block | tr#ls /sys/block | sed 's/^xvd/vd/' | tr#" \
	-e 's|hang) killall acpid;|hang) killall acpid; : >/xenith-hung;|' "$GUEST_INIT" >"$RG/init"
for want in 'for m in xen-blkfront' '/sys/block/xvd\*' 'XENITH-DISK \${n#x}' "sed 's/^xvd/vd/'" ': >/xenith-hung'; do
	grep -q "$want" "$RG/init" || { log "scripts/guest/init.sh changed: cannot adapt it for Xen ($want)"; exit 1; }
done
chmod 755 "$RG/init"
rm "$RG/bin/poweroff"
cat >"$RG/bin/poweroff" <<'EOT'
#!/bin/sh
# /sbin/poweroff: run by the kernel when Xen asks the guest to power off
[ "$1" = -f ] && exec busybox poweroff -f
[ -e /xenith-hung ] && exit 0
echo XENITH-ACPI-POWEROFF >/dev/console
sync
exec busybox poweroff -f
EOT
chmod 755 "$RG/bin/poweroff"
for m in xen-blkfront xen-netfront ext4 crc32c_generic; do modprobe -d "$X" -S "$KVER" --show-depends "$m"; done |
	awk '$1=="insmod"{print $2}' | sort -u | while read -r ko; do
	rel=${ko#"$X"/}
	mkdir -p "$RG/$(dirname "$rel")"
	cp "$ko" "$RG/$rel"
done
cp "$X/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$RG/lib/modules/$KVER/"
depmod -b "$RG" "$KVER"
(cd "$RG" && find . | cpio -o -H newc --quiet | gzip -1) >"$CACHE/guest/initramfs.gz"
ln -f "$CACHE/vmlinux" "$CACHE/guest/vmlinuz" 2>/dev/null || cp "$CACHE/vmlinux" "$CACHE/guest/vmlinuz"
for n in 1 2; do
	rm -rf "$RG/d$n" && mkdir -p "$RG/d$n" && echo "disk$n" >"$RG/d$n/MARKER"
	mkfs.ext4 -q -F -L "xdisk$n" -d "$RG/d$n" "$CACHE/guest/disk$n.ext4" 16M >&2
done
rm -rf "$RG"

# ------------------------------------------------------------- 3. dom0
R0=$CACHE/dom0root
rm -rf "$R0" && busybox_tree "$R0"
mkdir -p "$R0"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,lib/x86_64-linux-gnu,var/lib/xen,var/lib/xenstored,var/log/xen/console,etc/xen,mnt/host,lib/modules}
ln -s ../run "$R0/var/run"
cp -a "$X/usr/lib/xen-4.17" "$R0/usr/lib/"
rm -rf "$R0/usr/lib/xen-4.17/lib/python" "$R0/usr/lib/xen-4.17/boot/xen-shim"
# HVM guests: QEMU's Xen device model (Debian's qemu-system-xen, where libxl
# looks for it), hvmloader (kept above), SeaBIOS and QEMU's ROMs and
# keymaps, taken from the host's QEMU packages (scripts/install-test-deps.sh
# installs qemu-system-x86, which brings them).
mkdir -p "$R0/usr/libexec" "$R0/usr/share/qemu" "$R0/usr/share/seabios" "$R0/usr/lib/ipxe"
cp -a "$X/usr/libexec/xen-qemu-system-i386" "$R0/usr/libexec/"
cp -aL /usr/share/seabios/. "$R0/usr/share/seabios/"
for f in keymaps kvmvapic.bin linuxboot.bin linuxboot_dma.bin multiboot.bin multiboot_dma.bin pvh.bin sgabios.bin vgabios*.bin; do
	[ -e "/usr/share/qemu/$f" ] && cp -aL "/usr/share/qemu/$f" "$R0/usr/share/qemu/"
done
[ -d /usr/lib/ipxe/qemu ] && cp -aL /usr/lib/ipxe/qemu "$R0/usr/lib/ipxe/"
cp -a "$X/usr/lib/xen-common" "$R0/usr/lib/"
cp -a "$X"/usr/lib/x86_64-linux-gnu/lib{xen,xlutil,yajl,ncurses,tinfo}* "$R0/usr/lib/x86_64-linux-gnu/" 2>/dev/null || true
cp -a "$X"/lib/x86_64-linux-gnu/lib{ncurses,tinfo}* "$R0/usr/lib/x86_64-linux-gnu/" 2>/dev/null || true
cp -a "$X"/usr/bin/xenstore* "$R0/usr/bin/"
cp -a "$X/etc/xen/." "$R0/etc/xen/"
cp /bin/bash "$R0/usr/bin/bash" # the hotplug scripts in /etc/xen/scripts are bash
ln -s /usr/bin/bash "$R0/bin/bash" 2>/dev/null || true
# the block hotplug script (a VBD on a file: a loop device) needs
# util-linux's flock and losetup (--show, -a), which busybox lacks
mkdir -p "$R0/usr/sbin"
cp "$(command -v flock)" "$R0/usr/bin/flock"
cp "$(command -v losetup)" "$R0/usr/sbin/losetup"
# kernel modules: dom0 drivers and backends, virtio net + 9p, bridge, loop
mods="xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkback xen-netback
      virtio_pci virtio_net 9pnet_virtio 9p bridge loop"
[ -f "$X/lib/modules/$KVER/modules.dep" ] || depmod -b "$X" "$KVER"
for m in $mods; do modprobe -d "$X" -S "$KVER" --show-depends "$m"; done |
	awk '$1=="insmod"{print $2}' | sort -u | while read -r ko; do
	rel=${ko#"$X"/}
	mkdir -p "$R0/$(dirname "$rel")"
	cp "$ko" "$R0/$rel"
done
cp "$X/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$R0/lib/modules/$KVER/"
depmod -b "$R0" "$KVER"
# glibc dlopen()s libgcc_s for pthread_cancel; xl aborts without it.
cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$R0/lib/x86_64-linux-gnu/"
# shared-library closure of every ELF in the tree (from the tree, else from
# the host, which is Debian 12 like the packages)
lp=$R0/usr/lib/x86_64-linux-gnu:$R0/lib/x86_64-linux-gnu:$R0/usr/lib/xen-4.17/lib/x86_64-linux-gnu
for _ in 1 2 3; do
	find "$R0" -type f \( -perm -u+x -o -name '*.so*' \) | while read -r f; do
		file -b "$f" | grep -q 'ELF.*dynamic' || continue
		LD_LIBRARY_PATH=$lp ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\/lib64/{print $1}'
	done | sort -u | while read -r lib; do
		case $lib in "$R0"/*) continue ;; esac
		mkdir -p "$R0$(dirname "$lib")"
		[ -e "$R0$lib" ] || cp -L "$lib" "$R0$lib"
	done
done
printf '/usr/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/xen-4.17/lib/x86_64-linux-gnu\n' >"$R0/etc/ld.so.conf"
ldconfig -r "$R0"
miss=$(for b in "$R0"/usr/lib/xen-4.17/bin/* "$R0"/usr/bin/xenstore* "$R0"/usr/libexec/xen-qemu-system-i386; do
	LD_LIBRARY_PATH=$lp ldd "$b" 2>/dev/null | grep "not found" | sed "s|^|$(basename "$b"): |" || true
done | sort -u)
[ -z "$miss" ] || { log "unresolved libraries in dom0:"; echo "$miss" >&2; exit 1; }
install -m 0755 "$HERE/block.sh" "$R0/etc/xen/scripts/block"
install -m 0755 "$HERE/dom0-init.sh" "$R0/init"
(cd "$R0" && find . | cpio -o -H newc --quiet | gzip -1) >"$CACHE/dom0.cpio.gz"
rm -rf "$R0" "$RU"
echo "$KEY" >"$CACHE/stamp"
log "done: $(du -sh "$CACHE/dom0.cpio.gz" | cut -f1) dom0 initramfs"
echo "$CACHE"
