#!/usr/bin/env bash
# tests/docker/run.sh (`make test-docker`): the image and the compose file, end to end.
#
# Builds docker/Dockerfile, makes an admin key with the image (`flowd key new`), checks that the
# image does not start without a key file, runs it with the key file mounted and a published port,
# waits for its health check, checks that the API wants the key, runs a job with it through the API
# with curl and reads its shared store, kills it with `docker kill` while a job runs
# and starts it again (the job resumes from the store on the volume), then checks that `docker stop` ends it with
# exit status 0 before the stop timeout while a job is still running. Then the same through
# `docker compose -f docker/compose.yaml up -d` / `stop` / `down -v`. Everything it made
# (containers, volumes, the compose network, the image tag) is removed at the end, also when a
# check fails; the engine's build cache is kept, so that the next run builds in seconds.
#
# It uses `docker` from PATH when an engine answers `docker info`, else the podman shim
# ../shared/tools/docker (beside this repository; /work/shared/tools/docker as a fallback).
# DOCKER=/path/to/docker overrides the choice. Every check is fatal: the next ones depend on it.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd -P)
STOP_TIMEOUT=10   # docker stop's default; the image's FLOWD_GRACE (5s) must end flowd before it
HEALTH_WAIT=60    # seconds for a container to become healthy (Docker probes every 10 s)

log() { printf 'docker-test: %s\n' "$*"; }

# Until the server is merged there is no flowd to put in an image (the Dockerfile copies server/).
if [ ! -f server/main.c ]; then
    log "skipped: server/main.c is not in this tree, so there is no flowd to build an image of"
    echo "docker: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
now_ms() { date +%s%3N; }

