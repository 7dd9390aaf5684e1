#!/usr/bin/env bash
# Builds (or reuses) the test bed's real Kubernetes parts from Go modules:
#   etcd, kube-apiserver, kube-controller-manager, kubectl (k8s.io/kubernetes through a wrapper
#   module) and helm.
# Binaries are cached outside the repo, keyed by version, and rebuilt only when missing.
# Prints the bin directory on the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_tag=testbed-build
# shellcheck source=build-lib.sh
. "$here/build-lib.sh"
bindir="$cache/bin/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
mkdir -p "$bindir"
take_lock .build.lock

build_kubernetes() {
  local w="$cache/work/k8s-$KUBERNETES_VERSION"
  begin "kube-apiserver + kube-controller-manager + kubectl $KUBERNETES_VERSION"
  k8s_wrapper "$w" k8s.io/kubernetes/cmd/kube-apiserver/app k8s.io/kubernetes/cmd/kube-controller-manager/app \
    k8s.io/kubectl/pkg/cmd
  (cd "$w"
    go build -trimpath -ldflags "$(k8s_ldflags)" -o "$bindir/" k8s.io/kubernetes/cmd/kube-apiserver \
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
