package domain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xenith/xenith/internal/api"
	"github.com/xenith/xenith/internal/store"
	"github.com/xenith/xenith/internal/xenapi"
)

// What the manager does with the optional driver capabilities (optional.go):
// console objects while a domain runs, live metrics, CD changes in place.

// consolesFor asks a ConsoleDriver for a domain's consoles; nil for
// drivers without consoles.
func (m *Manager) consolesFor(uuid string) []Console {
	cd, ok := m.drv.(ConsoleDriver)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := cd.Consoles(ctx, uuid)
	if err != nil {
		m.log.Warn("listing a domain's consoles", "uuid", uuid, "err", err)
		return nil
	}
	return cons
}

// replaceConsoles makes the VM's console objects be cons (inside tx).
// Only for ConsoleDrivers: others leave consoles alone.
func (m *Manager) replaceConsoles(tx *store.Tx, ref xenapi.Ref, cons []Console) error {
	if _, ok := m.drv.(ConsoleDriver); !ok {
		return nil
	}
	r, err := tx.Get(api.ClassVM, ref)
	if err != nil {
		return err
	}
	old := r.(*api.VM).Consoles
	if sameConsoles(tx, old, cons) {
		return nil
	}
	for _, c := range old {
		if tx.Exists(api.ClassConsole, c) {
			if err := tx.Delete(api.ClassConsole, c); err != nil {
				return err
			}
		}
	}
	for _, c := range cons {
		rec := api.NewConsole()
		rec.Protocol, rec.Location, rec.VM = api.ConsoleProtocol(c.Protocol), c.Location, ref
		if c.Location == "" {
			rec.UUID = uuid.NewString()
			rec.Location = m.consoleURL(rec.UUID)
		}
		rec.OtherConfig = xenapi.MapOf(c.Other)
		if _, err := tx.Create(rec); err != nil {
			return err
		}
	}
	return nil
}

func sameConsoles(tx *store.Tx, old []xenapi.Ref, cons []Console) bool {
	if len(old) != len(cons) {
		return false
	}
	have := map[[2]string]bool{}
	for _, r := range old {
		rec, err := tx.Get(api.ClassConsole, r)
		if err != nil {
			return false
		}
		c := rec.(*api.Console)
		loc := c.Location
		if strings.Contains(loc, ConsolePath+"?uuid="+c.UUID) {
			loc = "" // served by the proxy: its URL names the console itself
		}
		have[[2]string{string(c.Protocol), loc}] = true
	}
	for _, c := range cons {
		if !have[[2]string{c.Protocol, c.Location}] {
			return false
		}
	}
	return true
}

// syncConsoles records the domain's consoles for a VM adopted after a
// restart (a no-op when they are already right).
func (m *Manager) syncConsoles(ref xenapi.Ref, uuid string) {
	if _, ok := m.drv.(ConsoleDriver); !ok {
		return
	}
	cons := m.consolesFor(uuid)
	err := m.st.Update(context.Background(), func(tx *store.Tx) error { return m.replaceConsoles(tx, ref, cons) })
	if err != nil {
		m.log.Warn("recording consoles", "vm", ref, "err", err)
	}
}

// ConsolePath is the path of xenithd's console proxy, as xapi's: clients
// CONNECT (or GET) ConsolePath?uuid=CONSOLE_UUID with a session.
const ConsolePath = "/console"

// ErrNoConsole: the console cannot be reached (the driver serves none
// itself, or the domain is gone).
var ErrNoConsole = errors.New("console not available")

// AttachConsole connects to a VM's console that the driver serves itself
// (a console recorded with the proxy's URL).
func (m *Manager) AttachConsole(ctx context.Context, vmUUID, protocol string) (io.ReadWriteCloser, error) {
	ca, ok := m.drv.(ConsoleAttacher)
	if !ok {
		return nil, fmt.Errorf("driver %s: %w", m.drv.Name(), ErrNoConsole)
	}
	return ca.AttachConsole(ctx, vmUUID, protocol)
}
