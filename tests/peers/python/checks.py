"""Check helpers shared by the peer-client scenarios: each check prints one
PASS line or raises CheckFailed, and expect_failure asserts a XenAPI error
code (and parameters) from a call."""

import sys
import traceback
import xmlrpc.client

from os_xenapi.client import XenAPI

NULL_REF = "OpaqueRef:NULL"


class CheckFailed(Exception):
    pass


_step = ["start"]


def step(name):
    _step[0] = name
    print("---- " + name, flush=True)


def check(name, cond, detail=""):
    if not cond:
        raise CheckFailed("%s%s" % (name, (": " + detail) if detail else ""))
    print("PASS " + name, flush=True)


def is_ref(v):
    return isinstance(v, str) and v.startswith("OpaqueRef:") and v != NULL_REF


def expect_failure(name, fn, code, params=None):
    """Call fn(); it must raise XenAPI.Failure whose details[0] == code and,
    if params is given, details[1:] == params."""
    try:
        result = fn()
    except XenAPI.Failure as f:
        details = list(f.details)
        if not details or details[0] != code:
            raise CheckFailed("%s: expected error %s%s, got Failure %r"
                              % (name, code, params if params is not None else "", details))
        if params is not None and details[1:] != list(params):
            raise CheckFailed("%s: expected %s params %r, got %r"
                              % (name, code, list(params), details[1:]))
        print("PASS %s (%r)" % (name, details), flush=True)
        return details
    except xmlrpc.client.Fault as f:
        raise CheckFailed("%s: expected XenAPI Failure %s, got XML-RPC Fault %s %r"
                          % (name, code, f.faultCode, f.faultString))
    raise CheckFailed("%s: expected error %s, but the call succeeded and returned %r"
                      % (name, code, result))


def run(fn, ok_message):
    """Run a scenario; print OK or the first failure with its step. Returns
    the process exit code."""
    try:
        fn()
    except CheckFailed as e:
        print("FAIL [%s] %s" % (_step[0], e), flush=True)
        return 1
    except XenAPI.Failure as f:
        traceback.print_exc(file=sys.stdout)
        print("FAIL [%s] unexpected XenAPI failure %r" % (_step[0], f.details), flush=True)
        return 1
    except xmlrpc.client.Fault as f:
        traceback.print_exc(file=sys.stdout)
        print("FAIL [%s] XML-RPC fault %s: %s" % (_step[0], f.faultCode, f.faultString), flush=True)
        return 1
    except Exception as e:  # transport errors, protocol errors, bad XML...
        traceback.print_exc(file=sys.stdout)
        print("FAIL [%s] %s: %s" % (_step[0], type(e).__name__, e), flush=True)
        return 1
    print(ok_message, flush=True)
    return 0
