#!/bin/sh
# PID 1 of Xenith's test guest (busybox, in an initramfs). It talks on the
# serial console (ttyS0) only:
#   prints  XENITH-GUEST-UP            at every boot
#           XENITH-DISK <dev> <marker> for every ext4 disk it finds (also hot-plugged ones)
#           XENITH-DEVS blk=[...] net=[...] cpu=[...]  whenever the device set or
#                                      the online vCPUs change (hot-plugged vCPUs are onlined)
#           XENITH-CD <first bytes>|none  after "xcmd readcd" (the CD drive sr0)
#           XENITH-TICK <n> up=<s>     every second (guest time; stops while paused)
#           XENITH-ACPI-POWEROFF       when the ACPI power button is pressed (then powers off)
#           XENITH-CTRL-ALT-DEL        on Ctrl-Alt-Del (then reboots)
#           XENITH-NET <dev> <addr>    when it configured an address (see below)
#           XENITH-PING-OK <ip> / XENITH-PING-FAIL <ip>  after "xcmd ping <ip>"
#   obeys   lines "xcmd <what> [args]" typed on the serial console, what one of:
#           hang (ignore the power button from now on), reboot, poweroff, panic,
#           ifup <dev> <addr/prefix> (configure and bring up a NIC),
#           ping <ip> (up to 20 one-second tries; the result as a marker),
#           readcd (what the CD drive holds)
#   network xenith.ip=<addr/prefix> on the kernel command line (PV_args) is
#           given to eth0 at boot.
export PATH=/bin:/sbin
# Ctrl-Alt-Del (QEMU send-key, a clean reboot request) reaches PID 1 as SIGINT.
trap 'echo XENITH-CTRL-ALT-DEL; reboot -f' INT
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
# The kernel reboots at once on Ctrl-Alt-Del unless init asks for SIGINT.
echo 0 >/proc/sys/kernel/ctrl-alt-del
echo "XENITH-GUEST-UP uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in virtio_pci virtio_blk virtio_net virtio_balloon button evdev crc32c_generic ext4 ata_piix sr_mod; do modprobe $m 2>/dev/null; done
acpid -c /etc/acpi -l /dev/null 2>/dev/null
echo "XENITH-MODULES uptime=$(cut -d' ' -f1 /proc/uptime)"
ifup() {
	ip link set "$1" up && ip addr add "$2" dev "$1" && echo "XENITH-NET $1 $2" || echo "XENITH-NET-FAIL $1 $2"
}
pingit() {
	n=0
	while [ $n -lt 20 ]; do
		if ping -c 1 -W 1 "$1" >/dev/null 2>&1; then echo "XENITH-PING-OK $1"; return; fi
		n=$((n + 1))
	done
	echo "XENITH-PING-FAIL $1"
}
# The first read after a medium change fails (unit attention): try thrice.
readcd() {
	for n in 1 2 3; do
		c=$(head -c 24 /dev/sr0 2>/dev/null | tr -cd 'A-Za-z0-9-')
		[ -n "$c" ] && break
		sleep 1
	done
	echo "XENITH-CD ${c:-none}"
}
ip link set lo up
for arg in $(cat /proc/cmdline); do
	case "$arg" in xenith.ip=*) ifup eth0 "${arg#xenith.ip=}";; esac
done
# Commands from the serial console.
(
	while read -r word what rest; do
		[ "$word" = xcmd ] || continue
		case "$what" in
		hang) killall acpid; echo "XENITH-HUNG";;
		reboot) echo "XENITH-REBOOTING"; reboot -f;;
		poweroff) echo "XENITH-POWEROFF"; poweroff -f;;
		panic) echo "XENITH-PANIC"; echo c >/proc/sysrq-trigger;;
		ifup) set -- $rest; ifup "$1" "$2";;
		ping) set -- $rest; pingit "$1" &;;
		readcd) readcd;;
		*) echo "XENITH-UNKNOWN $what";;
		esac
	done </dev/console
) &
mkdir -p /mnt
seen=" "
devs() {
	for c in /sys/devices/system/cpu/cpu[0-9]*/online; do
		[ -e "$c" ] && [ "$(cat "$c")" = 0 ] && echo 1 >"$c"
	done
	echo "blk=[$(ls /sys/block | tr '\n' ' ')] net=[$(ls /sys/class/net | tr '\n' ' ')] cpu=[$(cat /sys/devices/system/cpu/online)]"
}
last=""
i=0
while :; do
	d=$(devs)
	if [ "$d" != "$last" ]; then
		echo "XENITH-DEVS $d"
		last=$d
		for b in /sys/block/vd* /sys/block/sd*; do
			[ -e "$b" ] || continue
			n=${b##*/}
			case "$seen" in *" $n "*) continue;; esac
			seen="$seen$n "
			mkdir -p /mnt/$n
			if mount -o ro -t ext4 /dev/$n /mnt/$n 2>/dev/null; then
				echo "XENITH-DISK $n $(cat /mnt/$n/MARKER 2>/dev/null)"
				umount /mnt/$n
			fi
		done
	fi
	echo "XENITH-TICK $i up=$(cut -d' ' -f1 /proc/uptime)"
	i=$((i + 1))
	sleep 1
done
