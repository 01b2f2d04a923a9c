package bot

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/roomtape/roomtape/signalling"
)

// Codec names accepted in NetworkConfig.Codecs (the recording policy).
const (
	CodecOpus = "opus"
	CodecVP8  = "vp8"
	CodecVP9  = "vp9"
	CodecAV1  = "av1"
	CodecH264 = "h264"
)

// DefaultCodecs is the default preference order: everything the recorder can write.
var DefaultCodecs = []string{CodecOpus, CodecVP8, CodecVP9, CodecAV1, CodecH264}

// NetworkConfig is how the bot's PeerConnections reach browsers.
type NetworkConfig struct {
	// ICEServers are used when the signalling welcome carries none (B18).
	ICEServers []signalling.ICEServer `mapstructure:"ice_servers" json:"ice_servers"`
	// UDPMuxPort, when set, serves every PeerConnection on this one UDP port (ICE UDP mux): the way
	// to run in containers with a single published port.
	UDPMuxPort int `mapstructure:"udp_mux_port" json:"udp_mux_port"`
	// UDPPortMin/Max restrict ephemeral ports when no mux port is set (0 = any).
	UDPPortMin uint16 `mapstructure:"udp_port_min" json:"udp_port_min"`
	UDPPortMax uint16 `mapstructure:"udp_port_max" json:"udp_port_max"`
	// NAT1To1IPs are public addresses announced instead of local host candidates (1:1 NAT).
	NAT1To1IPs []string `mapstructure:"nat_1to1_ips" json:"nat_1to1_ips"`
	// Interfaces limits gathering to these interface names (empty = all).
	Interfaces []string `mapstructure:"interfaces" json:"interfaces"`
	// IPs limits gathering to addresses in these CIDRs (empty = all).
	IPs []string `mapstructure:"ips" json:"ips"`
	// IncludeLoopback gathers 127.0.0.1 candidates (tests, single-host setups).
	IncludeLoopback bool `mapstructure:"include_loopback" json:"include_loopback"`
	// MDNS enables mDNS candidates (off by default: they leak nothing useful for a server bot).
	MDNS bool `mapstructure:"mdns" json:"mdns"`
	// IPv6 also gathers UDP6 candidates.
	IPv6 bool `mapstructure:"ipv6" json:"ipv6"`
	// Codecs is the recording policy in preference order (names: opus, vp8, vp9, av1, h264).
	// Only these are negotiated, so browsers never send what the recorder cannot write.
	Codecs []string `mapstructure:"codecs" json:"codecs"`
	// DisableNACK turns off retransmission requests. Only for measuring what NACK recovers;
	// never in production.
	DisableNACK bool `mapstructure:"disable_nack" json:"disable_nack"`
}

// Validate checks names, ports and addresses.
func (c *NetworkConfig) Validate() error {
	var errs []error
	for _, name := range c.Codecs {
		if !slices.Contains(DefaultCodecs, strings.ToLower(name)) {
			errs = append(errs, fmt.Errorf("bot.network.codecs: unknown codec %q (want %s)", name, strings.Join(DefaultCodecs, ", ")))
		}
	}
	if c.UDPMuxPort < 0 || c.UDPMuxPort > 65535 {
		errs = append(errs, fmt.Errorf("bot.network.udp_mux_port: %d out of range", c.UDPMuxPort))
	}
	if (c.UDPPortMin == 0) != (c.UDPPortMax == 0) || c.UDPPortMin > c.UDPPortMax {
		errs = append(errs, errors.New("bot.network.udp_port_min/max: set both, min <= max"))
	}
	for _, s := range c.IPs {
		if _, _, err := net.ParseCIDR(s); err != nil {
			errs = append(errs, fmt.Errorf("bot.network.ips: %q: %w", s, err))
		}
	}
	for _, s := range c.NAT1To1IPs {
		if net.ParseIP(s) == nil {
			errs = append(errs, fmt.Errorf("bot.network.nat_1to1_ips: %q is not an IP address", s))
		}
	}
	return errors.Join(errs...)
}

// Transport is the shared WebRTC machinery of one process: the pion API (codecs, interceptors,
// network settings) and, when configured, the single UDP socket every PeerConnection shares.
// Many bots (jobs) use one Transport.
type Transport struct {
	api    *webrtc.API
	cfg    NetworkConfig
	codecs []codecSpec
	mux    ice.UDPMux
	muxPC  net.PacketConn
}

// AudioLevelURI is the RFC 6464 client-to-mixer audio level header extension; the bot
// negotiates it for audio so that speech activity is measured without decoding.
const AudioLevelURI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

