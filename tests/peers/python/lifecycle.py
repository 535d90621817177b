#!/usr/bin/python3
"""VM lifecycle scenario: Xenith driven by the real Python XenAPI client.

Run it with Debian's own interpreter (python3-os-xenapi lives in
/usr/lib/python3/dist-packages):

    /usr/bin/python3 tests/peers/python/lifecycle.py \
        --url http://127.0.0.1:PORT --user root --password PW

(env: XENITH_URL, XENITH_USER, XENITH_PASSWORD). Meant for a xenithd on its
simulator started with short guest timings (--sim-boot-time 200ms
--sim-shutdown-time 100ms), as tests/e2e/lifecycle_test.go does.

The VM goes through the whole life a XenAPI user gives it: clone of the
"Debian Bookworm 12" template, provision, VIF, start (and the guest agent
reporting), pause/unpause, suspend/resume, snapshot, clean shutdown, calls in
the wrong power state, Async.VM.start with task polling, hard shutdown, a
simulated crash (host.call_plugin 'sim' 'crash') and destroy.

Every step is also watched from a second session with
event.from(['vm','vbd','vif','vdi','task'], token, 5): the expected
class/operation for the objects involved must show up.

One check line per assertion ("PASS ..."); the script exits non-zero at the
first failure ("FAIL [step] ...").
"""

import argparse
import os
import re
import sys
import time
import traceback
import xmlrpc.client

try:
    from os_xenapi.client import XenAPI
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        "FAIL: cannot import os_xenapi.client.XenAPI with %s (%s); "
        "run scripts/install-test-deps.sh (Debian package python3-os-xenapi) "
        "and use /usr/bin/python3\n" % (sys.executable, exc))
    sys.exit(2)

TEMPLATE = "Debian Bookworm 12"
DISK_SIZE = 10737418240  # 10 GiB, the template's recommended disk
EVENT_CLASSES = ["vm", "vbd", "vif", "vdi", "task"]
EVENT_WAIT = 5.0      # event.from timeout
EVENT_DEADLINE = 8.0  # how long we keep collecting events for one step
POLL_TIMEOUT = 10.0   # guest metrics, tasks, crash handling
IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
IPV6_RE = re.compile(r"^[0-9a-fA-F:]+:[0-9a-fA-F:]*$")


from checks import NULL_REF, CheckFailed, _step, check, expect_failure, is_ref, run, step  # noqa: E402


