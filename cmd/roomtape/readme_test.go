package main

// README-driven tests (issue 6): the commands README.md shows a newcomer are read out of its
// fenced code blocks and run as they are, each as its own process of the built binary, on
// loopback, in a temporary working directory that holds a copy of the repository's config.yaml
// (which `go run ./cmd/roomtape ...` from the repository root picks up) with its fixed ports
// replaced by free ones. A README edit that breaks a command breaks these tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
	"github.com/roomtape/roomtape/signalling"
)

const (
	readmePath     = "../../README.md"
	repoConfigPath = "../../config.yaml"
	localStackPath = "../../scripts/local-stack"
	// goRunPrefix is how README.md runs the CLI; the tests run the built binary instead.
	goRunPrefix = "go run ./cmd/roomtape"
)

// TestReadme runs the README's flows in parallel against one build of the binary.
func TestReadme(t *testing.T) {
	bin := buildBinary(t)
	t.Run("every command parses", func(t *testing.T) { t.Parallel(); testReadmeCommandsParse(t) })
	t.Run("token", func(t *testing.T) { t.Parallel(); testReadmeToken(t, bin) })
	t.Run("record a room in three terminals", func(t *testing.T) { t.Parallel(); testReadmeThreeTerminals(t, bin) })
	t.Run("recording jobs through NATS", func(t *testing.T) { t.Parallel(); testReadmeJobs(t, bin) })
	t.Run("scripts/local-stack", func(t *testing.T) { t.Parallel(); testReadmeLocalStack(t) })
}

// testReadmeCommandsParse: every `go run ./cmd/roomtape ...` line of a sh block names a
// subcommand whose flags, arguments and required flags are accepted, and every inline
// `roomtape SUBCOMMAND ...` names a subcommand with flags it has.
func testReadmeCommandsParse(t *testing.T) {
	doc := readREADME(t)
	blocks := 0
	for _, block := range codeBlocks(doc, "sh") {
		for _, args := range roomtapeCommands(t, block) {
			blocks++
			cmd, rest, err := findCommand(args)
			if err == nil {
				err = cmd.ValidateArgs(rest)
			}
			if err == nil {
				err = cmd.ValidateRequiredFlags()
			}
			if err != nil {
				t.Errorf("README: %v", err)
			}
		}
	}
	if blocks < 9 { // demo, three terminals (3), NATS (4), Metered record, token
		t.Errorf("found only %d commands in README's sh blocks", blocks)
	}
	inline := 0
	for _, m := range regexp.MustCompile("`(?:go run ./cmd/)?(roomtape [^`]+)`").FindAllStringSubmatch(outsideCodeBlocks(doc), -1) {
		if strings.Contains(m[1], "...") {
			continue // `roomtape bench ...`: a family, not a command
		}
		words, err := shellWords(m[1])
		if err != nil {
			t.Errorf("README: `%s`: %v", m[1], err)
			continue
		}
		inline++
		if _, _, err := findCommand(words[1:]); err != nil {
			t.Errorf("README: `%s`: %v", m[1], err)
		}
	}
	if inline < 5 {
		t.Errorf("found only %d inline roomtape commands in README", inline)
	}
	// The configuration README shows (a Metered profile) is accepted as config.yaml.
	yamls := codeBlocks(doc, "yaml")
	if len(yamls) == 0 {
		t.Error("README has no yaml block")
	}
	for _, y := range yamls {
		lc, err := ParseConfig(strings.NewReader(y), nil, nil)
		if err != nil {
			t.Errorf("README's yaml block is not a valid config.yaml: %v\n%s", err, y)
		} else if len(lc.Profiles) == 0 {
			t.Errorf("README's yaml block defines no profile:\n%s", y)
		}
	}
}

// findCommand resolves args to a subcommand and parses its flags, returning the positional args.
func findCommand(args []string) (*cobra.Command, []string, error) {
	root := newRootCmd()
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		return nil, nil, fmt.Errorf("roomtape %s: no such subcommand (%v)", strings.Join(args, " "), err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return nil, nil, fmt.Errorf("roomtape %s: %w", strings.Join(args, " "), err)
	}
	return cmd, cmd.Flags().Args(), nil
}

