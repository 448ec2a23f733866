// Command deb builds procwatch's Debian package with nfpm: the binary in
// /usr/bin, the systemd unit, /etc/procwatch/rules.yaml as a conffile
// (dpkg keeps an operator's edits on upgrade; the agent reads it by default
// when it exists) and /var/lib/procwatch. Run it from the repository root:
//
//	go run ./packaging/deb [-version 0.1.0] [-arch amd64] [-o dist/procwatch_0.1.0_amd64.deb]
//
// or `make deb`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/procwatch/procwatch/cli"
)

const (
	binDest  = "/usr/bin/procwatch"
	unitDest = "/lib/systemd/system/procwatch.service"
	// unitExec is the ExecStart of packaging/procwatch.service, installed
	// by hand to /usr/local/bin; the package puts the binary in /usr/bin.
	unitExec = "ExecStart=/usr/local/bin/procwatch agent"
)

func main() {
	version := flag.String("version", cli.Version, "package version")
	arch := flag.String("arch", runtime.GOARCH, "GOARCH to build for (amd64, arm64)")
	out := flag.String("o", "", "output file (default dist/procwatch_VERSION_ARCH.deb)")
	flag.Parse()
	if *out == "" {
		*out = filepath.Join("dist", fmt.Sprintf("procwatch_%s_%s.deb", *version, *arch))
	}
	if err := build(*version, *arch, *out); err != nil {
		fmt.Fprintf(os.Stderr, "packaging: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(*out)
}

func build(version, arch, out string) error {
	if _, err := os.Stat("packaging/procwatch.service"); err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	tmp, err := os.MkdirTemp("", "procwatch-deb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin := filepath.Join(tmp, "procwatch")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags",
		"-s -w -X github.com/procwatch/procwatch/cli.Version="+version, "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	unit, err := os.ReadFile("packaging/procwatch.service")
	if err != nil {
		return err
	}
	if !bytes.Contains(unit, []byte(unitExec)) {
		return fmt.Errorf("packaging/procwatch.service has no %q line to point at %s", unitExec, binDest)
	}
	unit = bytes.Replace(unit, []byte(unitExec), []byte("ExecStart="+binDest+" agent"), 1)
	unitFile := filepath.Join(tmp, "procwatch.service")
	scripts := map[string]string{
		"postinst": "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n",
		"postrm":   "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(body), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(unitFile, unit, 0o644); err != nil {
		return err
	}
	info := &nfpm.Info{
		Name:        "procwatch",
		Arch:        arch,
		Platform:    "linux",
		Version:     strings.TrimPrefix(version, "v"),
		Section:     "admin",
		Priority:    "optional",
		Maintainer:  "procwatch maintainers <procwatch@localhost>",
		Description: "live process monitor: every exec, root escalation and exit, from eBPF",
		Homepage:    "https://github.com/procwatch/procwatch",
		License:     "Apache-2.0",
		Overridables: nfpm.Overridables{
			Contents: files.Contents{
				{Source: bin, Destination: binDest, FileInfo: &files.ContentFileInfo{Mode: 0o755}},
				{Source: unitFile, Destination: unitDest, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
				{Source: "rules.yaml", Destination: "/etc/procwatch/rules.yaml", Type: files.TypeConfig, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
				{Destination: "/var/lib/procwatch", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o700}},
			},
			Scripts: nfpm.Scripts{PostInstall: filepath.Join(tmp, "postinst"), PostRemove: filepath.Join(tmp, "postrm")},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return err
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return fmt.Errorf("build %s: %w", out, err)
	}
	return f.Close()
}
