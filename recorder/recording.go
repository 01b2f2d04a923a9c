package recorder

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/logattr"
)

// Options configures a Recording.
type Options struct {
	// Dir is the output root; the recording lives in Dir/<ID>/.
	Dir string
	// ID names the recording (a job id); it must be a safe file name (letters, digits, . _ -).
	ID      string
	Channel string
	// Worker identifies who records (manifest attempts).
	Worker string
	// JitterLatency is how long a missing packet is waited for (NACK retransmissions). Default 1s.
	JitterLatency time.Duration
	// FlushInterval bounds how much buffered media a crash can lose. Default 1s.
	FlushInterval time.Duration
	// CaptureMessages writes channel broadcasts and direct messages to messages.jsonl.
	CaptureMessages bool
	// Mode is written into the manifest (record, monitor, both). With NoMedia, tracks and
	// participants are registered in the manifest but no media file is written (monitor mode).
	Mode    string
	NoMedia bool
	// Stats opens stats.jsonl for AppendStats; Report names report.html in the manifest (the
	// caller renders it after Close).
	Stats  bool
	Report bool
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.JitterLatency <= 0 {
		o.JitterLatency = time.Second
	}
	if o.FlushInterval <= 0 || o.FlushInterval > time.Second {
		o.FlushInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrClosed is returned for operations on a closed recording.
var ErrClosed = errors.New("recording closed")

// Recording writes every track handed to it (it is a bot.Consumer) into per-track files under
// one folder, with manifest.json rewritten atomically as things happen. Opening the folder of an
// earlier, interrupted attempt continues it: new segments, one manifest.
type Recording struct {
	opts    Options
	log     *slog.Logger
	dir     string
	root    *os.Root
	started time.Time
	attempt int

	mu      sync.Mutex
	m       *Manifest
	dirty   bool
	closed  bool
	active  map[*Track]*trackRec
	tracks  map[*trackRec]struct{}
	msgFile *os.File
	msgW    *bufio.Writer
	stFile  *os.File
	stW     *bufio.Writer

	wg        sync.WaitGroup
	stopWrite chan struct{}
}

var _ bot.Consumer = (*Recording)(nil)

// File names inside a recording folder.
const (
	ManifestName = "manifest.json"
	StatsName    = "stats.jsonl"
	ReportName   = "report.html"
)

// Open creates (or resumes) the recording folder and writes the first manifest.
func Open(opts Options) (*Recording, error) {
	opts.defaults()
	if opts.ID == "" || SafeName(opts.ID) != opts.ID {
		return nil, fmt.Errorf("recording id %q: use letters, digits, '.', '_' and '-' only (at most %d)", opts.ID, maxNameLen)
	}
	dir := path.Join(opts.Dir, opts.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create recording folder: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open recording folder: %w", err)
	}
	now := time.Now().UTC()
	r := &Recording{
		opts: opts, dir: dir, root: root, started: now,
		log:    opts.Logger.With(logattr.Job, opts.ID, logattr.Channel, opts.Channel),
		active: map[*Track]*trackRec{}, tracks: map[*trackRec]struct{}{},
		stopWrite: make(chan struct{}),
	}
	m, err := ReadManifest(path.Join(dir, ManifestName))
	switch {
	case err == nil:
		// Resume: earlier attempts that never finished are marked interrupted; their files stay.
		for i := range m.Attempts {
			if m.Attempts[i].Status == StatusRecording {
				m.Attempts[i].Status = StatusInterrupted
				m.Attempts[i].Reason = "not finished by its worker"
			}
		}
		r.started = m.StartedAt
		r.log.Info("resuming recording", "attempts", len(m.Attempts))
	case errors.Is(err, fs.ErrNotExist):
		m = &Manifest{Version: ManifestVersion, RecordingID: opts.ID, Channel: opts.Channel, StartedAt: now, Participants: []*Participant{}}
	default:
		root.Close()
		return nil, err
	}
	m.Status = StatusRecording
	m.EndedAt = nil
	r.attempt = len(m.Attempts) + 1
	m.Attempts = append(m.Attempts, Attempt{N: r.attempt, Worker: opts.Worker, StartedAt: now, Status: StatusRecording})
	r.m = m
	if opts.CaptureMessages {
		f, err := root.OpenFile("messages.jsonl", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			root.Close()
			return nil, fmt.Errorf("open messages.jsonl: %w", err)
		}
		r.msgFile, r.msgW = f, bufio.NewWriter(f)
		m.Messages = "messages.jsonl"
	}
	if opts.Stats {
		f, err := root.OpenFile(StatsName, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			r.closeFiles()
			return nil, fmt.Errorf("open %s: %w", StatsName, err)
		}
		r.stFile, r.stW = f, bufio.NewWriter(f)
		m.Stats = StatsName
	}
	if opts.Mode != "" {
		m.Mode = opts.Mode
	}
	if err := r.writeManifest(); err != nil {
		r.closeFiles()
		return nil, err
	}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.writer() }()
	return r, nil
}

// Dir is the recording folder.
func (r *Recording) Dir() string { return r.dir }

// StartedAt is the time the recording (its first attempt) began; manifest offsets count from it.
func (r *Recording) StartedAt() time.Time { return r.started }

// Snapshot returns a deep copy of the current manifest.
func (r *Recording) Snapshot() *Manifest {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.Marshal(r.m)
	var m Manifest
	_ = json.Unmarshal(b, &m)
	return &m
}

// TrackStarted implements bot.Consumer: every remote track gets a pipeline and files.
func (r *Recording) TrackStarted(info bot.TrackInfo, ctrl bot.TrackControl) bot.TrackSink {
	sink, _ := r.StartTrack(info, ctrl)
	return sink
}

// StartTrack registers a remote track in the manifest and returns its sink (nil when the track
// is not recorded: unknown codec, closed recording) and its logical track key. With NoMedia the
// sink only marks the logical track busy until it ends.
func (r *Recording) StartTrack(info bot.TrackInfo, ctrl bot.TrackControl) (bot.TrackSink, string) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ""
	}
	p := r.participantLocked(info.PeerID, info.PeerMetadata)
	r.sessionLocked(p, info)
	mt := r.trackGroupLocked(p, info)
	if r.opts.NoMedia {
		r.active[mt] = nil
		r.dirty = true
		r.mu.Unlock()
		return &registeredTrack{r: r, mt: mt}, mt.Key
	}
	r.mu.Unlock()

	t, err := newTrackRec(r, info, ctrl, mt)
	if err != nil {
		r.log.Warn("not recording track", logattr.Peer, info.PeerID, logattr.Track, info.TrackID, "codec", info.MimeType, logattr.Err, err)
		return nil, mt.Key
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, mt.Key
	}
	r.active[mt] = t
	r.tracks[t] = struct{}{}
	r.dirty = true
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		t.run()
		r.mu.Lock()
		delete(r.tracks, t)
		if r.active[mt] == t {
			delete(r.active, mt)
		}
		r.mu.Unlock()
	}()
	return t, mt.Key
}

