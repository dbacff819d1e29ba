#!/usr/bin/env bash
# A Docker engine on a Debian host without one, for scripts/cluster.sh and
# tests/test_compose_live.py. Needs root and apt-get.
#
#   scripts/docker-engine.sh install   Debian's docker.io (dockerd, containerd, runc),
#                                      docker-compose and mmdebstrap, when missing
#   scripts/docker-engine.sh start     start dockerd (installing first) unless an engine
#                                      already answers; remembers that it started it
#   scripts/docker-engine.sh stop      stop the dockerd that `start` started, with its
#                                      containerd; never an engine it did not start
#   scripts/docker-engine.sh status
#
# The engine is started with --iptables=false --ip-forward=false: it leaves the host's
# firewall rules and IP forwarding as they were. Containers reach each other (compose
# networks and their DNS work) and ports published on this host, but not other hosts;
# cluster.sh's local images need nothing from outside. Images stay in /var/lib/docker
# after `stop` (the cache of the next start).
set -euo pipefail

STATE=${FACEPIPE_DOCKER_STATE:-/run/facepipe-docker}
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
PACKAGES=(docker.io docker-compose mmdebstrap)

say() { echo "docker-engine: $*" >&2; }
die() { say "$*"; exit 1; }

engine_answers() { docker info >/dev/null 2>&1; }

our_dockerd() {  # the pid of the dockerd `start` started, if it is still running
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q '^dockerd ' && echo "$pid"
}

need_root() {
  [ "$(id -u)" = 0 ] || die "$1 needs root (and apt-get); run it as root, or start a Docker engine yourself"
  command -v apt-get >/dev/null || die "$1 needs apt-get (a Debian or Ubuntu host)"
}

install() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root install
  mkdir -p "$STATE"
  say "installing ${missing[*]} with apt-get (log: $STATE/apt.log)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
          --no-install-recommends "${PACKAGES[@]}"; } > "$STATE/apt.log" 2>&1; then
    tail -n 20 "$STATE/apt.log" >&2
    die "apt-get could not install ${missing[*]}; full log: $STATE/apt.log"
  fi
}

start() {
  if engine_answers; then
    say "an engine is already running ($(docker info --format '{{.ServerVersion}}' 2>/dev/null)); using it"
    return 0
  fi
  need_root start
  install
  command -v docker >/dev/null || die "no docker client on PATH"
  mkdir -p "$STATE"
  # Remember whether docker0 was there, so that `stop` removes only a bridge it made.
  if ! command -v ip >/dev/null || ip link show docker0 >/dev/null 2>&1; then echo yes > "$STATE/docker0-existed"; else echo no > "$STATE/docker0-existed"; fi
  say "starting dockerd (log: $LOG)"
  setsid dockerd --iptables=false --ip-forward=false > "$LOG" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$PIDFILE"
  for _ in $(seq 120); do
    sleep 0.5
    engine_answers && { say "dockerd is up (pid $pid)"; return 0; }
    [ -d "/proc/$pid" ] || break  # (its command line is the forked shell's until it execs dockerd)
  done
  tail -n 20 "$LOG" >&2
  stop || true
  die "dockerd did not start; full log: $LOG"
}

stop() {
  local pid children
  if ! pid=$(our_dockerd); then
    rm -f "$PIDFILE"
    say "no dockerd started by this script is running; nothing to stop"
    return 0
  fi
  children=$(pgrep -P "$pid" || true)  # its containerd
  kill -TERM "$pid"
  for _ in $(seq 120); do
    [ -d "/proc/$pid" ] || break
    sleep 0.5
  done
  if [ -d "/proc/$pid" ]; then
    say "dockerd (pid $pid) ignored SIGTERM for 60 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  for child in $children; do
    if [ -d "/proc/$child" ]; then
      kill -TERM "$child" 2>/dev/null || true
      sleep 2
      kill -KILL "$child" 2>/dev/null || true
    fi
  done
  # Shims of containers that outlived the engine (none after a clean `down`).
  for shim in $(pgrep -f 'containerd-shim.*-namespace moby' || true); do
    say "removing a leftover container shim (pid $shim)"
    kill -KILL "$shim" 2>/dev/null || true
  done
  if [ "$(cat "$STATE/docker0-existed" 2>/dev/null)" = no ] && ip link show docker0 >/dev/null 2>&1; then
    ip link delete docker0 2>/dev/null || true
  fi
  rm -f "$PIDFILE" "$STATE/docker0-existed"
  say "dockerd stopped"
}

status() {
  local pid
  if pid=$(our_dockerd); then
    say "running: dockerd pid $pid, started by this script (log: $LOG)"
  elif engine_answers; then
    say "running: an engine this script did not start"
  else
    say "not running"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
