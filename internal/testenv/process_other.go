//go:build !linux

package testenv

import "syscall"

// setDeathSignal does nothing: only Linux can signal a child when its
// parent dies. Children of a test binary that dies outlive it there.
func setDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}