// registeredTrack is the sink of a track in a recording without media (monitor mode).
type registeredTrack struct {
	r  *Recording
	mt *Track
}

func (t *registeredTrack) WriteRTP(*rtp.Packet, time.Time)    {}
func (t *registeredTrack) WriteRTCP([]rtcp.Packet, time.Time) {}
func (t *registeredTrack) Reconnected()                       {}
func (t *registeredTrack) End(bot.EndReason) {
	t.r.mu.Lock()
	if tr, ok := t.r.active[t.mt]; ok && tr == nil {
		delete(t.r.active, t.mt)
	}
	t.r.mu.Unlock()
}

// SetQuality stores the monitor's summary of a participant's logical track (key and kind).
func (r *Recording) SetQuality(peerID, key, kind string, q Quality) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.m.Participants {
		if p.PeerID != peerID {
			continue
		}
		for _, t := range p.Tracks {
			if t.Key == key && t.Kind == kind {
				t.Quality = &q
				r.dirty = true
			}
		}
	}
}

// AddAlert appends an alert raise or clear to the manifest.
func (r *Recording) AddAlert(a Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m.Alerts = append(r.m.Alerts, a)
	r.dirty = true
}

// AppendStats writes one line of stats.jsonl (Options.Stats); it is flushed with the manifest,
// at least every FlushInterval.
func (r *Recording) AppendStats(v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode stats: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stW == nil || r.closed {
		return ErrClosed
	}
	_, err = r.stW.Write(append(line, '\n'))
	return err
}

func (r *Recording) participantLocked(peerID string, meta []byte) *Participant {
	for _, p := range r.m.Participants {
		if p.PeerID == peerID {
			if len(meta) > 0 {
				p.Metadata = meta
			}
			return p
		}
	}
	p := &Participant{PeerID: peerID, Dir: SafeName(peerID), Metadata: meta, Sessions: []*Session{}, Tracks: []*Track{}}
	r.m.Participants = append(r.m.Participants, p)
	return p
}

