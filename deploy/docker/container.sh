#!/usr/bin/env bash
# `make container`: the Bento (`bentoml build`) in an image (`bentoml containerize`), tagged mnistserve:latest.
#   MNISTSERVE_BASE_IMAGE  auto (default): python:3.11-slim where it is present or can be pulled, else the local
#                          Debian bases of deploy/docker/base-image.sh (one to build on, a smaller one to run on);
#                          `local`: those; any other: that image, for both stages
#   MNISTSERVE_IMAGE       the tag to build (default mnistserve:latest)
# Starts dockerd when none answers (root only), installs Debian's docker.io when no Docker is there (root only),
# and lets the build trust this host's CA bundle (BuildKit secret) and pip index, so that pip works behind a
# proxy that re-signs certificates.
set -euo pipefail
cd "$(dirname "$0")/../.."
export BENTOML_DO_NOT_TRACK=true DOCKER_BUILDKIT=1
BASE=${MNISTSERVE_BASE_IMAGE:-auto}
IMAGE=${MNISTSERVE_IMAGE:-mnistserve:latest}
SLIM=python:3.11-slim
LOCAL=mnistserve-base:bookworm
LOCAL_RUNTIME=mnistserve-runtime:bookworm
BENTOML=${BENTOML:-.venv/bin/bentoml}
say() { echo "container: $*"; }
die() { echo "container: error: $*" >&2; exit 1; }

# docker: Debian's client has BuildKit built in; one without buildx (as /usr/local/bin/docker here) cannot build.
source deploy/docker/engine.sh
ensure_docker || exit 1
export PATH="$(dirname "$DOCKER"):$PATH"  # bentoml containerize runs the `docker` first on PATH

local_bases() {
    deploy/docker/base-image.sh build "$LOCAL"
    deploy/docker/base-image.sh runtime "$LOCAL_RUNTIME"
    BASE=$LOCAL RUNTIME=$LOCAL_RUNTIME
}
RUNTIME=
case "$BASE" in
    auto)
        if "$DOCKER" image inspect "$SLIM" >/dev/null 2>&1 || timeout 120 "$DOCKER" pull -q "$SLIM" >/dev/null 2>&1; then
            BASE=$SLIM
        else
            say "no image registry answers: using the local Debian base images"
            local_bases
        fi ;;
    local) local_bases ;;
esac
RUNTIME=${RUNTIME:-$BASE}
say "base image $BASE, runtime image $RUNTIME"

[ -x "$BENTOML" ] || die "$BENTOML not found: run \`make setup\` first"
tag=$("$BENTOML" build --output tag | sed -n 's/^__tag__://p' | tail -n 1)
[ -n "$tag" ] || die "bentoml build gave no Bento tag"
say "bento $tag"

opts=(--opt "build-arg=BASE_IMAGE=$BASE" --opt "build-arg=RUNTIME_IMAGE=$RUNTIME")
index=${PIP_INDEX_URL:-$(pip config get global.index-url 2>/dev/null || true)}
[ -z "$index" ] || opts+=(--opt "build-arg=PIP_INDEX_URL=$index")
bundle=${MNISTSERVE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ ! -s "$bundle" ] || opts+=(--opt "secret=id=cacert,src=$bundle")
# BentoML 1.4 refuses a dockerfile_template whose copy (in its temporary build context) lies outside the current
# directory ("Accessing file outside of current working directory"): keep that context under build/ here.
export TMPDIR="$PWD/build/containerize"
mkdir -p "$TMPDIR"
start=$(date +%s)
PYTHONWARNINGS=ignore::UserWarning "$BENTOML" containerize "$tag" --image-tag "$IMAGE" --image-tag "mnistserve:${tag#*:}" "${opts[@]}"
size=$("$DOCKER" image inspect -f '{{ .Size }}' "$IMAGE")
say "built $IMAGE (also mnistserve:${tag#*:}) on $RUNTIME in $(( $(date +%s) - start )) s: $(( size / 1000000 )) MB"
