# Sourced by the deploy scripts: `ensure_docker` sets DOCKER to a client with BuildKit whose engine answers,
# installing Debian's docker.io and starting dockerd (no systemd here) when root, else saying what is missing.

_docker_client() {
    # Debian's /usr/bin/docker has BuildKit built in; another client is fine only with its buildx plugin.
    local c
    for c in ${DOCKER:-} /usr/bin/docker $(type -P -a docker 2>/dev/null); do
        [ -x "$c" ] || continue
        if [ "$c" = /usr/bin/docker ] || "$c" buildx version >/dev/null 2>&1; then echo "$c"; return 0; fi
    done
    return 1
}

_engine_answers() { timeout 10 "$1" info >/dev/null 2>&1; }

ensure_docker() {
    local root=0 client
    [ "$(id -u)" = 0 ] && root=1
    if ! client=$(_docker_client); then
        [ "$root" = 1 ] || { echo "error: no Docker client with BuildKit (Debian's docker.io), and installing it needs root" >&2; return 1; }
        command -v apt-get >/dev/null || { echo "error: no Docker client with BuildKit and no apt-get to install docker.io" >&2; return 1; }
        echo "docker: installing Debian's docker.io" >&2
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null 2>&1 \
          || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null; }; } \
          || { echo "error: apt-get install docker.io failed" >&2; return 1; }
        client=/usr/bin/docker
    fi
    DOCKER=$client
    _engine_answers "$DOCKER" && return 0
    [ "$root" = 1 ] || { echo "error: the Docker engine does not answer and starting dockerd needs root (or join the docker group)" >&2; return 1; }
    command -v dockerd >/dev/null || { echo "error: the Docker engine does not answer and there is no dockerd to start" >&2; return 1; }
    echo "docker: starting dockerd (log /var/log/dockerd.log)" >&2
    setsid dockerd >>/var/log/dockerd.log 2>&1 < /dev/null &
    local i
    for i in $(seq 60); do
        _engine_answers "$DOCKER" && return 0
        sleep 1
    done
    echo "error: dockerd did not answer within 60 s: see /var/log/dockerd.log" >&2
    return 1
}
