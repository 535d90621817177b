package xen

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/xenith/xenith/internal/domain"
)

// The driver follows domains in one goroutine: every @releaseDomain watch
// event (Xen tells xenstored that a domain shut down, crashed or died), or
// a timer when there is no xenstore, triggers a scan of `xl list -v`; the
// guest agent's keys of each domain are watched too.

const agentToken = "agent:"

func (d *Driver) loop() {
	defer d.wg.Done()
	d.mu.Lock()
	xs := d.xs
	d.mu.Unlock()
	var evs <-chan WatchEvent
	interval := d.opts.PollInterval
	if xs != nil {
		evs = xs.Events()
		interval = SafetyScanInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case ev, ok := <-evs:
			if !ok {
				d.log.Warn("xenstore connection lost; polling xl list instead", "every", d.opts.PollInterval)
				evs = nil
				d.mu.Lock()
				d.xs = nil
				d.mu.Unlock()
				t.Reset(d.opts.PollInterval)
				continue
			}
			if uuid, isAgent := strings.CutPrefix(ev.Token, agentToken); isAgent {
				d.readAgent(uuid)
				continue
			}
			d.scan()
		case <-d.kick:
			d.scan()
		case <-t.C:
			d.scan()
		}
	}
}

// action is what a scan found to do about one domain, done after the
// scan's lock is released.
type action struct {
	uuid   string
	kind   string // "halted" (a waiter's guest powered off), "rebuild", "event"
	event  domain.Event
	waiter *waiter
	domid  int
}

// scan compares `xl list -v` with the domains the driver built and acts
// on what guests did on their own.
func (d *Driver) scan() {
	ctx, cancel := context.WithTimeout(d.ctx, commandTimeout)
	defer cancel()
	d.mu.Lock()
	listed := d.settles
	d.mu.Unlock()
	doms, err := d.xl.list(ctx)
	if err != nil {
		if d.ctx.Err() == nil {
			d.log.Warn("scanning domains", "err", err)
		}
		return
	}
	byUUID := make(map[string]xlDomain, len(doms))
	for _, x := range doms {
		byUUID[x.UUID] = x
	}
	var acts []action
	var watch []action
	stale := false
	d.mu.Lock()
	uuids := make([]string, 0, len(d.recs))
	for u := range d.recs {
		uuids = append(uuids, u)
	}
	sort.Strings(uuids)
	for _, uuid := range uuids {
		r := d.recs[uuid]
		if r.busy > 0 {
			continue
		}
		if r.settled > listed {
			stale = true // the list may predate what the driver did
			continue
		}
		x, ok := byUUID[uuid]
		if !ok || x.dying() {
			// Gone without the driver destroying it (xl destroy by hand):
			// the guest is halted as far as anyone can tell.
			if r.waiter != nil && !r.waiter.reboot {
				acts = append(acts, action{uuid: uuid, kind: "halted", waiter: r.waiter})
				r.waiter = nil
			} else if r.notified != "gone" {
				r.notified = "gone"
				acts = append(acts, action{uuid: uuid, kind: "event", event: domain.Event{UUID: uuid, Kind: domain.GuestShutdown}})
			}
			continue
		}
		r.Domid = x.Domid
		reason := x.reason()
		if reason == reasonNone {
			if r.watched != x.Domid {
				watch = append(watch, action{uuid: uuid, domid: x.Domid})
			}
			continue
		}
		key := fmt.Sprintf("%d/%d", x.Domid, reason)
		switch reason {
		case reasonPoweroff:
			if r.waiter != nil && !r.waiter.reboot {
				acts = append(acts, action{uuid: uuid, kind: "halted", waiter: r.waiter})
				r.waiter = nil
			} else if r.notified != key {
				r.notified = key
				acts = append(acts, action{uuid: uuid, kind: "event", event: domain.Event{UUID: uuid, Kind: domain.GuestShutdown}})
			}
		case reasonReboot, reasonSoftRst:
			acts = append(acts, action{uuid: uuid, kind: "rebuild"})
		case reasonCrash, reasonWatchdog:
			if r.waiter != nil {
				r.waiter.complete(fmt.Errorf("%w: the guest crashed", ErrInterrupted))
				r.waiter = nil
			}
			if r.notified != key {
				r.notified = key
				acts = append(acts, action{uuid: uuid, kind: "event", event: domain.Event{UUID: uuid, Kind: domain.GuestCrash}})
			}
		}
	}
	d.mu.Unlock()
	if stale {
		d.poke() // look again with a list taken after that operation
	}

	for _, a := range watch {
		d.watchAgent(a.uuid, a.domid)
	}
	for _, a := range acts {
		switch a.kind {
		case "event":
			d.log.Info("guest event", "uuid", a.uuid, "kind", a.event.Kind)
			d.emit(a.event)
		case "halted":
			// The guest obeyed a clean shutdown: destroy what is left of
			// it before the waiting Shutdown returns.
			unlock := d.opLock(a.uuid)
			_, err := d.xl.do(ctx, "destroy", domainName(a.uuid))
			if err != nil && !errors.Is(err, domain.ErrNoDomain) {
				d.log.Warn("destroying a halted domain", "uuid", a.uuid, "err", err)
			}
			d.drop(a.uuid, nil)
			a.waiter.complete(nil)
			unlock()
		case "rebuild":
			d.guestRebooted(ctx, a.uuid)
		}
	}
}

