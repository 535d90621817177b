#!/usr/bin/python3
"""xenopsd front scenario: a VM driven through xenithd's xenopsd domain API
(XML-RPC on /xenops, named arguments {dbg, ...}), checked at every step
through Python's XenAPI.py (the VM record's power_state) and through
XenAPI events (event.from on the VM).

    /usr/bin/python3 tests/peers/python/xenops_scenario.py \
        --url http://127.0.0.1:PORT --user root --password PW

One PASS line per check; exits non-zero at the first failure.
"""

import argparse
import sys
import time
import urllib.parse
import uuid
import xmlrpc.client

from checks import check, run, step  # noqa: E402
from fronts_common import EventWatcher, xenapi_session  # noqa: E402

TASK_TIMEOUT = 20.0


class Xenops:
    def __init__(self, url, user, password):
        u = urllib.parse.urlsplit(url)
        netloc = "%s:%s@%s" % (urllib.parse.quote(user), urllib.parse.quote(password), u.netloc)
        self.proxy = xmlrpc.client.ServerProxy(urllib.parse.urlunsplit((u.scheme, netloc, "/xenops", "", "")),
                                               allow_none=True)

    def call(self, method, **args):
        args["dbg"] = "xenops_scenario"
        fn = self.proxy
        for part in method.split("."):
            fn = getattr(fn, part)
        return fn(args)

    def ok(self, method, **args):
        r = self.call(method, **args)
        if r.get("Status") != "Success":
            raise AssertionError("%s failed: %r" % (method, r.get("ErrorDescription")))
        return r["Value"]

    def error(self, method, **args):
        r = self.call(method, **args)
        check("%s fails" % method, r.get("Status") == "Failure", repr(r))
        e = r["ErrorDescription"]
        return e if isinstance(e, str) else e[0]

    def wait(self, task):
        deadline = time.time() + TASK_TIMEOUT
        while True:
            t = self.ok("Task.stat", id=task)
            res = t["result"]
            kind = res if isinstance(res, str) else res[0]
            if kind != "Pending":
                return res
            if time.time() > deadline:
                raise AssertionError("task %s still pending" % task)
            time.sleep(0.05)

    def op(self, method, **args):
        res = self.wait(self.ok(method, **args))
        check("%s completes" % method, res[0] == "Completed", repr(res))

    def op_fails(self, method, variant, **args):
        res = self.wait(self.ok(method, **args))
        check("%s fails with %s" % (method, variant), res[0] == "Failed" and ('"%s"' % variant) in res[1], repr(res))


