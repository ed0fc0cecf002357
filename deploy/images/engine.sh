#!/usr/bin/env bash
# A Docker engine that answers, on a machine that may have none yet: install docker.io,
# docker-compose and debootstrap from the distribution's packages when they are missing (as
# root, with apt-get), then start dockerd in the background when nothing answers `docker info`.
# PID 1 on these machines is not systemd, so nothing else would start it.
#
#   deploy/images/engine.sh            make sure the engine runs (idempotent; prints what it did)
#   deploy/images/engine.sh --started  the same, then print "started" if this call started
#                                      dockerd (CI uses it to stop only what it started)
#
# The daemon is left running: images and their layer cache live in /var/lib/docker and the
# next build reuses them. Its log: $DOCKERD_LOG (default /var/log/checkout-saga-dockerd.log).
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/checkout-saga-dockerd.log}
say() { printf 'engine: %s\n' "$*" >&2; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if (( ${#missing[@]} )); then
  # Unique names, in order: docker.io may be listed twice.
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    say "missing: ${missing[*]}; install them (Debian/Ubuntu: apt-get install ${missing[*]}) and run again"
    exit 1
  fi
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

started=no
if ! docker info >/dev/null 2>&1; then
  if [[ $(id -u) != 0 ]]; then
    say "no Docker engine answers and only root can start one here: start dockerd" \
      "(as root: dockerd &), or join the docker group of a running one, and run again"
    exit 1
  fi
  say "starting dockerd (log: ${DOCKERD_LOG})"
  # setsid + nohup: the daemon outlives this script, make, and a Ctrl-C in the terminal.
  setsid nohup dockerd --log-level=warn >>"${DOCKERD_LOG}" 2>&1 </dev/null &
  deadline=$(( $(date +%s) + 60 ))
  until docker info >/dev/null 2>&1; do
    if (( $(date +%s) > deadline )); then
      say "dockerd did not answer within 60 s; last lines of ${DOCKERD_LOG}:"
      tail -n 20 "${DOCKERD_LOG}" >&2
      exit 1
    fi
    sleep 0.5
  done
  started=yes
fi
say "docker $(docker version --format '{{.Server.Version}}') answers; $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"
if [[ ${1:-} == --started && $started == yes ]]; then
  echo started
fi
