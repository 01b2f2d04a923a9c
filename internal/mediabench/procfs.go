package mediabench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on every Linux port Go supports).
const clockTicks = 100

// procTicks returns utime+stime of pid (every thread) from /proc/PID/stat.
func procTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(b)
}

func parseStatTicks(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')') // the command name may contain spaces and parentheses
	if i < 0 {
		return 0, fmt.Errorf("proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is the state, field 3 of the file
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat: utime %q stime %q", f[11], f[12])
	}
	return ut + st, nil
}

// memStatus is the resident set of a process: now and its high-water mark.
type memStatus struct {
	RSS, HWM uint64 // bytes
}

// procMem reads VmRSS and VmHWM of pid from /proc/PID/status.
func procMem(pid int) (memStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	return parseStatusMem(b)
}

func parseStatusMem(b []byte) (memStatus, error) {
	var m memStatus
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return m, fmt.Errorf("proc status %s %q: %w", k, v, err)
		}
		if k == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
		found++
	}
	if found != 2 {
		return m, fmt.Errorf("proc status: VmRSS/VmHWM missing")
	}
	return m, nil
}

// cpuTicks are the machine's CPU ticks (all CPUs) from the first line of /proc/stat.
type cpuTicks struct {
	busy    uint64 // everything but idle and iowait (softirq included)
	softirq uint64 // softirq alone: loopback packet delivery lands here with IRQ time accounting
}

// machineTicks reads /proc/stat.
func machineTicks() (cpuTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}, err
	}
	return parseMachineTicks(b)
}

func parseMachineTicks(b []byte) (cpuTicks, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return cpuTicks{}, fmt.Errorf("proc stat: unexpected first line %q", line)
	}
	var t cpuTicks
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuTicks{}, fmt.Errorf("proc stat: %q: %w", v, err)
		}
		t.busy += n
		if i == 6 {
			t.softirq = n
		}
	}
	return t, nil
}

// udpErrors returns the machine's UDP RcvbufErrors and InErrors counters from /proc/net/snmp:
// datagrams the kernel dropped because a socket's receive buffer was full (the reader was too slow).
func udpErrors() (rcvbuf, in uint64, err error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, 0, err
	}
	return parseUDPErrors(b)
}

func parseUDPErrors(b []byte) (rcvbuf, in uint64, err error) {
	var header []string
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Udp: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if header == nil {
			header = f
			continue
		}
		for i, name := range header {
			if i >= len(f) {
				break
			}
			n, perr := strconv.ParseUint(f[i], 10, 64)
			if perr != nil {
				continue
			}
			switch name {
			case "RcvbufErrors":
				rcvbuf = n
			case "InErrors":
				in = n
			}
		}
		return rcvbuf, in, nil
	}
	return 0, 0, fmt.Errorf("/proc/net/snmp: no Udp lines")
}

// loadAvg returns the 1, 5 and 15 minute load averages as printed by uptime.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