def scenario(args):
    x = Xenops(args.url, args.user, args.password)
    api = xenapi_session(args.url, args.user, args.password)
    watch = EventWatcher(xenapi_session(args.url, args.user, args.password), classes=("vm", "vm_metrics"))
    vm_id = str(uuid.uuid4())

    step("query")
    info = x.ok("Query.query")
    check("Query.query names the service", info["name"] == "xenopsd" and "instance_id" in info, repr(info))

    step("add")
    t = {"id": vm_id, "name": "xenops-peer", "memory_static_max": str(128 << 20),
         "memory_dynamic_max": str(128 << 20), "memory_dynamic_min": str(128 << 20),
         "vcpu_max": 2, "vcpus": 1, "ty": ["HVM", {"boot_order": "cd"}],
         "on_shutdown": ["Shutdown"], "on_reboot": ["Start"], "on_crash": ["Shutdown"]}
    check("VM.add returns the id", x.ok("VM.add", t=t) == vm_id)
    check("VM.add again: Already_exists", x.error("VM.add", t=t) == "Already_exists")
    ref = api.xenapi.VM.get_by_uuid(vm_id)
    rec = api.xenapi.VM.get_record(ref)
    check("XenAPI sees the VM", rec["name_label"] == "xenops-peer" and rec["power_state"] == "Halted", repr(rec["power_state"]))
    watch.expect("VM add", "vm", ref, "add", None)

    def state(want, what):
        got = api.xenapi.VM.get_power_state(ref)
        check("XenAPI power_state after %s is %s" % (what, want), got == want, got)
        watch.expect(what, "vm", ref, "mod", want)
        stat = x.ok("VM.stat", id=vm_id)
        ps = stat[0][1]["power_state"]
        ps = ps if isinstance(ps, str) else ps[0]
        check("VM.stat power_state after %s is %s" % (what, want), ps == want, repr(ps))

    step("create/build/unpause")
    x.op_fails("VM.build", "Bad_power_state", id=vm_id)
    x.op("VM.create", id=vm_id)
    state("Paused", "VM.create")
    x.op_fails("VM.unpause", "Domain_not_built", id=vm_id)
    x.op("VM.build", id=vm_id)
    x.op("VM.create_device_model", id=vm_id, is_resuming=False)
    x.op("VM.unpause", id=vm_id)
    state("Running", "VM.unpause")

    step("pause")
    x.op("VM.pause", id=vm_id)
    state("Paused", "VM.pause")
    x.op("VM.unpause", id=vm_id)
    state("Running", "VM.unpause (again)")

    step("s3suspend/s3resume")
    metrics = api.xenapi.VM.get_metrics(ref)
    x.op("VM.s3suspend", id=vm_id)
    check("XenAPI power_state in S3 stays Running", api.xenapi.VM.get_power_state(ref) == "Running")
    ms = api.xenapi.VM_metrics.get_state(metrics)
    check("XenAPI VM_metrics state lists s3", "s3" in ms, repr(ms))
    watch.expect_snapshot("VM.s3suspend", "vm_metrics", metrics, "state has s3", lambda s: "s3" in s.get("state", []))
    x.op("VM.s3resume", id=vm_id)
    ms = api.xenapi.VM_metrics.get_state(metrics)
    check("XenAPI VM_metrics state drops s3", "s3" not in ms and "running" in ms, repr(ms))
    watch.expect_snapshot("VM.s3resume", "vm_metrics", metrics, "state without s3",
                          lambda s: "s3" not in s.get("state", ["s3"]))
    check("XenAPI power_state after S3 is Running", api.xenapi.VM.get_power_state(ref) == "Running")

    step("live shadow multiplier")
    x.op("VM.set_shadow_multiplier", id=vm_id, shadow_multiplier=4.0)
    got = float(api.xenapi.VM.get_HVM_shadow_multiplier(ref))
    check("XenAPI HVM_shadow_multiplier is 4.0", got == 4.0, repr(got))
    watch.expect_snapshot("VM.set_shadow_multiplier", "vm", ref, "HVM_shadow_multiplier 4.0",
                          lambda s: float(s.get("HVM_shadow_multiplier", 0)) == 4.0)
    stat = x.ok("VM.stat", id=vm_id)
    check("VM.stat shadow_multiplier_target is 4.0", stat[0][1]["shadow_multiplier_target"] == 4.0,
          repr(stat[0][1]["shadow_multiplier_target"]))
    api.xenapi.VM.set_shadow_multiplier_live(ref, 2.0)
    got = float(api.xenapi.VM.get_HVM_shadow_multiplier(ref))
    check("XenAPI VM.set_shadow_multiplier_live sets 2.0", got == 2.0, repr(got))
    watch.expect_snapshot("VM.set_shadow_multiplier_live", "vm", ref, "HVM_shadow_multiplier 2.0",
                          lambda s: float(s.get("HVM_shadow_multiplier", 0)) == 2.0)

    step("shutdown")
    x.op("VM.shutdown", id=vm_id, clean_shutdown_timeout=[10.0])
    state("Halted", "VM.shutdown")

    step("start/destroy")
    x.op("VM.start", id=vm_id)
    state("Running", "VM.start")
    x.op("VM.destroy", id=vm_id)
    state("Halted", "VM.destroy")

    step("remove")
    check("VM.migrate: a clear error", x.error("VM.migrate", id=vm_id, url="http://x/") == "Bad_power_state")
    x.ok("VM.remove", id=vm_id)
    try:
        api.xenapi.VM.get_by_uuid(vm_id)
        check("XenAPI forgot the VM", False)
    except Exception:
        check("XenAPI forgot the VM", True)
    watch.expect("VM.remove", "vm", ref, "del", None)
    check("VM.stat after remove: Does_not_exist", x.error("VM.stat", id=vm_id) == "Does_not_exist")

    step("transient VM")
    tid = str(uuid.uuid4())
    tt = dict(t, id=tid, name="xenops-transient", transient=True)
    check("VM.add of a transient VM", x.ok("VM.add", t=tt) == tid)
    tref = api.xenapi.VM.get_by_uuid(tid)
    x.op("VM.start", id=tid)
    check("XenAPI: transient VM Running", api.xenapi.VM.get_power_state(tref) == "Running")
    watch.expect("VM.start (transient)", "vm", tref, "mod", "Running")
    api.xenapi.VM.hard_shutdown(tref)  # halted through XenAPI: the front forgets it
    watch.expect("VM.hard_shutdown (transient)", "vm", tref, "del", None)
    try:
        api.xenapi.VM.get_record(tref)
        check("XenAPI forgot the halted transient VM", False)
    except Exception:
        check("XenAPI forgot the halted transient VM", True)
    check("VM.stat of the halted transient VM: Does_not_exist", x.error("VM.stat", id=tid) == "Does_not_exist")

    step("XenAPI VM seen by xenopsd")
    rec = {"name_label": "from-xenapi", "name_description": "", "user_version": "1", "is_a_template": False,
           "affinity": "OpaqueRef:NULL", "memory_static_max": str(64 << 20), "memory_dynamic_max": str(64 << 20),
           "memory_dynamic_min": str(64 << 20), "memory_static_min": str(64 << 20), "VCPUs_params": {},
           "VCPUs_max": "1", "VCPUs_at_startup": "1", "actions_after_shutdown": "destroy",
           "actions_after_reboot": "restart", "actions_after_crash": "restart", "PV_bootloader": "",
           "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
           "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "cd"}, "platform": {},
           "PCI_bus": "", "other_config": {}, "recommendations": ""}
    ref2 = api.xenapi.VM.create(rec)
    uuid2 = api.xenapi.VM.get_uuid(ref2)
    ids = [p[0]["id"] for p in x.ok("VM.list")]
    check("VM.list shows the XenAPI VM", uuid2 in ids, repr(ids))
    api.xenapi.VM.destroy(ref2)
    api.xenapi.session.logout()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", required=True)
    args = ap.parse_args()
    return run(lambda: scenario(args), "OK xenops scenario")


if __name__ == "__main__":
    sys.exit(main())
