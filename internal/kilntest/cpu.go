package kilntest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux kiln runs on.
const clockTicks = 100

// ProcCPU is the CPU time process pid has used so far, user and system,
// from /proc (Linux).
func ProcCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces; the fields after
	// it start with the state (field 3): utime and stime are fields 14 and 15.
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// CPUTimes is the machine's CPU time so far, all CPUs together, in
// /proc/stat's ticks.
type CPUTimes struct{ busy, total int64 }

// MachineCPU reads the machine's CPU time so far from /proc/stat (Linux).
func MachineCPU(tb testing.TB) CPUTimes {
	tb.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		tb.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var t CPUTimes
	for i, f := range fields[1:] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/stat: %q", line)
		}
		if i >= 8 { // guest and guest_nice are counted in user and nice already
			break
		}
		t.total += v
		if i != 3 && i != 4 { // idle, iowait
			t.busy += v
		}
	}
	return t
}

// BusySince is the share of the machine's CPU time in use since start.
func (t CPUTimes) BusySince(start CPUTimes) float64 {
	return float64(t.busy-start.busy) / float64(t.total-start.total)
}

// BusyTimeSince is the CPU time the machine used since start, all
// processes and CPUs together.
func (t CPUTimes) BusyTimeSince(start CPUTimes) time.Duration {
	return time.Duration(t.busy-start.busy) * time.Second / clockTicks
}
