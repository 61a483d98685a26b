//go:build !linux

package transport

// refreshSockcalls does nothing: only Linux makes raw socket calls (see
// sockcall_linux.go).
func refreshSockcalls() {}
