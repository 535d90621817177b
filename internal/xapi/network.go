package xapi

// Network messages (network, VIF records, VLAN, Bond, PIF) are registered
// here; the implementations live in this file and vif.go, vlan.go, bond.go.
func (s *Server) registerNetworkHandlers() {}
