package recorder_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/roomtape/roomtape/recorder"
)

func TestSplitAnnexB(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want [][]byte
	}{
		{"empty", nil, nil},
		{"no start code", []byte{0x65, 1, 2}, nil},
		{"4-byte", []byte{0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2}, [][]byte{{0x67, 1}, {0x68, 2}}},
		{"3-byte", []byte{0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2}, [][]byte{{0x67, 1}, {0x68, 2}}},
		{"leading junk, trailing zeros", []byte{9, 9, 0, 0, 1, 0x65, 0, 0, 0, 0, 0, 1, 0x41, 7, 0, 0}, [][]byte{{0x65}, {0x41, 7}}},
		{"empty NAL skipped", []byte{0, 0, 1, 0, 0, 1, 0x41}, [][]byte{{0x41}}},
		{"escaped 00 00 03 kept", []byte{0, 0, 0, 1, 0x65, 0, 0, 3, 1}, [][]byte{{0x65, 0, 0, 3, 1}}},
	} {
		if got := recorder.SplitAnnexB(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %x, want %x", tc.name, got, tc.want)
		}
	}
}

func TestAnnexBWriter(t *testing.T) {
	fw := &faultyWriter{failAfter: 1}
	w, err := recorder.NewAnnexBWriter(fw)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAccessUnit([][]byte{{0x67, 1}, nil, {0x68, 2}, {0x65, 3, 4}}); err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 3, 4}
	if !bytes.Equal(fw.buf.Bytes(), want) {
		t.Errorf("wrote % x", fw.buf.Bytes())
	}
	if !reflect.DeepEqual(recorder.SplitAnnexB(fw.buf.Bytes()), [][]byte{{0x67, 1}, {0x68, 2}, {0x65, 3, 4}}) {
		t.Error("SplitAnnexB does not invert WriteAccessUnit")
	}
	if err := w.WriteAccessUnit([][]byte{nil, {}}); !errors.Is(err, recorder.ErrEmptyMedia) {
		t.Errorf("empty access unit: %v", err)
	}
	if err := w.WriteAccessUnit([][]byte{{0x41}}); !errors.Is(err, errDiskFull) {
		t.Errorf("failing write: %v", err)
	}
	if err := w.WriteAccessUnit([][]byte{{0x41}}); !errors.Is(err, errDiskFull) {
		t.Errorf("write after failure: %v", err)
	}
	err = w.Close()
	if !errors.Is(err, errDiskFull) || !errors.Is(err, errCloseFailed) || fw.closes != 1 {
		t.Errorf("Close = %v, closes %d", err, fw.closes)
	}
	if err := w.Close(); err != nil || fw.closes != 1 {
		t.Errorf("second Close = %v", err)
	}
	if err := w.WriteAccessUnit([][]byte{{0x41}}); !errors.Is(err, recorder.ErrWriterClosed) {
		t.Errorf("write after Close: %v", err)
	}
	if _, err := recorder.NewAnnexBWriter(nil); err == nil {
		t.Error("nil writer accepted")
	}
}
