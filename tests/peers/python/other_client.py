#!/usr/bin/python3
"""One XenAPI.py call as "another client", for tests/peers/node/scenario.mjs.

    /usr/bin/python3 tests/peers/python/other_client.py --url URL --user U --password PW COMMAND ARGS...

Commands (each logs in with XenAPI.py, does one change, logs out):

    create-vm NAME TAG     VM.create (halted HVM VM, other_config xenith-test=TAG); prints its ref
    set-name-label REF S   VM.set_name_label
    destroy-vm REF         VM.destroy

Prints the result (the ref, or "ok") on stdout; on a XenAPI failure prints
"FAILURE <ErrorDescription...>" and exits 1; usage errors exit 2.
"""

import argparse
import sys

try:
    from os_xenapi.client import XenAPI
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write("cannot import os_xenapi.client.XenAPI with %s (%s); use /usr/bin/python3 "
                     "with Debian's python3-os-xenapi\n" % (sys.executable, exc))
    sys.exit(2)

MIB = 1024 * 1024
GIB = 1024 * MIB


def vm_record(name, tag):
    return {
        "name_label": name,
        "name_description": "created by tests/peers/python/other_client.py",
        "user_version": "1",
        "is_a_template": False,
        "affinity": "OpaqueRef:NULL",
        "memory_static_min": str(256 * MIB),
        "memory_static_max": str(GIB),
        "memory_dynamic_min": str(GIB),
        "memory_dynamic_max": str(GIB),
        "VCPUs_max": "1",
        "VCPUs_at_startup": "1",
        "VCPUs_params": {},
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "PV_bootloader": "",
        "PV_kernel": "",
        "PV_ramdisk": "",
        "PV_args": "",
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "cdn"},
        "platform": {},
        "PCI_bus": "",
        "other_config": {"xenith-test": tag},
        "recommendations": "",
        "xenstore_data": {},
        "tags": ["peer-python-other"],
        "blocked_operations": {},
        "domain_type": "hvm",
    }


COMMANDS = {
    "create-vm": (2, lambda x, name, tag: x.VM.create(vm_record(name, tag))),
    "set-name-label": (2, lambda x, ref, label: x.VM.set_name_label(ref, label)),
    "destroy-vm": (1, lambda x, ref: x.VM.destroy(ref)),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", required=True)
    ap.add_argument("command", choices=sorted(COMMANDS))
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    nargs, fn = COMMANDS[a.command]
    if len(a.args) != nargs:
        ap.error("%s takes %d argument(s)" % (a.command, nargs))
    session = XenAPI.Session(a.url.rstrip("/") + "/")
    session.xenapi.login_with_password(a.user, a.password, "2.0", "xenith-peer-other-client")
    try:
        result = fn(session.xenapi, *a.args)
    except XenAPI.Failure as f:
        print("FAILURE " + " ".join(map(str, f.details)), flush=True)
        return 1
    finally:
        session.xenapi.session.logout()
    print(result if result not in (None, "") else "ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
