package cli

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/procwatch/procwatch/safepath"
)

// startCPUProfile writes a Go CPU profile (for go tool pprof) to path until
// the returned stop is called; "" profiles nothing. The file is created
// 0600, truncated, and never through a symbolic link. At the runtime's
// default rate of 100 samples a second, so a profile of a long run stays
// small and the sampling costs nothing measurable.
func startCPUProfile(flag, path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := safepath.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
