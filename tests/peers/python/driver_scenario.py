#!/usr/bin/python3
"""A real guest through Xenith's XenAPI, on any hypervisor driver.

One scenario file for every driver (sim, qemu, xen): the guest is the test
guest of scripts/guest/build.sh (a kernel, a busybox initramfs whose /init
prints XENITH-* markers on the serial console and obeys "xcmd ..." lines
typed there, and two small ext4 disks). The daemon must see the same files
as this script (a local xenithd, or a dom0 sharing the folder).

    /usr/bin/python3 tests/peers/python/driver_scenario.py \\
        --url http://127.0.0.1:PORT --user root --password PW --driver qemu \\
        --guest DIR --sr-dir DIR [--kernel-args "console=ttyS0 quiet"] \\
        [--phase main|start-two|check-two] [--state FILE]

--guest DIR holds vmlinuz, initramfs.gz, disk1.ext4, disk2.ext4 (the output
of scripts/guest/build.sh). --sr-dir is an empty directory the daemon may
use as a file SR. Phases:
  main       one VM with a disk and a NIC: start, marker on the serial
             console, pause/unpause (guest time stops), suspend/resume (the
             guest carries on), disk hotplug (the guest sees it), a
             guest-initiated reboot seen as a XenAPI event, clean shutdown
             (the guest's ACPI handler runs), hard shutdown of a hung guest,
             and the domain killed from outside seen as a crash.
  start-two  starts two guests and writes their refs and domids to --state.
  check-two  (after the caller restarted xenithd) both still run with the
             same domids and obey the XenAPI (pause/unpause, console,
             clean shutdown).

Per-driver pieces are few: how a console location is reached (console
class below) and how a domain is killed behind the toolstack's back
(kill_domain).

Prints PASS lines; exits non-zero at the first failure ("FAIL [step] ...").
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid as uuidlib

try:
    from os_xenapi.client import XenAPI
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write("FAIL: cannot import os_xenapi.client.XenAPI (%s); run scripts/install-test-deps.sh "
                     "and use /usr/bin/python3\n" % exc)
    sys.exit(2)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import CheckFailed, check, expect_failure, is_ref, run, step  # noqa: E402

BOOT_TIMEOUT = float(os.environ.get("XENITH_BOOT_TIMEOUT", "120"))
# how long a XenAPI event may take (a Xen guest's reboot rebuilds its domain:
# tens of seconds in an emulated dom0)
EVENT_TIMEOUT = float(os.environ.get("XENITH_EVENT_TIMEOUT", "30"))
MIB = 1 << 20


# ---------------------------------------------------------------- xen in a remote dom0
# When xenithd runs in a Xen dom0 that is not this machine (tests/e2e/xen_test.go:
# a dom0 in QEMU sharing a folder with the host at the same path), its console
# sockets and xl are in dom0: XENITH_CONSOLE_RELAY=HOST:PORT reaches a console
# socket through a relay in dom0 (it reads the socket's path, then relays),
# and XENITH_XEN_DOM0_SHARE=DIR runs commands in dom0 through DIR/req and
# DIR/resp (a file req/NAME.CMD is answered in resp/NAME).

XEN_CONSOLE_RELAY = os.environ.get("XENITH_CONSOLE_RELAY", "")
XEN_DOM0_SHARE = os.environ.get("XENITH_XEN_DOM0_SHARE", "")


def xen_relay_connect(path, timeout):
    host, port = XEN_CONSOLE_RELAY.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(None)
    s.sendall((path + "\n").encode())
    return s


def xen_dom0_request(cmd, timeout=60):
    name = uuidlib.uuid4().hex
    open(os.path.join(XEN_DOM0_SHARE, "req", name + "." + cmd), "w").close()
    resp = os.path.join(XEN_DOM0_SHARE, "resp", name)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(resp):
            with open(resp) as f:
                return f.read()
        time.sleep(0.2)
    raise CheckFailed("dom0 did not answer %s within %ds" % (cmd, timeout))


# ---------------------------------------------------------------- consoles

# The XenAPI server and session of the last login: consoles whose location
# is xenithd's console proxy (https://HOST/console?uuid=...) are reached
# through the server this script talks to, as XenAPI clients do.
PROXY = {"url": "", "session": ""}


def proxy_connect(location, timeout):
    """CONNECT to a console proxy location; returns (socket, bytes already read past the header)."""
    server = urllib.parse.urlsplit(PROXY["url"])
    loc = urllib.parse.urlsplit(location)
    port = server.port or (443 if server.scheme == "https" else 80)
    s = socket.create_connection((server.hostname, port), timeout=timeout)
    if server.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname=server.hostname)
    target = "%s?%s&session_id=%s" % (loc.path, loc.query, urllib.parse.quote(PROXY["session"]))
    s.sendall(("CONNECT %s HTTP/1.0\r\n\r\n" % target).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        data = s.recv(4096)
        if not data:
            raise CheckFailed("console proxy closed the connection: %r" % head)
        head += data
    head, rest = head.split(b"\r\n\r\n", 1)
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 200 " not in status + " ":
        raise CheckFailed("console proxy %s: %s" % (location, status))
    s.settimeout(None)
    return s, rest


class Console:
    """A serial console (XenAPI console object, protocol vt100): reads its
    lines in the background, and types lines into it."""

    def __init__(self, location, timeout=10.0):
        self.location = location
        self.lines = []
        self.cv = threading.Condition()
        self.closed = False
        self.initial = b""
        if location.startswith(("http://", "https://")):
            self.sock, self.initial = proxy_connect(location, timeout)
        elif location.startswith("unix://") and XEN_CONSOLE_RELAY:
            self.sock = xen_relay_connect(location[len("unix://"):], timeout)
        elif location.startswith("unix://"):
            path = location[len("unix://"):]
            deadline = time.time() + timeout
            while True:
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(path)
                    break
                except OSError:
                    s.close()
                    if time.time() > deadline:
                        raise
                    time.sleep(0.1)
            self.sock = s
        else:
            raise CheckFailed("console location %r: no way to reach it from this script" % location)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = self.initial
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                with self.cv:
                    self.closed = True
                    self.cv.notify_all()
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                with self.cv:
                    self.lines.append(line.decode("utf-8", "replace").rstrip("\r"))
                    self.cv.notify_all()

    def mark(self):
        with self.cv:
            return len(self.lines)

    def wait_for(self, pattern, timeout=BOOT_TIMEOUT, start=0):
        """The first line at index >= start matching the regex: (index, line)."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        with self.cv:
            i = start
            while True:
                while i < len(self.lines):
                    if rx.search(self.lines[i]):
                        return i, self.lines[i]
                    i += 1
                left = deadline - time.time()
                if left <= 0 or (self.closed and i >= len(self.lines)):
                    raise CheckFailed("console: no line matching %r within %.0fs%s; last lines:\n  %s" % (
                        pattern, timeout, " (console closed)" if self.closed else "",
                        "\n  ".join(self.lines[-12:])))
                self.cv.wait(min(left, 0.5))

    def ticks(self, start=0):
        with self.cv:
            return [int(m.group(1)) for m in (re.match(r"XENITH-TICK (\d+)", s) for s in self.lines[start:]) if m]

    def send(self, line):
        self.sock.sendall((line + "\n").encode())

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def open_console(x, vm, protocol="vt100"):
    for c in x.VM.get_consoles(vm):
        rec = x.console.get_record(c)
        if rec["protocol"] == protocol:
            return Console(rec["location"])
    raise CheckFailed("VM has no %s console: %r" % (protocol, x.VM.get_consoles(vm)))