# --- the docker command -------------------------------------------------------------------------
if [ -z "${DOCKER:-}" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        DOCKER=$(command -v docker)
    elif [ -x "$ROOT/../shared/tools/docker" ]; then
        DOCKER=$(cd "$ROOT/../shared/tools" && pwd)/docker
    elif [ -x /work/shared/tools/docker ]; then
        DOCKER=/work/shared/tools/docker
    else
        echo "docker-test: no Docker engine answers 'docker info', and the podman shim is in" \
             "neither $ROOT/../shared/tools/docker nor /work/shared/tools/docker" >&2
        exit 1
    fi
fi
if ! command -v curl >/dev/null 2>&1; then
    echo "docker-test: needs curl (make deps installs it)" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/flowd-docker-test.XXXXXX")
ENGINE_LOG=$WORK/engine.log   # the engine's stderr: shown when a check fails
: >"$ENGINE_LOG"
dk() { "$DOCKER" "$@" 2>>"$ENGINE_LOG"; }

# The first use of the shim installs podman (minutes): do it before anything is timed.
"$DOCKER" --version >"$WORK/version" 2>>"$ENGINE_LOG" || { cat "$ENGINE_LOG" >&2; exit 1; }
PODMAN=false
grep -qi podman "$WORK/version" && PODMAN=true
if $PODMAN; then
    # podman builds OCI images unless told otherwise, and OCI images have no HEALTHCHECK.
    export BUILDAH_FORMAT=docker
    COMPOSE=("$DOCKER" compose)
elif "$DOCKER" compose version >/dev/null 2>&1; then
    COMPOSE=("$DOCKER" compose)
else
    COMPOSE=(docker-compose)
fi
log "engine: $DOCKER ($(head -1 "$WORK/version"))"

# --- what this run makes, and its removal -------------------------------------------------------
ID=flowd-test-$$
TAG=$ID:latest
CTR=$ID
PROJECT=$ID
COMPOSE_FILE=docker/compose.yaml
export FLOWD_IMAGE=$TAG   # compose.yaml's image name: the same tag, removed at the end
passed=0
compose() { "${COMPOSE[@]}" -p "$PROJECT" -f "$COMPOSE_FILE" "$@" >>"$WORK/compose.log" 2>&1; }

cleanup() {
    local status=$?
    set +e
    dk rm -f -v "$CTR" >/dev/null
    compose down -v -t 1
    dk network rm "${PROJECT}_default" >/dev/null 2>&1   # podman-compose 1.0 leaves it behind
    dk rmi -f "$TAG" >/dev/null
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted: removing what this run made"; exit 130' INT TERM

# A failed check: what was expected, the container's log and the engine's, then the counts.
die() {
    echo "docker-test: FAILED: $*" >&2
    if [ -n "${SHOW_LOGS:-}" ]; then
        echo "--- docker logs $SHOW_LOGS (last 30 lines)" >&2
        "$DOCKER" logs --tail 30 "$SHOW_LOGS" 2>&1 | grep -v 'systemd connection' >&2 || true
    fi
    if [ -s "$WORK/compose.log" ]; then
        echo "--- compose (last 15 lines)" >&2
        tail -n 15 "$WORK/compose.log" >&2
    fi
    echo "--- engine stderr (last 15 lines)" >&2
    grep -v 'systemd connection' "$ENGINE_LOG" | tail -n 15 >&2 || true
    echo "docker: $passed passed, 1 failed"
    exit 1
}
ok() { passed=$((passed + 1)); log "ok: $*"; }

# A port nothing listens on (for compose, whose file names the host port).
free_port() {
    local p _
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# api METHOD URL [BODY]: the body goes to $WORK/body, the HTTP status to $code. With the key $KEY
# when it is set.
api() {
    local data=() auth=()
    [ $# -ge 3 ] && data=(-H 'Content-Type: application/json' --data "$3")
    [ -n "${KEY:-}" ] && auth=(-H "Authorization: Bearer $KEY")
    code=$(curl -sS --max-time 40 -o "$WORK/body" -w '%{http_code}' -X "$1" "${auth[@]}" \
        "${data[@]}" "$2") || code=000
}
# The first "key": "string" of the last body (the job's own fields come before nested ones).
field() { grep -o "\"$1\": *\"[^\"]*\"" "$WORK/body" | head -1 | sed 's/.*: *"\(.*\)"/\1/'; }

wait_healthy() { # container
    local c=$1 deadline=$((SECONDS + HEALTH_WAIT)) st
    while :; do
        st=$(dk inspect --format \
            '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$c") ||
            die "docker inspect $c"
        case $st in
        healthy) return 0 ;;
        none) die "$c has no health check (was the image built in docker format?)" ;;
        esac
        [ "$(dk inspect --format '{{.State.Running}}' "$c")" = true ] ||
            die "$c exited while starting"
        [ "$SECONDS" -lt "$deadline" ] || die "$c not healthy after ${HEALTH_WAIT}s (status $st)"
        # podman runs health checks from systemd timers, and there is no systemd here: run the
        # image's check ourselves, as the timer would.
        if $PODMAN; then dk healthcheck run "$c" >/dev/null || true; fi
        sleep 1
    done
}

# A sleep job of 1 s: submitted, succeeded, and its shared store has what the flow wrote.
run_job() { # base URL
    local base=$1 id
    api POST "$base/v1/jobs" '{"flow": "sleep", "shared": {"seconds": 1}}'
    [ "$code" = 202 ] || die "POST /v1/jobs answered $code: $(cat "$WORK/body")"
    id=$(field id)
    if [ "$(field status)" != queued ] || [ -z "$id" ]; then
        die "POST /v1/jobs: $(cat "$WORK/body")"
    fi
    ok "POST /v1/jobs: 202, job $id queued"
    wait_succeeded "$base" "$id"
    LAST_JOB=$id
    ok "GET /v1/jobs/$id?wait=10: succeeded"
    api GET "$base/v1/jobs/$id/shared"
    if [ "$code" != 200 ] || ! grep -q '"slept": *1' "$WORK/body"; then
        die "GET /v1/jobs/$id/shared answered $code: $(cat "$WORK/body")"
    fi
    ok "GET /v1/jobs/$id/shared: {\"seconds\": 1, \"slept\": 1}"
}

# Until job $2 on $1 has succeeded (30 s at most).
wait_succeeded() { # base URL, id
    local base=$1 id=$2 deadline=$((SECONDS + 30)) st=queued
    while [ "$st" != succeeded ]; do
        api GET "$base/v1/jobs/$id?wait=10"
        [ "$code" = 200 ] || die "GET /v1/jobs/$id answered $code: $(cat "$WORK/body")"
        st=$(field status)
        case $st in failed | canceled) die "job $id ended $st: $(cat "$WORK/body")" ;; esac
        [ "$SECONDS" -lt "$deadline" ] || die "job $id still $st after 30 s"
    done
}

# docker kill (SIGKILL) while a 3 s job runs, then docker start: the SQLite store on the volume
# brings the job back, it resumes and succeeds, and the job run before is still there.
kill_and_start() { # container, base URL, id of an earlier job
    local c=$1 base=$2 earlier=$3 id
    api POST "$base/v1/jobs" '{"flow": "sleep", "shared": {"seconds": 3}}'
    [ "$code" = 202 ] || die "POST /v1/jobs (before the kill) answered $code"
    id=$(field id)
    sleep 0.5
    dk kill "$c" >/dev/null || die "docker kill $c"
    dk start "$c" >/dev/null || die "docker start $c"
    port=$(dk port "$c" 8080/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -1)
    [ -n "$port" ] || die "docker port $c: no 127.0.0.1 port after the start"
    BASE=http://127.0.0.1:$port
    wait_healthy "$c"
    wait_succeeded "$BASE" "$id"
    api GET "$BASE/v1/jobs/$earlier"
    [ "$code" = 200 ] && [ "$(field status)" = succeeded ] ||
        die "after the restart the earlier job $earlier answers $code: $(cat "$WORK/body")"
    ok "docker kill with a job running, docker start: job $id resumed and succeeded, $earlier kept"
}

# docker stop while a 10-minute job runs: flowd waits FLOWD_GRACE for it, cancels it and exits 0,
# all before the stop timeout (SIGKILL would give 137).
stop_within() { # container, base URL (empty: no job), what to call it, command...
    local c=$1 base=$2 what=$3
    shift 3
    if [ -n "$base" ]; then
        api POST "$base/v1/jobs" '{"flow": "sleep", "shared": {"seconds": 600}}'
        [ "$code" = 202 ] || die "POST /v1/jobs (the long job) answered $code"
        local id
        id=$(field id)
        local deadline=$((SECONDS + 10))
        while :; do # running: queued for a moment on a busy machine
            api GET "$base/v1/jobs/$id"
            [ "$(field status)" = running ] && break
            [ "$SECONDS" -lt "$deadline" ] ||
                die "the long job is not running after 10 s: $(cat "$WORK/body")"
            sleep 0.2
        done
    fi
    local t0 t1 ms rc
    t0=$(now_ms)
    "$@" >/dev/null || die "$what failed"
    t1=$(now_ms)
    ms=$((t1 - t0))
    [ "$(dk inspect --format '{{.State.Running}}' "$c")" = false ] ||
        die "$c still runs after $what"
    rc=$(dk inspect --format '{{.State.ExitCode}}' "$c")
    [ "$rc" = 0 ] || die "$what: $c exited with status $rc after $ms ms (137 is SIGKILL)"
    [ "$ms" -lt $((STOP_TIMEOUT * 1000)) ] || die "$what took $ms ms, not under ${STOP_TIMEOUT} s"
    ok "$what${base:+ with a job running}: exit status 0 in $ms ms" \
        "(the timeout is ${STOP_TIMEOUT} s)"
}

T_START=$SECONDS

# --- the image ----------------------------------------------------------------------------------
log "building $TAG (docker/Dockerfile; the first build takes minutes)"
t0=$(now_ms)
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if ! timeout 1500 "$DOCKER" build -t "$TAG" -f docker/Dockerfile \
    --build-arg REVISION="$REVISION" . >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    die "docker build"
fi
BUILD_MS=$(($(now_ms) - t0))
size=$(dk image inspect --format '{{.Size}}' "$TAG")
ok "docker build: $((BUILD_MS / 1000)) s, image $((size / 1000000)) MB"

user=$(dk image inspect --format '{{.Config.User}}' "$TAG")
[ "$user" = 10001:10001 ] || die "image user is '$user', not 10001:10001"
hc=$(dk image inspect --format \
    '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}' "$TAG")
[ "$hc" = '["CMD","flowd-healthcheck"]' ] || die "image HEALTHCHECK is '$hc'"
label=$(dk image inspect --format \
    '{{index .Config.Labels "org.opencontainers.image.version"}}' "$TAG")
ok "image: user 10001:10001, HEALTHCHECK flowd-healthcheck, version label $label"

# --- keys --------------------------------------------------------------------------------------
# The image listens on 0.0.0.0: it needs a key file, and says how to make one when it has none.
set +e
"$DOCKER" run --rm "$TAG" >"$WORK/nokeys" 2>&1 # its log is on stderr: not dk's engine log
rc=$?
set -e
grep -q 'cannot read the key file /run/secrets/flowd-keys' "$WORK/nokeys" &&
    grep -q 'flowd key new' "$WORK/nokeys" ||
    die "without a key file the image said: $(cat "$WORK/nokeys")"
[ "$rc" = 1 ] || die "without a key file the image exited $rc, not 1"
ok "without a key file the image does not start (status 1) and says how to make a key"
dk run --rm "$TAG" key new --role admin --name docker-test >"$WORK/key" ||
    die "docker run $TAG key new: $(cat "$WORK/key")"
KEY=$(sed -n 1p "$WORK/key")
sed -n 2p "$WORK/key" >"$WORK/keys"
chmod 644 "$WORK/keys" # hashes only; read by the image's user
case $KEY in fk_*) ;; *) die "flowd key new printed no key: $(cat "$WORK/key")" ;; esac
grep -q ' docker-test admin default$' "$WORK/keys" || die "the key file line: $(cat "$WORK/keys")"
ok "docker run $TAG key new: a key and its line for the key file"

