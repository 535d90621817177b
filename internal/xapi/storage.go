package xapi

// Storage messages (SR, VDI, VBD records and files, PBD, SM) are registered
// here; the implementations live in sr.go, vdi.go, vbd.go and pbd.go.
func (s *Server) registerStorageHandlers() {}
