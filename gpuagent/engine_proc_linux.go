package gpuagent

import "syscall"

// engineProcAttr puts the engine in its own process group, so that stopping
// it reaches its workers too, and asks Linux to send it SIGTERM if the agent
// dies first (SIGKILL included): a dead agent leaves no engine holding the
// GPU.
func engineProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
