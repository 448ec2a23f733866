#!/usr/bin/env bash
# Set up a Debian or Ubuntu machine for procwatch and run it or its tests.
# The README's two commands call this script, and so does .ci/run:
#
#   scripts/setup-debian.sh run [ARGS]    the terminal UI (go run . ARGS) with the eBPF sensor
#   scripts/setup-debian.sh test [ARGS]   install what the tests need, then go test -timeout 30m ./... ARGS
#   scripts/setup-debian.sh deps          only install what the tests need (and Go)
#
# It works as root (sudo need not be installed) and as a user with sudo:
# root is needed to load BPF programs and to install packages, so a user's
# run re-executes the script through sudo, keeping PATH (Debian's sudo
# resets it, hiding a Go in /usr/local/go/bin) and PROCWATCH_REQUIRE_BPF.
# Go itself is taken from PATH or /usr/local/go/bin; when there is none, or
# it is older than go.mod's, the newest Go of go.mod's minor version is
# fetched from the Go module proxy into /usr/local/go (replacing what is
# there), the way the go command's own toolchain switching fetches it.
set -euo pipefail

cd "$(dirname "$0")/.."

# The Debian packages the tests need: one list; add yours with a comment
# naming the test that needs it.
packages=(
  ca-certificates curl unzip      # fetching Go modules (and Go itself when missing)
  git                             # go build stamps the VCS revision
  clang llvm libbpf-dev bpftool   # go generate ./bpf
  build-essential                 # gcc and static libc for the test helpers
  util-linux                      # unshare, for the user-namespace test
  tmux                            # the TUI end-to-end test
  openssh-server openssh-client   # the SSH transport test
  podman runc busybox-static      # the container-naming tests (real Podman and containerd containers)
  containerd                      # the CRI container-naming test
  nats-server                     # fleet: agents against Debian's nats-server (docs/fleet.md)
)

die() { echo "setup-debian.sh: $*" >&2; exit 1; }

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# as_root re-runs this script as root when it is not, through sudo.
as_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  command -v sudo >/dev/null 2>&1 ||
    die "root is needed (to load BPF programs and install packages) and sudo is not installed; run this as root, e.g. su -c '$0 $*'"
  exec sudo env "PATH=$PATH" ${PROCWATCH_REQUIRE_BPF:+"PROCWATCH_REQUIRE_BPF=$PROCWATCH_REQUIRE_BPF"} \
    ${GOFLAGS:+"GOFLAGS=$GOFLAGS"} "$0" "$@"
}

install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# configure_podman: Podman on hybrid cgroups rejects its default ulimits;
# add the setting once, keeping whatever else the file says.
configure_podman() {
  local conf=/etc/containers/containers.conf
  grep -qE '^[[:space:]]*default_ulimits[[:space:]]*=' "$conf" 2>/dev/null && return 0
  mkdir -p /etc/containers
  if grep -qE '^[[:space:]]*\[containers\]' "$conf" 2>/dev/null; then
    sed -i '0,/^[[:space:]]*\[containers\]/s//&\ndefault_ulimits = []/' "$conf"
  else
    printf '\n[containers]\ndefault_ulimits = []\n' >>"$conf"
  fi
}

mount_tracefs() {
  mountpoint -q /sys/kernel/tracing ||
    mount -t tracefs tracefs /sys/kernel/tracing ||
    echo "setup-debian.sh: could not mount tracefs at /sys/kernel/tracing; the sensor will say why it cannot attach" >&2
}

# ensure_go puts a Go of at least go.mod's version on PATH.
ensure_go() {
  export PATH="$PATH:/usr/local/go/bin"
  local want have
  want=$(awk '$1 == "go" { print $2; exit }' go.mod)
  if command -v go >/dev/null 2>&1; then
    have=$(go env GOVERSION 2>/dev/null || true)
    have=${have#go}
    # Debian's own Go sets GOTOOLCHAIN=local, so an older Go would not
    # fetch the toolchain go.mod asks for: only a new enough one will do.
    if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" = "$want" ]; then
      return 0
    fi
    echo "== Go $have on PATH is older than go.mod's $want"
  fi
  install_packages ca-certificates curl unzip
  local arch
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) die "no Go on PATH, and no Go toolchain for $(uname -m) to fetch; install Go $want from https://go.dev/dl" ;;
  esac
  local proxy=https://proxy.golang.org/golang.org/toolchain/@v
  local ver
  ver=$(curl -fsSL "$proxy/list" | sed -n "s/^v0.0.1-go\(${want%.*}\.[0-9]*\)\.linux-$arch\$/\1/p" | sort -t. -k3 -n | tail -1)
  [ -n "$ver" ] || die "could not find Go ${want%.*} for linux-$arch on the module proxy; install Go from https://go.dev/dl"
  echo "== fetching Go $ver (linux-$arch) from the module proxy into /usr/local/go"
  local tmp
  tmp=$(mktemp -d)
  curl -fsSL -o "$tmp/go.zip" "$proxy/v0.0.1-go$ver.linux-$arch.zip"
  unzip -q "$tmp/go.zip" -d "$tmp"
  rm -rf /usr/local/go
  mv "$tmp/golang.org/toolchain@v0.0.1-go$ver.linux-$arch" /usr/local/go
  chmod -R a+rX /usr/local/go && chmod a+x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* 2>/dev/null || true
  rm -rf "$tmp"
  go version
}

deps() {
  install_packages "${packages[@]}"
  configure_podman
  mount_tracefs
  ensure_go
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
case "$cmd" in
  deps)
    as_root deps "$@"
    deps
    ;;
  test)
    as_root test "$@"
    deps
    echo "== go test -timeout 30m ./... $*"
    exec go test -timeout 30m ./... "$@"
    ;;
  run)
    as_root run "$@"
    mount_tracefs
    ensure_go
    exec go run . "$@"
    ;;
  -h | --help | help) usage ;;
  *) echo "setup-debian.sh: unknown command \"$cmd\": want run, test or deps" >&2; usage ;;
esac
