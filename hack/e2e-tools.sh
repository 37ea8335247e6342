#!/usr/bin/env bash
# Builds the real Kubernetes components the e2e tests run (test/e2e):
# bin/kube-apiserver and bin/etcd, from the pinned versions in hack/tools.
#
# Needs only Go: everything comes through the Go module proxy. A cold build
# takes several minutes, so the binaries are cached in the git-ignored bin/
# and rebuilt only when they are missing or when the pinned inputs change.
# bin/.tools-stamp records a SHA-256 of those inputs; test/e2e/harness
# computes the same hash and refuses to run against stale binaries.
#
# Usage: hack/e2e-tools.sh [-f]   (-f forces a rebuild)
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
if [ "${1:-}" = "-f" ]; then force=1; fi

bin=bin
stamp="$bin/.tools-stamp"
# Keep this list in sync with stampInputs in test/e2e/harness/binaries.go.
inputs=(hack/tools/go.mod hack/tools/go.sum hack/tools/etcd/main.go)

want=$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)

if [ "$force" = 0 ] && [ "$want" = "$have" ] && [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ]; then
	echo "e2e tools up to date: $bin/kube-apiserver, $bin/etcd (stamp ${want:0:12})"
	exit 0
fi

if [ "$force" = 1 ]; then
	reason="forced"
elif [ ! -x "$bin/kube-apiserver" ] || [ ! -x "$bin/etcd" ]; then
	reason="binaries missing"
elif [ -z "$have" ]; then
	reason="no $stamp: cannot tell which versions the binaries are"
else
	reason="hack/tools inputs changed (stamp ${have:0:12} -> ${want:0:12})"
fi
echo "e2e tools: building $bin/kube-apiserver and $bin/etcd ($reason)"
echo "e2e tools: a cold build takes several minutes; later builds reuse the Go build cache"

mkdir -p "$bin"
# Remove the stamp first: an interrupted build must not leave an old stamp
# vouching for a new (or half-replaced) set of binaries.
rm -f "$stamp"

# The kube-apiserver reports its version from ldflags (as the release build
# sets them); without them it claims v0.0.0-master, which confuses version
# logs and skew checks in clients.
k8s_version=$(cd hack/tools && go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=${k8s_version#v1.}
minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"

build() { # name, package, ldflags
	local name=$1 pkg=$2 t0=$SECONDS
	echo "e2e tools: go build $pkg -> $bin/$name"
	# Build next to the target and rename, so a failed or interrupted build
	# never leaves a truncated binary behind.
	(cd hack/tools && go build -ldflags "$3" -o "../../$bin/.$name.tmp" "$pkg")
	mv -f "$bin/.$name.tmp" "$bin/$name"
	echo "e2e tools: built $bin/$name in $((SECONDS - t0))s"
}

t0=$SECONDS
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$ldflags"
build etcd ./etcd ""
echo "$want" >"$stamp"
echo "e2e tools: done in $((SECONDS - t0))s ($("$bin/kube-apiserver" --version), etcd $("$bin/etcd" --version | sed -n 's/^etcd Version: //p'))"