def kill_domain(driver, x, vm):
    """Kill the domain behind the toolstack's back."""
    vm_uuid = x.VM.get_uuid(vm)
    if driver == "sim":
        host = x.host.get_all()[0]
        x.host.call_plugin(host, "sim", "crash", {"vm": vm_uuid})
        return
    if driver == "qemu":
        needle = ("-uuid\0%s\0" % vm_uuid).encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if needle in f.read():
                        os.kill(int(pid), signal.SIGKILL)
                        return
            except OSError:
                continue
        raise CheckFailed("no QEMU process for VM %s" % vm_uuid)
    if driver == "xen":
        if XEN_DOM0_SHARE:
            out = xen_dom0_request("xl-destroy-%s" % x.VM.get_domid(vm))
            if "destroyed" not in out:
                raise CheckFailed("xl destroy in dom0: %s" % out.strip())
            return
        import subprocess
        subprocess.check_call(["xl", "destroy", str(x.VM.get_domid(vm))])
        return
    raise CheckFailed("kill_domain: unknown driver %r" % driver)


# ---------------------------------------------------------------- helpers

def poll(what, fn, cond, timeout=30.0, interval=0.1):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if cond(v):
            return v
        if time.time() > deadline:
            raise CheckFailed("%s: still %r after %.0fs" % (what, v, timeout))
        time.sleep(interval)