func (r *Recording) sessionLocked(p *Participant, info bot.TrackInfo) {
	for _, s := range p.Sessions {
		if s.ID == info.SessionID && s.Attempt == r.attempt {
			return
		}
	}
	p.Sessions = append(p.Sessions, &Session{ID: info.SessionID, Attempt: r.attempt, Connection: info.Connection,
		StartOffset: info.StartedAt.Sub(r.started).Milliseconds()})
}

// trackGroupLocked finds the logical track (same role or stream, same kind) that this track
// continues, or starts one. Two live tracks never share a group.
func (r *Recording) trackGroupLocked(p *Participant, info bot.TrackInfo) *Track {
	role := info.Role()
	base := role
	if base == "" {
		base = info.StreamID
		if base == "" || base == "-" {
			base = info.TrackID
		}
	}
	key := SafeName(base)
	for n := 1; ; n++ {
		k := key
		if n > 1 {
			k = fmt.Sprintf("%s-%d", key, n)
		}
		var found *Track
		for _, t := range p.Tracks {
			if t.Key == k && t.Kind == info.Kind {
				found = t
			}
		}
		if found == nil {
			t := &Track{Key: k, Role: role, Kind: info.Kind, Codec: info.MimeType, StreamID: info.StreamID,
				TrackID: info.TrackID, Metadata: info.Metadata, Files: []*File{}}
			p.Tracks = append(p.Tracks, t)
			return t
		}
		if _, busy := r.active[found]; !busy {
			found.StreamID, found.TrackID, found.Codec = info.StreamID, info.TrackID, info.MimeType
			if info.Metadata != nil {
				found.Metadata = info.Metadata
			}
			return found
		}
	}
}

// openSegment creates the next file of t's logical track.
func (r *Recording) openSegment(t *trackRec, start time.Time, first Frame) (*segment, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var p *Participant
	for _, pp := range r.m.Participants {
		if pp.PeerID == t.info.PeerID {
			p = pp
		}
	}
	if p == nil {
		return nil, fmt.Errorf("participant %q vanished from the manifest", t.info.PeerID)
	}
	if err := r.root.Mkdir(p.Dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create participant folder: %w", err)
	}
	ext := extensionFor(t.info.MimeType)
	seg := &segment{rec: r, start: start, audio: t.audio, mime: t.info.MimeType}
	n := len(t.mt.Files) + 1
	var f *os.File
	for try := 0; ; try++ {
		name := fmt.Sprintf("%s-%s-%d.%s", t.mt.Key, t.info.Kind, n+try, ext)
		rel := path.Join(p.Dir, name)
		var err error
		f, err = r.root.OpenFile(rel+".part", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			seg.relPath, seg.partPath, n = rel, rel+".part", n+try
			break
		}
		if !errors.Is(err, fs.ErrExist) || try > 100 {
			return nil, fmt.Errorf("create %s: %w", rel, err)
		}
		// A file of an earlier attempt has this name: take the next number (O_EXCL never overwrites).
	}
	seg.file = f
	seg.bw = bufio.NewWriterSize(f, 64<<10)
	if err := seg.openContainer(t.info, first, r); err != nil {
		f.Close()
		_ = r.root.Remove(seg.partPath)
		return nil, err
	}
	seg.mf = &File{
		Path: seg.partPath, Segment: n, Attempt: r.attempt, Session: t.info.SessionID, TrackID: t.info.TrackID,
		SSRC: t.info.SSRC, StartOffsetMs: start.Sub(r.started).Milliseconds(), Partial: true, Gaps: []Gap{},
	}
	t.mt.Files = append(t.mt.Files, seg.mf)
	r.dirty = true
	r.log.Info("recording file opened", logattr.Peer, t.info.PeerID, logattr.Track, t.info.TrackID, "path", seg.partPath)
	return seg, nil
}

// closeSegment finishes a file: renamed from .part on a clean close, kept as .part (and marked
// partial) otherwise.
func (r *Recording) closeSegment(seg *segment, reason string, partial bool, st fileStats) {
	err := seg.close()
	if err != nil {
		r.log.Error("closing recording file", "path", seg.partPath, logattr.Err, err)
		partial = true
	}
	final := seg.partPath
	if !partial {
		if err := r.root.Rename(seg.partPath, seg.relPath); err != nil {
			r.log.Error("renaming recording file", "path", seg.partPath, logattr.Err, err)
			partial = true
		} else {
			final = seg.relPath
		}
	}
	r.mu.Lock()
	applyStats(seg.mf, st)
	seg.mf.Path, seg.mf.Partial, seg.mf.EndReason = final, partial, reason
	r.dirty = true
	r.mu.Unlock()
	r.log.Info("recording file closed", "path", final, "duration", time.Duration(st.DurationMs)*time.Millisecond, "reason", reason, "partial", partial)
}