def poll(what, fn, cond, timeout=POLL_TIMEOUT, interval=0.05):
    """Call fn() until cond(value) holds; return the value. Fails after timeout."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if cond(v):
            return v
        if time.time() > deadline:
            raise CheckFailed("%s: not reached after %.0f s; last value %r" % (what, timeout, v))
        time.sleep(interval)


def event_from(x, classes, token, timeout):
    # "from" is a Python keyword: x.event.from(...) does not parse.
    return getattr(x.event, "from")(classes, token, float(timeout))


def describe(e):
    snap = e.get("snapshot") or {}
    extra = ""
    if e.get("class") == "vm" and isinstance(snap, dict) and "power_state" in snap:
        extra = " power_state=%s" % snap.get("power_state")
    if e.get("class") == "task" and isinstance(snap, dict) and "status" in snap:
        extra = " status=%s" % snap.get("status")
    return "%s/%s %s%s" % (e.get("class"), e.get("operation"), e.get("ref"), extra)


class Watcher(object):
    """A second session following EVENT_CLASSES with event.from."""

    def __init__(self, session):
        self.x = session.xenapi
        first = event_from(self.x, EVENT_CLASSES, "", 0)
        self.token = first["token"]

    def expect(self, label, wanted):
        """wanted: list of (class, operation, ref, snapshot predicate or None,
        description). Collects event.from batches until every wanted event was
        seen (or EVENT_DEADLINE passes); one check per wanted event."""
        seen = []
        missing = list(wanted)
        deadline = time.time() + EVENT_DEADLINE

        def matches(w, e):
            cls, op, ref, pred, _ = w
            ops = op if isinstance(op, tuple) else (op,)
            if e.get("class") != cls or e.get("operation") not in ops:
                return False
            if ref is not None and e.get("ref") != ref:
                return False
            return pred is None or pred(e.get("snapshot") or {})

        while missing:
            left = deadline - time.time()
            if left <= 0:
                break
            batch = event_from(self.x, EVENT_CLASSES, self.token, min(EVENT_WAIT, max(left, 0.1)))
            self.token = batch["token"]
            evs = batch.get("events") or []
            seen.extend(evs)
            missing = [w for w in missing if not any(matches(w, e) for e in seen)]
        for w in wanted:
            cls, op, ref, _, desc = w
            check("%s: event %s/%s%s" % (label, cls, "|".join(op) if isinstance(op, tuple) else op,
                                         (" (" + desc + ")") if desc else ""),
                  w not in missing,
                  "not seen within %.0f s; events seen: %s"
                  % (EVENT_DEADLINE, [describe(e) for e in seen] or "none"))

    def drain(self):
        batch = event_from(self.x, EVENT_CLASSES, self.token, 0)
        self.token = batch["token"]


def ps(state):
    return lambda snap: snap.get("power_state") == state


def vm_state(x, vm):
    return x.VM.get_power_state(vm)


def scenario(url, user, password):
    step("login")
    session = XenAPI.Session(url + "/")
    session.xenapi.login_with_password(user, password)
    check("login returns a session ref", is_ref(session._session), repr(session._session))
    x = session.xenapi
    watch_session = XenAPI.Session(url + "/")
    watch_session.xenapi.login_with_password(user, password)
    check("second (event) session logs in", is_ref(watch_session._session))
    check("the two sessions differ", watch_session._session != session._session)
    ev = Watcher(watch_session)
    check("event.from(classes, '', 0) gives a token", isinstance(ev.token, str) and ev.token != "", repr(ev.token))

    host = x.host.get_all()[0]

    # ------------------------------------------------------------ 1. clone + provision
    step("1. clone the template and provision")
    tmpls = [t for t in x.VM.get_by_name_label(TEMPLATE) if x.VM.get_is_a_template(t)]
    check("template %r found by VM.get_by_name_label" % TEMPLATE, len(tmpls) == 1,
          repr(x.VM.get_by_name_label(TEMPLATE)))
    tmpl = tmpls[0]
    vm = x.VM.clone(tmpl, "py-vm")
    check("VM.clone returns a ref", is_ref(vm) and vm != tmpl, repr(vm))
    check("clone is named py-vm", x.VM.get_name_label(vm) == "py-vm", repr(x.VM.get_name_label(vm)))
    check("clone is still a template", x.VM.get_is_a_template(vm) is True)
    ev.expect("VM.clone", [("vm", "add", vm, lambda s: s.get("name_label") == "py-vm", "the clone, name py-vm")])
    vm_uuid = x.VM.get_uuid(vm)

    x.VM.set_is_a_template(vm, False)
    check("VM.set_is_a_template(false)", x.VM.get_is_a_template(vm) is False)
    ev.expect("VM.set_is_a_template", [("vm", "mod", vm, lambda s: s.get("is_a_template") is False,
                                       "is_a_template false")])

    x.VM.provision(vm)
    vbds = x.VM.get_VBDs(vm)
    check("VM.provision: one VBD", len(vbds) == 1, repr(vbds))
    vbd = vbds[0]
    vbdrec = x.VBD.get_record(vbd)
    check("VBD.VM is the VM", vbdrec.get("VM") == vm, repr(vbdrec.get("VM")))
    check("VBD type Disk", vbdrec.get("type") == "Disk", repr(vbdrec.get("type")))
    vdi = vbdrec.get("VDI")
    check("VBD has a VDI", is_ref(vdi), repr(vdi))
    vsize = x.VDI.get_virtual_size(vdi)
    check("VDI.virtual_size == %d" % DISK_SIZE, str(vsize) == str(DISK_SIZE), repr(vsize))
    check("VDI.VBDs lists the VBD", vbd in x.VDI.get_VBDs(vdi), repr(x.VDI.get_VBDs(vdi)))
    ev.expect("VM.provision", [
        ("vdi", "add", vdi, None, "the new disk"),
        ("vbd", "add", vbd, None, "the new VBD"),
        ("vm", "mod", vm, lambda s: vbd in (s.get("VBDs") or []), "VBDs lists the VBD"),
    ])

    # ------------------------------------------------------------ 2. VIF
    step("2. VIF.create")
    net = x.network.get_all()[0]
    vif = x.VIF.create({
        "device": "0",
        "network": net,
        "VM": vm,
        "MAC": "",
        "MTU": "1500",
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    })
    check("VIF.create returns a ref", is_ref(vif), repr(vif))
    vifrec = x.VIF.get_record(vif)
    mac = vifrec.get("MAC", "")
    check("VIF MAC generated with the Xen prefix 00:16:3e",
          isinstance(mac, str) and re.match(r"^00:16:3e(:[0-9a-f]{2}){3}$", mac.lower()) is not None, repr(mac))
    check("VIF.VM / network / device", vifrec.get("VM") == vm and vifrec.get("network") == net
          and vifrec.get("device") == "0",
          repr({k: vifrec.get(k) for k in ("VM", "network", "device")}))
    check("VM.VIFs lists the VIF", x.VM.get_VIFs(vm) == [vif], repr(x.VM.get_VIFs(vm)))
    ev.expect("VIF.create", [
        ("vif", "add", vif, None, "the new VIF"),
        ("vm", "mod", vm, lambda s: vif in (s.get("VIFs") or []), "VIFs lists the VIF"),
    ])

    # ------------------------------------------------------------ 3. start
    step("3. VM.start")
    x.VM.start(vm, False, False)
    rec = x.VM.get_record(vm)
    check("power_state Running", rec.get("power_state") == "Running", repr(rec.get("power_state")))
    check("domid > 0", re.match(r"^\d+$", str(rec.get("domid"))) is not None and int(rec["domid"]) > 0,
          repr(rec.get("domid")))
    check("resident_on the host", rec.get("resident_on") == host, "%r vs %r" % (rec.get("resident_on"), host))
    check("host.resident_VMs lists it", vm in x.host.get_resident_VMs(host))
    ev.expect("VM.start", [("vm", "mod", vm, ps("Running"), "power_state Running")])

    def metrics():
        gm = x.VM.get_guest_metrics(vm)
        if not is_ref(gm):
            return (gm, None)
        return (gm, x.VM_guest_metrics.get_record(gm))

    def metrics_ready(v):
        gm, r = v
        if r is None:
            return False
        nets = r.get("networks") or {}
        return bool(r.get("os_version")) and any(
            IPV4_RE.match(val) or IPV6_RE.match(val) for k, val in nets.items() if "ip" in k)

    gm, gmrec = poll("VM.guest_metrics with os_version and an IP", metrics, metrics_ready)
    check("guest_metrics set", is_ref(gm), repr(gm))
    check("guest_metrics.os_version non-empty", bool(gmrec.get("os_version")), repr(gmrec.get("os_version")))
    check("guest_metrics.networks has an IP", True, repr(gmrec.get("networks")))
    ev.expect("guest agent", [("vm", "mod", vm, lambda s: is_ref(s.get("guest_metrics")),
                               "guest_metrics set")])

    # ------------------------------------------------------------ 4. pause/unpause
    step("4. VM.pause / VM.unpause")
    x.VM.pause(vm)
    check("VM.pause -> Paused", vm_state(x, vm) == "Paused", repr(vm_state(x, vm)))
    ev.expect("VM.pause", [("vm", "mod", vm, ps("Paused"), "power_state Paused")])
    x.VM.unpause(vm)
    check("VM.unpause -> Running", vm_state(x, vm) == "Running", repr(vm_state(x, vm)))
    ev.expect("VM.unpause", [("vm", "mod", vm, ps("Running"), "power_state Running")])

    # ------------------------------------------------------------ 5. suspend/resume
    step("5. VM.suspend / VM.resume")
    x.VM.suspend(vm)
    rec = x.VM.get_record(vm)
    check("VM.suspend -> Suspended", rec.get("power_state") == "Suspended", repr(rec.get("power_state")))
    check("suspended VM has domid -1", str(rec.get("domid")) == "-1", repr(rec.get("domid")))
    ev.expect("VM.suspend", [("vm", "mod", vm, ps("Suspended"), "power_state Suspended")])
    x.VM.resume(vm, False, False)
    rec = x.VM.get_record(vm)
    check("VM.resume -> Running", rec.get("power_state") == "Running", repr(rec.get("power_state")))
    check("resumed: domid > 0, resident_on the host",
          int(rec.get("domid", "-1")) > 0 and rec.get("resident_on") == host,
          repr({k: rec.get(k) for k in ("domid", "resident_on")}))
    ev.expect("VM.resume", [("vm", "mod", vm, ps("Running"), "power_state Running")])

    # ------------------------------------------------------------ 6. snapshot
    step("6. VM.snapshot")
    snap = x.VM.snapshot(vm, "py-snap")
    check("VM.snapshot returns a ref", is_ref(snap) and snap != vm, repr(snap))
    srec = x.VM.get_record(snap)
    check("snapshot name py-snap", srec.get("name_label") == "py-snap", repr(srec.get("name_label")))
    check("snapshot is_a_snapshot True", srec.get("is_a_snapshot") is True, repr(srec.get("is_a_snapshot")))
    check("snapshot_of == vm", srec.get("snapshot_of") == vm, repr(srec.get("snapshot_of")))
    check("VM.get_snapshots(vm) contains it", snap in x.VM.get_snapshots(vm), repr(x.VM.get_snapshots(vm)))
    check("the VM is still Running", vm_state(x, vm) == "Running", repr(vm_state(x, vm)))
    snap_vdis = [x.VBD.get_VDI(b) for b in srec.get("VBDs", []) if x.VBD.get_type(b) == "Disk"]
    snap_vdis = [d for d in snap_vdis if is_ref(d)]
    check("snapshot has its own disk", len(snap_vdis) == 1 and snap_vdis[0] != vdi, repr(snap_vdis))
    ev.expect("VM.snapshot", [
        ("vm", "add", snap, lambda s: s.get("is_a_snapshot") is True, "the snapshot"),
        ("vdi", "add", snap_vdis[0], None, "the snapshot's disk"),
    ])

    # ------------------------------------------------------------ 7. clean shutdown
    step("7. VM.clean_shutdown")
    x.VM.clean_shutdown(vm)
    rec = x.VM.get_record(vm)
    check("VM.clean_shutdown -> Halted", rec.get("power_state") == "Halted", repr(rec.get("power_state")))
    check("halted VM has domid -1", str(rec.get("domid")) == "-1", repr(rec.get("domid")))
    check("halted VM resident_on NULL", rec.get("resident_on") == NULL_REF, repr(rec.get("resident_on")))
    ev.expect("VM.clean_shutdown", [("vm", "mod", vm, ps("Halted"), "power_state Halted")])

    # ------------------------------------------------------------ 8. wrong power state
    step("8. calls in the wrong power state")
    expect_failure("VM.pause on a halted VM -> VM_BAD_POWER_STATE [vm, running, halted]",
                   lambda: x.VM.pause(vm), "VM_BAD_POWER_STATE", [vm, "running", "halted"])
    expect_failure("VM.unpause on a halted VM -> VM_BAD_POWER_STATE",
                   lambda: x.VM.unpause(vm), "VM_BAD_POWER_STATE")
    expect_failure("VM.start on the template -> VM_IS_TEMPLATE",
                   lambda: x.VM.start(tmpl, False, False), "VM_IS_TEMPLATE")
    expect_failure("VM.resume on a halted VM -> VM_BAD_POWER_STATE [vm, suspended, halted]",
                   lambda: x.VM.resume(vm, False, False), "VM_BAD_POWER_STATE", [vm, "suspended", "halted"])
    check("the VM is still Halted", vm_state(x, vm) == "Halted", repr(vm_state(x, vm)))
    check("the template is still a halted template",
          x.VM.get_is_a_template(tmpl) is True and vm_state(x, tmpl) == "Halted")
    ev.drain()

    # ------------------------------------------------------------ 9. Async start, hard shutdown, crash
    step("9. Async.VM.start")
    task = x.Async.VM.start(vm, False, False)
    check("Async.VM.start returns a task ref", is_ref(task), repr(task))
    status = poll("task %s leaves pending" % task, lambda: x.task.get_status(task),
                  lambda s: s not in ("pending", "cancelling"))
    trec = x.task.get_record(task)
    check("task status success", status == "success", repr(trec))
    check("task error_info empty", trec.get("error_info") == [], repr(trec.get("error_info")))
    check("VM Running after the task", vm_state(x, vm) == "Running", repr(vm_state(x, vm)))
    ev.expect("Async.VM.start", [
        ("task", "add", task, None, "the task"),
        # event.from reports each changed object once, with its latest
        # snapshot: a task that finished before the watcher looked is a
        # single 'add' already showing success.
        ("task", ("add", "mod"), task, lambda s: s.get("status") == "success", "status success"),
        ("vm", "mod", vm, ps("Running"), "power_state Running"),
    ])
    x.task.destroy(task)
    ev.expect("task.destroy", [("task", "del", task, None, "the task")])

    step("9. VM.hard_shutdown")
    x.VM.hard_shutdown(vm)
    rec = x.VM.get_record(vm)
    check("VM.hard_shutdown -> Halted", rec.get("power_state") == "Halted", repr(rec.get("power_state")))
    check("domid -1", str(rec.get("domid")) == "-1", repr(rec.get("domid")))
    ev.expect("VM.hard_shutdown", [("vm", "mod", vm, ps("Halted"), "power_state Halted")])

    step("9. guest crash (host.call_plugin sim crash)")
    # VM.set_actions_after_crash is an explicit XenAPI message (not a
    # generated setter). If the server refuses it, the crash -> destroy
    # check cannot be set up: that failure is reported at the end (exit
    # non-zero) so that it does not hide the destroy checks of step 10.
    deferred = []
    try:
        x.VM.set_actions_after_crash(vm, "destroy")
        setter_error = None
    except XenAPI.Failure as f:
        setter_error = list(f.details)
    if setter_error is not None:
        deferred.append(("9. guest crash (host.call_plugin sim crash)",
                         "VM.set_actions_after_crash(vm, 'destroy') should succeed (xapi: explicit message, "
                         "roles vm-admin+), got Failure %r; actions_after_crash stays %r, so the "
                         "'crash with actions_after_crash destroy -> Halted' check was not run"
                         % (setter_error, x.VM.get_actions_after_crash(vm))))
        print("DEFERRED FAIL VM.set_actions_after_crash(vm, 'destroy'): %r" % (setter_error,), flush=True)
    else:
        check("VM.set_actions_after_crash(vm, 'destroy')", x.VM.get_actions_after_crash(vm) == "destroy",
              repr(x.VM.get_actions_after_crash(vm)))
        x.VM.start(vm, False, False)
        check("VM Running again", vm_state(x, vm) == "Running", repr(vm_state(x, vm)))
        ev.expect("VM.start", [("vm", "mod", vm, ps("Running"), "power_state Running")])
        out = x.host.call_plugin(host, "sim", "crash", {"vm": vm_uuid})
        check("host.call_plugin(host, 'sim', 'crash', {vm: uuid}) -> ok", out == "ok", repr(out))
        poll("crashed VM (actions_after_crash destroy) ends Halted", lambda: vm_state(x, vm),
             lambda s: s == "Halted")
        rec = x.VM.get_record(vm)
        check("crashed VM is Halted", rec.get("power_state") == "Halted", repr(rec.get("power_state")))
        check("crashed VM domid -1, resident_on NULL",
              str(rec.get("domid")) == "-1" and rec.get("resident_on") == NULL_REF,
              repr({k: rec.get(k) for k in ("domid", "resident_on")}))
        ev.expect("crash", [("vm", "mod", vm, ps("Halted"), "power_state Halted")])

    # ------------------------------------------------------------ 10. destroy
    step("10. VM.destroy")
    x.VM.destroy(vm)
    expect_failure("destroyed VM -> HANDLE_INVALID [VM, ref]",
                   lambda: x.VM.get_record(vm), "HANDLE_INVALID", ["VM", vm])
    x.VM.destroy(snap)
    expect_failure("destroyed snapshot -> HANDLE_INVALID [VM, ref]",
                   lambda: x.VM.get_record(snap), "HANDLE_INVALID", ["VM", snap])
    expect_failure("the VIF is gone -> HANDLE_INVALID [VIF, ref]",
                   lambda: x.VIF.get_record(vif), "HANDLE_INVALID", ["VIF", vif])
    expect_failure("the VBD is gone -> HANDLE_INVALID [VBD, ref]",
                   lambda: x.VBD.get_record(vbd), "HANDLE_INVALID", ["VBD", vbd])
    check("VIF.get_all no longer lists the VIF", vif not in x.VIF.get_all())
    check("VBD.get_all no longer lists the VBD", vbd not in x.VBD.get_all())
    vdirec = x.VDI.get_record(vdi)
    check("the VDI still exists, with no VBDs", vdirec.get("VBDs") == [], repr(vdirec.get("VBDs")))
    ev.expect("VM.destroy", [
        ("vm", "del", vm, None, "the VM"),
        ("vm", "del", snap, None, "the snapshot"),
        ("vif", "del", vif, None, "its VIF"),
        ("vbd", "del", vbd, None, "its VBD"),
    ])
    x.VDI.destroy(vdi)
    expect_failure("VDI.destroy, then VDI.get_record -> HANDLE_INVALID [VDI, ref]",
                   lambda: x.VDI.get_record(vdi), "HANDLE_INVALID", ["VDI", vdi])
    ev.expect("VDI.destroy", [("vdi", "del", vdi, None, "the VM's disk")])
    for d in snap_vdis:  # clean up: the snapshot's disk is left behind too
        x.VDI.destroy(d)
    check("the snapshot's VDI destroyed", all(d not in x.VDI.get_all() for d in snap_vdis))

    watch_session.xenapi.session.logout()
    session.xenapi.session.logout()
    check("logout", session._session is None)

    for where, msg in deferred:
        _step[0] = where
        raise CheckFailed(msg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("XENITH_URL"),
                    help="base URL, e.g. http://127.0.0.1:8080 (env XENITH_URL)")
    ap.add_argument("--user", default=os.environ.get("XENITH_USER", "root"))
    ap.add_argument("--password", default=os.environ.get("XENITH_PASSWORD"))
    a = ap.parse_args()
    if not a.url or a.password is None:
        ap.error("--url and --password are required")

    print("python %s, os_xenapi XenAPI.py at %s" % (sys.version.split()[0], XenAPI.__file__), flush=True)
    return run(lambda: scenario(a.url.rstrip("/"), a.user, a.password), "OK: all lifecycle checks passed")


if __name__ == "__main__":
    sys.exit(main())
