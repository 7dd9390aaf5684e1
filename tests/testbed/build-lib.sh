# Shared by build.sh (control plane), build-node.sh (node) and build-images.sh (BuildKit): the cache layout, the Go
# environment, logging, the per-script build lock, and the k8s.io/kubernetes wrapper module.
# Sourced, not run. The caller sets `log_tag` before sourcing.
# shellcheck shell=bash

lib_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$lib_here/versions.env"

cache=${SECCOMP_AGENT_TESTBED_CACHE:-/var/cache/seccomp-agent-testbed}
export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$cache/gomod}
export GOCACHE=${GOCACHE_OVERRIDE:-$cache/gobuild}
export GOFLAGS=-mod=mod
export CGO_ENABLED=0
export PATH=/usr/local/go/bin:$PATH
mkdir -p "$cache/bin" "$cache/work"

log() { printf '[%s] %s\n' "${log_tag:-testbed-build}" "$*" >&2; }
fail() { log "FAILED at step '$1': $2"; exit 1; }
step_start=0
begin() { step_start=$(date +%s); log "building $1 ..."; }
done_() { log "built $1 in $(( $(date +%s) - step_start ))s"; }

command -v go >/dev/null || fail "toolchain" "go not found (expected /usr/local/go/bin/go)"

# One build at a time per cache and per script: a second caller (a test, .ci/run) waits instead of
# racing the first into the same work dirs and bin dir. build.sh and build-node.sh use different
# lock files, so a node build never holds up the control plane's tests.
take_lock() {
  local lock="$cache/$1"
  exec 9>"$lock"
  if ! flock -n 9; then
    log "another build holds $lock; waiting for it"
    flock 9
  fi
}

# k8s_wrapper DIR IMPORT...: writes a wrapper module in DIR that requires k8s.io/kubernetes at
# $KUBERNETES_VERSION and pins every staging module it maps to v0.0.0 (replace lines only count
# in the main module), with a tools.go importing the given packages so their deps resolve.
k8s_wrapper() {
  local w=$1; shift
  mkdir -p "$w"
  (cd "$w"
    cat > go.mod <<MOD
module seccompagent.local/testbed-k8s

go 1.26.0

require k8s.io/kubernetes $KUBERNETES_VERSION
MOD
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p') \
      || fail "k8s go mod download" "could not download k8s.io/kubernetes@$KUBERNETES_VERSION"
    [ -f "$gomod" ] || fail "k8s go.mod" "no go.mod path from go mod download"
    grep -E '^godebug' "$gomod" >> go.mod || true
    grep -E '^\s*k8s\.io/[a-z0-9-]+ v0\.0\.0\s*$' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
      printf 'replace %s => %s %s\n' "$m" "$m" "$KUBERNETES_STAGING_VERSION"
    done >> go.mod
    [ "$(grep -c '^replace' go.mod)" -gt 20 ] || fail "k8s go.mod" "found too few staging modules in $gomod"
    { printf 'package tools\n\nimport (\n'; printf '\t_ "%s"\n' "$@"; printf ')\n'; } > tools.go
    go mod download >/dev/null 2>&1 || true
  ) || exit 1
}

# The -ldflags that make `--version` and /version say $KUBERNETES_VERSION (helm and kubectl check).
k8s_ldflags() {
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  printf '%s' "$ld"
}