// "Self-hosting the signalling server": the token the README mints verifies against the
// configured secret key with the README's subject, channels, lifetime and peer metadata, and
// not against another secret.
func testReadmeToken(t *testing.T, bin string) {
	cmds := readmeCommands(t, "## Self-hosting the signalling server")
	requireSubcommands(t, cmds, "token")
	args := cmds[0]
	tokenCmd, _, err := findCommand(args)
	if err != nil {
		t.Fatalf("README: %v", err)
	}
	sub, _ := tokenCmd.Flags().GetString("sub")
	channels, _ := tokenCmd.Flags().GetStringArray("channel")
	ttl, _ := tokenCmd.Flags().GetDuration("ttl")
	peerMeta, _ := tokenCmd.Flags().GetString("peer-metadata")
	if sub == "" || len(channels) == 0 || ttl <= 0 || peerMeta == "" {
		t.Fatalf("README's token command changed shape: %q", args)
	}

	w := newReadmeWorkdir(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = w.dir, readmeEnv(), &out, &errOut
	minted := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("roomtape %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	tok := strings.TrimSpace(out.String())
	if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
		t.Fatalf("stdout is not one JWT: %q", out.String())
	}

	auth, err := signalling.NewAuthenticator(&w.config.Signal)
	if err != nil {
		t.Fatal(err)
	}
	id, err := auth.Token(tok)
	if err != nil {
		t.Fatalf("the minted token does not verify against config.yaml's key: %v", err)
	}
	wantKey := w.config.Signal.Apps[0].SecretKeys[0].ID
	if id.PeerID != sub || id.KeyID != wantKey || id.App.ID != w.config.Signal.Apps[0].ID {
		t.Errorf("identity: peer %q key %q app %q; want %q, %q, %q", id.PeerID, id.KeyID, id.App.ID, sub, wantKey, w.config.Signal.Apps[0].ID)
	}
	if exp := minted.Add(ttl); id.ExpiresAt.Before(exp.Add(-time.Minute)) || id.ExpiresAt.After(exp.Add(time.Minute)) {
		t.Errorf("expires at %s, want about %s (--ttl %s)", id.ExpiresAt, exp, ttl)
	}
	var got, want any
	if json.Unmarshal(id.PeerMetadata, &got) != nil || json.Unmarshal([]byte(peerMeta), &want) != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("peer metadata %s, want %s", id.PeerMetadata, peerMeta)
	}
	// --channel 'acme/*': a channel the pattern covers is allowed, another is not.
	inside := strings.ReplaceAll(channels[0], "*", "room-7")
	if !id.Allows(inside) || id.Allows("elsewhere/room-7") {
		t.Errorf("channels %q: allows %s %v, elsewhere/room-7 %v", channels, inside, id.Allows(inside), id.Allows("elsewhere/room-7"))
	}
	if !id.Can(signalling.Action("send")) {
		t.Errorf("the token lacks send, which SDP and ICE need (config.yaml's key grants it)")
	}

	other := w.config.Signal
	other.Apps = slices.Clone(other.Apps)
	other.Apps[0].SecretKeys = []signalling.SecretKeyConfig{{ID: wantKey, Secret: "another-secret-entirely"}}
	otherAuth, err := signalling.NewAuthenticator(&other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otherAuth.Token(tok); err == nil {
		t.Errorf("the token verifies against a different secret")
	}
}

// "Record a room in three terminals": signal, publish and record, each its own process; record
// ends after its --duration with a finished manifest whose files decode.
func testReadmeThreeTerminals(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	cmds, w, sig, pub, peer := startReadmeRoom(t, ctx, bin, "## Record a room in three terminals", "signal", "publish", "record")
	rec := sig.sibling(t, bin, cmds[2]...)
	if err := rec.wait(ctx); err != nil {
		t.Fatalf("roomtape %s: %v\n%s", strings.Join(cmds[2], " "), err, rec.stderr.String())
	}
	// README: "ends with a table of files and the path of manifest.json".
	if !strings.Contains(rec.stdout.String(), "PARTICIPANT") {
		t.Errorf("no table of files:\n%s", rec.stdout.String())
	}
	manifest := manifestFromSummary(t, w.dir, rec.stdout.String())
	if rel, err := filepath.Rel(filepath.Join(w.dir, "recordings"), manifest); err != nil || strings.Count(rel, string(filepath.Separator)) != 1 {
		t.Errorf("manifest %s is not recordings/<recording-id>/manifest.json (README's Output)", manifest)
	}
	verifyReadmeRecording(t, manifest, peer)

	// Ctrl-C ends the participant and the server cleanly.
	pub.interrupt(t, ctx)
	sig.interrupt(t, ctx)
}

// "Recording jobs through NATS JetStream": signal, publish, worker (embedded NATS) and
// `submit --wait`, each its own process; then `status --json` and `jobs` see the job done.
func testReadmeJobs(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	cmds, w, sig, pub, peer := startReadmeRoom(t, ctx, bin, "## Recording jobs through NATS JetStream", "signal", "publish", "worker", "submit")
	worker := sig.sibling(t, bin, cmds[2]...)
	ready := worker.waitOutput(t, ctx, " ready (")
	if !strings.Contains(ready, "nats nats://"+w.nats) || !strings.Contains(ready, "metrics http://"+w.metrics) {
		t.Errorf("worker ready line %q: want NATS on %s and metrics on %s (config.yaml)", ready, w.nats, w.metrics)
	}
	checkHTTP(t, ctx, "http://"+w.metrics+"/healthz", "http://"+w.metrics+"/readyz", "http://"+w.metrics+"/metrics", "http://"+w.signal+"/healthz")

	submit := sig.sibling(t, bin, cmds[3]...)
	if err := submit.wait(ctx); err != nil {
		t.Fatalf("roomtape %s: %v\n%s\n%s", strings.Join(cmds[3], " "), err, submit.stdout.String(), submit.stderr.String())
	}
	m := regexp.MustCompile(`submitted job (\S+) \(channel demo-room\)`).FindStringSubmatch(submit.stderr.String())
	if m == nil {
		t.Fatalf("submit did not print the job id:\n%s", submit.stderr.String())
	}
	jobID := m[1]
	if !strings.Contains(submit.stdout.String(), "recording "+jobID+": finished") {
		t.Errorf("submit --wait did not end with the manifest summary:\n%s", submit.stdout.String())
	}
	manifest := manifestFromSummary(t, w.dir, submit.stdout.String())
	if want := filepath.Join(w.dir, "recordings", jobID, recorder.ManifestName); manifest != want {
		t.Errorf("manifest %s, want %s", manifest, want)
	}
	verifyReadmeRecording(t, manifest, peer)

	status := sig.sibling(t, bin, "status", jobID, "--json")
	if err := status.wait(ctx); err != nil {
		t.Fatalf("status: %v\n%s", err, status.stderr.String())
	}
	var st pipeline.JobState
	if err := json.Unmarshal([]byte(status.stdout.String()), &st); err != nil || st.State != pipeline.StateDone || st.Labels["team"] != "core" {
		t.Errorf("status %s --json (want done, label team=core from README): %v\n%s", jobID, err, status.stdout.String())
	}
	jobs := sig.sibling(t, bin, "jobs")
	if err := jobs.wait(ctx); err != nil || !strings.Contains(jobs.stdout.String(), jobID) {
		t.Errorf("jobs: %v\n%s", err, jobs.stdout.String())
	}

	worker.interrupt(t, ctx)
	pub.interrupt(t, ctx)
	sig.interrupt(t, ctx)
}

// startReadmeRoom runs the first two terminals of a README section that records a room, whose
// commands must be the subcommands want: the signalling server, then a publisher in the channel
// (its peer id is returned). The section's commands follow in the same working directory.
func startReadmeRoom(t *testing.T, ctx context.Context, bin, heading string, want ...string) (cmds [][]string, w *readmeWorkdir, sig, pub *readmeProc, peer string) {
	t.Helper()
	testenv.RequireTools(t)
	cmds = readmeCommands(t, heading)
	requireSubcommands(t, cmds, want...)
	w = newReadmeWorkdir(t, false)
	sig = startReadmeProc(t, w.dir, readmeEnv(), bin, cmds[0]...)
	sig.waitOutput(t, ctx, "listening on ws://"+w.signal)
	pub = sig.sibling(t, bin, cmds[1]...)
	return cmds, w, sig, pub, publisherPeer(t, ctx, pub)
}

// scripts/local-stack (README "Scaling out"), with its ports moved by the variables it reads:
// it builds and starts the server and the worker, the two commands its header suggests record a
// job, and Ctrl-C stops both processes.
func testReadmeLocalStack(t *testing.T) {
	testenv.RequireTools(t)
	if doc := readREADME(t); !strings.Contains(doc, "`./scripts/local-stack`") {
		t.Fatal("README no longer mentions ./scripts/local-stack: update this test")
	}
	script, err := filepath.Abs(localStackPath)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	// The commands of the script's header comment, "Then submit jobs from another terminal".
	var cmds [][]string
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(strings.TrimPrefix(line, "#")), goRunPrefix+" "); ok && strings.HasPrefix(line, "#") {
			words, err := shellWords(rest)
			if err != nil {
				t.Fatalf("%s: %q: %v", localStackPath, line, err)
			}
			cmds = append(cmds, words)
		}
	}
	requireSubcommands(t, cmds, "publish", "submit")

	w := newReadmeWorkdir(t, true) // the script runs in the repository root: absolute folders
	stackDir := filepath.Join(w.dir, "stack")
	metrics := freeLoopbackAddr(t) // not config.yaml's: the script's own default is overridden
	env := readmeEnv("STACK_DIR="+stackDir, "STACK_CONFIG="+filepath.Join(w.dir, "config.yaml"),
		"ROOMTAPE_SIGNAL_LISTEN="+w.signal, "ROOMTAPE_WORKER_METRICS_LISTEN="+metrics)
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Second)
	defer cancel()
	stack := startReadmeProc(t, w.dir, env, script)
	stack.waitOutput(t, ctx, "Ctrl-C to stop")
	wantContains(t, "local-stack's output", stack.stdout.String(),
		"listening on ws://"+w.signal, "ready (nats nats://"+w.nats, "metrics on http://"+metrics+"/metrics")
	checkHTTP(t, ctx, "http://"+metrics+"/healthz", "http://"+w.signal+"/healthz")

	pub := startReadmeProc(t, w.dir, readmeEnv(), stackBinary(t, stackDir), cmds[0]...)
	peer := publisherPeer(t, ctx, pub)
	submit := startReadmeProc(t, w.dir, readmeEnv(), stackBinary(t, stackDir), cmds[1]...)
	if err := submit.wait(ctx); err != nil {
		t.Fatalf("roomtape %s: %v\n%s\n%s", strings.Join(cmds[1], " "), err, submit.stdout.String(), submit.stderr.String())
	}
	manifest := manifestFromSummary(t, w.dir, submit.stdout.String())
	if !strings.HasPrefix(manifest, filepath.Join(w.dir, "recordings")+string(filepath.Separator)) {
		t.Errorf("the worker wrote %s, outside the configured recorder.out_dir", manifest)
	}
	verifyReadmeRecording(t, manifest, peer)
	pub.interrupt(t, ctx)

	// Ctrl-C in the script's terminal reaches its whole process group.
	if err := syscall.Kill(-stack.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stack.done:
	case <-ctx.Done():
		t.Fatalf("local-stack did not stop on Ctrl-C:\n%s", stack.stdout.String())
	}
	for _, addr := range []string{w.signal, metrics, w.nats} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after local-stack stopped", addr)
		}
	}
	for _, log := range []string{"signal.log", "worker.log"} {
		if _, err := os.Stat(filepath.Join(stackDir, log)); err != nil {
			t.Errorf("local-stack kept no %s: %v", log, err)
		}
	}
}

