package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// DefaultOpusPreSkip is the pre-skip OggWriter writes when OggOptions.PreSkip is zero: 312 samples
// (6.5 ms at 48 kHz), the algorithmic delay of the libopus encoder that browsers use. A player drops
// exactly the encoder's delay, so decoded audio lines up with the capture time of the first packet.
// RFC 7845 recommends 3840 (80 ms) for streams cut from the middle of an encoding, which a WebRTC
// recording is; that would hide the decoder's first 80 ms of convergence but also cut 80 ms of real
// audio and shift the track by 80 ms against video. Set OggOptions.PreSkip to 3840 to get it.
const DefaultOpusPreSkip = 312

// OpusSampleRate is the rate of Opus granule positions and RTP timestamps.
const OpusSampleRate = 48000

const (
	oggHeaderLen    = 27
	oggMaxSegments  = 255
	oggFlagContinue = 0x01
	oggFlagBOS      = 0x02
	oggFlagEOS      = 0x04
	// oggNoGranule marks a page on which no packet ends (RFC 3533 §6: -1 in two's complement).
	oggNoGranule = ^uint64(0)
)

// Errors returned by the media writers (OggWriter, IVFWriter, AnnexBWriter).
var (
	// ErrWriterClosed is returned by writes after Close.
	ErrWriterClosed = errors.New("recorder: media writer closed")
	// ErrTimestampOrder is returned when a granule position or PTS does not increase.
	ErrTimestampOrder = errors.New("recorder: timestamp not increasing")
	// ErrEmptyMedia is returned when a packet, frame or access unit holds no bytes.
	ErrEmptyMedia = errors.New("recorder: empty media packet")
	// ErrBadOpusPacket is returned by OpusSamples for a packet whose TOC is invalid.
	ErrBadOpusPacket = errors.New("recorder: invalid opus packet")
)

// OggOptions configures an OggWriter. The zero value is usable.
type OggOptions struct {
	// SampleRate is the input sample rate stored in OpusHead, in Hz. It is informational only:
	// Opus always decodes at 48 kHz. Default 48000.
	SampleRate uint32
	// Channels is the output channel count, 1 or 2. Default 2 (WebRTC negotiates opus/48000/2;
	// mono packets decode fine into a stereo stream).
	Channels uint8
	// PreSkip is the number of 48 kHz samples a player discards from the start of the decoded
	// stream. Default DefaultOpusPreSkip (312); see there for the choice.
	PreSkip uint16
	// Serial is the Ogg logical bitstream serial number, used as is (0 is valid).
	Serial uint32
	// Vendor is the OpusTags vendor string. Default "roomtape".
	Vendor string
	// Comments are OpusTags user comments, each "KEY=value" (e.g. "ROOMTAPE_PEER=alice").
	Comments []string
}

// OggWriter writes one Opus stream in Ogg (RFC 7845), one packet per page.
//
// One page per packet costs 28 bytes per packet (27-byte header plus one lacing value for packets
// under 255 bytes) but never holds a packet back: every packet is on its way to w as soon as
// WritePacket returns, so a crash loses at most what w buffers, and a file cut anywhere still
// demuxes up to the cut. The caller chooses every granule position, so gaps stay gaps: fill them
// with OpusSilence packets. Buffering (a *bufio.Writer) and flushing are the caller's business.
//
// The playback time of a sample is (granule - PreSkip) / 48000 s; a stream whose first packet
// ends at granule 960 starts at time 0 and lasts lastGranule - PreSkip samples.
//
// Methods are safe for concurrent use.
type OggWriter struct {
	writerState
	serial  uint32
	seq     uint32 // sequence number of the next page
	granule uint64 // granule of the last packet written
	packets int
	page    []byte // scratch page buffer
}

// NewOggWriter writes the OpusHead and OpusTags pages to w and returns a writer for the packets.
// Close takes ownership of w: it flushes w if w has a Flush() error method and closes it if it is
// an io.Closer. If NewOggWriter fails, w stays the caller's to close.
func NewOggWriter(w io.Writer, opts OggOptions) (*OggWriter, error) {
	if w == nil {
		return nil, errors.New("new ogg writer: nil io.Writer")
	}
	if opts.SampleRate == 0 {
		opts.SampleRate = OpusSampleRate
	}
	if opts.Channels == 0 {
		opts.Channels = 2
	}
	if opts.Channels > 2 {
		return nil, fmt.Errorf("new ogg writer: channels %d: only 1 or 2 (mapping family 0)", opts.Channels)
	}
	if opts.PreSkip == 0 {
		opts.PreSkip = DefaultOpusPreSkip
	}
	if opts.Vendor == "" {
		opts.Vendor = "roomtape"
	}
	for _, c := range opts.Comments {
		if k, _, ok := strings.Cut(c, "="); !ok || k == "" {
			return nil, fmt.Errorf("new ogg writer: comment %q is not KEY=value", c)
		}
	}
	o := &OggWriter{writerState: writerState{w: w}, serial: opts.Serial}
	if err := o.writePacket(opusHead(opts), 0, oggFlagBOS, 0); err != nil {
		return nil, fmt.Errorf("new ogg writer: OpusHead: %w", err)
	}
	if err := o.writePacket(opusTags(opts), 0, 0, 0); err != nil {
		return nil, fmt.Errorf("new ogg writer: OpusTags: %w", err)
	}
	return o, nil
}

