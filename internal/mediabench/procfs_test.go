package mediabench

import "testing"

func TestParseStatTicks(t *testing.T) {
	// Field 2 (the command) contains spaces and a parenthesis; utime=1234, stime=56.
	stat := "4242 (roomtape (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 56 0 0 20 0 12 0 100 0 0\n"
	got, err := parseStatTicks([]byte(stat))
	if err != nil || got != 1290 {
		t.Fatalf("got %d, %v; want 1290", got, err)
	}
	if _, err := parseStatTicks([]byte("4242 roomtape S 1")); err == nil {
		t.Error("no error for a line without a command name")
	}
}

func TestParseStatusMem(t *testing.T) {
	status := "Name:\troomtape\nVmPeak:\t 900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t9\n"
	m, err := parseStatusMem([]byte(status))
	if err != nil || m.RSS != 40<<20 || m.HWM != 50<<20 {
		t.Fatalf("got %+v, %v", m, err)
	}
	if _, err := parseStatusMem([]byte("Name:\tx\n")); err == nil {
		t.Error("no error without VmRSS/VmHWM")
	}
}

func TestParseMachineTicks(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	stat := "cpu  100 2 30 5000 70 4 5 6 50 1\ncpu0 50 1 15 2500 35 2 2 3 25 0\n"
	got, err := parseMachineTicks([]byte(stat))
	if err != nil || got.busy != 100+2+30+4+5+6 || got.softirq != 5 {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestParseUDPErrors(t *testing.T) {
	snmp := "Tcp: RtoAlgorithm RtoMin\nTcp: 1 200\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"Udp: 1000 2 7 900 5 0 0 0 0\n"
	rcv, in, err := parseUDPErrors([]byte(snmp))
	if err != nil || rcv != 5 || in != 7 {
		t.Fatalf("got rcvbuf %d in %d, %v", rcv, in, err)
	}
}

func TestParseGCTrace(t *testing.T) {
	line := "gc 12 @3.104s 2%: 0.021+1.2+0.004 ms clock, 0.042+0.31/0.9/0.5+0.008 ms cpu, 14->15->7 MB, 16 MB goal, 0 MB stacks, 0 MB globals, 2 P"
	if live, ok := parseGCTrace(line); !ok || live != 7 {
		t.Fatalf("got %v, %v; want 7 MB", live, ok)
	}
	for _, other := range []string{`{"level":"WARN","msg":"gc 1 @ nothing"}`, "gc 3 @0.1s 1%: no heap here"} {
		if _, ok := parseGCTrace(other); ok {
			t.Errorf("parsed %q", other)
		}
	}
}

func TestWithGCTraceKeepsOtherSettings(t *testing.T) {
	env := withGCTrace([]string{"A=1", "GODEBUG=madvdontneed=1"})
	if env[len(env)-1] != "GODEBUG=madvdontneed=1,gctrace=1" || len(env) != 2 {
		t.Errorf("env %q", env)
	}
	if env := withGCTrace([]string{"A=1"}); env[len(env)-1] != "GODEBUG=gctrace=1" {
		t.Errorf("env %q", env)
	}
}
