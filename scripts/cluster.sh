#!/usr/bin/env bash
# Try the Celery deployment on this machine with compose/compose.yaml, in one command:
#
#   scripts/cluster.sh up        build the images, start Redis (password, AOF), Flower (basic
#                                auth), DETECT_SCALE detect (2), EMBED_SCALE embed (1) and one
#                                writer container; wait until all are healthy; print how to
#                                submit a video and where Flower is
#   scripts/cluster.sh up --tls  the same with Redis on TLS only (compose/tls.yaml): makes a
#                                private CA and a certificate for Redis in compose/.tls/ (once),
#                                names them in compose/.env; later `up`s keep TLS
#   scripts/cluster.sh status    containers, Celery nodes online, runs in Redis
#   scripts/cluster.sh down      stop and remove the containers and the network;
#                                `down -v` also deletes Redis's data (the volume)
#
# Needs a Docker engine and Compose (`docker compose` or `docker-compose`); as root on a
# Debian host without them, `up` installs and starts them (scripts/docker-engine.sh; stop
# that engine with `scripts/docker-engine.sh stop`). The first `up` writes compose/.env
# from compose/.env.example with random passwords; any variable of .env.example set in the
# environment goes in instead (e.g. `VIDEO_DIR=/data/videos scripts/cluster.sh up`). When
# python:3.11-slim or redis:7 cannot be pulled (no image registry), or with
# FACEPIPE_LOCAL_IMAGES=1, it builds local ones from Debian's packages and a wheelhouse of
# .venv's packages instead (scripts/local-images.sh) and names them in compose/.env.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ENV_FILE=compose/.env

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

env_get() {  # the value of VAR in compose/.env ('' when absent)
  sed -n "s/^$1=//p" "$ENV_FILE" 2>/dev/null | tail -n 1
}

env_set() {  # set VAR=value in compose/.env, replacing an active or commented-out line
  local name=$1 value=$2
  if grep -qE "^#? ?$name=" "$ENV_FILE"; then
    NAME=$name VALUE=$value python3 - "$ENV_FILE" <<'EOF'
import os, re, sys
path, name, value = sys.argv[1], os.environ["NAME"], os.environ["VALUE"]
lines = open(path).read().splitlines()
done = False
for i, line in enumerate(lines):
    if re.match(rf"^#? ?{name}=", line) and not done:
        lines[i] = f"{name}={value}"
        done = True
    elif re.match(rf"^{name}=", line):
        lines[i] = "# " + line  # a later duplicate would win in compose; keep one
open(path, "w").write("\n".join(lines) + "\n")
EOF
  else
    printf '%s=%s\n' "$name" "$value" >> "$ENV_FILE"
  fi
}

hostport() {  # a published port (PORT or ADDRESS:PORT) as HOST:PORT to connect to
  case "$1" in *:*) echo "$1" ;; *) echo "localhost:$1" ;; esac
}

random_hex() { python3 -c 'import secrets; print(secrets.token_hex(16))'; }

compose_cli() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null; then
    COMPOSE=(docker-compose)
  else
    return 1
  fi
}

compose_files() {  # -f FILE for each file of COMPOSE_FILE in .env (compose.yaml alone by default)
  local files file
  files=$(env_get COMPOSE_FILE)
  IFS=: read -r -a files <<< "${files:-compose.yaml}"
  for file in "${files[@]}"; do printf -- '-f\n%s\n' "$file"; done
}

compose() {
  local files
  mapfile -t files < <(compose_files)
  (cd compose && "${COMPOSE[@]}" "${files[@]}" "$@")
}

make_tls() {  # a private CA and a certificate for Redis, once; named in .env
  local dir=$ROOT/compose/.tls certs=$ROOT/compose/.tls/redis names host extra
  if [ ! -s "$certs/redis.crt" ]; then
    command -v openssl >/dev/null || die "--tls needs openssl (apt-get install openssl)"
    host=$(hostname -f 2>/dev/null || hostname)
    names="DNS:redis,DNS:localhost,IP:127.0.0.1,DNS:$host"
    local extras=${TLS_HOSTNAMES:-}
    for extra in ${extras//,/ }; do
      case "$extra" in *[!0-9.]*) names="$names,DNS:$extra" ;; *) names="$names,IP:$extra" ;; esac
    done
    (
      umask 077
      mkdir -p "$certs"
      chmod 700 "$dir"      # the CA's key stays here, unreadable by others on this host
      chmod 755 "$certs"    # mounted into the redis container, whose user must read redis.key
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
        -subj "/CN=facepipe private CA ($host)" -keyout "$dir/ca.key" -out "$certs/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null || die "openssl could not make the CA"
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=redis" \
        -keyout "$certs/redis.key" -out "$dir/redis.csr" 2>/dev/null || die "openssl could not make Redis's key"
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n%s\n' \
        "$names" "authorityKeyIdentifier=keyid" > "$dir/redis.ext"
      openssl x509 -req -in "$dir/redis.csr" -CA "$certs/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -CAserial "$dir/ca.srl" \
        -days 825 -extfile "$dir/redis.ext" -out "$certs/redis.crt" 2>/dev/null \
        || die "openssl could not sign Redis's certificate"
      chmod 644 "$certs/ca.crt" "$certs/redis.crt" "$certs/redis.key"
      rm -f "$dir/redis.csr"
    )
    say "made a private CA and a certificate for Redis ($names) in $certs"
  fi
  env_set COMPOSE_FILE compose.yaml:tls.yaml
  env_set TLS_DIR "$certs"
  env_set FACEPIPE_TLS_CA_CERTS "$certs/ca.crt"
  local password port
  password=$(env_get REDIS_PASSWORD) port=$(hostport "$(env_get REDIS_HOST_PORT)")
  env_set FACEPIPE_BROKER_URL "rediss://:$password@$port/0"
  env_set FACEPIPE_BROKER "rediss://:$password@$port/0"
}