// WritePacket writes one Opus packet on its own page. granule is the 48 kHz sample position at
// the end of this packet, pre-skip included (the first 20 ms packet of a recording ends at 960).
// It must be greater than the previous packet's; a jump larger than the packet's duration is a
// gap that players close up or mistime, so fill gaps with OpusSilence packets instead. Packets
// are never trimmed: RFC 7845 end trimming needs the end-of-stream flag on the last packet's
// page, and Close puts it on a page of its own.
func (o *OggWriter) WritePacket(packet []byte, granule uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.usable(); err != nil {
		return err
	}
	switch {
	case len(packet) == 0:
		return fmt.Errorf("ogg write packet: %w", ErrEmptyMedia)
	case granule == oggNoGranule || (o.packets > 0 && granule <= o.granule):
		return fmt.Errorf("ogg write packet: %w: granule %d after %d", ErrTimestampOrder, granule, o.granule)
	}
	if err := o.writePacket(packet, granule, 0, 0); err != nil {
		return fmt.Errorf("ogg write packet: %w", err)
	}
	o.granule = granule
	o.packets++
	return nil
}

// Granule returns the granule position of the last packet written (0 before the first).
func (o *OggWriter) Granule() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.granule
}

// Close ends the stream with an empty page carrying the end-of-stream flag (no seeking, so it
// works on pipes and buffered writers), then flushes and closes w as NewOggWriter describes. It
// always releases w, returns every error joined, and is idempotent.
func (o *OggWriter) Close() error {
	return o.close(func() error {
		if err := o.writePage(oggFlagEOS, oggNoGranule, nil, nil); err != nil {
			return fmt.Errorf("ogg close: end-of-stream page: %w", err)
		}
		return nil
	})
}

// writePacket lays packet out over as many pages as it needs (a page holds 255 lacing values,
// up to 65025 bytes). Pages on which the packet does not end carry granule -1. firstFlags goes on
// the first page, lastFlags on the last.
func (o *OggWriter) writePacket(packet []byte, granule uint64, firstFlags, lastFlags byte) error {
	var segs [oggMaxSegments]byte
	flags := firstFlags
	for off := 0; ; {
		n, size, done := 0, 0, false
		for n < oggMaxSegments {
			rem := len(packet) - off - size
			if rem >= 255 {
				segs[n] = 255
				n++
				size += 255
				continue
			}
			segs[n] = byte(rem)
			n++
			size += rem
			done = true
			break
		}
		gp := oggNoGranule
		if done {
			gp = granule
			flags |= lastFlags
		}
		if err := o.writePage(flags, gp, segs[:n], packet[off:off+size]); err != nil {
			return err
		}
		off += size
		if done {
			return nil
		}
		flags = oggFlagContinue
	}
}

// writePage writes one page with a single Write call; a failure is sticky.
func (o *OggWriter) writePage(flags byte, granule uint64, segs, body []byte) error {
	n := oggHeaderLen + len(segs) + len(body)
	if cap(o.page) < n {
		o.page = make([]byte, n)
	}
	p := o.page[:n]
	copy(p, "OggS")
	p[4] = 0 // version
	p[5] = flags
	binary.LittleEndian.PutUint64(p[6:], granule)
	binary.LittleEndian.PutUint32(p[14:], o.serial)
	binary.LittleEndian.PutUint32(p[18:], o.seq)
	binary.LittleEndian.PutUint32(p[22:], 0) // CRC, computed with this field zero
	p[26] = byte(len(segs))
	copy(p[oggHeaderLen:], segs)
	copy(p[oggHeaderLen+len(segs):], body)
	binary.LittleEndian.PutUint32(p[22:], oggCRC(p))
	if _, err := o.w.Write(p); err != nil {
		o.err = fmt.Errorf("write ogg page %d: %w", o.seq, err)
		return o.err
	}
	o.seq++
	return nil
}

