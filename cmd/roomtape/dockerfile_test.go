package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dockerfile is what the Dockerfile's final stage says, read line by line (continuations joined).
type dockerfile struct {
	env         map[string]string
	expose      []string
	copies      [][2]string // source, destination (final stage)
	entrypoint  string
	healthcheck string
	user        string
	header      string // leading comment block
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	d := dockerfile{env: map[string]string{}}
	final := false
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") && !final && len(d.copies) == 0 {
			d.header += line + "\n"
		}
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			final = !strings.Contains(rest, " AS ")
		case "ENV":
			if final {
				for _, kv := range strings.Fields(rest) {
					k, v, _ := strings.Cut(kv, "=")
					d.env[k] = v
				}
			}
		case "EXPOSE":
			d.expose = strings.Fields(rest)
		case "COPY":
			f := strings.Fields(rest)
			if final && len(f) >= 2 && !strings.HasPrefix(f[0], "--from") {
				d.copies = append(d.copies, [2]string{f[0], f[len(f)-1]})
			}
		case "ENTRYPOINT":
			d.entrypoint = rest
		case "HEALTHCHECK":
			d.healthcheck = rest
		case "USER":
			d.user = rest
		}
	}
	return d
}

// The Dockerfile cannot rot silently: every ROOMTAPE_* variable it sets names a real config key
// and, applied to the config.yaml it copies in, gives a valid configuration with the values the
// image documents; the ports it exposes are the ones those settings listen on and the ones its
// usage comment publishes; the health check probes the worker's metrics port; it runs as non-root.
func TestDockerfileMatchesConfig(t *testing.T) {
	d := readDockerfile(t)
	keys := map[string]bool{}
	for _, k := range leafKeys(reflect.TypeOf(Config{}), "") {
		keys[envPrefix+"_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = true
	}
	var environ []string
	for k, v := range d.env {
		if !keys[k] {
			t.Errorf("Dockerfile sets %s, which is no config option", k)
		}
		environ = append(environ, k+"="+v)
	}
	if len(d.env) == 0 {
		t.Fatal("no ENV in the Dockerfile's final stage")
	}
	var config string
	for _, c := range d.copies {
		if c[0] == "config.yaml" {
			config = c[1]
		}
	}
	if config == "" || !strings.Contains(d.entrypoint, `"--config", "`+config+`"`) {
		t.Errorf("the image copies config.yaml to %q but its entrypoint is %s", config, d.entrypoint)
	}
	f, err := os.Open("../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lc, err := ParseConfig(f, nil, environ)
	if err != nil {
		t.Fatalf("config.yaml with the image's environment: %v", err)
	}
	if !strings.HasPrefix(lc.Recorder.OutDir, "/data/") || !strings.HasPrefix(lc.NATS.StoreDir, "/data/") {
		t.Errorf("recordings in %q and the NATS store in %q, not under the /data volume", lc.Recorder.OutDir, lc.NATS.StoreDir)
	}
	port := func(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
	want := []string{port(lc.Signal.Listen) + "/tcp", port(lc.Worker.MetricsListen) + "/tcp"}
	if p := lc.Bot.Network.UDPMuxPort; p > 0 {
		want = append(want, strconv.Itoa(p)+"/udp")
	}
	for _, w := range want {
		if !slices.Contains(d.expose, w) {
			t.Errorf("the image listens on %s but does not EXPOSE it (EXPOSE %v)", w, d.expose)
		}
	}
	if !strings.Contains(d.healthcheck, "healthcheck") || !strings.Contains(d.healthcheck, ":"+port(lc.Worker.MetricsListen)+"/healthz") {
		t.Errorf("HEALTHCHECK %q does not probe the worker's /healthz on port %s", d.healthcheck, port(lc.Worker.MetricsListen))
	}
	if d.user == "" || strings.HasPrefix(d.user, "root") || strings.HasPrefix(d.user, "0") {
		t.Errorf("the image runs as %q", d.user)
	}
	// The usage comment publishes what the image exposes.
	for _, m := range regexp.MustCompile(`-p (\d+):(\d+)(/udp)?`).FindAllStringSubmatch(d.header, -1) {
		proto := "/tcp"
		if m[3] != "" {
			proto = "/udp"
		}
		if !slices.Contains(d.expose, m[2]+proto) {
			t.Errorf("the Dockerfile's usage publishes %s%s, which it does not expose", m[2], proto)
		}
	}
}
