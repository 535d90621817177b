#!/usr/bin/python3
"""Peer-client scenario: Xenith driven by the real Python XenAPI client.

Run it with Debian's own interpreter (the package lives in /usr/lib/python3/
dist-packages, which other Pythons on the PATH do not see):

    /usr/bin/python3 tests/peers/python/scenario.py \
        --url http://127.0.0.1:PORT --user root --password PW
    /usr/bin/python3 tests/peers/python/scenario.py \
        --socket /path/to/xapi.sock --user root --password PW

Arguments may also come from the environment: XENITH_URL, XENITH_SOCKET,
XENITH_USER (default root), XENITH_PASSWORD.

The client is os_xenapi.client.XenAPI from Debian's python3-os-xenapi (0.3.4 in
bookworm), a copy of xapi's XenAPI.py.  What it does on the wire, read from its
source:

* Session(url) is an xmlrpc.client.ServerProxy: every call is an XML-RPC POST to
  the URL's path ("/RPC2" when the URL has none).
* session.xenapi.login_with_password(user, pw[, version, originator]) sends
  session.login_with_password, then -- inside the same login --
  pool.get_all, pool.get_master(pool[0]), host.get_API_version_major(master)
  and host.get_API_version_minor(master).  Any failure there fails the login.
* Every other call is sent as (session_ref, *args).  A Failure whose
  ErrorDescription[0] is SESSION_INVALID is never raised: XenAPI.py logs in
  again with the last credentials and retries (3 times at most).  To see a
  SESSION_INVALID we therefore call through the ServerProxy layer directly
  (getattr(session, "VM.get_all")(...)), which returns the raw
  {"Status": ..., "ErrorDescription": [...]} struct.
* Other failures raise XenAPI.Failure with .details = ErrorDescription.
* xapi_local() is Session("http://_var_xapi_xapi/", transport=UDSTransport()):
  the "host" with "_" turned into "/" is the socket path, hard-coded to
  /var/xapi/xapi (newer upstream XenAPI.py uses /var/lib/xcp/xapi).  Under
  Python 3 this version's UDSTransport is broken: it overrides send_request
  with the Python 2 signature (connection, handler, body) and never writes the
  body, so every call raises TypeError.  For the socket scenario we restore
  xmlrpc.client.Transport.send_request on it (its make_connection, which opens
  the unix socket, is kept) and build the Session exactly as xapi_local()
  does, with the socket path given on the command line.
"""

import argparse
import os
import re
import sys
import threading
import time
import traceback
import uuid
import xmlrpc.client

try:
    from os_xenapi.client import XenAPI
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        "FAIL: cannot import os_xenapi.client.XenAPI with %s (%s); "
        "run scripts/install-test-deps.sh (Debian package python3-os-xenapi) "
        "and use /usr/bin/python3\n" % (sys.executable, exc))
    sys.exit(2)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
GIB = 1024 * 1024 * 1024
MIB = 1024 * 1024


from checks import NULL_REF, CheckFailed, _step, check, expect_failure, is_ref, run, step  # noqa: E402


def raw_call(session, method, *params):
    """Call through the ServerProxy layer of a XenAPI.Session, bypassing
    XenAPI.py's result parsing and its SESSION_INVALID retry."""
    return getattr(session, method)(*params)


def expect_raw_failure(name, result, code, params=None):
    ok = (isinstance(result, dict) and result.get("Status") == "Failure"
          and isinstance(result.get("ErrorDescription"), list)
          and result["ErrorDescription"][:1] == [code])
    if ok and params is not None:
        ok = result["ErrorDescription"][1:] == list(params)
    check(name, ok, "expected {Status: Failure, ErrorDescription: [%s%s]}, got %r"
          % (code, (", " + ", ".join(map(repr, params))) if params else "", result))


def check_int_string(name, value, expected=None):
    """XenAPI int (int64) values travel over XML-RPC as <string> decimal
    numbers; .NET/Java SDKs parse them from strings."""
    check(name + " is a decimal string", isinstance(value, str) and re.match(r"^-?\d+$", value) is not None,
          "got %r (%s); XenAPI sends int64 as XML-RPC <string>" % (value, type(value).__name__))
    if expected is not None:
        check(name + " == %d" % expected, int(value) == expected, "got %r" % value)


# --------------------------------------------------------------------------
# session construction


def fix_uds_transport():
    """Restore the Python 3 send_request on os_xenapi's UDSTransport (see the
    module docstring).  Returns True when the patch was needed."""
    t = XenAPI.UDSTransport
    code = getattr(t.send_request, "__code__", None)
    if code is not None and code.co_argcount == 4 and "connection" in code.co_varnames[:4]:
        t.send_request = xmlrpc.client.Transport.send_request
        return True
    return False


def stock_local_socket_path():
    s = XenAPI.xapi_local()
    host = s._ServerProxy__host  # what UDSHTTPConnection turns into the path
    return host.replace("_", "/")


