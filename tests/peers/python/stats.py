#!/usr/bin/python3
"""Statistics the way XenServer's own examples read them: XenAPI.py logs in,
a VM runs on the simulator with a set load, then /rrd_updates (rrdtool
xport XML, parsed with ElementTree), /vm_rrd and /host_rrd (rrdtool dump
XML) and VM.query_data_source must agree with that load.

    stats.py --url http://127.0.0.1:PORT --user root --password PW
"""

import argparse
import sys
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

from os_xenapi.client import XenAPI

from checks import CheckFailed, check, run, step

MIB = 1 << 20


def fetch(base, path, **query):
    url = base + path + "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.status, r.read()


def xport(body):
    root = ET.fromstring(body)
    meta = root.find("meta")
    legend = [e.text for e in meta.find("legend")]
    rows = [(int(r.find("t").text), [float(v.text) for v in r.findall("v")]) for r in root.find("data")]
    return int(meta.find("step").text), int(meta.find("columns").text), legend, rows


def scenario(base, user, password):
    step("login and a loaded VM")
    session = XenAPI.Session(base + "/")
    session.xenapi.login_with_password(user, password)
    x = session.xenapi
    sid = session._session
    host = x.host.get_all()[0]
    host_uuid = x.host.get_uuid(host)
    vm = x.VM.create({
        "name_label": "xenith-peer-python-stats", "name_description": "tests/peers/python/stats.py",
        "user_version": "1", "is_a_template": False, "affinity": "OpaqueRef:NULL",
        "memory_static_min": str(128 * MIB), "memory_static_max": str(512 * MIB),
        "memory_dynamic_min": str(512 * MIB), "memory_dynamic_max": str(512 * MIB),
        "VCPUs_max": "1", "VCPUs_at_startup": "1", "VCPUs_params": {},
        "actions_after_shutdown": "destroy", "actions_after_reboot": "restart", "actions_after_crash": "destroy",
        "PV_bootloader": "", "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "",
        "PV_legacy_args": "", "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "cd"},
        "platform": {}, "PCI_bus": "", "other_config": {}, "recommendations": "", "xenstore_data": {},
        "tags": [], "blocked_operations": {}, "domain_type": "hvm",
    })
    uuid = x.VM.get_uuid(vm)
    x.VM.start(vm, False, False)
    x.host.call_plugin(host, "sim", "load", {"vm": uuid, "cpu": "0.25"})
    check("VM running with a quarter of its vCPU busy", x.VM.get_power_state(vm) == "Running")

    step("rrd_updates (xport XML)")
    start = int(time.time()) - 120
    deadline = time.time() + 40
    while True:
        status, body = fetch(base, "/rrd_updates", start=start, host="true", session_id=sid)
        stepsecs, columns, legend, rows = xport(body)
        col = legend.index("AVERAGE:vm:%s:cpu0" % uuid) if "AVERAGE:vm:%s:cpu0" % uuid in legend else -1
        if status == 200 and col >= 0 and any(abs(v[col] - 0.25) < 1e-6 for _, v in rows):
            break
        if time.time() > deadline:
            raise CheckFailed("no cpu0 row at 0.25 within 40 s: %s" % body[:800])
        time.sleep(2)
    check("xport step 5 and one column per legend entry", stepsecs == 5 and columns == len(legend),
          "step %d columns %d legend %d" % (stepsecs, columns, len(legend)))
    check("the host's memory is there", "AVERAGE:host:%s:memory_free_kib" % host_uuid in legend, str(legend))
    mem = rows[0][1][legend.index("AVERAGE:vm:%s:memory" % uuid)]
    check("the VM's memory is 512 MiB", mem == 512 * MIB, str(mem))
    check("rows newest first", all(rows[i][0] - rows[i + 1][0] == 5 for i in range(len(rows) - 1)),
          str([t for t, _ in rows]))

    step("data source messages")
    v = x.VM.query_data_source(vm, "cpu0")
    check("VM.query_data_source cpu0 = 0.25", abs(v - 0.25) < 1e-6, str(v))
    names = [d["name_label"] for d in x.host.get_data_sources(host)]
    check("host.get_data_sources", "memory_total_kib" in names and "cpu_avg" in names, str(names))
    try:
        x.VM.query_data_source(vm, "no_such_source")
        raise CheckFailed("query of an unknown data source succeeded")
    except XenAPI.Failure as f:
        check("an unknown data source is INTERNAL_ERROR", f.details[0] == "INTERNAL_ERROR", str(f.details))

    step("whole RRDs (rrdtool dump XML)")
    for path, query in (("/host_rrd", {}), ("/vm_rrd", {"uuid": uuid})):
        status, body = fetch(base, path, session_id=sid, **query)
        root = ET.fromstring(body)
        names = [d.find("name").text for d in root.findall("ds")]
        check("%s is an RRD dump" % path, status == 200 and root.tag == "rrd" and root.find("step").text == "5"
              and len(root.findall("rra")) >= 4 and names, body[:300].decode(errors="replace"))
    check("the VM's dump has cpu0", "cpu0" in names, str(names))

    x.VM.hard_shutdown(vm)
    x.VM.destroy(vm)
    session.xenapi.session.logout()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", required=True)
    a = ap.parse_args()
    return run(lambda: scenario(a.url.rstrip("/"), a.user, a.password), "OK: all python stats checks passed")


if __name__ == "__main__":
    sys.exit(main())
