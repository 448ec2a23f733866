package api

import "context"

type progressKey struct{}

// WithExportProgress returns a context that makes Export report its
// progress to fn (incidents written so far, and the total when known). The
// Service interface has no progress parameter; a context value lets the CLI
// draw a progress bar and the agent forward progress over the socket
// without changing it.
func WithExportProgress(ctx context.Context, fn func(done, total int)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// ExportProgress returns the progress function stored by
// WithExportProgress, or nil.
func ExportProgress(ctx context.Context) func(done, total int) {
	fn, _ := ctx.Value(progressKey{}).(func(done, total int))
	return fn
}
