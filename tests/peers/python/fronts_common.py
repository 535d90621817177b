"""Helpers of the front scenarios (xenops_scenario.py, xend_scenario.py):
a XenAPI.py session and a watcher of XenAPI events."""

import time

from os_xenapi.client import XenAPI

from checks import check

EVENT_DEADLINE = 10.0


def xenapi_session(url, user, password):
    s = XenAPI.Session(url)
    s.xenapi.login_with_password(user, password, "1.0", "xenith-front-peer")
    return s


class EventWatcher:
    """Follows event.from from a token taken at creation; expect() waits for
    an event on one object (class, ref, operation and, for a VM, the
    power_state its snapshot must show)."""

    def __init__(self, session, classes=("vm",)):
        self.s = session
        self.classes = list(classes)
        self.token = ""
        self.token = self._from(0.0)["token"]

    def _from(self, timeout):
        return getattr(self.s.xenapi.event, "from")(self.classes, self.token, timeout)

    def expect_snapshot(self, what, cls, ref, desc, pred):
        """Waits for a mod event on one object whose snapshot satisfies
        pred (desc says what pred checks)."""
        deadline = time.time() + EVENT_DEADLINE
        seen = []
        while time.time() < deadline:
            r = self._from(2.0)
            self.token = r["token"]
            for ev in r["events"]:
                if ev["class"] != cls or ev["ref"] != ref or ev["operation"] != "mod":
                    continue
                snap = ev.get("snapshot") or {}
                seen.append(snap)
                if pred(snap):
                    check("XenAPI event %s mod (%s) after %s" % (cls, desc, what), True)
                    return
        check("XenAPI event %s mod (%s) after %s" % (cls, desc, what), False, "saw %r" % seen[-3:])

    def expect(self, what, cls, ref, op, power_state):
        deadline = time.time() + EVENT_DEADLINE
        seen = []
        while time.time() < deadline:
            r = self._from(2.0)
            self.token = r["token"]
            for ev in r["events"]:
                if ev["class"] != cls or ev["ref"] != ref:
                    continue
                seen.append((ev["operation"], (ev.get("snapshot") or {}).get("power_state")))
                if ev["operation"] not in (op if isinstance(op, tuple) else (op,)):
                    continue
                if power_state is None or (ev.get("snapshot") or {}).get("power_state") == power_state:
                    check("XenAPI event %s %s after %s" % (cls, ev["operation"], what), True)
                    return
        check("XenAPI event %s %s%s after %s" % (cls, "/".join(op) if isinstance(op, tuple) else op,
                                                " " + power_state if power_state else "", what),
              False, "saw %r" % seen)
