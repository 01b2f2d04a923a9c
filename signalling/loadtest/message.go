package loadtest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// message builds the load frames: {"type":"send","to":<peer>,"data":{"t":<nanos>,"p":"xxx…"}}.
// t is the send time in nanoseconds since a phase's base time (monotonic clock, same process).
// The echo baseline returns the frame as is; the signalling server delivers
// {"type":"direct","from":…,"data":{"t":…,"p":…}}, so stampOf finds t in either.
type message struct {
	head []byte // {"type":"send","to":"peer","data":{"t":
	tail []byte // ,"p":"xxx…"}}
}

func newMessage(to string, payload int) message {
	quoted, _ := json.Marshal(to) // a string always marshals
	head := append([]byte(`{"type":"send","to":`), quoted...)
	head = append(head, `,"data":{"t":`...)
	tail := []byte(`,"p":"` + strings.Repeat("x", payload) + `"}}`)
	return message{head: head, tail: tail}
}

// append appends the frame carrying stamp t to b.
func (m message) append(b []byte, t int64) []byte {
	b = append(b, m.head...)
	b = strconv.AppendInt(b, t, 10)
	return append(b, m.tail...)
}

var stampKey = []byte(`"data":{"t":`)

// stampOf returns the t field of a load frame; ok is false for any other frame.
func stampOf(frame []byte) (t int64, ok bool) {
	i := bytes.Index(frame, stampKey)
	if i < 0 {
		return 0, false
	}
	rest := frame[i+len(stampKey):]
	j := 0
	for j < len(rest) && (rest[j] >= '0' && rest[j] <= '9' || j == 0 && rest[j] == '-') {
		j++
	}
	t, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return t, err == nil
}

// deliveryPrefix is how a delivered load frame starts: a direct frame, or the echoed send frame.
func deliveryPrefix(echo bool) []byte {
	if echo {
		return []byte(`{"type":"send"`)
	}
	return []byte(`{"type":"direct"`)
}
