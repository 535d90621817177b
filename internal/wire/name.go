package wire

import "fmt"

// Name is a struct member name rendered once for each codec. Generated
// record encoders write thousands of members per answer; with a Name the
// codec copies prepared bytes instead of escaping the same name again in
// every record.
type Name struct {
	Text string
	JSON string // "text":
	XML  string // <member><name>text</name>
}

// NewName prepares a member name. XenAPI field names are identifiers, so
// neither codec has anything to escape in them; NewName panics on any other
// name, which generated code never passes.
func NewName(s string) *Name {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !ok {
			panic(fmt.Sprintf("wire.NewName: %q needs escaping", s))
		}
	}
	return &Name{Text: s, JSON: `"` + s + `":`, XML: "<member><name>" + s + "</name>"}
}