def local_session(path):
    if "_" in path:
        raise CheckFailed("socket path %r contains '_': XenAPI.py's UDSHTTPConnection "
                          "maps every '_' of the URL host to '/', so it cannot reach it" % path)
    if not os.path.isabs(path):
        path = os.path.abspath(path)
    # Exactly what XenAPI.xapi_local() does, with our path.
    return XenAPI.Session("http://%s/" % path.replace("/", "_"), transport=XenAPI.UDSTransport())


# --------------------------------------------------------------------------
# scenario


def scenario(make_session, user, password, mode, base_url=None):
    # ---------------------------------------------------------------- login
    step("login")
    session = make_session()
    try:
        session.xenapi.login_with_password(user, password)
    except XenAPI.Failure as f:
        raise CheckFailed("login_with_password(%r, ***) failed: %r" % (user, f.details))
    except xmlrpc.client.Fault as f:
        raise CheckFailed("login_with_password: XML-RPC fault %s %r (XenAPI.py's login also calls "
                          "pool.get_all, pool.get_master, host.get_API_version_major/minor)"
                          % (f.faultCode, f.faultString))
    sref = session._session
    check("login returns a session ref", is_ref(sref), "got %r" % (sref,))
    check("XenAPI.py computed API version major.minor", re.match(r"^\d+\.\d+$", session.API_version or "") is not None,
          "got %r" % session.API_version)
    x = session.xenapi

    # ---------------------------------------------------------------- pool
    step("pool")
    pools = x.pool.get_all()
    check("exactly one pool", isinstance(pools, list) and len(pools) == 1, "pool.get_all -> %r" % pools)
    pool = pools[0]
    check("pool ref is an OpaqueRef", is_ref(pool), repr(pool))
    prec = x.pool.get_record(pool)
    check("pool record is a struct", isinstance(prec, dict), repr(prec)[:200])
    check("pool.uuid is a UUID", UUID_RE.match(prec.get("uuid", "")) is not None, repr(prec.get("uuid")))
    master = prec.get("master")
    check("pool.get_master == pool.master", x.pool.get_master(pool) == master,
          "%r vs %r" % (x.pool.get_master(pool), master))
    all_pools = x.pool.get_all_records()
    check("pool.get_all_records keyed by ref", isinstance(all_pools, dict) and list(all_pools) == [pool],
          repr(list(all_pools) if isinstance(all_pools, dict) else all_pools))
    check("pool.get_by_uuid", x.pool.get_by_uuid(prec["uuid"]) == pool)

    # ---------------------------------------------------------------- host
    step("host")
    hosts = x.host.get_all()
    check("exactly one host", len(hosts) == 1, repr(hosts))
    host = hosts[0]
    check("pool.master is the host", master == host, "pool.master=%r host.get_all=%r" % (master, hosts))
    hrec = x.host.get_record(host)
    check("host.name_label non-empty", isinstance(hrec.get("name_label"), str) and hrec["name_label"] != "",
          repr(hrec.get("name_label")))
    check("host.uuid is a UUID", UUID_RE.match(hrec.get("uuid", "")) is not None, repr(hrec.get("uuid")))
    check("host.get_by_uuid", x.host.get_by_uuid(hrec["uuid"]) == host)
    check("host.get_by_name_label", host in x.host.get_by_name_label(hrec["name_label"]))
    check_int_string("host.API_version_major", hrec.get("API_version_major"))
    check_int_string("host.API_version_minor", hrec.get("API_version_minor"))
    check("session.API_version matches host record",
          session.API_version == "%s.%s" % (hrec["API_version_major"], hrec["API_version_minor"]),
          "%r vs %r.%r" % (session.API_version, hrec["API_version_major"], hrec["API_version_minor"]))
    check("host.enabled is a bool", isinstance(hrec.get("enabled"), bool), repr(hrec.get("enabled")))
    check("host.software_version is a map", isinstance(hrec.get("software_version"), dict))

    # ---------------------------------------------------------------- SR/PBD
    step("SR and PBD")
    srs = x.SR.get_all_records()
    check("at least one SR", isinstance(srs, dict) and len(srs) >= 1, repr(srs)[:300])
    attached = [(r, rec) for r, rec in srs.items() if rec.get("PBDs")]
    check("an SR has a PBD", attached, "SRs: %r" % {r: (v.get("name_label"), v.get("type"), v.get("PBDs"))
                                                       for r, v in srs.items()})
    sr, srrec = attached[0]
    check("SR.uuid is a UUID", UUID_RE.match(srrec.get("uuid", "")) is not None)
    check_int_string("SR.physical_size", srrec.get("physical_size"))
    pbd = srrec["PBDs"][0]
    pbdrec = x.PBD.get_record(pbd)
    check("PBD.SR is the SR", pbdrec.get("SR") == sr, "%r vs %r" % (pbdrec.get("SR"), sr))
    check("PBD.host is the host", pbdrec.get("host") == host, "%r vs %r" % (pbdrec.get("host"), host))
    check("host.PBDs contains the PBD", pbd in x.host.get_PBDs(host))
    check("SR.get_by_uuid", x.SR.get_by_uuid(srrec["uuid"]) == sr)

    # ---------------------------------------------------------------- network/PIF
    step("network and PIF")
    nets = x.network.get_all_records()
    check("at least one network", isinstance(nets, dict) and len(nets) >= 1)
    with_pif = [(r, rec) for r, rec in nets.items() if rec.get("PIFs")]
    check("a network has a PIF", with_pif, repr({r: (v.get("name_label"), v.get("PIFs")) for r, v in nets.items()}))
    net, netrec = with_pif[0]
    check_int_string("network.MTU", netrec.get("MTU"))
    pifs = x.PIF.get_all_records()
    mgmt = [(r, rec) for r, rec in pifs.items() if rec.get("management")]
    check("a management PIF exists", mgmt, repr({r: (v.get("device"), v.get("management")) for r, v in pifs.items()}))
    pif, pifrec = mgmt[0]
    check("management PIF is on the host", pifrec.get("host") == host)
    check("management PIF's network lists it", pif in x.network.get_PIFs(pifrec.get("network")))
    check("host.PIFs contains the management PIF", pif in hrec.get("PIFs", []))

    # ---------------------------------------------------------------- dom0
    step("control domain")
    vms = x.VM.get_all_records()
    dom0s = [(r, rec) for r, rec in vms.items() if rec.get("is_control_domain") is True]
    check("exactly one control-domain VM", len(dom0s) == 1,
          repr({r: (v.get("name_label"), v.get("is_control_domain")) for r, v in vms.items()}))
    dom0, dom0rec = dom0s[0]
    check("control domain is not a template", dom0rec.get("is_a_template") is False)
    check("control domain resident_on the host", dom0rec.get("resident_on") == host,
          repr(dom0rec.get("resident_on")))
    check("control domain is Running", dom0rec.get("power_state") == "Running", repr(dom0rec.get("power_state")))
    check("host.resident_VMs contains the control domain", dom0 in x.host.get_resident_VMs(host))

    # ---------------------------------------------------------------- session record
    step("session record")
    srec = x.session.get_record(session._session)
    check("session.this_host is the host", srec.get("this_host") == host, repr(srec.get("this_host")))
    check("session.is_local_superuser for root", srec.get("is_local_superuser") is True,
          repr(srec.get("is_local_superuser")))

    # ---------------------------------------------------------------- VM create
    step("VM.create")
    tag = uuid.uuid4().hex[:8]
    name = "xenith-peer-py-%s-%s" % (mode, tag)
    mem = 1 * GIB
    # The record a XenAPI.py user passes (this is what OpenStack nova's
    # vm_utils.create_vm sends): int fields as decimal strings, as XenAPI wants
    # on XML-RPC.
    record = {
        "name_label": name,
        "name_description": "created by tests/peers/python/scenario.py",
        "user_version": "1",
        "is_a_template": False,
        "affinity": NULL_REF,
        "memory_static_min": str(256 * MIB),
        "memory_static_max": str(mem),
        "memory_dynamic_min": str(mem),
        "memory_dynamic_max": str(mem),
        "memory_target": str(mem),
        "VCPUs_max": "2",
        "VCPUs_at_startup": "2",
        "VCPUs_params": {},
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "destroy",
        "PV_bootloader": "",
        "PV_kernel": "",
        "PV_ramdisk": "",
        "PV_args": "",
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "dc"},
        "platform": {"acpi": "1", "apic": "true", "pae": "true", "viridian": "true", "timeoffset": "0"},
        "PCI_bus": "",
        "other_config": {"xenith-test": tag, "created_by": "peers-python"},
        "recommendations": "",
        "xenstore_data": {"vm-data/allowvssprovider": "false"},
        "ha_always_run": False,
        "ha_restart_priority": "",
        "tags": [],
        "blocked_operations": {},
    }
    vm = x.VM.create(record)
    check("VM.create returns a ref", is_ref(vm), repr(vm))
    check("new VM is in VM.get_all", vm in x.VM.get_all())
    rec = x.VM.get_record(vm)
    vm_uuid = rec.get("uuid", "")
    check("VM.uuid is a UUID", UUID_RE.match(vm_uuid) is not None, repr(vm_uuid))
    check("VM.name_label", rec.get("name_label") == name, repr(rec.get("name_label")))
    check("VM.power_state is Halted", rec.get("power_state") == "Halted", repr(rec.get("power_state")))
    check("VM.is_control_domain is False", rec.get("is_control_domain") is False, repr(rec.get("is_control_domain")))
    check("VM.is_a_template is False", rec.get("is_a_template") is False)
    check_int_string("VM.memory_static_max", rec.get("memory_static_max"), mem)
    check_int_string("VM.memory_static_min", rec.get("memory_static_min"), 256 * MIB)
    check_int_string("VM.VCPUs_max", rec.get("VCPUs_max"), 2)
    check("VM.actions_after_crash", rec.get("actions_after_crash") == "destroy", repr(rec.get("actions_after_crash")))
    check("VM.actions_after_reboot", rec.get("actions_after_reboot") == "restart")
    check("VM.platform kept", (rec.get("platform") or {}).get("viridian") == "true", repr(rec.get("platform")))
    check("VM.other_config kept", (rec.get("other_config") or {}).get("xenith-test") == tag,
          repr(rec.get("other_config")))
    check("VM.resident_on is NULL", rec.get("resident_on") == NULL_REF, repr(rec.get("resident_on")))
    check("VM.VBDs empty", rec.get("VBDs") == [], repr(rec.get("VBDs")))
    check("VM.VIFs empty", rec.get("VIFs") == [], repr(rec.get("VIFs")))
    check("VM.HVM_shadow_multiplier is a float", isinstance(rec.get("HVM_shadow_multiplier"), float),
          repr(rec.get("HVM_shadow_multiplier")))
    check("VM.allowed_operations is a list", isinstance(rec.get("allowed_operations"), list))

    step("VM lookups")
    check("VM.get_by_uuid", x.VM.get_by_uuid(vm_uuid) == vm)
    check("VM.get_by_name_label", x.VM.get_by_name_label(name) == [vm], repr(x.VM.get_by_name_label(name)))
    check("VM.get_uuid", x.VM.get_uuid(vm) == vm_uuid)

    # ---------------------------------------------------------------- VM set
    step("VM setters")
    new_name = name + "-renamed"
    x.VM.set_name_label(vm, new_name)
    check("VM.set_name_label/get_name_label", x.VM.get_name_label(vm) == new_name, repr(x.VM.get_name_label(vm)))
    check("VM.get_by_name_label(new name)", x.VM.get_by_name_label(new_name) == [vm])
    check("VM.get_by_name_label(old name) is empty", x.VM.get_by_name_label(name) == [])
    x.VM.set_name_description(vm, "described")
    check("VM.set_name_description", x.VM.get_name_description(vm) == "described")
    x.VM.add_to_other_config(vm, "peer-key", "peer-value")
    oc = x.VM.get_other_config(vm)
    check("VM.add_to_other_config", oc.get("peer-key") == "peer-value" and oc.get("xenith-test") == tag, repr(oc))
    expect_failure("VM.add_to_other_config duplicate key -> MAP_DUPLICATE_KEY",
                   lambda: x.VM.add_to_other_config(vm, "peer-key", "other"), "MAP_DUPLICATE_KEY")
    x.VM.remove_from_other_config(vm, "peer-key")
    oc = x.VM.get_other_config(vm)
    check("VM.remove_from_other_config", "peer-key" not in oc and oc.get("xenith-test") == tag, repr(oc))
    x.VM.remove_from_other_config(vm, "never-there")  # absent key: no error (XO relies on this)
    check("VM.remove_from_other_config of an absent key is a no-op", True)
    x.VM.set_other_config(vm, {"a": "1", "b": "2"})
    check("VM.set_other_config", x.VM.get_other_config(vm) == {"a": "1", "b": "2"}, repr(x.VM.get_other_config(vm)))
    x.VM.add_tags(vm, "peer-tag")
    check("VM.add_tags", "peer-tag" in x.VM.get_tags(vm), repr(x.VM.get_tags(vm)))
    x.VM.remove_tags(vm, "peer-tag")
    check("VM.remove_tags", "peer-tag" not in x.VM.get_tags(vm))
    rec = x.VM.get_record(vm)
    check("record reflects the setters",
          rec.get("name_label") == new_name and rec.get("name_description") == "described"
          and rec.get("other_config") == {"a": "1", "b": "2"},
          repr({k: rec.get(k) for k in ("name_label", "name_description", "other_config")}))

    # ---------------------------------------------------------------- errors
    step("error codes")
    bogus = "OpaqueRef:%s" % uuid.uuid4()
    expect_failure("VM.get_record(bad ref) -> HANDLE_INVALID [VM, ref]",
                   lambda: x.VM.get_record(bogus), "HANDLE_INVALID", ["VM", bogus])
    expect_failure("VM.set_name_label(bad ref) -> HANDLE_INVALID [VM, ref]",
                   lambda: x.VM.set_name_label(bogus, "x"), "HANDLE_INVALID", ["VM", bogus])
    expect_failure("VM.get_by_uuid(unknown) -> UUID_INVALID [VM, uuid]",
                   lambda: x.VM.get_by_uuid("00000000-0000-0000-0000-000000000000"),
                   "UUID_INVALID", ["VM", "00000000-0000-0000-0000-000000000000"])
    expect_failure("VM.no_such_method -> MESSAGE_METHOD_UNKNOWN",
                   lambda: x.VM.no_such_method(vm), "MESSAGE_METHOD_UNKNOWN", ["VM.no_such_method"])
    expect_failure("VM.get_name_label with an extra arg -> MESSAGE_PARAMETER_COUNT_MISMATCH",
                   lambda: x.VM.get_name_label(vm, "extra"), "MESSAGE_PARAMETER_COUNT_MISMATCH")

    # SESSION_INVALID: bypass XenAPI.py's retry by calling the ServerProxy layer.
    bad_session = "OpaqueRef:%s" % uuid.uuid4()
    expect_raw_failure("VM.get_all(bad session) -> SESSION_INVALID [ref]",
                       raw_call(session, "VM.get_all", bad_session), "SESSION_INVALID", [bad_session])
    expect_raw_failure("VM.get_record(bad session, vm) -> SESSION_INVALID",
                       raw_call(session, "VM.get_record", bad_session, vm), "SESSION_INVALID")
    ok = raw_call(session, "VM.get_name_label", session._session, vm)
    check("raw call with the good session -> {Status: Success, Value}",
          ok == {"Status": "Success", "Value": new_name}, repr(ok))
    if base_url is not None:
        proxy = xmlrpc.client.ServerProxy(base_url + "/")
        expect_raw_failure("plain xmlrpc.client: pool.get_all(bad session) -> SESSION_INVALID",
                           proxy.pool.get_all(bad_session), "SESSION_INVALID", [bad_session])

    # XenAPI.py's SESSION_INVALID handling: a stale session ref makes it log in
    # again (login_with_password + the 4 version calls) and retry.
    good = session._session
    session._session = bad_session
    pools_again = x.pool.get_all()
    check("XenAPI.py re-logs in after SESSION_INVALID and retries", pools_again == [pool] and
          session._session not in (bad_session, None), "pool.get_all -> %r, session %r" % (pools_again, session._session))
    check("old session still valid after re-login", raw_call(session, "pool.get_all", good).get("Status") == "Success")
    raw_call(session, "session.logout", good)

    # ---------------------------------------------------------------- destroy
    step("VM.destroy")
    x.VM.destroy(vm)
    check("VM gone from VM.get_all", vm not in x.VM.get_all())
    expect_failure("stale VM ref -> HANDLE_INVALID [VM, ref]",
                   lambda: x.VM.get_record(vm), "HANDLE_INVALID", ["VM", vm])
    expect_failure("stale VM ref on a getter -> HANDLE_INVALID [VM, ref]",
                   lambda: x.VM.get_name_label(vm), "HANDLE_INVALID", ["VM", vm])
    expect_failure("destroyed VM's uuid -> UUID_INVALID", lambda: x.VM.get_by_uuid(vm_uuid),
                   "UUID_INVALID", ["VM", vm_uuid])
    check("destroyed VM's name -> get_by_name_label empty", x.VM.get_by_name_label(new_name) == [])
    expect_failure("VM.destroy twice -> HANDLE_INVALID", lambda: x.VM.destroy(vm), "HANDLE_INVALID", ["VM", vm])

    # ---------------------------------------------------------------- logins
    step("logins")
    s2 = make_session()
    s2.xenapi.login_with_password(user, password, "2.0", "xenith-peer-test")
    check("login_with_password(user, pw, version, originator)", is_ref(s2._session))
    check("session.originator recorded",
          s2.xenapi.session.get_originator(s2._session) == "xenith-peer-test",
          repr(s2.xenapi.session.get_originator(s2._session)))
    old = s2._session
    s2.xenapi.session.logout()
    expect_raw_failure("call after session.logout -> SESSION_INVALID",
                       raw_call(s2, "pool.get_all", old), "SESSION_INVALID", [old])
    if base_url is not None:
        s3 = XenAPI.Session(base_url + "/RPC2")
        s3.xenapi.login_with_password(user, password)
        check("XML-RPC on /RPC2 too", is_ref(s3._session))
        s3.xenapi.session.logout()

    if mode == "http":
        s4 = make_session()
        expect_failure("wrong password -> SESSION_AUTHENTICATION_FAILED",
                       lambda: s4.xenapi.login_with_password(user, password + "-wrong"),
                       "SESSION_AUTHENTICATION_FAILED")
        expect_failure("unknown user -> SESSION_AUTHENTICATION_FAILED",
                       lambda: s4.xenapi.login_with_password("no-such-user", password),
                       "SESSION_AUTHENTICATION_FAILED")

    # ---------------------------------------------------------------- explicit setters
    # VM.set_memory_static_max is an explicit (non-generated) message with
    # constraints; kept last so the generic checks above report first.
    step("VM.set_memory_static_max")
    vm2 = x.VM.create(dict(record, name_label=name + "-mem", other_config={}))
    x.VM.set_memory_static_max(vm2, str(2 * GIB))
    check_int_string("VM.set_memory_static_max -> get_memory_static_max", x.VM.get_memory_static_max(vm2), 2 * GIB)
    check("record shows the new memory_static_max", x.VM.get_record(vm2).get("memory_static_max") == str(2 * GIB))
    x.VM.destroy(vm2)

    # ---------------------------------------------------------------- Async tasks, events
    async_tasks(session, record, name, host, dom0)
    counts = events(session, make_session, user, password, record, name, dom0)

    session.xenapi.session.logout()
    check("logout", session._session is None)

    if mode == "socket":
        # Like xapi, a unix-socket client is local root: the password is not checked.
        s5 = make_session()
        try:
            s5.xenapi.login_with_password(user, password + "-wrong")
        except XenAPI.Failure as f:
            raise CheckFailed("unix socket: login as %s with a wrong password should be trusted "
                              "(local root, as xapi does), got %r" % (user, f.details))
        check("unix socket: local root logs in whatever the password", is_ref(s5._session))
        s5.xenapi.session.logout()

    # ---------------------------------------------------------------- valid_ref_counts type
    # Kept last (a known server divergence must not hide the checks above).
    # xapi builds event.from's answer with Event_types.rpc_of_event_from, whose
    # counts are Rpc.Int32: XML-RPC <i4>, so Python gets ints (unlike int64
    # fields, which XenAPI sends as strings).
    step("event.from valid_ref_counts type")
    check("valid_ref_counts values are XML-RPC <i4> ints, as xapi sends them",
          all(isinstance(v, int) for v in counts.values()),
          "got %r" % ({k: counts[k] for k in sorted(counts)[:4]},))


