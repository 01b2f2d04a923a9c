// Command roomtape records WebRTC rooms built on the Metered Realtime channel model. It is a thin
// adapter: each subcommand loads the typed configuration and calls one function of a package.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "roomtape:", err)
	var ec *exitError
	if errors.As(err, &ec) {
		os.Exit(ec.code)
	}
	os.Exit(1)
}

// exitError carries a specific process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
