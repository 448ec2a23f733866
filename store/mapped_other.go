//go:build !linux

package store

// adviseDontNeed is a no-op where the store does not trim its mapping.
func adviseDontNeed(addr, size uintptr) {}