# --- one container ------------------------------------------------------------------------------
dk run -d --name "$CTR" -p 127.0.0.1::8080 -v "$WORK/keys:/run/secrets/flowd-keys:ro" "$TAG" \
    >/dev/null || die "docker run"
SHOW_LOGS=$CTR
port=$(dk port "$CTR" 8080/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -1)
[ -n "$port" ] || die "docker port $CTR: no 127.0.0.1 port"
t0=$(now_ms)
wait_healthy "$CTR"
ok "docker run -p 127.0.0.1:$port:8080: healthy in $(($(now_ms) - t0)) ms"

BASE=http://127.0.0.1:$port
api GET "$BASE/healthz"
if [ "$code" != 200 ] || [ "$(field status)" != ok ]; then
    die "GET /healthz answered $code: $(cat "$WORK/body")"
fi
ok "GET /healthz: 200 {\"status\": \"ok\"}"
saved=$KEY
KEY=
api GET "$BASE/v1/jobs"
[ "$code" = 401 ] || die "GET /v1/jobs without a key answered $code: $(cat "$WORK/body")"
KEY=wrong-$saved
api GET "$BASE/v1/jobs"
[ "$code" = 401 ] || die "GET /v1/jobs with a wrong key answered $code: $(cat "$WORK/body")"
KEY=$saved
api GET "$BASE/v1/jobs"
[ "$code" = 200 ] || die "GET /v1/jobs with the key answered $code: $(cat "$WORK/body")"
ok "GET /v1/jobs: 401 without a key or with a wrong one, 200 with the key"
api GET "$BASE/v1/flows/sleep/graph.svg"
[ "$code" = 200 ] && grep -q '<g id="node&#45;' "$WORK/body" ||
    die "GET /v1/flows/sleep/graph.svg answered $code: $(head -c 300 "$WORK/body")"
