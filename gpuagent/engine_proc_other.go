//go:build !linux

package gpuagent

import "syscall"

// engineProcAttr puts the engine in its own process group, so that stopping
// it reaches its workers too.
func engineProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