# --------------------------------------------------------------------------
# Async tasks and events


TASK_TIMEOUT = 10.0   # seconds a task may stay pending before we give up
EVENT_TIMEOUT = 5.0   # event.from / event.next waits


def event_from(x, classes, token, timeout):
    # "from" is a Python keyword: x.event.from(...) does not parse.
    return getattr(x.event, "from")(classes, token, float(timeout))


def wait_task(x, task, what):
    """Poll task.get_status until it leaves pending (as XenAPI.py users do),
    then return the task record."""
    deadline = time.time() + TASK_TIMEOUT
    while True:
        status = x.task.get_status(task)
        if status not in ("pending", "cancelling"):
            return x.task.get_record(task)
        if time.time() > deadline:
            raise CheckFailed("%s: task %s still %s after %.0f s: %r"
                              % (what, task, status, TASK_TIMEOUT, x.task.get_record(task)))
        time.sleep(0.05)


def task_result_value(result):
    """task.result is the XML-RPC text of the value, e.g.
    "<value>OpaqueRef:...</value>" (xapi stores Xmlrpc.to_string of it)."""
    wrapped = "<methodResponse><params><param>%s</param></params></methodResponse>" % result
    return xmlrpc.client.loads(wrapped)[0][0]


def async_tasks(session, record, name, host, dom0):
    x = session.xenapi
    step("Async.VM.create + task polling")
    aname = name + "-async"
    t0 = time.time()
    task = x.Async.VM.create(dict(record, name_label=aname, other_config={}))
    check("Async.VM.create returns a task ref at once", is_ref(task) and time.time() - t0 < 5, repr(task))
    check("it is a task: task.get_name_label == Async.VM.create",
          x.task.get_name_label(task) == "Async.VM.create", repr(x.task.get_name_label(task)))
    check("session.tasks lists the task", task in x.session.get_tasks(session._session),
          repr(x.session.get_tasks(session._session)))
    trec = wait_task(x, task, "Async.VM.create")
    check("task status success", trec.get("status") == "success", repr(trec))
    check("task progress 1.0", trec.get("progress") == 1.0, repr(trec.get("progress")))
    check("task error_info empty", trec.get("error_info") == [], repr(trec.get("error_info")))
    check("task resident_on the host", trec.get("resident_on") == host, repr(trec.get("resident_on")))
    check("task created <= finished", isinstance(trec.get("created"), xmlrpc.client.DateTime)
          and isinstance(trec.get("finished"), xmlrpc.client.DateTime) and trec["created"] <= trec["finished"],
          "created %r finished %r" % (trec.get("created"), trec.get("finished")))
    result = trec.get("result", "")
    check("task result is XML-RPC text <value>...</value>",
          isinstance(result, str) and result.startswith("<value>") and result.endswith("</value>"), repr(result))
    vm = task_result_value(result)
    check("task result parses to a VM ref", is_ref(vm), "%r -> %r" % (result, vm))
    check("the VM exists with the name given to Async.VM.create", x.VM.get_name_label(vm) == aname,
          repr(x.VM.get_name_label(vm)))
    check("task.get_by_uuid", x.task.get_by_uuid(trec["uuid"]) == task)
    expect_failure("task.cancel of a finished task -> OPERATION_NOT_ALLOWED",
                   lambda: x.task.cancel(task), "OPERATION_NOT_ALLOWED")
    x.task.destroy(task)
    expect_failure("task.destroy, then task.get_record -> HANDLE_INVALID [task, ref]",
                   lambda: x.task.get_record(task), "HANDLE_INVALID", ["task", task])
    check("session.tasks no longer lists it", task not in x.session.get_tasks(session._session))

    step("failing Async calls")
    task = x.Async.VM.destroy(dom0)
    check("Async.VM.destroy(control domain) returns a task ref", is_ref(task), repr(task))
    trec = wait_task(x, task, "Async.VM.destroy(control domain)")
    check("task status failure", trec.get("status") == "failure", repr(trec))
    info = trec.get("error_info") or []
    check("task error_info[0] == OPERATION_NOT_ALLOWED", info[:1] == ["OPERATION_NOT_ALLOWED"], repr(info))
    check("failed task has an empty result", trec.get("result") == "", repr(trec.get("result")))
    check("control domain still there", x.VM.get_is_control_domain(dom0) is True)
    x.task.destroy(task)
    bogus = "OpaqueRef:%s" % uuid.uuid4()
    # xapi checks the object inside the task: the call itself succeeds.
    task = x.Async.VM.destroy(bogus)
    trec = wait_task(x, task, "Async.VM.destroy(unknown ref)")
    check("Async.VM.destroy(unknown ref) -> task failure HANDLE_INVALID [VM, ref]",
          trec.get("status") == "failure" and trec.get("error_info") == ["HANDLE_INVALID", "VM", bogus], repr(trec))
    x.task.destroy(task)
    expect_failure("Async form of a field getter does not exist -> MESSAGE_METHOD_UNKNOWN",
                   lambda: x.Async.VM.get_name_label(vm), "MESSAGE_METHOD_UNKNOWN")

    step("Async.VM.destroy")
    task = x.Async.VM.destroy(vm)
    trec = wait_task(x, task, "Async.VM.destroy")
    check("Async.VM.destroy task success", trec.get("status") == "success", repr(trec))
    check("VM gone", vm not in x.VM.get_all())
    x.task.destroy(task)


