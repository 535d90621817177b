#!/bin/sh
# /init of the emulated Xen dom0 (built into dom0.cpio.gz by build.sh).
# Starts the Xen daemons (xenstored, xenconsoled), brings up eth0 on QEMU's
# user network (10.0.2.15, the host forwards a port to 10.0.2.15:8080), makes
# the empty bridge xenbr0 for guest VIFs, mounts the host's share (9p tag
# "hostshare") at /mnt/host and runs /mnt/host/run.sh. Progress lines start
# with DOM0_ on the console (hvc0, which Xen puts on QEMU's serial port).
# Kernel command line: xenmode=serve (default: stay up) | shell.
export PATH=/usr/lib/xen-4.17/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
up() { cut -d' ' -f1 /proc/uptime; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored /run/lock
hostname dom0
ip link set lo up
MODE=$(sed -n 's/.*xenmode=\([a-z]*\).*/\1/p' /proc/cmdline)
echo "DOM0_INIT uptime=$(up) mode=$MODE"
for m in xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkback xen-netback bridge loop; do
	modprobe $m || echo "DOM0_WARN modprobe $m failed"
done
mount -t xenfs xenfs /proc/xen
echo "DOM0_CAPS $(cat /proc/xen/capabilities)"
XENSTORED_ROOTDIR=/run/xenstored xenstored --pid-file /run/xenstore.pid
xen-init-dom0
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
echo "DOM0_XEN_DAEMONS_UP uptime=$(up)"
# guest VIFs go on xenbr0 (xenithd's default network bridge), which has no uplink
ip link add xenbr0 type bridge && ip link set xenbr0 up
modprobe virtio_pci
modprobe virtio_net
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/net/eth0 ] && break; sleep 0.5; done
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
	echo "DOM0_NET eth0=10.0.2.15"
fi
modprobe 9pnet_virtio
modprobe 9p
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hostshare /mnt/host; then
	echo "DOM0_9P /mnt/host"
	if [ -x /mnt/host/run.sh ]; then
		setsid /mnt/host/run.sh >/dev/console 2>&1 </dev/null &
		echo "DOM0_RUNSH started"
	fi
fi
echo "DOM0_READY uptime=$(up)"
case "$MODE" in
shell)
	echo "dom0 shell; 'poweroff -f' to stop"
	setsid cttyhack sh -l
	poweroff -f
	;;
*) while :; do sleep 3600; done ;;
esac