// NewTransport builds the pion API for cfg. Close releases the mux socket. extra interceptors
// are placed outermost, nearest the network (e.g. loss injection in tests).
func NewTransport(cfg NetworkConfig, log *slog.Logger, extra ...interceptor.Factory) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	names := cfg.Codecs
	if len(names) == 0 {
		names = DefaultCodecs
	}
	t := &Transport{cfg: cfg}
	m := &webrtc.MediaEngine{}
	for _, name := range names {
		for _, spec := range codecTable[strings.ToLower(name)] {
			t.codecs = append(t.codecs, spec)
			if err := m.RegisterCodec(spec.params, spec.kind); err != nil {
				return nil, fmt.Errorf("register codec %s: %w", spec.params.MimeType, err)
			}
			if spec.rtxPT != 0 {
				rtx := webrtc.RTPCodecParameters{
					RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000,
						SDPFmtpLine: fmt.Sprintf("apt=%d", spec.params.PayloadType)},
					PayloadType: spec.rtxPT,
				}
				if err := m.RegisterCodec(rtx, webrtc.RTPCodecTypeVideo); err != nil {
					return nil, fmt.Errorf("register rtx: %w", err)
				}
			}
		}
	}
	// Audio level (RFC 6464) for speech activity without decoding; no CVO (IVF cannot rotate).
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("register audio level: %w", err)
	}
	ir := &interceptor.Registry{}
	for _, f := range extra {
		ir.Add(f)
	}
	if err := registerInterceptors(m, ir, cfg.DisableNACK); err != nil {
		return nil, fmt.Errorf("register interceptors: %w", err)
	}

	se := webrtc.SettingEngine{}
	se.LoggerFactory = slogLoggerFactory{log: log.With("component", "pion")}
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	if cfg.IPv6 {
		types = append(types, webrtc.NetworkTypeUDP6)
	}
	se.SetNetworkTypes(types)
	se.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	if cfg.MDNS {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeQueryAndGather)
	} else {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if len(cfg.Interfaces) > 0 {
		allowed := slices.Clone(cfg.Interfaces)
		se.SetInterfaceFilter(func(name string) bool { return slices.Contains(allowed, name) })
	}
	if len(cfg.IPs) > 0 {
		var nets []*net.IPNet
		for _, s := range cfg.IPs {
			_, n, _ := net.ParseCIDR(s)
			nets = append(nets, n)
		}
		se.SetIPFilter(func(ip net.IP) bool {
			for _, n := range nets {
				if n.Contains(ip) {
					return true
				}
			}
			return false
		})
	}
	if len(cfg.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(cfg.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}
	if cfg.UDPPortMin != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.UDPPortMin, cfg.UDPPortMax); err != nil {
			return nil, fmt.Errorf("udp port range: %w", err)
		}
	}
	if cfg.UDPMuxPort != 0 {
		pc, err := net.ListenUDP("udp4", &net.UDPAddr{Port: cfg.UDPMuxPort})
		if err != nil {
			return nil, fmt.Errorf("listen udp mux port %d: %w", cfg.UDPMuxPort, err)
		}
		t.muxPC = pc
		t.mux = webrtc.NewICEUDPMux(se.LoggerFactory.NewLogger("udpmux"), pc)
		se.SetICEUDPMux(t.mux)
	}
	t.api = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return t, nil
}

// registerInterceptors is pion's default set (NACK, RTCP reports, simulcast headers, stats,
// TWCC feedback), optionally without NACK.
func registerInterceptors(m *webrtc.MediaEngine, ir *interceptor.Registry, noNACK bool) error {
	if !noNACK {
		return webrtc.RegisterDefaultInterceptors(m, ir)
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return err
	}
	if err := webrtc.ConfigureStatsInterceptor(ir); err != nil {
		return err
	}
	return webrtc.ConfigureTWCCSender(m, ir)
}

// UDPMuxAddr is the bound address of the shared UDP port, or nil.
func (t *Transport) UDPMuxAddr() net.Addr {
	if t.muxPC == nil {
		return nil
	}
	return t.muxPC.LocalAddr()
}

// Close releases the shared UDP socket. PeerConnections must be closed first.
func (t *Transport) Close() error {
	var errs []error
	if t.mux != nil {
		errs = append(errs, t.mux.Close())
	}
	if t.muxPC != nil {
		if err := t.muxPC.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// preferences returns the registered codecs of kind in policy order, for SetCodecPreferences.
func (t *Transport) preferences(kind webrtc.RTPCodecType) []webrtc.RTPCodecParameters {
	var out []webrtc.RTPCodecParameters
	for _, c := range t.codecs {
		if c.kind == kind {
			out = append(out, c.params)
		}
	}
	return out
}

type codecSpec struct {
	kind   webrtc.RTPCodecType
	params webrtc.RTPCodecParameters
	rtxPT  webrtc.PayloadType
}

var videoFeedback = []webrtc.RTCPFeedback{
	{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"},
}

func video(mime, fmtp string, pt, rtx webrtc.PayloadType) codecSpec {
	return codecSpec{kind: webrtc.RTPCodecTypeVideo, rtxPT: rtx, params: webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp, RTCPFeedback: videoFeedback},
		PayloadType:        pt,
	}}
}

// codecTable lists what each policy name negotiates. Opus is offered without usedtx (DTX gaps)
// and RED is never registered (the recorder writes plain Opus).
var codecTable = map[string][]codecSpec{
	CodecOpus: {{kind: webrtc.RTPCodecTypeAudio, params: webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111,
	}}},
	CodecVP8: {video(webrtc.MimeTypeVP8, "", 96, 97)},
	CodecVP9: {video(webrtc.MimeTypeVP9, "profile-id=0", 98, 99)},
	CodecAV1: {video(webrtc.MimeTypeAV1, "level-idx=5;profile=0;tier=0", 45, 46)},
	CodecH264: {
		video(webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", 102, 103),
		video(webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", 127, 125),
		video(webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f", 112, 113),
	},
}

// slogLoggerFactory routes pion's logs into slog: pion's debug and trace are dropped, its warnings
// (mostly routine during connection teardown) become info, its errors stay errors.
type slogLoggerFactory struct{ log *slog.Logger }

func (f slogLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("scope", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)                      {}
func (l pionLogger) Tracef(string, ...any)             {}
func (l pionLogger) Debug(string)                      {}
func (l pionLogger) Debugf(string, ...any)             {}
func (l pionLogger) Info(msg string)                   { l.log.Debug(msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l pionLogger) Warn(msg string)                   { l.log.Warn(msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.log.Warn(fmt.Sprintf(format, args...)) }
func (l pionLogger) Error(msg string)                  { l.log.Error(msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.log.Error(fmt.Sprintf(format, args...)) }

// API is the pion API (for other peers of this process that share the settings, e.g. a publisher).
func (t *Transport) API() *webrtc.API { return t.api }
