package loadtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on every Linux port Go supports).
const clockTicks = 100

// CPUUse is how many cores were busy on average during a phase: in the server process, in this
// (client) process, and in everything else on the machine (other processes, the kernel's softirq
// work for loopback traffic, …). Server is 0 and its share lands in Other when its pid is unknown.
type CPUUse struct {
	Server float64 `json:"server_cores"`
	Bench  float64 `json:"bench_cores"`
	Other  float64 `json:"other_cores"`
}

// cpuMeter samples /proc (Linux); on other systems it reports nothing.
type cpuMeter struct {
	serverPID             int
	at                    time.Time
	busy, bench, server   uint64
	okBusy, okBench, okSv bool
}

func startCPU(serverPID int) cpuMeter {
	m := cpuMeter{serverPID: serverPID, at: time.Now()}
	m.busy, m.okBusy = machineBusy()
	m.bench, m.okBench = processTicks(os.Getpid())
	if serverPID > 0 {
		m.server, m.okSv = processTicks(serverPID)
	}
	return m
}

// since returns the average use since start, or nil without /proc.
func (m cpuMeter) since() *CPUUse {
	now := startCPU(m.serverPID)
	if !m.okBusy || !now.okBusy || !m.okBench || !now.okBench {
		return nil
	}
	secs := now.at.Sub(m.at).Seconds()
	cores := func(d uint64) float64 { return float64(d) / clockTicks / secs }
	u := &CPUUse{Bench: cores(now.bench - m.bench)}
	if m.okSv && now.okSv {
		u.Server = cores(now.server - m.server)
	}
	u.Other = max(cores(now.busy-m.busy)-u.Bench-u.Server, 0)
	return u
}

// machineBusy sums the non-idle ticks of every CPU from /proc/stat.
func machineBusy() (uint64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var busy uint64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, false
		}
		busy += n
	}
	return busy, true
}

// processTicks returns utime+stime of pid from /proc/PID/stat.
func processTicks(pid int) (uint64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may contain spaces
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is the state, field 3 of the file
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return ut + st, true
}