ok "GET /v1/flows/sleep/graph.svg: 200, drawn by the image's Graphviz"

# shellcheck disable=SC2016 # expanded in the container
inside=$(dk exec "$CTR" sh -c 'echo "$(id -u) $(cat /proc/1/comm) $(flowd --version)"') ||
    die "docker exec $CTR"
[ "$inside" = "10001 flowd flowd $label" ] ||
    die "in the container: '$inside', not '10001 flowd flowd $label' (uid, PID 1, flowd --version)"
dk exec "$CTR" sh -c \
    'test -r /etc/flowd/flows/sleep.json && touch /var/lib/flowd/.w && rm /var/lib/flowd/.w' ||
    die "/etc/flowd/flows/sleep.json unreadable or /var/lib/flowd not writable"
ok "uid 10001, flowd is PID 1, version $label as labelled, flows readable, data dir writable"

run_job "$BASE"
kill_and_start "$CTR" "$BASE" "$LAST_JOB"
stop_within "$CTR" "$BASE" "docker stop" dk stop -t "$STOP_TIMEOUT" "$CTR"
dk rm -v "$CTR" >/dev/null || die "docker rm -v $CTR"
SHOW_LOGS=

# --- compose ------------------------------------------------------------------------------------
export FLOWD_HOST_PORT FLOWD_KEYS=$WORK/keys # compose.yaml's secret flowd-keys
FLOWD_HOST_PORT=$(free_port) || die "no free port for compose"
t0=$(now_ms)
compose up -d --build || die "docker compose up -d --build"
cid=$(dk ps -a -q --filter "label=com.docker.compose.project=$PROJECT" | head -1)
[ -n "$cid" ] || die "compose made no container"
SHOW_LOGS=$cid
wait_healthy "$cid"
ok "docker compose up -d --build: healthy on 127.0.0.1:$FLOWD_HOST_PORT in $(($(now_ms) - t0)) ms"

