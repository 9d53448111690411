#!/usr/bin/env bash
# Builds a local Debian bookworm base image once, from Debian's packages with mmdebstrap, for machines that reach a
# Debian mirror but no image registry. Reused while its recipe is unchanged. Two kinds, the same Python at one path:
#   build    minbase + python3, python3-venv, ca-certificates: the image's build stage (a venv, pip) and HAProxy's
#            image (apt); default tag mnistserve-base:bookworm
#   runtime  Debian's Essential packages + python3, ca-certificates, libstdc++6 (onnxruntime and OpenCV link it)
#            and passwd (BentoML's template makes its user with useradd): the service's final stage, with no apt,
#            no ensurepip and no pip wheels; default tag mnistserve-runtime:bookworm
#   usage: deploy/docker/base-image.sh [build|runtime] [TAG]
set -euo pipefail
KIND=${1:-build}
DOCKER=${DOCKER:-/usr/bin/docker}
SUITE=bookworm
case "$KIND" in
    # python3-venv: the build stage makes /app/.venv with it; its ensurepip wheels are all it adds (~3 MB).
    build) TAG=${2:-mnistserve-base:$SUITE}; VARIANT=minbase; PACKAGES=python3,python3-venv,ca-certificates ;;
    runtime) TAG=${2:-mnistserve-runtime:$SUITE}; VARIANT=essential; PACKAGES=python3,ca-certificates,libstdc++6,passwd ;;
    *) echo "usage: $0 [build|runtime] [TAG]" >&2; exit 2 ;;
esac
RECIPE=$(printf '%s\n' "$SUITE" "$VARIANT" "$PACKAGES" "$(sha256sum "$0" | cut -c1-12)" | sha256sum | cut -c1-12)

if [ "$("$DOCKER" image inspect -f '{{ index .Config.Labels "mnistserve.base.recipe" }}' "$TAG" 2>/dev/null)" = "$RECIPE" ]; then
    echo "base image: $TAG ($KIND, recipe $RECIPE) is present, reused"
    exit 0
fi
command -v mmdebstrap >/dev/null || {
    echo "base image: installing mmdebstrap from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >/dev/null; }
}

# The mirrors this machine's apt already uses (Debian's own origin, this suite and its -updates/-security), read at
# run time so that no host name is written here.
mapfile -t SOURCES < <(apt-get indextargets --format '$(ORIGIN) $(REPO_URI) $(RELEASE)' 'Created-By: Packages' \
    | awk -v s="$SUITE" '$1 == "Debian" && $3 ~ "^" s "(-|$)" { print "deb " $2 " " $3 " main" }' | sort -u)
[ "${#SOURCES[@]}" -gt 0 ] || { echo "base image: no Debian $SUITE source in this machine's apt sources (run apt-get update)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "base image: mmdebstrap $SUITE $VARIANT + $PACKAGES from ${#SOURCES[@]} apt source(s)"
# The merged-usr hook merges /usr itself, so that neither usrmerge nor the perl it needs (~50 MB) is installed.
mmdebstrap --variant="$VARIANT" --include="$PACKAGES" --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$SUITE" "$tmp/rootfs.tar" "${SOURCES[@]}" >"$tmp/mmdebstrap.log" 2>&1 \
    || { tail -n 30 "$tmp/mmdebstrap.log" >&2; echo "base image: mmdebstrap failed (its log's end above)" >&2; exit 1; }
"$DOCKER" import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
    --change "LABEL mnistserve.base.recipe=$RECIPE" --change "LABEL org.opencontainers.image.base.name=debian:$SUITE" \
    "$tmp/rootfs.tar" "$TAG" >/dev/null
echo "base image: built $TAG ($KIND, $("$DOCKER" image inspect -f '{{ .Size }}' "$TAG" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
