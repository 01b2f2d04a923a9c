package mediabench

import (
	"slices"
	"testing"
)

func TestChildWarningsCountsMessages(t *testing.T) {
	stderr := `recording room into /tmp/x
{"time":"t1","level":"WARN","msg":"Failed to accept RTCP stream is already closed","component":"pion"}
{"time":"t2","level":"WARN","msg":"recorder queue full; dropping packets","dropped":1}
{"time":"t3","level":"WARN","msg":"Failed to accept RTCP stream is already closed","component":"pion"}`
	got := childWarnings(stderr)
	want := []string{"2× Failed to accept RTCP stream is already closed", "1× recorder queue full; dropping packets", "1× recording room into /tmp/x"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if childWarnings("") != nil {
		t.Error("no output should give no lines")
	}
}

func TestSummarizePicksMedianRun(t *testing.T) {
	runs := []*Phase{
		{Name: "a", Cores: 0.3, AllConnected: true, Participants: 1, Tracks: 2, RecvRatio: 1},
		{Name: "b", Cores: 0.5},
		{Name: "a", Cores: 0.1, AllConnected: true, Participants: 1, Tracks: 2, RecvRatio: 1},
		{Name: "a", Cores: 0.2, AllConnected: true, Participants: 1, Tracks: 2, RecvRatio: 0.5},
	}
	med, ok := summarize(runs, "a", 0.95)
	if med == nil || med.Cores != 0.2 || med.Runs != 3 || med.CoresMin != 0.1 || med.CoresMax != 0.3 {
		t.Fatalf("median %+v", med)
	}
	if ok {
		t.Error("a run that received half the packets counted as keeping up")
	}
	if runs[3].Runs != 0 {
		t.Error("summarize changed the run itself")
	}
	pt := makePoint(1, "b", "a", runs, 0.95)
	if pt.Baseline == nil || pt.Subject == nil || pt.CPURatio != 0.2/0.5 || len(pt.AllRuns) != 4 {
		t.Errorf("point %+v", pt)
	}
}