mounts=$(dk inspect --format \
    '{{range .Mounts}}{{.Type}}:{{.Destination}}:{{.Source}}:{{.Name}} {{end}}' "$cid")
case " $mounts" in
*" volume:/var/lib/flowd:"*) ;;
*) die "no volume on /var/lib/flowd: $mounts" ;;
esac
case " $mounts" in
*" bind:/etc/flowd/flows:$ROOT/examples/flows:"*) ;;
*) die "examples/flows is not mounted on /etc/flowd/flows: $mounts" ;;
esac
listed=$(dk exec "$cid" ls /etc/flowd/flows | tr '\n' ' ')
[ "$listed" = "$(cd examples/flows && printf '%s ' *)" ] || die "/etc/flowd/flows holds '$listed'"
dk exec "$cid" sh -c 'touch /var/lib/flowd/.w && rm /var/lib/flowd/.w' ||
    die "the data volume is not writable"
ok "compose: examples/flows on /etc/flowd/flows, a writable named volume on /var/lib/flowd"
[ "$(dk exec "$cid" cat /run/secrets/flowd-keys)" = "$(cat "$WORK/keys")" ] ||
    die "the secret flowd-keys is not the key file on /run/secrets/flowd-keys"
saved=$KEY
KEY=
api GET "http://127.0.0.1:$FLOWD_HOST_PORT/v1/jobs"
KEY=$saved
[ "$code" = 401 ] || die "compose: GET /v1/jobs without a key answered $code"
ok "compose: the secret flowd-keys on /run/secrets/flowd-keys; no key, 401"

run_job "http://127.0.0.1:$FLOWD_HOST_PORT"
stop_within "$cid" "" "docker compose stop" compose stop
compose down -v || die "docker compose down -v"
SHOW_LOGS=

# --- nothing left -------------------------------------------------------------------------------
left=$(dk ps -a -q --filter "label=com.docker.compose.project=$PROJECT"
    dk ps -a -q --filter "name=^$CTR\$")
[ -z "$left" ] || die "containers left: $left"
left=$(dk volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || die "volumes left: $left"
ok "docker compose down -v: no container or volume of $PROJECT left"

log "build $((BUILD_MS / 1000)) s, whole test $((SECONDS - T_START)) s"
echo "docker: $passed passed, 0 failed"
