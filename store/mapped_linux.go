package store

import "syscall"

// adviseDontNeed drops the page-table entries of [addr, addr+size): the
// process's resident set shrinks, the file's pages stay cached. An error
// (never expected on a valid mapping) only means the pages stay resident.
func adviseDontNeed(addr, size uintptr) {
	if size == 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, addr, size, syscall.MADV_DONTNEED)
}
