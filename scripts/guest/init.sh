#!/bin/sh
# PID 1 of Xenith's test guest (busybox, in an initramfs). It talks on the
# serial console (ttyS0) only:
#   prints  XENITH-GUEST-UP            at every boot
#           XENITH-DISK <dev> <marker> for every ext4 disk it finds (also hot-plugged ones)
#           XENITH-DEVS blk=[...] net=[...]  whenever the device set changes
#           XENITH-TICK <n> up=<s>     every second (guest time; stops while paused)
#           XENITH-ACPI-POWEROFF       when the ACPI power button is pressed (then powers off)
#           XENITH-CTRL-ALT-DEL        on Ctrl-Alt-Del (then reboots)
#   obeys   lines "xcmd <what>" typed on the serial console, what one of:
#           hang (ignore the power button from now on), reboot, poweroff, panic
export PATH=/bin:/sbin
# Ctrl-Alt-Del (QEMU send-key, a clean reboot request) reaches PID 1 as SIGINT.
trap 'echo XENITH-CTRL-ALT-DEL; reboot -f' INT
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "XENITH-GUEST-UP uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in virtio_pci virtio_blk virtio_net virtio_balloon button evdev crc32c_generic ext4; do modprobe $m 2>/dev/null; done
acpid -c /etc/acpi -l /dev/null 2>/dev/null
echo "XENITH-MODULES uptime=$(cut -d' ' -f1 /proc/uptime)"
# Commands from the serial console.
(
	while read -r word what rest; do
		[ "$word" = xcmd ] || continue
		case "$what" in
		hang) killall acpid; echo "XENITH-HUNG";;
		reboot) echo "XENITH-REBOOTING"; reboot -f;;
		poweroff) echo "XENITH-POWEROFF"; poweroff -f;;
		panic) echo "XENITH-PANIC"; echo c >/proc/sysrq-trigger;;
		*) echo "XENITH-UNKNOWN $what";;
		esac
	done </dev/console
) &
mkdir -p /mnt
seen=" "
devs() { echo "blk=[$(ls /sys/block | tr '\n' ' ')] net=[$(ls /sys/class/net | tr '\n' ' ')]"; }
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
