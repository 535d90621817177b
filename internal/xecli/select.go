package xecli

import (
	"errors"
	"slices"
	"strings"

	"github.com/xenith/xenith/internal/xenapi"
)

// Selecting objects, xe-style: vm=NAME-OR-UUID (host= and sr= likewise) or
// any field=value filters; several matches need --multiple.

// selectOpts tunes a selection.
type selectOpts struct {
	templates bool // VMs: include templates (vm-clone may copy one)
	control   bool // VMs: include the control domain
}

// selectObjects returns the objects of class the command's selectors match;
// arguments the command declares itself are not filters.
func (x *Ctx) selectObjects(class string, o selectOpts) ([]*record, error) {
	xc := lookupClass(class)
	recs, err := fetchAll(x.ctx, x.s, x.rs, xc)
	if err != nil {
		return nil, err
	}
	var filters []*filterSpec
	var byName string
	hasByName := false
	for _, p := range x.args.Params {
		if slices.Contains(x.cmd.Reqd, p.Name) || slices.Contains(x.cmd.Optn, p.Name) {
			continue
		}
		if p.Name == class && (class == "vm" || class == "host" || class == "sr") {
			byName, hasByName = p.Value, true
			continue
		}
		f, err := parseFilter(xc, p)
		if err != nil {
			return nil, err
		}
		filters = append(filters, f)
	}
	if class == "vm" {
		if !o.templates {
			filters = append(filters, mustFilter(xc, "is-a-template", "false"))
		}
		if !o.control {
			filters = append(filters, mustFilter(xc, "is-control-domain", "false"))
		}
	}
	if hasByName {
		recs = slices.DeleteFunc(recs, func(r *record) bool {
			if r.uuid() == byName || r.nameLabel() == byName {
				return false
			}
			return !(class == "host" && r.raw("hostname").Str == byName)
		})
	}
	return filterRecords(x.ctx, x.rs, recs, filters), nil
}

func mustFilter(c *xeClass, name, value string) *filterSpec {
	f, err := parseFilter(c, Param{name, value})
	if err != nil {
		panic(err) // a schema field xe relies on is gone: a build-time mistake
	}
	return f
}

// plural names a class in selection errors.
var selectNames = map[string]string{"vm": "VMs", "host": "hosts", "sr": "SRs"}

// doEach runs op on the selected objects: exactly one, or several with
// --multiple (every failure collected and reported).
func (x *Ctx) doEach(class string, o selectOpts, many bool, op func(r *record) error) error {
	recs, err := x.selectObjects(class, o)
	if err != nil {
		return err
	}
	what := selectNames[class]
	switch {
	case len(recs) == 0:
		return failf("No matching %s found", what)
	case len(recs) == 1:
		return op(recs[0])
	case !many:
		return failf("Multiple matching %s found. Operation can only be performed on one at a time", what)
	case !x.args.Flag("multiple"):
		return failf("Multiple matching %s found. --multiple required to complete the operation", what)
	}
	mf := &multiFailure{}
	for _, r := range recs {
		if err := op(r); err != nil {
			var ie *interruptedError
			if errors.As(err, &ie) {
				return err
			}
			mf.fails = append(mf.fails, failure{uuid: r.uuid(), msg: x.describe(err)})
		}
	}
	if len(mf.fails) > 0 {
		return mf
	}
	return nil
}

// multiFailure is --multiple with some objects failing.
type multiFailure struct{ fails []failure }

type failure struct{ uuid, msg string }

func (m *multiFailure) Error() string { return "operation failed on several objects" }

// describe renders an error as one message (for multiple failures).
func (x *Ctx) describe(err error) string {
	var xe *xenapi.Error
	if errors.As(err, &xe) {
		var b strings.Builder
		writeXenAPIError(x.ctx, &b, xe, x.rs.nameRef)
		return strings.TrimRight(b.String(), "\n")
	}
	return err.Error()
}
