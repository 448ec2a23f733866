# Convenience targets; the Go tool does the work.
.PHONY: deb
deb:
	go run ./packaging/deb