def power(x, vm):
    return x.VM.get_power_state(vm)


class Env:
    def __init__(self, a):
        self.a = a
        self.session = XenAPI.Session(a.url + "/")
        self.session.xenapi.login_with_password(a.user, a.password)
        self.x = self.session.xenapi
        self.host = self.x.host.get_all()[0]
        PROXY["url"], PROXY["session"] = a.url, self.session._session

    def sr(self):
        """A file SR over --sr-dir (made once)."""
        x = self.x
        for sr in x.SR.get_by_name_label("driver-scenario SR"):
            return sr
        os.makedirs(self.a.sr_dir, exist_ok=True)
        return x.SR.create(self.host, {"path": self.a.sr_dir}, "0", "driver-scenario SR", "", "file",
                           "user", False, {})

    def image_vdi(self, image, label):
        """A VDI holding a copy of image (copied into the SR, then SR.scan)."""
        x = self.x
        sr = self.sr()
        vuuid = str(uuidlib.uuid4())
        shutil.copyfile(image, os.path.join(self.a.sr_dir, vuuid + ".raw"))
        x.SR.scan(sr)
        vdi = x.VDI.get_by_uuid(vuuid)
        x.VDI.set_name_label(vdi, label)
        return vdi

    def network(self):
        x = self.x
        for n in x.network.get_all():
            if x.network.get_bridge(n) == "xenbr0":
                return n
        return x.network.get_all()[0]

    def make_vm(self, name):
        x, g = self.x, self.a.guest
        vm = x.VM.create({
            "name_label": name, "name_description": "driver scenario guest",
            "user_version": "1", "is_a_template": False, "affinity": "OpaqueRef:NULL",
            "memory_static_max": str(128 * MIB), "memory_dynamic_max": str(128 * MIB),
            "memory_dynamic_min": str(128 * MIB), "memory_static_min": str(64 * MIB),
            "VCPUs_params": {}, "VCPUs_max": "1", "VCPUs_at_startup": "1",
            "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
            "actions_after_crash": "destroy",
            "PV_bootloader": "", "PV_kernel": os.path.join(g, "vmlinuz"),
            "PV_ramdisk": os.path.join(g, "initramfs.gz"), "PV_args": self.a.kernel_args,
            "PV_bootloader_args": "", "PV_legacy_args": "",
            "HVM_boot_policy": "", "HVM_boot_params": {}, "platform": {},
            "PCI_bus": "", "other_config": {}, "recommendations": "",
        })
        vdi = self.image_vdi(os.path.join(g, "disk1.ext4"), name + " disk")
        x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW",
                      "type": "Disk", "empty": False, "other_config": {}, "qos_algorithm_type": "",
                      "qos_algorithm_params": {}})
        x.VIF.create({"device": "0", "network": self.network(), "VM": vm, "MAC": "", "MTU": "1500",
                      "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
        return vm

    def boot(self, vm):
        """Start vm and wait for its marker; returns its console."""
        x = self.x
        t0 = time.time()
        x.VM.start(vm, False, False)
        check("VM.start: Running", power(x, vm) == "Running", power(x, vm))
        con = open_console(x, vm)
        con.wait_for(r"XENITH-DISK vda disk1")
        con.wait_for(r"XENITH-TICK")
        print("     (%s booted to its marker in %.1fs)" % (x.VM.get_name_label(vm), time.time() - t0), flush=True)
        return con


class Watch:
    """event.from on one VM from a second session."""

    def __init__(self, a, vm):
        s = XenAPI.Session(a.url + "/")
        s.xenapi.login_with_password(a.user, a.password)
        self.x = s.xenapi
        self.vm = vm
        self.token = getattr(self.x.event, "from")(["vm"], "", 0)["token"]

    def wait(self, what, cond, timeout=None):
        timeout = EVENT_TIMEOUT if timeout is None else timeout
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = getattr(self.x.event, "from")(["vm"], self.token, 5.0)
            self.token = r["token"]
            for e in r["events"]:
                if e.get("ref") == self.vm and e.get("operation") == "mod" and cond(e.get("snapshot") or {}):
                    return e
        raise CheckFailed("no VM event for %s within %.0fs" % (what, timeout))


# ---------------------------------------------------------------- phases

def phase_main(a):
    env = Env(a)
    x = env.x

    step("1. a VM with a disk and a NIC")
    vm = env.make_vm("scenario-1")
    check("VM has one VBD and one VIF", len(x.VM.get_VBDs(vm)) == 1 and len(x.VM.get_VIFs(vm)) == 1)

    step("2. start: marker on the serial console")
    con = env.boot(vm)
    protos = sorted(x.console.get_protocol(c) for c in x.VM.get_consoles(vm))
    check("consoles recorded while running", "vt100" in protos, repr(protos))
    rec = x.VM.get_record(vm)
    check("domid > 0", int(rec["domid"]) > 0, rec["domid"])
    m = x.VM.get_metrics(vm)
    first = x.VM_metrics.get_record(m)
    if a.driver != "sim":
        # The driver's live metrics refresh VM_metrics every few seconds.
        time.sleep(1.1)
        mrec = poll("VM_metrics.last_updated", lambda: x.VM_metrics.get_record(m),
                    lambda r: str(r["last_updated"]) != str(first["last_updated"]), timeout=20)
        check("VM_metrics memory_actual from the balloon", int(mrec["memory_actual"]) > 0, mrec["memory_actual"])
        if "VCPUs_utilisation" in mrec:
            # Utilisation is a rate: it needs two samples of the metrics loop.
            mrec = poll("VM_metrics.VCPUs_utilisation", lambda: x.VM_metrics.get_record(m),
                        lambda r: len(r["VCPUs_utilisation"]) > 0, timeout=20)
            check("VM_metrics VCPUs_utilisation", len(mrec["VCPUs_utilisation"]) == 1, repr(mrec["VCPUs_utilisation"]))

    step("3. pause / unpause: guest time stops")
    x.VM.pause(vm)
    check("Paused", power(x, vm) == "Paused", power(x, vm))
    time.sleep(0.5)
    i = con.mark()
    time.sleep(2.5)
    check("no guest ticks while paused", con.ticks(i) == [], repr(con.ticks(i)))
    x.VM.unpause(vm)
    check("Running again", power(x, vm) == "Running")
    con.wait_for(r"XENITH-TICK", timeout=15, start=i)

    step("4. suspend / resume: the guest carries on")
    before = max(con.ticks())
    x.VM.suspend(vm)
    check("Suspended", power(x, vm) == "Suspended", power(x, vm))
    check("suspend_VDI set", is_ref(x.VM.get_suspend_VDI(vm)), x.VM.get_suspend_VDI(vm))
    check("no consoles while suspended", x.VM.get_consoles(vm) == [], repr(x.VM.get_consoles(vm)))
    con.close()
    x.VM.resume(vm, False, False)
    check("Running after resume", power(x, vm) == "Running", power(x, vm))
    con = open_console(x, vm)
    _, line = con.wait_for(r"XENITH-TICK", timeout=20)
    n = int(line.split()[1])
    check("ticks continue after resume (%d > %d)" % (n, before), n > before)
    check("no reboot across suspend", not any("XENITH-GUEST-UP" in s for s in con.lines))

    step("5. hotplug a second disk: the guest sees it")
    vdi2 = env.image_vdi(os.path.join(a.guest, "disk2.ext4"), "scenario-1 disk 2")
    vbd2 = x.VBD.create({"VM": vm, "VDI": vdi2, "userdevice": "1", "bootable": False, "mode": "RW",
                         "type": "Disk", "empty": False, "other_config": {}, "qos_algorithm_type": "",
                         "qos_algorithm_params": {}})
    i = con.mark()
    x.VBD.plug(vbd2)
    check("VBD currently_attached", x.VBD.get_currently_attached(vbd2) is True)
    con.wait_for(r"XENITH-DISK vdb disk2", timeout=60, start=i)
    i = con.mark()
    x.VBD.unplug(vbd2)
    check("VBD detached", x.VBD.get_currently_attached(vbd2) is False)
    con.wait_for(r"XENITH-DEVS blk=\[vda \]", timeout=30, start=i)

    step("6. guest-initiated reboot: a XenAPI event")
    w = Watch(a, vm)
    start_time = x.VM_metrics.get_start_time(m)
    i = con.mark()
    time.sleep(1.1)  # start_time has one-second resolution
    con.send("xcmd reboot")
    con.wait_for(r"XENITH-REBOOTING", timeout=15, start=i)
    w.wait("the reboot", lambda s: s.get("power_state") == "Running")
    poll("VM_metrics.start_time changes", lambda: x.VM_metrics.get_start_time(m), lambda v: v != start_time, timeout=15)
    check("still Running after the guest rebooted", power(x, vm) == "Running")
    j, _ = con.wait_for(r"XENITH-GUEST-UP", start=i)
    con.wait_for(r"XENITH-TICK", start=j)

    step("7. clean shutdown: the guest's ACPI handler runs")
    i = con.mark()
    x.VM.clean_shutdown(vm)
    check("Halted", power(x, vm) == "Halted", power(x, vm))
    con.wait_for(r"XENITH-ACPI-POWEROFF", timeout=5, start=i)
    con.close()

    step("8. hard shutdown of a hung guest")
    con = env.boot(vm)
    i = con.mark()
    con.send("xcmd hang")
    con.wait_for(r"XENITH-HUNG", timeout=15, start=i)
    t0 = time.time()
    x.VM.hard_shutdown(vm)
    check("hard_shutdown: Halted in %.2fs" % (time.time() - t0), power(x, vm) == "Halted")
    con.close()

    step("9. the domain killed from outside: a crash")
    con = env.boot(vm)
    kill_domain(a.driver, x, vm)
    poll("power_state after the crash (actions_after_crash=destroy)", lambda: power(x, vm), lambda v: v == "Halted",
         timeout=15)
    check("crash handled: Halted, domid -1", int(x.VM.get_domid(vm)) == -1, x.VM.get_domid(vm))
    con.close()
    x.VM.destroy(vm)


def phase_start_two(a):
    env = Env(a)
    x = env.x
    step("start two guests")
    vms = [env.make_vm("restart-%d" % i) for i in (1, 2)]
    for vm in vms:
        env.boot(vm).close()
    state = {"vms": vms, "domids": [x.VM.get_domid(vm) for vm in vms]}
    with open(a.state, "w") as f:
        json.dump(state, f)
    check("two guests Running", all(power(x, vm) == "Running" for vm in vms))


def phase_check_two(a):
    env = Env(a)
    x = env.x
    with open(a.state) as f:
        state = json.load(f)
    step("both guests survived the restart")
    for vm, domid in zip(state["vms"], state["domids"]):
        check("%s Running with domid %s" % (x.VM.get_name_label(vm), domid),
              power(x, vm) == "Running" and x.VM.get_domid(vm) == domid,
              "%s domid %s" % (power(x, vm), x.VM.get_domid(vm)))
        con = open_console(x, vm)
        con.wait_for(r"XENITH-TICK", timeout=15)
        x.VM.pause(vm)
        check("pause after restart", power(x, vm) == "Paused")
        x.VM.unpause(vm)
        i = con.mark()
        con.wait_for(r"XENITH-TICK", timeout=15, start=i)
        check("unpause after restart: ticking", True)
        x.VM.clean_shutdown(vm)
        check("clean shutdown after restart", power(x, vm) == "Halted")
        con.wait_for(r"XENITH-ACPI-POWEROFF", timeout=5, start=i)
        con.close()
        x.VM.destroy(vm)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("XENITH_URL"))
    p.add_argument("--user", default=os.environ.get("XENITH_USER", "root"))
    p.add_argument("--password", default=os.environ.get("XENITH_PASSWORD"))
    p.add_argument("--driver", default=os.environ.get("XENITH_DRIVER", "qemu"))
    p.add_argument("--guest", default=os.environ.get("XENITH_GUEST_DIR"), help="scripts/guest/build.sh output")
    p.add_argument("--sr-dir", required=True)
    p.add_argument("--kernel-args", default="console=ttyS0 quiet")
    p.add_argument("--phase", default="main", choices=["main", "start-two", "check-two"])
    p.add_argument("--state", default="")
    a = p.parse_args()
    if not a.url or not a.password or not a.guest:
        p.error("--url, --password and --guest are required")
    fn = {"main": phase_main, "start-two": phase_start_two, "check-two": phase_check_two}[a.phase]
    return run(lambda: fn(a), "OK driver scenario %s (%s)" % (a.phase, a.driver))


if __name__ == "__main__":
    sys.exit(main())
