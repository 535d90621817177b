#!/usr/bin/env bash
# Install the peer clients used by tests/e2e (TestPeers):
#   - Debian's python3-os-xenapi (XenAPI.py for /usr/bin/python3)
#   - the npm package xen-api (Xen Orchestra's connector), pinned in
#     tests/peers/node/package.json + package-lock.json, into
#     tests/peers/node/node_modules
# For a Debian (bookworm) machine with Go and Node already installed. Run as
# root (or with sudo available). Idempotent: a second run only checks.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_DIR="$ROOT/tests/peers/node"
LOG="$(mktemp -t xenith-test-deps.XXXXXX)"
trap 'rc=$?; echo "install-test-deps: FAILED (exit $rc) at line $LINENO: $BASH_COMMAND" >&2; \
      echo "----- log -----" >&2; cat "$LOG" >&2; rm -f "$LOG"; exit $rc' ERR
trap 'rm -f "$LOG"' EXIT

say() { echo "install-test-deps: $*"; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "install-test-deps: need root (or sudo) to run: $*" >&2
		return 1
	fi
}

# --- Python: python3-os-xenapi for Debian's /usr/bin/python3 ------------------
if /usr/bin/python3 -c 'import os_xenapi.client.XenAPI' >/dev/null 2>&1; then
	say "python3-os-xenapi: already installed"
else
	export DEBIAN_FRONTEND=noninteractive
	# apt-get update only when the package lists do not know the package yet.
	if ! apt-cache policy python3-os-xenapi 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		say "apt-get update"
		as_root apt-get update -q >>"$LOG" 2>&1
	fi
	say "apt-get install python3-os-xenapi"
	as_root apt-get install -y -q --no-install-recommends python3-os-xenapi >>"$LOG" 2>&1
	/usr/bin/python3 -c 'import os_xenapi.client.XenAPI' >>"$LOG" 2>&1
fi

# --- qemu-img (Debian qemu-utils) for qcow2 VDIs of the file SR ---------------
if command -v qemu-img >/dev/null 2>&1; then
	say "qemu-utils: already installed"
else
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-cache policy qemu-utils 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		say "apt-get update"
		as_root apt-get update -q >>"$LOG" 2>&1
	fi
	say "apt-get install qemu-utils"
	as_root apt-get install -y -q --no-install-recommends qemu-utils >>"$LOG" 2>&1
fi

# --- QEMU and the test guest's tools (tests/e2e/qemu_test.go, scripts/guest) --
# qemu-system-x86 runs the guests; busybox-static, cpio, kmod and e2fsprogs
# build the guest (scripts/guest/build.sh, which downloads Debian's kernel).
qemu_missing=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || qemu_missing="$qemu_missing qemu-system-x86"
[ -x /bin/busybox ] || qemu_missing="$qemu_missing busybox-static"
command -v cpio >/dev/null 2>&1 || qemu_missing="$qemu_missing cpio"
command -v depmod >/dev/null 2>&1 || qemu_missing="$qemu_missing kmod"
command -v mkfs.ext4 >/dev/null 2>&1 || qemu_missing="$qemu_missing e2fsprogs"
if [ -z "$qemu_missing" ]; then
	say "qemu-system-x86 and guest tools: already installed"
else
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-cache policy qemu-system-x86 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		say "apt-get update"
		as_root apt-get update -q >>"$LOG" 2>&1
	fi
	say "apt-get install$qemu_missing"
	# shellcheck disable=SC2086
	as_root apt-get install -y -q --no-install-recommends $qemu_missing >>"$LOG" 2>&1
fi
say "test guest: $("$ROOT/scripts/guest/build.sh" 2>>"$LOG")"

# --- Node: xen-api from the committed lockfile ----------------------------------
command -v node >/dev/null || { echo "install-test-deps: node is not installed" >&2; false; }
command -v npm >/dev/null || { echo "install-test-deps: npm is not installed" >&2; false; }
want="$(sha256sum "$NODE_DIR/package-lock.json" "$NODE_DIR/package.json" | sha256sum | cut -d' ' -f1)"
stamp="$NODE_DIR/node_modules/.xenith-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$NODE_DIR/node_modules/xen-api/package.json" ]; then
	say "xen-api: already installed ($(node -p "require('$NODE_DIR/node_modules/xen-api/package.json').version"))"
else
	say "npm ci (tests/peers/node)"
	npm --prefix "$NODE_DIR" ci --no-audit --no-fund --loglevel=error >>"$LOG" 2>&1
	test -f "$NODE_DIR/node_modules/xen-api/package.json"
	echo "$want" >"$stamp"
	say "xen-api $(node -p "require('$NODE_DIR/node_modules/xen-api/package.json').version") installed"
fi

# --- xen driver e2e (issue 9): host tools of scripts/xen-in-qemu/build.sh -------
# (qemu-system-x86 itself is installed by the qemu driver's section)
xen_need=()
command -v cpio >/dev/null 2>&1 || xen_need+=(cpio)
command -v xz >/dev/null 2>&1 || xen_need+=(xz-utils)
command -v file >/dev/null 2>&1 || xen_need+=(file)
{ command -v depmod >/dev/null 2>&1 || [ -x /usr/sbin/depmod ] || [ -x /sbin/depmod ]; } || xen_need+=(kmod)
if [ ${#xen_need[@]} -eq 0 ]; then
	say "xen-in-qemu host tools: already installed"
else
	export DEBIAN_FRONTEND=noninteractive
	say "apt-get install ${xen_need[*]} (xen-in-qemu)"
	as_root apt-get install -y -q --no-install-recommends "${xen_need[@]}" >>"$LOG" 2>&1
fi
