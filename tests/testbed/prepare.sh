#!/usr/bin/env bash
# Makes this machine ready for every test tier; run by `npm test` (pretest) and so by .ci/run.
#  - Debian packages the node tier needs (installed with apt-get when missing; needs root).
#  - The control plane binaries, built from Go modules by build.sh, and the real node's (kubelet,
#    kube-scheduler, containerd, CNI plugins) by build-node.sh (both cached outside the repo).
#  - BuildKit (buildkitd, buildctl) for the images, built by build-images.sh (cached the same way).
# Idempotent and quiet when everything is already there.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# command → Debian package
declare -A need=(
  [runc]=runc
  [busybox]=busybox-static
  [scmp_sys_resolver]=seccomp
  [auditd]=auditd
  [ausearch]=auditd
  [gcc]=gcc
  [curl]=curl
  [file]=file
  [nsenter]=util-linux
  [mmdebstrap]=mmdebstrap
  [flock]=util-linux
  [unshare]=util-linux
  [ip]=iproute2
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# busybox must be the static build: it is copied into container root file systems
if command -v busybox >/dev/null 2>&1 && ! file -L "$(command -v busybox)" 2>/dev/null | grep -q 'statically linked'; then
  missing+=(busybox-static)
fi
# gcc -static needs the C library's static archive
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" -ne 0 ]; then
    echo "prepare: missing Debian packages: $pkgs— run as root, or: sudo apt-get install -y $pkgs" >&2
    exit 1
  fi
  echo "prepare: installing Debian packages: $pkgs" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi
# apt-get download (used to assemble the nginx root file system) needs package lists
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ] && [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq
fi

bash "$here/build.sh" >/dev/null
bash "$here/build-node.sh" >/dev/null
bash "$here/build-images.sh" >/dev/null
