package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Every example configuration (and config.yaml, the reference) parses and validates.
func TestExampleConfigsParse(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, path := range append(files, "../../config.yaml") {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		lc, err := ParseConfig(f, nil, nil)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if len(lc.Profiles) == 0 {
			t.Errorf("%s: no signalling profile", path)
		}
	}
}
