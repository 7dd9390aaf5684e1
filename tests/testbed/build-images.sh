#!/usr/bin/env bash
# Builds (or reuses) the image builder of the test bed: BuildKit's buildkitd and buildctl, from Go
# modules through a wrapper module (BuildKit's go.mod has `exclude` directives, so `go install`
# refuses it). The version is pinned in versions.env. The images themselves are built by
# tests/testbed/images.ts with these binaries.
# Binaries are cached outside the repo, keyed by version, and rebuilt only when missing.
# Prints the bin directory on the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log_tag=testbed-build-images
# shellcheck source=build-lib.sh
. "$here/build-lib.sh"
bindir="$cache/bin/buildkit-$BUILDKIT_VERSION"
mkdir -p "$bindir"
# Its own lock (not build.sh's), so this build and the control plane's can run side by side.
take_lock .build-images.lock

build_buildkit() {
  local w="$cache/work/buildkit-$BUILDKIT_VERSION"
  mkdir -p "$w"
  begin "buildkitd + buildctl $BUILDKIT_VERSION"
  (cd "$w"
    local gomod
    gomod=$(go mod download -json "github.com/moby/buildkit@$BUILDKIT_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p') \
      || fail "buildkit go mod download" "could not download github.com/moby/buildkit@$BUILDKIT_VERSION"
    [ -f "$gomod" ] || fail "buildkit go.mod" "no go.mod path from go mod download"
    # The wrapper takes BuildKit's go line and its exclude blocks (a dependency's excludes do not
    # apply to the main module, and without them the build picks the excluded versions).
    {
      printf 'module seccompagent.local/testbed-buildkit\n\n'
      grep -E '^go [0-9]' "$gomod"
      printf '\nrequire github.com/moby/buildkit %s\n\n' "$BUILDKIT_VERSION"
      sed -n '/^exclude (/,/^)/p' "$gomod"
      grep -E '^exclude [^(]' "$gomod" || true
    } > go.mod
    printf 'package tools\n\nimport _ "github.com/moby/buildkit/client"\n' > tools.go
    local ld="-s -w -X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION"
    ld="$ld -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit"
    ld="$ld -X github.com/moby/buildkit/version.Revision=0000000000000000000000000000000000000000"
    nice -n 10 go build -trimpath -ldflags "$ld" -o "$bindir/" \
      github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl \
      || fail "buildkit go build" "go build of buildkitd/buildctl $BUILDKIT_VERSION failed (see above)"
  ) || exit 1
  done_ "buildkitd + buildctl"
}

{ [ -x "$bindir/buildkitd" ] && [ -x "$bindir/buildctl" ]; } || build_buildkit
echo "$bindir"
