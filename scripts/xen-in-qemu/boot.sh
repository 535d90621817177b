#!/bin/bash
# Boots the images build.sh made: Xen 4.17 + a PV dom0 in QEMU under TCG (no
# KVM or Xen needed on the host). The host folder SHARE is 9p-mounted in dom0
# at /mnt/host and dom0 runs SHARE/run.sh once it is up (see dom0-init.sh);
# host 127.0.0.1:HOSTPORT is forwarded to dom0's port 8080. QEMU's network is
# user-mode with restrict=on: dom0 cannot reach out.
#
# Usage: boot.sh SHARE HOSTPORT [serve|shell]
# The serial console (Xen and dom0) goes to stdout. The script execs QEMU, so
# its pid is QEMU's: kill it to stop everything.
# Env: XENITH_XEN_CACHE (as build.sh), SMP (2), MEM (MiB, 2048),
# DOM0_MEM (768M), CPU (max,-smap,-rdtscp: see README.md),
# XEN_EXTRA (more Xen command line), HOSTPORT2 (host 127.0.0.1:HOSTPORT2 is
# forwarded to dom0's port 8081 too).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARE=${1:?usage: boot.sh SHARE HOSTPORT [serve|shell]}
HOSTPORT=${2:?usage: boot.sh SHARE HOSTPORT [serve|shell]}
MODE=${3:-serve}
CACHE=$("$HERE/build.sh")
SMP=${SMP:-2}
MEM=${MEM:-2048}
DOM0_MEM=${DOM0_MEM:-768M}
CPU=${CPU:-max,-smap,-rdtscp}
FWD2=
if [ -n "${HOSTPORT2:-}" ]; then # a second port, to dom0's 8081
	FWD2=",hostfwd=tcp:127.0.0.1:$HOSTPORT2-10.0.2.15:8081"
fi
# spec-ctrl=eager-fpu: Xen's default on an AMD CPU (what TCG's "max" is) is
# lazy FPU switching (CR0.TS and #NM), which TCG does not emulate faithfully:
# a vCPU then runs on another domain's SIMD registers, and every SSE/AVX
# computation in dom0 (Go's argon2 and sha256 among them) can come out wrong
# while a domU runs. Eager switching saves and restores the state at every
# context switch. XEN_EXTRA adds arguments to Xen's command line.
XEN_ARGS="console=com1 com1=115200,8n1 dom0_mem=$DOM0_MEM,max:$DOM0_MEM dom0_max_vcpus=$SMP loglvl=all guest_loglvl=all console_timestamps=boot spec-ctrl=eager-fpu${XEN_EXTRA:+ $XEN_EXTRA}"
DOM0_ARGS="console=hvc0 earlyprintk=xen rdinit=/init loglevel=5 xenmode=$MODE"
QEMU=(qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu "$CPU" -smp "$SMP" -m "$MEM"
	-nographic -no-reboot -monitor none
	-kernel "$CACHE/xen.elf" -append "$XEN_ARGS"
	-initrd "$CACHE/vmlinuz $DOM0_ARGS,$CACHE/dom0.cpio.gz"
	-netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$HOSTPORT-10.0.2.15:8080$FWD2"
	-device "virtio-net-pci,netdev=n0"
	-fsdev "local,id=fs0,path=$SHARE,security_model=none"
	-device "virtio-9p-pci,fsdev=fs0,mount_tag=hostshare")
echo "+ ${QEMU[*]}" >&2
if [ "$MODE" = shell ]; then
	exec "${QEMU[@]}" -serial mon:stdio
fi
exec "${QEMU[@]}" -serial stdio </dev/null