ensure_engine() {
  if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
      || die "no Docker engine answers (docker info); start one, or run this as root on Debian to get one"
    bash scripts/docker-engine.sh start
  fi
  if ! compose_cli; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
      || die "neither 'docker compose' nor 'docker-compose' is installed"
    bash scripts/docker-engine.sh install
    compose_cli || die "no compose after installing docker-compose"
  fi
}

write_env() {  # compose/.env from .env.example, the environment and fresh passwords
  local redis_password flower_password videos outputs crops uid gid name
  redis_password=${REDIS_PASSWORD:-$(random_hex)}
  flower_password=${FLOWER_PASSWORD:-$(random_hex)}
  if [ -d ../shared/data/videos ]; then videos=$(realpath ../shared/data/videos); else videos=$ROOT/facepipe-runs/cluster/videos; fi
  outputs=$ROOT/facepipe-runs/cluster/outputs
  crops=$ROOT/facepipe-runs/cluster/faces
  uid=$(id -u) gid=$(id -g)
  if [ "$uid" = 0 ]; then uid=10001 gid=10001; fi  # root: keep the image's own non-root user
  sed -e "s/change-me-to-a-long-random-hex-string/$redis_password/g" \
      -e "s/^FLOWER_PASSWORD=.*/FLOWER_PASSWORD=$flower_password/" \
      -e "s#@queuehost:6379/#@$(hostport "${REDIS_HOST_PORT:-6379}")/#" \
      -e "s#^VIDEO_DIR=.*#VIDEO_DIR=$videos#" \
      -e "s#^OUTPUT_DIR=.*#OUTPUT_DIR=$outputs#" \
      -e "s#^CROPS_DIR=.*#CROPS_DIR=$crops#" \
      -e "s/^WORKER_UID=.*/WORKER_UID=$uid/" \
      -e "s/^WORKER_GID=.*/WORKER_GID=$gid/" \
      compose/.env.example > "$ENV_FILE"
  chmod 600 "$ENV_FILE"
  # Whatever the caller set in the environment wins.
  for name in $(sed -nE 's/^#? ?([A-Z][A-Z0-9_]*)=.*/\1/p' compose/.env.example | sort -u); do
    if [ -n "${!name+x}" ]; then env_set "$name" "${!name}"; fi
  done
  say "wrote $ENV_FILE (passwords are in it)"
}

choose_images() {
  local base redis
  base=${BASE_IMAGE:-$(env_get BASE_IMAGE)}
  redis=${REDIS_IMAGE:-$(env_get REDIS_IMAGE)}
  local local_images=${FACEPIPE_LOCAL_IMAGES:-0}
  case "$base$redis" in *facepipe-base:*|*facepipe-redis:*) local_images=1 ;; esac
  if [ "$local_images" != 1 ]; then
    for image in "${base:-python:3.11-slim}" "${redis:-redis:7}"; do
      if ! docker image inspect "$image" >/dev/null 2>&1 && ! docker pull -q "$image" >/dev/null 2>&1; then
        say "cannot pull $image (no image registry?): building local images from Debian's packages"
        local_images=1
        break
      fi
    done
  fi
  if [ "$local_images" = 1 ]; then
    local line
    while read -r line; do
      env_set "${line%%=*}" "${line#*=}"
    done < <(bash scripts/local-images.sh)
  fi
}

