package recorder

import (
	"strings"

	"github.com/pion/rtp"
)

// frameStartFunc returns the codec's "does this packet begin a frame" check, read from the RTP
// payload descriptor, or nil when every packet is a frame (audio) or the codec is unknown.
func frameStartFunc(mimeType string) func(*rtp.Packet) bool {
	switch strings.ToLower(mimeType) {
	case "video/vp8":
		// VP8 payload descriptor (RFC 7741): S bit set and partition index 0.
		return func(p *rtp.Packet) bool {
			return len(p.Payload) > 0 && p.Payload[0]&0x10 != 0 && p.Payload[0]&0x07 == 0
		}
	case "video/vp9":
		// VP9 payload descriptor: B (beginning of frame) bit.
		return func(p *rtp.Packet) bool { return len(p.Payload) > 0 && p.Payload[0]&0x08 != 0 }
	case "video/av1":
		// AV1 aggregation header: Z set means the first OBU continues a previous packet.
		return func(p *rtp.Packet) bool { return len(p.Payload) > 0 && p.Payload[0]&0x80 == 0 }
	case "video/h264":
		// Any NAL unit start can begin an access unit; only FU-A continuation fragments cannot.
		return func(p *rtp.Packet) bool {
			if len(p.Payload) == 0 {
				return false
			}
			if p.Payload[0]&0x1F == 28 {
				return len(p.Payload) > 1 && p.Payload[1]&0x80 != 0
			}
			return true
		}
	}
	return nil
}
