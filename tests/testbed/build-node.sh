#!/usr/bin/env bash
# Builds (or reuses) the test bed's real node from Go modules:
#   kubelet and kube-scheduler (k8s.io/kubernetes through the same wrapper module as build.sh),
#   containerd, ctr and containerd-shim-runc-v2, and the CNI plugins bridge, host-local, loopback.
# runc is Debian's (/usr/sbin/runc, installed by prepare.sh).
# Cached next to build.sh's binaries (same cache root, its own bin dir and its own lock, so a node
# build never blocks the control plane's tests). Prints the bin directory on the last line of stdout.
#
# Build times on 2 cores (nice 10, 2026-12-02). Cold, in an empty cache next to two other Go builds
# (module downloads included): kubelet 677 s, kube-scheduler 11 s, containerd 131 s, ctr 8 s,
# containerd-shim-runc-v2 3 s, bridge 9 s, loopback 1 s, host-local 1 s (841 s in all). As CI runs it,
# after build.sh filled the same Go caches: kubelet 56 s, kube-scheduler 10 s, containerd 130 s,
# ctr 10 s, shim 3 s, bridge 9 s, loopback 0 s, host-local 2 s (220 s). Warm (binaries there): 0 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_tag=testbed-build-node
# shellcheck source=build-lib.sh
. "$here/build-lib.sh"
bindir="$cache/bin/node-k8s-$KUBERNETES_VERSION-containerd-$CONTAINERD_VERSION-cni-$CNI_PLUGINS_VERSION"
mkdir -p "$bindir"
take_lock .build-node.lock

# Its own work dir: build.sh may be writing its wrapper's go.mod at the same time.
k8s_work="$cache/work/k8s-node-$KUBERNETES_VERSION"

build_k8s() { # build_k8s NAME
  begin "$1 $KUBERNETES_VERSION"
  [ -f "$k8s_work/tools.go" ] || k8s_wrapper "$k8s_work" k8s.io/kubernetes/cmd/kubelet/app k8s.io/kubernetes/cmd/kube-scheduler/app
  (cd "$k8s_work"
    go build -trimpath -ldflags "$(k8s_ldflags)" -o "$bindir/$1" "k8s.io/kubernetes/cmd/$1" \
      || fail "$1 go build" "go build of k8s.io/kubernetes/cmd/$1 failed (see above)"
  ) || exit 1
  done_ "$1"
}

build_containerd() { # build_containerd NAME
  begin "$1 $CONTAINERD_VERSION"
  GOBIN="$bindir" go install -trimpath \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/$1@$CONTAINERD_VERSION" \
    || fail "$1 go install" "go install github.com/containerd/containerd/v2/cmd/$1@$CONTAINERD_VERSION failed"
  done_ "$1"
}

build_cni() { # build_cni main|ipam NAME
  begin "CNI $2 $CNI_PLUGINS_VERSION"
  GOBIN="$bindir" go install -trimpath -ldflags "-s -w" \
    "github.com/containernetworking/plugins/plugins/$1/$2@$CNI_PLUGINS_VERSION" \
    || fail "$2 go install" "go install github.com/containernetworking/plugins/plugins/$1/$2@$CNI_PLUGINS_VERSION failed"
  done_ "CNI $2"
}

total_start=$(date +%s)
for b in kubelet kube-scheduler; do [ -x "$bindir/$b" ] || build_k8s "$b"; done
for b in containerd ctr containerd-shim-runc-v2; do [ -x "$bindir/$b" ] || build_containerd "$b"; done
[ -x "$bindir/bridge" ] || build_cni main bridge
[ -x "$bindir/loopback" ] || build_cni main loopback
[ -x "$bindir/host-local" ] || build_cni ipam host-local
log "node binaries ready in $bindir ($(( $(date +%s) - total_start ))s)"
echo "$bindir"