wait_healthy() {
  local deadline=$((SECONDS + ${CLUSTER_WAIT:-240})) ids states bad
  say "waiting for every container to be healthy (workers' first health check runs after 30 s)"
  while :; do
    ids=$(compose ps -q)
    [ -n "$ids" ] || die "no containers are running"
    # shellcheck disable=SC2086
    states=$(docker inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' $ids)
    bad=$(awk '$2 != "running" || $3 == "unhealthy"' <<< "$states")
    if [ -n "$bad" ]; then
      compose logs --tail 30 >&2 || true
      die "not running or unhealthy: $bad"
    fi
    if ! awk '$3 != "healthy" && $3 != "none" { found = 1 } END { exit !found }' <<< "$states"; then
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      compose logs --tail 30 >&2 || true
      die "not healthy after ${CLUSTER_WAIT:-240} s: $(awk '$3 != "healthy"' <<< "$states" | tr '\n' ' ')"
    fi
    sleep 2
  done
}

up() {
  local tls=0
  for arg in "$@"; do
    case "$arg" in --tls) tls=1 ;; *) die "unknown option for up: $arg (only --tls)" ;; esac
  done
  ensure_engine
  [ -f "$ENV_FILE" ] || write_env
  [ "$tls" = 1 ] && make_tls
  choose_images
  local outputs crops uid gid
  outputs=$(env_get OUTPUT_DIR) crops=$(env_get CROPS_DIR) uid=$(env_get WORKER_UID) gid=$(env_get WORKER_GID)
  mkdir -p "$(env_get VIDEO_DIR)" "$outputs" "$crops"
  if [ "$(id -u)" = 0 ] && [ "${uid:-10001}" != 0 ]; then
    chown "${uid:-10001}:${gid:-10001}" "$outputs" "$crops"  # the writer and `cli` write there
  fi
  local started=$SECONDS
  say "building and starting with ${COMPOSE[*]}: ${DETECT_SCALE:-2} detect, ${EMBED_SCALE:-1} embed, 1 writer"
  # One build: every facepipe service runs the same image (`up --build` would have
  # docker-compose 1.29 build it once per service, from the cache after the first).
  compose build flower
  compose up -d --scale "detect=${DETECT_SCALE:-2}" --scale "embed=${EMBED_SCALE:-1}"
  # Worker images of earlier builds, untagged by this one (the dependencies' layers stay cached).
  docker image prune -f --filter label=org.facepipe.image=worker >/dev/null || true
  wait_healthy
  local broker flower_port scheme=redis tls_flag=""
  broker=$(env_get REDIS_HOST_PORT) flower_port=$(env_get FLOWER_HOST_PORT)
  broker=$(hostport "${broker:-6379}") flower_port=$(hostport "${flower_port:-5555}")
  if [ -n "$(env_get TLS_DIR)" ]; then
    scheme=rediss tls_flag=" --tls-ca-certs $(env_get TLS_DIR)/ca.crt"
  fi
  say "up in $((SECONDS - started)) s (project $(env_get COMPOSE_PROJECT_NAME)${tls_flag:+, Redis on TLS only})"
  cat >&2 <<EOF
  Flower:  http://$flower_port  (user $(env_get FLOWER_USER), password FLOWER_PASSWORD in $ENV_FILE)
  submit:  .venv/bin/facepipe run $(env_get VIDEO_DIR)/VIDEO.mp4 --out $outputs/NAME \\
               --broker $scheme://:$(env_get REDIS_PASSWORD)@$broker/0$tls_flag
           (crops: --save-images --save-dir $crops/NAME; the writer writes them as uid $(env_get WORKER_UID))
      or:  cd compose && ${COMPOSE[*]} run --rm cli run $(env_get VIDEO_DIR)/VIDEO.mp4 --out $outputs/NAME --save-images
  scale:   cd compose && ${COMPOSE[*]} up -d --scale detect=4 --scale embed=2   (never the writer)
  status:  scripts/cluster.sh status
  stop:    scripts/cluster.sh down        (down -v also deletes Redis's data)
EOF
}

status() {
  compose_cli || die "neither 'docker compose' nor 'docker-compose' is installed"
  docker info >/dev/null 2>&1 || die "no Docker engine answers"
  [ -f "$ENV_FILE" ] || die "no $ENV_FILE: the cluster was never started (scripts/cluster.sh up)"
  compose ps
  if [ -n "$(compose ps -q flower 2>/dev/null)" ]; then
    compose exec -T flower celery -A tasks status || true
    compose exec -T flower facepipe runs || true
  fi
}

down() {
  compose_cli || die "neither 'docker compose' nor 'docker-compose' is installed"
  docker info >/dev/null 2>&1 || die "no Docker engine answers"
  [ -f "$ENV_FILE" ] || die "no $ENV_FILE: the cluster was never started (scripts/cluster.sh up)"
  compose down --remove-orphans "$@"
  if bash scripts/docker-engine.sh status 2>&1 | grep -q "started by this script"; then
    say "the engine scripts/docker-engine.sh started is still running: scripts/docker-engine.sh stop"
  fi
}

case "${1:-}" in
  up) shift; up "$@" ;;
  status) shift; status "$@" ;;
  down) shift; down "$@" ;;
  *) echo "usage: $0 up [--tls]|status|down [-v]" >&2; exit 2 ;;
esac
