//go:build unix

package web_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used, user and system: under
// a loaded machine a steadier measure of cost than wall-clock time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
