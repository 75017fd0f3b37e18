//go:build !linux

package pgtest

import "syscall"

// sysProcAttr runs the program as cred's user (nil: as this process's);
// only Linux can tie the server's life to the test binary's, elsewhere
// cleanups alone stop it.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	if cred == nil {
		return nil
	}
	return &syscall.SysProcAttr{Credential: cred}
}