func opusHead(opts OggOptions) []byte {
	b := make([]byte, 19)
	copy(b, "OpusHead")
	b[8] = 1 // version
	b[9] = opts.Channels
	binary.LittleEndian.PutUint16(b[10:], opts.PreSkip)
	binary.LittleEndian.PutUint32(b[12:], opts.SampleRate)
	binary.LittleEndian.PutUint16(b[16:], 0) // output gain
	b[18] = 0                                // channel mapping family 0: mono or stereo
	return b
}

func opusTags(opts OggOptions) []byte {
	b := append([]byte(nil), "OpusTags"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(opts.Vendor)))
	b = append(b, opts.Vendor...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(opts.Comments)))
	for _, c := range opts.Comments {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}

// oggCRCTable is the CRC-32 of the Ogg framing: polynomial 0x04c11db7, MSB first, initial value 0,
// no final XOR.
var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func oggCRC(b []byte) uint32 {
	var crc uint32
	for _, v := range b {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^v]
	}
	return crc
}

// Opus CELT-only silence: a TOC byte (config 28..31 = 2.5/5/10/20 ms fullband, mono, one frame)
// followed by FF FE, the range-coded "silence" flag. A mono packet decodes into a stereo stream
// too. Janus and libwebrtc fill gaps with the 20 ms one.
var opusSilenceTOC = [...]struct {
	units int // multiples of 2.5 ms
	toc   byte
}{{8, 0xF8}, {4, 0xF0}, {2, 0xE8}, {1, 0xE0}}

// OpusSilence returns Opus packets that decode to d of silence, d rounded to the nearest 2.5 ms:
// as many 20 ms packets as fit, then at most one each of 10, 5 and 2.5 ms, so any gap is filled
// to within 1.25 ms. Use OpusSamples for each packet's length when advancing the granule position.
// Each call returns fresh slices.
func OpusSilence(d time.Duration) [][]byte {
	if d <= 0 {
		return nil
	}
	const unit = 2500 * time.Microsecond
	units := int((d + unit/2) / unit)
	var out [][]byte
	for _, s := range opusSilenceTOC {
		for units >= s.units {
			out = append(out, []byte{s.toc, 0xFF, 0xFE})
			units -= s.units
		}
	}
	return out
}

// OpusSamples returns the number of 48 kHz samples an Opus packet decodes to, from its TOC byte
// and frame count (RFC 6716 §3.1).
func OpusSamples(packet []byte) (int, error) {
	if len(packet) == 0 {
		return 0, fmt.Errorf("%w: empty", ErrBadOpusPacket)
	}
	config := packet[0] >> 3
	var frame int // samples per frame
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		frame = [...]int{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		frame = [...]int{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = [...]int{120, 240, 480, 960}[config&3]
	}
	frames := 1
	switch packet[0] & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(packet) < 2 {
			return 0, fmt.Errorf("%w: code 3 packet without frame count", ErrBadOpusPacket)
		}
		frames = int(packet[1] & 0x3F)
	}
	n := frames * frame
	if n == 0 || n > 5760 { // at most 120 ms per packet
		return 0, fmt.Errorf("%w: %d frames of %d samples", ErrBadOpusPacket, frames, frame)
	}
	return n, nil
}

// writerState is what the media writers (OggWriter, IVFWriter, AnnexBWriter) share: the lock
// every method takes, the output, the first write error (the stream is unusable after it) and
// whether Close ran.
type writerState struct {
	mu     sync.Mutex
	w      io.Writer
	err    error
	closed bool
}

// usable returns ErrWriterClosed after Close, the first write error after a failed write, or nil.
// Call it with mu held.
func (s *writerState) usable() error {
	if s.closed {
		return ErrWriterClosed
	}
	return s.err
}

// close is the writers' Close: under mu, and only the first time, it reports the first write
// error or else runs finish (which ends the stream; nil: nothing to end), then releases w. It
// returns every error joined.
func (s *writerState) close(finish func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.err != nil {
		errs = append(errs, s.err)
	} else if finish != nil {
		errs = append(errs, finish())
	}
	errs = append(errs, releaseWriter(s.w)...)
	return errors.Join(errs...)
}

// releaseWriter flushes w if it can and closes it if it is an io.Closer. The close happens even
// when the flush fails.
func releaseWriter(w io.Writer) []error {
	var errs []error
	if f, ok := w.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("flush: %w", err))
		}
	}
	if c, ok := w.(io.Closer); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close: %w", err))
		}
	}
	return errs
}