// --- README.md parsing ---

func readREADME(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readmeSection is the text under heading (e.g. "## Output") up to the next heading of the same
// or a higher level; headings inside code blocks do not count.
func readmeSection(t *testing.T, doc, heading string) string {
	t.Helper()
	level := strings.Index(heading, " ")
	var out []string
	in, fenced := false, false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if !fenced && strings.HasPrefix(line, "#") {
			l := strings.Index(line, " ")
			if in && l > 0 && l <= level && strings.Trim(line[:l], "#") == "" {
				break
			}
			if strings.TrimSpace(line) == heading {
				in = true
				continue
			}
		}
		if in {
			out = append(out, line)
		}
	}
	if !in {
		t.Fatalf("README.md has no section %q", heading)
	}
	return strings.Join(out, "\n")
}

// codeBlocks returns the bodies of the fenced blocks whose info string is lang.
func codeBlocks(text, lang string) []string {
	var blocks []string
	var cur []string
	in := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```"+lang:
			in, cur = true, nil
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// outsideCodeBlocks is the text without fenced blocks.
func outsideCodeBlocks(text string) string {
	var out []string
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// roomtapeCommands are the `go run ./cmd/roomtape ARGS` lines of a block, as ARGS words.
func roomtapeCommands(t *testing.T, block string) [][]string {
	t.Helper()
	var cmds [][]string
	for _, line := range strings.Split(block, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), goRunPrefix+" ")
		if !ok {
			continue
		}
		words, err := shellWords(rest)
		if err != nil {
			t.Fatalf("README: %q: %v", line, err)
		}
		cmds = append(cmds, words)
	}
	return cmds
}

// readmeCommands are the roomtape commands of the sh blocks of a README section.
func readmeCommands(t *testing.T, heading string) [][]string {
	t.Helper()
	var cmds [][]string
	for _, b := range codeBlocks(readmeSection(t, readREADME(t), heading), "sh") {
		cmds = append(cmds, roomtapeCommands(t, b)...)
	}
	return cmds
}

// requireSubcommands fails unless the commands are exactly these subcommands, in order.
func requireSubcommands(t *testing.T, cmds [][]string, want ...string) {
	t.Helper()
	var got []string
	for _, c := range cmds {
		got = append(got, c[0])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("README commands are %q, this test runs %q: update it with the README", cmds, want)
	}
}

// shellWords splits a command line as sh does for the simple commands a README shows: blanks
// separate words, '...' and "..." quote, a backslash escapes the next character outside '...',
// an unquoted # at the start of a word begins a comment, and a final & (background) is dropped.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case c == '#' && !inWord:
			i = len(line)
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			i, inWord = i+1+j, true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated \" quote")
			}
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case strings.IndexByte("|;<>()$`", c) >= 0:
			return nil, fmt.Errorf("shell syntax %q is beyond this test's splitter", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if n := len(words); n > 0 && words[n-1] == "&" {
		words = words[:n-1]
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return words, nil
}

func TestReadmeShellWords(t *testing.T) {
	for line, want := range map[string][]string{
		`token --sub alice --channel 'acme/*' --peer-metadata '{"name":"Alice"}'`: {"token", "--sub", "alice", "--channel", "acme/*", "--peer-metadata", `{"name":"Alice"}`},
		`signal     # 1: signalling server, built-in demo app`:                    {"signal"},
		`publish --channel demo-room --loop &`:                                    {"publish", "--channel", "demo-room", "--loop"},
		`x "a \"b\" c" d\ e it's#no-comment`:                                      nil, // unterminated '
		`x "a \"b\" c" d\ e f#g`:                                                  {"x", `a "b" c`, "d e", "f#g"},
		`a | b`:                                                                   nil,
	} {
		got, err := shellWords(line)
		if (err != nil) != (want == nil) || !slices.Equal(got, want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
}

// --- the working directory of a newcomer ---

// readmeWorkdir is a temporary directory standing in for the repository root: config.yaml is
// the repository's with the ports it fixes (signal 8787, NATS 4222, worker metrics) moved to
// free loopback ports; with absDirs, recorder.out_dir and nats.store_dir become absolute
// folders inside it too (for processes started elsewhere).
type readmeWorkdir struct {
	dir                   string
	signal, nats, metrics string // host:port
	config                loadedConfig
}

func newReadmeWorkdir(t *testing.T, absDirs bool) *readmeWorkdir {
	t.Helper()
	b, err := os.ReadFile(repoConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := ParseConfig(bytes.NewReader(b), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &readmeWorkdir{dir: t.TempDir(), signal: freeLoopbackAddr(t), nats: freeLoopbackAddr(t), metrics: freeLoopbackAddr(t)}
	yaml := string(b)
	replace := func(key, from, to string) {
		if from == "" || !strings.Contains(yaml, from) {
			t.Fatalf("config.yaml: %s %q not found; update this test", key, from)
		}
		yaml = strings.ReplaceAll(yaml, from, to)
	}
	replace("signal.listen", repo.Signal.Listen, w.signal) // also profiles.default.url
	replace("nats.listen", repo.NATS.Listen, w.nats)
	replace("worker.metrics_listen", repo.Worker.MetricsListen, w.metrics)
	if absDirs {
		replace("recorder.out_dir", "out_dir: "+repo.Recorder.OutDir+"\n", "out_dir: "+filepath.Join(w.dir, repo.Recorder.OutDir)+"\n")
		replace("nats.store_dir", "store_dir: "+repo.NATS.StoreDir+"\n", "store_dir: "+filepath.Join(w.dir, repo.NATS.StoreDir)+"\n")
	}
	if err := os.WriteFile(filepath.Join(w.dir, "config.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	w.config, err = ParseConfig(strings.NewReader(yaml), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Every fixed port moved: nothing of the test reaches a service a developer runs on this host.
	if p := w.config.Profiles["default"]; w.config.Signal.Listen != w.signal || p.URL != "ws://"+w.signal ||
		w.config.NATS.Listen != w.nats || w.config.Worker.MetricsListen != w.metrics {
		t.Fatalf("config.yaml copy: listen %s, profile %s, nats %s, metrics %s", w.config.Signal.Listen, p.URL, w.config.NATS.Listen, w.config.Worker.MetricsListen)
	}
	return w
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readmeEnv is this process's environment without ROOMTAPE_* overrides, plus extra.
func readmeEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix+"_") && !strings.HasPrefix(kv, "STACK_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// --- processes ---

// readmeProc is one "terminal": a process in its own process group, killed with its children
// when the test ends.
type readmeProc struct {
	name           string
	cmd            *exec.Cmd
	dir            string
	env            []string
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

func startReadmeProc(t *testing.T, dir string, env []string, bin string, args ...string) *readmeProc {
	t.Helper()
	p := &readmeProc{name: filepath.Base(bin) + " " + strings.Join(args, " "), dir: dir, env: env,
		stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir, p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = dir, env, p.stdout, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 10 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s (%v)\nstdout:\n%s\nstderr (tail):\n%s", p.name, p.err, p.stdout.String(), tail(p.stderr.String(), 4000))
		}
	})
	return p
}

// sibling starts another terminal in the same folder.
func (p *readmeProc) sibling(t *testing.T, bin string, args ...string) *readmeProc {
	t.Helper()
	return startReadmeProc(t, p.dir, p.env, bin, args...)
}

// stackBinary is the binary local-stack built, for the commands run next to it.
func stackBinary(t *testing.T, stackDir string) string {
	t.Helper()
	bin := filepath.Join(stackDir, "roomtape")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("local-stack built no binary: %v", err)
	}
	return bin
}

// waitOutput waits for a stdout line containing s and returns it.
func (p *readmeProc) waitOutput(t *testing.T, ctx context.Context, s string) string {
	t.Helper()
	for {
		for _, line := range strings.Split(p.stdout.String(), "\n") {
			if strings.Contains(line, s) {
				return line
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q:\n%s\n%s", p.name, p.err, s, p.stdout.String(), tail(p.stderr.String(), 4000))
		case <-ctx.Done():
			t.Fatalf("%s did not print %q in time:\n%s", p.name, s, p.stdout.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// wait waits for the process to exit by itself.
func (p *readmeProc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("still running: %w", ctx.Err())
	}
}

// interrupt is Ctrl-C: the process must exit with status 0.
func (p *readmeProc) interrupt(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	if err := p.wait(ctx); err != nil {
		t.Errorf("%s after Ctrl-C: %v\n%s", p.name, err, tail(p.stderr.String(), 2000))
	}
}

func publisherPeer(t *testing.T, ctx context.Context, pub *readmeProc) string {
	t.Helper()
	line := pub.waitOutput(t, ctx, "publishing to ")
	m := regexp.MustCompile(`^publishing to \S+ as (\S+) \(2 tracks\)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("publish printed %q, want the peer id and 2 tracks", line)
	}
	return m[1]
}

func checkHTTP(t *testing.T, ctx context.Context, urls ...string) {
	t.Helper()
	for _, u := range urls {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("GET %s: %v", u, err)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", u, resp.Status)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// --- the recording ---

// manifestFromSummary is the "manifest: PATH" line of a summary, relative to dir when relative.
func manifestFromSummary(t *testing.T, dir, out string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^manifest: (.+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no manifest path in the summary:\n%s", out)
	}
	path := m[1]
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	return path
}

// verifyReadmeRecording checks what README's Output section promises: a finished manifest, the
// publisher's camera audio and video as <peer>/camera-audio-1.ogg and <peer>/camera-video-1.ivf,
// closed (no .part), decoding cleanly for about as long as they were recorded, and
// messages.jsonl.
func verifyReadmeRecording(t *testing.T, manifestPath, peer string) {
	t.Helper()
	m, err := recorder.ReadManifest(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(manifestPath)
	if m.Status != recorder.StatusFinished || m.EndedAt == nil {
		t.Fatalf("manifest status %q (ended %v), want %q", m.Status, m.EndedAt, recorder.StatusFinished)
	}
	if m.Messages != "messages.jsonl" {
		t.Errorf("manifest messages %q, want messages.jsonl", m.Messages)
	} else if _, err := os.Stat(filepath.Join(dir, m.Messages)); err != nil {
		t.Error(err)
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "*", "*.part"))
	if len(parts) > 0 {
		t.Errorf("files left open: %v", parts)
	}
	length := m.EndedAt.Sub(m.StartedAt)
	seen := map[string]bool{}
	for _, ref := range m.Files() {
		if ref.Participant.PeerID != peer {
			t.Errorf("unexpected participant %s recorded", ref.Participant.PeerID)
			continue
		}
		f := ref.File
		ext := map[string]string{"audio": ".ogg", "video": ".ivf"}[ref.Track.Kind]
		if want := ref.Participant.Dir + "/" + ref.Track.Role + "-" + ref.Track.Kind + "-1" + ext; f.Path != want || ref.Track.Role != "camera" {
			t.Errorf("file %s (role %q), want %s as in README's Output", f.Path, ref.Track.Role, want)
		}
		if f.Partial {
			t.Errorf("%s: partial after a clean stop", f.Path)
		}
		seen[ref.Track.Kind] = true
		p := testenv.Probe(t, filepath.Join(dir, f.Path))
		span := length - time.Duration(f.StartOffsetMs)*time.Millisecond
		manifestDur := time.Duration(f.DurationMs) * time.Millisecond
		t.Logf("%s: decodes %.2fs (manifest %.2fs) of %.2fs recorded, starting at %dms, %d frames", f.Path,
			p.End.Seconds(), manifestDur.Seconds(), span.Seconds(), f.StartOffsetMs, p.Frames)
		if p.End < span-3*time.Second || p.End < span/2 {
			t.Errorf("%s decodes %s of the %s it was recorded", f.Path, p.End, span)
		}
		if d := p.End - manifestDur; d < -1500*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("%s decodes %s, the manifest says %s", f.Path, p.End, manifestDur)
		}
		if ref.Track.Kind == "video" && p.Frames == 0 {
			t.Errorf("%s: no video frames decoded", f.Path)
		}
	}
	if !seen["audio"] || !seen["video"] {
		t.Errorf("recorded kinds %v, want audio and video of %s", seen, peer)
	}
}
