package pgtest

import "syscall"

// sysProcAttr runs the program as cred's user (nil: as this process's),
// and makes the kernel kill it if the test binary dies without running its
// cleanups (a panic or a -timeout), so no server outlives the test run.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