def events(session, make_session, user, password, record, name, dom0):
    x = session.xenapi
    step("event.from")
    first = event_from(x, ["vm"], "", 0)
    check("event.from(['vm'], '', 0) -> {events, valid_ref_counts, token}",
          isinstance(first, dict) and set(first) >= {"events", "valid_ref_counts", "token"}, repr(first)[:300])
    token = first["token"]
    check("token is a non-empty string", isinstance(token, str) and token != "", repr(token))
    evs = first["events"]
    all_vms = set(x.VM.get_all())
    check("initial batch: one 'add' per VM, class 'vm'",
          {e.get("ref") for e in evs} == all_vms and all(e.get("class") == "vm" and e.get("operation") == "add"
                                                         for e in evs),
          repr([(e.get("class"), e.get("operation"), e.get("ref")) for e in evs]))
    d0 = [e for e in evs if e.get("ref") == dom0]
    check("initial batch: events have id, timestamp and a snapshot (the record)",
          d0 and all(k in d0[0] for k in ("id", "timestamp", "snapshot"))
          and d0[0]["snapshot"].get("is_control_domain") is True, repr(d0)[:400])
    counts = first["valid_ref_counts"]
    check("valid_ref_counts['vm'] == number of VMs", isinstance(counts, dict) and int(counts.get("vm", -1)) == len(all_vms),
          repr(counts.get("vm") if isinstance(counts, dict) else counts))

    vm = x.VM.create(dict(record, name_label=name + "-ev", other_config={}))
    batch = event_from(x, ["vm"], token, EVENT_TIMEOUT)
    mine = [e for e in batch["events"] if e.get("ref") == vm]
    check("after VM.create: event.from(token) has an 'add' for the new VM",
          len(mine) == 1 and mine[0].get("operation") == "add"
          and mine[0].get("snapshot", {}).get("name_label") == name + "-ev", repr(batch["events"])[:400])
    check("... and nothing about unchanged VMs", all(e.get("ref") == vm for e in batch["events"]),
          repr([(e.get("operation"), e.get("ref")) for e in batch["events"]]))
    check("the token moved on", batch["token"] != token, repr(batch["token"]))
    token = batch["token"]

    x.VM.set_name_label(vm, name + "-ev2")
    batch = event_from(x, ["vm"], token, EVENT_TIMEOUT)
    mine = [e for e in batch["events"] if e.get("ref") == vm]
    check("after VM.set_name_label: a 'mod' with the new name in the snapshot",
          len(mine) == 1 and mine[0].get("operation") == "mod"
          and mine[0].get("snapshot", {}).get("name_label") == name + "-ev2", repr(batch["events"])[:400])
    token = batch["token"]

    t0 = time.time()
    idle = event_from(x, ["vm"], token, 0.5)
    waited = time.time() - t0
    check("no change: event.from waits out its timeout and returns no events",
          idle["events"] == [] and 0.4 <= waited < 4, "%r after %.2f s" % (idle["events"], waited))
    token = idle["token"]

    # A blocked event.from is woken by a change made by another session.
    other = make_session()
    other.xenapi.login_with_password(user, password)
    out = {}

    def watch():
        t = time.time()
        try:
            out["batch"] = event_from(other.xenapi, ["vm"], token, 10)
        except Exception as e:  # reported by the check below
            out["error"] = e
        out["elapsed"] = time.time() - t

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    time.sleep(0.3)
    x.VM.set_name_description(vm, "woken")
    th.join(12)
    got = [e for e in out.get("batch", {}).get("events", []) if e.get("ref") == vm]
    check("a blocked event.from (other session) wakes up on the change",
          not th.is_alive() and got and got[0].get("operation") == "mod"
          and got[0]["snapshot"].get("name_description") == "woken" and out["elapsed"] < 5,
          "alive=%s out=%r" % (th.is_alive(), {k: (v if k != "batch" else v.get("events")) for k, v in out.items()}))
    other.xenapi.session.logout()
    token = out["batch"]["token"]

    # Per-object subscription "vm/<ref>": a change to another VM is not reported.
    dom0_desc = x.VM.get_name_description(dom0)
    x.VM.set_name_description(dom0, "not watched " + name)
    x.VM.set_name_description(vm, "watched")
    batch = event_from(x, ["vm/" + vm], token, EVENT_TIMEOUT)
    check("event.from(['vm/<ref>']) reports only that VM",
          [(e.get("ref"), e.get("operation")) for e in batch["events"]] == [(vm, "mod")],
          repr([(e.get("ref"), e.get("operation")) for e in batch["events"]]))
    token = batch["token"]
    x.VM.set_name_description(dom0, dom0_desc)

    step("event.register / event.next / event.unregister")
    expect_failure("event.next before event.register -> SESSION_NOT_REGISTERED",
                   lambda: x.event.next(), "SESSION_NOT_REGISTERED")
    x.event.register(["vm"])
    x.VM.set_name_label(vm, name + "-next1")
    x.VM.set_name_label(vm, name + "-next2")
    nxt = x.event.next()
    mine = [e for e in nxt if e.get("ref") == vm]
    check("event.register(['vm']) + 2 changes: event.next returns both 'mod' events, in order",
          [e.get("operation") for e in mine] == ["mod", "mod"]
          and [e.get("snapshot", {}).get("name_label") for e in mine] == [name + "-next1", name + "-next2"]
          and all(e.get("class") == "vm" for e in mine),
          repr([(e.get("class"), e.get("operation"), e.get("ref")) for e in nxt]))
    x.event.unregister(["vm"])
    check("event.unregister(['vm'])", True)

    step("event.from sees the VM destroyed")
    x.VM.destroy(vm)
    batch = event_from(x, ["vm"], token, EVENT_TIMEOUT)
    mine = [e for e in batch["events"] if e.get("ref") == vm]
    check("after VM.destroy: a 'del' for it", len(mine) == 1 and mine[0].get("operation") == "del",
          repr(batch["events"])[:400])
    check("valid_ref_counts['vm'] dropped back", int(batch["valid_ref_counts"]["vm"]) == len(all_vms),
          repr(batch["valid_ref_counts"].get("vm")))
    check("event.get_current_id is an int (XML-RPC string)", re.match(r"^\d+$", str(x.event.get_current_id())) is not None)
    return batch["valid_ref_counts"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("XENITH_URL"),
                    help="base URL, e.g. http://127.0.0.1:8080 (env XENITH_URL)")
    ap.add_argument("--socket", default=os.environ.get("XENITH_SOCKET"),
                    help="unix socket path instead of --url (env XENITH_SOCKET)")
    ap.add_argument("--user", default=os.environ.get("XENITH_USER", "root"))
    ap.add_argument("--password", default=os.environ.get("XENITH_PASSWORD"))
    ap.add_argument("positional", nargs="*", help="URL USER PASSWORD (alternative form)")
    a = ap.parse_args()
    if a.positional:
        if len(a.positional) != 3:
            ap.error("positional form is: URL USER PASSWORD")
        a.url, a.user, a.password = a.positional
    if a.password is None:
        ap.error("a password is required (--password or XENITH_PASSWORD)")
    if bool(a.url) == bool(a.socket):
        ap.error("give exactly one of --url and --socket")

    print("python %s, os_xenapi XenAPI.py at %s" % (sys.version.split()[0], XenAPI.__file__), flush=True)
    def go():
        if a.socket:
            stock = stock_local_socket_path()
            print("note: XenAPI.xapi_local() is hard-wired to %s; using %s" % (stock, a.socket), flush=True)
            if fix_uds_transport():
                print("note: patched os_xenapi UDSTransport.send_request (Python 2 signature, "
                      "broken under Python 3)", flush=True)
            scenario(lambda: local_session(a.socket), a.user, a.password, "socket")
        else:
            base = a.url.rstrip("/")
            scenario(lambda: XenAPI.Session(base + "/"), a.user, a.password, "http", base_url=base)
    return run(go, "OK: all python (%s) checks passed" % ("socket" if a.socket else "http"))


if __name__ == "__main__":
    sys.exit(main())
