package bot

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
)

// offerInfo is what decides whether an offer belongs to the current remote session (B8).
type offerInfo struct {
	SessionID   string // o= session id
	Fingerprint string // a=fingerprint (session level, or the first media level one)
	Ufrags      map[string]bool
	Tracks      int // m-sections that send media
}

// maxOfferSize bounds the SDP text accepted from a peer.
const maxOfferSize = 256 << 10

// parseOffer extracts session identity from an SDP offer. It errors on SDP pion could not apply
// anyway, so that the reason is logged clearly.
func parseOffer(text string) (offerInfo, error) {
	if len(text) > maxOfferSize {
		return offerInfo{}, fmt.Errorf("sdp of %d bytes is larger than %d", len(text), maxOfferSize)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(text); err != nil {
		return offerInfo{}, fmt.Errorf("parse sdp: %w", err)
	}
	info := offerInfo{SessionID: fmt.Sprint(sd.Origin.SessionID), Ufrags: map[string]bool{}}
	if fp, ok := sd.Attribute("fingerprint"); ok {
		info.Fingerprint = normalizeFingerprint(fp)
	}
	if u, ok := sd.Attribute("ice-ufrag"); ok {
		info.Ufrags[u] = true
	}
	for _, md := range sd.MediaDescriptions {
		if info.Fingerprint == "" {
			if fp, ok := md.Attribute("fingerprint"); ok {
				info.Fingerprint = normalizeFingerprint(fp)
			}
		}
		if u, ok := md.Attribute("ice-ufrag"); ok {
			info.Ufrags[u] = true
		}
		if md.MediaName.Media == "audio" || md.MediaName.Media == "video" {
			sending := true
			for _, a := range md.Attributes {
				if a.Key == "recvonly" || a.Key == "inactive" {
					sending = false
				}
			}
			if sending && md.MediaName.Port.Value != 0 {
				info.Tracks++
			}
		}
	}
	if info.Fingerprint == "" {
		return offerInfo{}, errors.New("sdp has no a=fingerprint")
	}
	if len(info.Ufrags) == 0 {
		return offerInfo{}, errors.New("sdp has no a=ice-ufrag")
	}
	return info, nil
}

func normalizeFingerprint(fp string) string { return strings.ToLower(strings.TrimSpace(fp)) }