// guestRebooted rebuilds a domain whose guest rebooted (Xen leaves it shut
// down with reason reboot; libxl's on_reboot = "restart" would do the same
// rebuild) and reports the reboot, unless a clean reboot was waiting for it.
func (d *Driver) guestRebooted(ctx context.Context, uuid string) {
	unlock := d.opLock(uuid)
	defer unlock()
	d.mu.Lock()
	r := d.recs[uuid]
	waited := r != nil && r.waiter != nil && r.waiter.reboot
	d.mu.Unlock()
	if r == nil {
		return
	}
	d.log.Info("guest rebooted; rebuilding its domain", "uuid", uuid)
	if err := d.rebuild(ctx, uuid, nil); err != nil {
		d.log.Error("rebuilding a rebooted domain", "uuid", uuid, "err", err)
		d.emit(domain.Event{UUID: uuid, Kind: domain.GuestCrash})
		return
	}
	if !waited {
		d.emit(domain.Event{UUID: uuid, Kind: domain.GuestReboot})
	}
}

// ------------------------------------------------------------------ agent

func domainPath(domid int) string { return fmt.Sprintf("/local/domain/%d", domid) }

func (d *Driver) watchAgent(uuid string, domid int) {
	d.mu.Lock()
	xs := d.xs
	r := d.recs[uuid]
	if xs == nil || r == nil {
		d.mu.Unlock()
		return
	}
	old := r.watched
	r.watched = domid
	d.mu.Unlock()
	if old != 0 {
		d.unwatchAgent(uuid, old)
	}
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	for _, sub := range []string{"data", "attr"} {
		if err := xs.Watch(ctx, domainPath(domid)+"/"+sub, agentToken+uuid); err != nil {
			d.log.Warn("watching guest agent keys", "uuid", uuid, "err", err)
		}
	}
}

func (d *Driver) unwatchAgent(uuid string, domid int) {
	d.mu.Lock()
	xs := d.xs
	d.mu.Unlock()
	if xs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	for _, sub := range []string{"data", "attr"} {
		_ = xs.Unwatch(ctx, domainPath(domid)+"/"+sub, agentToken+uuid)
	}
}

// readAgent reads a guest's agent keys and reports them when they changed.
func (d *Driver) readAgent(uuid string) {
	d.mu.Lock()
	xs := d.xs
	r := d.recs[uuid]
	if xs == nil || r == nil || r.watched == 0 {
		d.mu.Unlock()
		return
	}
	base := domainPath(r.watched)
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	var trees [3]map[string]string
	for i, sub := range []string{"data", "attr", "control"} {
		t, err := readTree(ctx, xs, base+"/"+sub)
		if err != nil {
			d.log.Debug("reading guest agent keys", "uuid", uuid, "err", err)
			return
		}
		trees[i] = t
	}
	rep, ok := agentReport(trees[0], trees[1], trees[2])
	if !ok {
		return
	}
	fp := fmt.Sprint(rep)
	d.mu.Lock()
	same := r.agent == fp
	r.agent = fp
	d.mu.Unlock()
	if !same {
		d.emit(domain.Event{UUID: uuid, Kind: domain.GuestAgent, Agent: &rep})
	}
}
