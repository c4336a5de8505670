#!/usr/bin/env bash
# Install redis-server (apt-get) if it is missing, then optionally start one on a loopback port.
#   scripts/redis.sh install          -> only make sure the binary exists
#   scripts/redis.sh start PORT [DIR] -> start a daemonized server on 127.0.0.1:PORT (data in DIR)
#   scripts/redis.sh stop PORT        -> shut that server down
# Tests and .ci/run use this so the incremental dedup index runs against a real Redis.
set -euo pipefail

ensure_installed() {
  if command -v redis-server >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "redis.sh: redis-server is missing and apt-get is unavailable; install Redis by hand" >&2
    return 1
  fi
  local sudo=""
  if [ "$(id -u)" != "0" ]; then sudo="sudo -n"; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server >/dev/null 2>&1
  } || {
    echo "redis.sh: apt-get could not install redis-server" >&2
    return 1
  }
  command -v redis-server >/dev/null 2>&1
}

cmd="${1:-install}"
case "$cmd" in
  install)
    ensure_installed
    command -v redis-server
    ;;
  start)
    port="${2:?usage: redis.sh start PORT [DIR]}"
    dir="${3:-$(mktemp -d)}"
    ensure_installed
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
      --dir "$dir" --pidfile "$dir/redis-$port.pid" --logfile "$dir/redis-$port.log"
    for _ in $(seq 50); do
      if redis-cli -p "$port" ping >/dev/null 2>&1; then echo "redis on 127.0.0.1:$port"; exit 0; fi
      sleep 0.1
    done
    echo "redis.sh: server on port $port did not answer; see $dir/redis-$port.log" >&2
    exit 1
    ;;
  stop)
    port="${2:?usage: redis.sh stop PORT}"
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: redis.sh install | start PORT [DIR] | stop PORT" >&2
    exit 2
    ;;
esac
