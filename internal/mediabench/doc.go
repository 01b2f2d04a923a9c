// Package mediabench measures the media path of roomtape on one machine: what one recorder
// (`roomtape record`) or one bot process costs per participant, each side by side in the same
// run with a bare pion receiver doing the same job with pion's defaults.
//
// The benchmark process (the coordinator) runs an in-process signalling server and a fleet of N
// Go publishers (package publisher: Opus 20 ms + VP8 at about 1 Mbps, sent in real time) in one
// channel. Each receiver under test runs as its own child process, one after the other against
// the same fleet, so that its CPU (utime+stime from /proc/PID/stat over a fixed window after a
// warm-up), memory (VmRSS, VmHWM, and the Go heap from GODEBUG=gctrace=1) and packet counters are
// its own. Publishers only connect to peers whose id starts with "~" (the receivers), so the fleet
// never forms a mesh.
//
// The hidden `roomtape bench receiver` subcommand (RunReceiver) is the child for the bot and for
// the bare pion baselines; the recorder child is the real `roomtape record`.
package mediabench
