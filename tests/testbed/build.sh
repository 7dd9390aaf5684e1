#!/usr/bin/env bash
# Builds (or reuses) the test bed's real Kubernetes parts from Go modules:
#   etcd, kube-apiserver, kube-controller-manager, kubectl (k8s.io/kubernetes through a wrapper
#   module) and helm.
# Binaries are cached outside the repo, keyed by version, and rebuilt only when missing.
# Prints the bin directory on the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache=${SECCOMP_AGENT_TESTBED_CACHE:-/var/cache/seccomp-agent-testbed}
export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$cache/gomod}
export GOCACHE=${GOCACHE_OVERRIDE:-$cache/gobuild}
export GOFLAGS=-mod=mod
export CGO_ENABLED=0
export PATH=/usr/local/go/bin:$PATH
bindir="$cache/bin/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
mkdir -p "$bindir" "$cache/work"

log() { printf '[testbed-build] %s\n' "$*" >&2; }
fail() { log "FAILED at step '$1': $2"; exit 1; }
step_start=0
begin() { step_start=$(date +%s); log "building $1 ..."; }
done_() { log "built $1 in $(( $(date +%s) - step_start ))s"; }

command -v go >/dev/null || fail "toolchain" "go not found (expected /usr/local/go/bin/go)"

# One build at a time per cache: a second caller (a test, .ci/run) waits instead of racing the
# first into the same work dirs and bin dir.
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  log "another build.sh holds $cache/.build.lock; waiting for it"
  flock 9
fi

build_kubernetes() {
  local w="$cache/work/k8s-$KUBERNETES_VERSION"
  mkdir -p "$w"
  begin "kube-apiserver + kube-controller-manager + kubectl $KUBERNETES_VERSION"
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
    # Every staging module k8s.io/kubernetes maps to v0.0.0 gets pinned to the matching release.
    grep -E '^\s*k8s\.io/[a-z0-9-]+ v0\.0\.0\s*$' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
      printf 'replace %s => %s %s\n' "$m" "$m" "$KUBERNETES_STAGING_VERSION"
    done >> go.mod
    [ "$(grep -c '^replace' go.mod)" -gt 20 ] || fail "k8s go.mod" "found too few staging modules in $gomod"
    printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"\n\t_ "k8s.io/kubectl/pkg/cmd"\n)\n' > tools.go
    go mod download >/dev/null 2>&1 || true
    local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
    local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    local ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ld="$ld -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.gitTreeState=clean -X $p.buildDate=$date"
    done
    go build -trimpath -ldflags "$ld" -o "$bindir/" k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl \
      || fail "k8s go build" "go build of kube-apiserver/kube-controller-manager/kubectl failed (see above)"
  ) || exit 1
  done_ "kube-apiserver + kube-controller-manager + kubectl"
}

build_etcd() {
  local w="$cache/work/etcd-$ETCD_VERSION"
  mkdir -p "$w"
  begin "etcd $ETCD_VERSION"
  (cd "$w"
    printf 'module seccompagent.local/testbed-etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
    printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3/embed"\n' > tools.go
    go build -trimpath -ldflags "-s -w" -o "$bindir/etcd" go.etcd.io/etcd/server/v3 \
      || fail "etcd go build" "go build of go.etcd.io/etcd/server/v3@$ETCD_VERSION failed (see above)"
  ) || exit 1
  done_ "etcd"
}

build_helm() {
  begin "helm $HELM_VERSION"
  local major=${HELM_VERSION%%.*}
  GOBIN="$bindir" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$HELM_VERSION -X helm.sh/helm/$major/internal/version.gitTreeState=clean" \
    "helm.sh/helm/$major/cmd/helm@$HELM_VERSION" || fail "helm go install" "go install helm.sh/helm/$major/cmd/helm@$HELM_VERSION failed"
  done_ "helm"
}

total_start=$(date +%s)
[ -x "$bindir/etcd" ] || build_etcd
{ [ -x "$bindir/kube-apiserver" ] && [ -x "$bindir/kube-controller-manager" ] && [ -x "$bindir/kubectl" ]; } || build_kubernetes
[ -x "$bindir/helm" ] || build_helm
log "binaries ready in $bindir ($(( $(date +%s) - total_start ))s)"
echo "$bindir"
