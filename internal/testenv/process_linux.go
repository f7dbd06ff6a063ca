package testenv

import "syscall"

// setDeathSignal has the kernel send sig to the child when the thread that
// started it exits. Go only ends threads that a goroutine locked and never
// unlocked, so in effect this is when the test binary dies.
func setDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) {
	if attr.Pdeathsig == 0 {
		attr.Pdeathsig = sig
	}
}
