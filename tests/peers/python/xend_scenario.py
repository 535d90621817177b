#!/usr/bin/python3
"""xend front scenario: a domain driven through xenithd's xend HTTP
interface (POST /xend/domain/ op=create with an s-expression config, then
op=wait_for_devices, unpause, pause, shutdown, destroy), checked at every
step through Python's XenAPI.py (the VM record's power_state) and through
XenAPI events (event.from on the VM).

    /usr/bin/python3 tests/peers/python/xend_scenario.py \
        --url http://127.0.0.1:PORT --xend http://127.0.0.1:XENDPORT \
        --user root --password PW

--xend defaults to --url (the /xend/ resources of xenithd's own listener).
One PASS line per check; exits non-zero at the first failure.
"""

import argparse
import base64
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

from checks import check, run, step  # noqa: E402
from fronts_common import EventWatcher, xenapi_session  # noqa: E402


class Xend:
    def __init__(self, url, user, password):
        self.url = url.rstrip("/")
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()

    def request(self, path, form=None, accept=None, auth=True):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.url + path, data=data)
        if auth:
            req.add_header("Authorization", self.auth)
        if accept:
            req.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def ok(self, path, form=None):
        code, body = self.request(path, form)
        if code != 200:
            raise AssertionError("%s %r: HTTP %d %s" % (path, form, code, body))
        return body


def field(sxp, name):
    """The value of (name value) in an s-expression text (enough for the
    simple atoms checked here)."""
    key = "(" + name + " "
    i = sxp.find(key)
    if i < 0:
        return None
    j = sxp.find(")", i)
    return sxp[i + len(key):j].strip("'")


def scenario(args):
    x = Xend(args.xend or args.url, args.user, args.password)
    api = xenapi_session(args.url, args.user, args.password)
    watch = EventWatcher(xenapi_session(args.url, args.user, args.password))

    step("authentication")
    code, body = x.request("/xend/domain/", auth=False)
    check("no credentials: 401 with (xend.err ...)", code == 401 and body.startswith("(xend.err"), "%d %s" % (code, body))

    step("node")
    node = x.ok("/xend/node")
    check("node reports nr_cpus and memory", field(node, "nr_cpus") and field(node, "total_memory") and field(node, "free_memory"), node)

    step("bad config")
    code, body = x.request("/xend/domain/", {"op": "create", "config": "(vm (name broken"})
    check("malformed config: HTTP 400 (xend.err ...)", code == 400 and body.startswith("(xend.err"), "%d %s" % (code, body))

    step("create")
    name = "xend-peer-" + uuid.uuid4().hex[:8]
    path = "/xend/domain/" + name
    cfg = "(vm (name %s) (memory 128) (vcpus 1) (device (vif (bridge xenbr0))))" % name
    dom = x.ok("/xend/domain/", {"op": "create", "config": cfg})
    vm_uuid = field(dom, "uuid")
    check("create answers the domain", field(dom, "name") == name and vm_uuid, dom)
    ref = api.xenapi.VM.get_by_uuid(vm_uuid)
    names = x.ok("/xend/domain/")
    check("the domain list names it", name in names, names)

    def state(want_xend, want_xenapi, what, op="mod"):
        d = x.ok(path)
        check("xend state after %s is %s" % (what, want_xend), field(d, "state") == want_xend, field(d, "state"))
        got = api.xenapi.VM.get_power_state(ref)
        check("XenAPI power_state after %s is %s" % (what, want_xenapi), got == want_xenapi, got)
        watch.expect(what, "vm", ref, op, want_xenapi)

    # The VM was added and started within one event window: event.from
    # coalesces that into one "add" showing it paused.
    state("--p---", "Paused", "create", ("add", "mod"))
    x.ok(path, {"op": "wait_for_devices"})
    check("wait_for_devices: the VIF is attached",
          all(api.xenapi.VIF.get_currently_attached(v) for v in api.xenapi.VM.get_VIFs(ref)))

    step("unpause/pause")
    x.ok(path, {"op": "unpause"})
    state("r-----", "Running", "unpause")
    x.ok(path, {"op": "pause"})
    state("--p---", "Paused", "pause")
    x.ok(path, {"op": "unpause"})
    state("r-----", "Running", "unpause again")

    step("sched")
    x.ok(path, {"op": "domain_sched_credit_set", "weight": "512", "cap": "0"})
    check("sched-credit weight is VCPUs_params:weight", api.xenapi.VM.get_VCPUs_params(ref).get("weight") == "512")

    step("html")
    code, body = x.request("/xend/domain/?detail=1", accept="text/html")
    check("Accept: text/html gets HTML", code == 200 and "<html" in body and name in body)

    step("shutdown")
    x.ok(path, {"op": "shutdown", "reason": "halt"})
    state("------", "Halted", "shutdown")

    step("destroy")
    x.ok(path, {"op": "destroy"})
    code, _ = x.request(path)
    check("destroyed domain is gone from xend", code == 404)
    check("and from XenAPI", vm_uuid not in [api.xenapi.VM.get_uuid(r) for r in api.xenapi.VM.get_all()])
    watch.expect("destroy", "vm", ref, "del", None)
    api.xenapi.session.logout()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--xend", default="")
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", required=True)
    args = ap.parse_args()
    return run(lambda: scenario(args), "OK xend scenario")


if __name__ == "__main__":
    sys.exit(main())