func (r *Recording) updateFile(mf *File, st fileStats) {
	r.mu.Lock()
	applyStats(mf, st)
	r.dirty = true
	r.mu.Unlock()
}

func applyStats(mf *File, st fileStats) {
	mf.DurationMs, mf.Frames, mf.Bytes, mf.Packets = st.DurationMs, st.Frames, st.Bytes, st.Packets
	mf.Lost, mf.Recovered, mf.Late, mf.Duplicates, mf.Dropped = st.Lost, st.Recovered, st.Late, st.Duplicates, st.Dropped
	mf.Width, mf.Height, mf.SenderReport = st.Width, st.Height, st.SenderReport
	mf.Gaps = st.Gaps
	if mf.Gaps == nil {
		mf.Gaps = []Gap{}
	}
	mf.KeyframeWaits, mf.ResolutionChanges = st.KeyframeWaits, st.ResolutionChanges
}

// Events returns bot events that keep the manifest's participants and messages current.
func (r *Recording) Events() bot.Events {
	return bot.Events{
		PeerJoined: func(peerID string, meta json.RawMessage) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if !r.closed {
				r.participantLocked(peerID, meta)
				r.dirty = true
			}
		},
		Message: func(from string, data json.RawMessage, at time.Time) { r.message("broadcast", from, data, at) },
		Direct:  func(from string, data json.RawMessage, at time.Time) { r.message("direct", from, data, at) },
	}
}

func (r *Recording) message(kind, from string, data json.RawMessage, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.msgW == nil || r.closed {
		return
	}
	line, err := json.Marshal(map[string]any{
		"at": at.UTC().Format(time.RFC3339Nano), "offsetMs": at.Sub(r.started).Milliseconds(),
		"kind": kind, "from": from, "data": data,
	})
	if err != nil {
		return
	}
	_, _ = r.msgW.Write(append(line, '\n'))
}

// writer rewrites the manifest at most once per FlushInterval while something changed.
func (r *Recording) writer() {
	tick := time.NewTicker(r.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.stopWrite:
			return
		case <-tick.C:
			r.mu.Lock()
			if r.msgW != nil {
				_ = r.msgW.Flush()
			}
			if r.stW != nil {
				_ = r.stW.Flush()
			}
			dirty := r.dirty
			r.mu.Unlock()
			if dirty {
				if err := r.writeManifest(); err != nil {
					r.log.Error("manifest write failed", logattr.Err, err)
				}
			}
		}
	}
}

// writeManifest replaces manifest.json atomically (write a temporary file, then rename).
func (r *Recording) writeManifest() error {
	r.mu.Lock()
	b, err := json.MarshalIndent(r.m, "", "  ")
	r.dirty = false
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	tmp := ManifestName + ".tmp"
	f, err := r.root.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := r.root.Rename(tmp, ManifestName); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// Close ends every track still running, finalizes the manifest with status (finished, failed,
// interrupted) and reason, and returns it. It is idempotent.
func (r *Recording) Close(status, reason string) (*Manifest, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return r.Snapshot(), nil
	}
	r.closed = true
	running := make([]*trackRec, 0, len(r.tracks))
	for t := range r.tracks {
		running = append(running, t)
	}
	r.mu.Unlock()
	for _, t := range running {
		t.End(bot.EndBotStopped)
	}
	close(r.stopWrite)
	r.wg.Wait()
	now := time.Now().UTC()
	r.mu.Lock()
	r.m.Status = status
	r.m.EndedAt = &now
	a := &r.m.Attempts[len(r.m.Attempts)-1]
	a.EndedAt, a.Status, a.Reason = &now, status, reason
	if r.opts.Report {
		r.m.Report = ReportName
	}
	r.mu.Unlock()
	err := r.writeManifest()
	err = errors.Join(err, r.closeFiles())
	return r.Snapshot(), err
}

func (r *Recording) closeFiles() error {
	var errs []error
	if r.msgW != nil {
		errs = append(errs, r.msgW.Flush(), r.msgFile.Close())
	}
	if r.stW != nil {
		errs = append(errs, r.stW.Flush(), r.stFile.Sync(), r.stFile.Close())
	}
	errs = append(errs, r.root.Close())
	return errors.Join(errs...)
}
