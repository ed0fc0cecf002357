#!/usr/bin/env bash
# Every image the project runs, built on this machine from Debian's packages alone: no
# registry but Debian's mirror and PyPI (through the host's pip) is needed.
#
#   deploy/images/build.sh [engine] [base] [wheels] [app] [kafka] [postgres] [all]   (default: all)
#
#   engine    a running Docker engine (deploy/images/engine.sh: installs and starts it)
#   base      checkout-saga/debian:bookworm, a Debian 12 minbase root made by debootstrap and
#             imported with `docker import`; the root's tarball is kept in the cache, so a
#             machine whose /var/lib/docker was wiped imports it again in seconds
#   wheels    deploy/images/wheelhouse/: this project's wheel and its dependencies' wheels,
#             built on the host with the venv's pip and pinned to the versions in the venv
#             (HTTPS from inside a container may not trust this machine's TLS set-up)
#   app       checkout-saga:local from ./Dockerfile (needs base + wheels)
#   kafka     checkout-saga/kafka:4.1.1: a JRE and the broker jars `saga stack up` fetches
#   postgres  checkout-saga/postgres:15: Debian's PostgreSQL 15 with deploy/postgres-init.sql
#
# Every step reuses what it can: an image whose inputs did not change is a cache hit of the
# legacy builder (Debian's docker.io has no BuildKit front end for this client).
# Image names come from deploy/images/local.env; CHECKOUT_BASE_IMAGE names the base.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="${ROOT}/deploy/images"
PY=${PYTHON:-${ROOT}/.venv/bin/python}
CACHE=${SAGA_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/checkout-saga}
BASE_IMAGE=${CHECKOUT_BASE_IMAGE:-checkout-saga/debian:bookworm}
# shellcheck source=local.env
source "${HERE}/local.env"
export DOCKER_BUILDKIT=0 # the legacy builder: BuildKit needs a buildx plugin Debian lacks

t0=$(date +%s)
say() { printf 'images: %s (%ss)\n' "$*" "$(( $(date +%s) - t0 ))" >&2; }
die() { printf 'images: %s\n' "$*" >&2; exit 1; }

# Our images carry this label, so that cleaning up touches nothing else on the machine.
LABEL=org.checkout-saga.image

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build() { # build NAME CONTEXT [docker build args...]
  local name=$1 context=$2
  shift 2
  say "building ${name}"
  local log
  log=$(mktemp)
  if ! docker build --force-rm --label "${LABEL}=${name%%:*}" --build-arg "BASE_IMAGE=${BASE_IMAGE}" \
    -t "${name}" "$@" "${context}" >"${log}" 2>&1; then
    tail -n 40 "${log}" >&2
    rm -f "${log}"
    die "building ${name} failed (the lines above are the end of docker build's output)"
  fi
  # One line per step that did work, so that a cache miss shows where the time went.
  grep -E '^Step [0-9]+/' "${log}" | sed 's/^/  /' >&2 || true
  rm -f "${log}"
  # The image this tag replaced is now dangling: remove ours, leave everyone else's.
  docker image prune -f --filter "label=${LABEL}=${name%%:*}" >/dev/null
  # A multi-stage build leaves its build stage untagged: keep the newest (the next build's
  # cache), remove the older ones (the list is newest first).
  docker images -q --filter dangling=true --filter label=org.checkout-saga.stage=build |
    tail -n +2 | xargs -r docker rmi >/dev/null 2>&1 || true
}

debian_mirror() {
  # The mirror this machine's apt uses (a deb line or a deb822 URIs field ending in /debian),
  # else Debian's CDN; DEBIAN_MIRROR overrides both.
  if [[ -n ${DEBIAN_MIRROR:-} ]]; then
    echo "${DEBIAN_MIRROR%/}"
    return
  fi
  local found
  found=$(grep -rhoE 'https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ \
    2>/dev/null | head -n 1 | tr -d ' ') || true
  echo "${found:-http://deb.debian.org/debian}" | sed 's:/$::'
}

step_engine() { "${HERE}/engine.sh"; }

step_base() {
  if image_exists "${BASE_IMAGE}"; then
    say "${BASE_IMAGE} is there ($(docker image inspect -f '{{index .Config.Labels "org.debian.version"}}' "${BASE_IMAGE}"))"
    return
  fi
  local tarball="${CACHE}/images/debian-bookworm-minbase.tar"
  if [[ ! -s ${tarball} ]]; then
    [[ $(id -u) == 0 ]] || die "debootstrap needs root to make the Debian base; run as root once"
    local mirror root
    mirror=$(debian_mirror)
    mkdir -p "${CACHE}/images"
    root=$(mktemp -d "${CACHE}/images/rootfs.XXXXXX")
    say "debootstrap bookworm from ${mirror} (once; the result is kept in ${tarball})"
    if ! debootstrap --variant=minbase bookworm "${root}" "${mirror}" >"${root}.log" 2>&1; then
      tail -n 20 "${root}.log" >&2
      rm -rf "${root}"
      die "debootstrap failed; is ${mirror} reachable? (DEBIAN_MIRROR chooses another)"
    fi
    slim_root "${root}" "${mirror}"
    tar --numeric-owner -C "${root}" -cf "${tarball}.tmp" .
    mv "${tarball}.tmp" "${tarball}"
    rm -rf "${root}" "${root}.log"
  fi
  local version
  version=$(tar -xOf "${tarball}" ./etc/debian_version)
  say "importing ${BASE_IMAGE} (Debian ${version})"
  docker import \
    -c "LABEL ${LABEL}=base org.debian.version=${version}" \
    -c 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["bash"]' \
    "${tarball}" "${BASE_IMAGE}" >/dev/null
}

slim_root() { # slim_root DIR MIRROR: what Debian's own slim images do, and apt for builds
  local root=$1 mirror=$2
  cat >"${root}/etc/apt/sources.list" <<EOF
deb ${mirror} bookworm main
deb ${mirror} bookworm-updates main
deb ${mirror}-security bookworm-security main
EOF
  # No docs, man pages or translations, now or in any later install.
  cat >"${root}/etc/dpkg/dpkg.cfg.d/01-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  cat >"${root}/etc/apt/apt.conf.d/01-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
  # Packages must not start their daemons inside a build (PostgreSQL's would).
  printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d"
  chmod 755 "${root}/usr/sbin/policy-rc.d"
  find "${root}/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  rm -rf "${root}"/usr/share/{man,info,locale}/* "${root}"/var/cache/apt/archives/*.deb \
    "${root}"/var/lib/apt/lists/* "${root}"/var/log/*.log "${root}/etc/hostname"
  : >"${root}/etc/resolv.conf"
}

step_wheels() {
  [[ -x ${PY} ]] || die "${PY} is missing: run \`make setup\` first (the wheels are built with the venv's pip)"
  local wh="${HERE}/wheelhouse" pins
  pins=$(mktemp)
  rm -rf "${wh}/deps" "${wh}/app"
  mkdir -p "${wh}/deps" "${wh}/app"
  # The versions the venv runs (and the tests passed with), so that the image runs the same.
  "${PY}" -m pip freeze --exclude-editable | grep -v '^checkout-saga' >"${pins}"
  say "building wheels into ${wh} (pinned to ${PY}'s versions)"
  if ! "${PY}" -m pip wheel --quiet --disable-pip-version-check -c "${pins}" -w "${wh}/deps" \
    "${ROOT}" >"${pins}.log" 2>&1; then
    tail -n 20 "${pins}.log" >&2
    rm -f "${pins}" "${pins}.log"
    die "pip wheel failed (PyPI unreachable, or a dependency without a wheel for this platform)"
  fi
  rm -f "${pins}" "${pins}.log"
  mv "${wh}"/deps/checkout_saga-*.whl "${wh}/app/"
  # name==version of every dependency wheel: the image installs exactly these.
  for w in "${wh}"/deps/*.whl; do
    basename "${w}" | awk -F- '{print $1 "==" $2}'
  done | sort >"${wh}/deps/requirements.txt"
  say "$(wc -l <"${wh}/deps/requirements.txt") dependency wheels and $(basename "${wh}"/app/*.whl)"
}

step_app() {
  image_exists "${BASE_IMAGE}" || step_base
  ls "${HERE}"/wheelhouse/app/*.whl >/dev/null 2>&1 || step_wheels
  build "${CHECKOUT_SAGA_IMAGE}" "${ROOT}" -f "${ROOT}/Dockerfile"
  # The promise of the image: any saga command runs in it.
  docker run --rm "${CHECKOUT_SAGA_IMAGE}" saga --help >/dev/null ||
    die "${CHECKOUT_SAGA_IMAGE} was built but \`saga --help\` fails in it"
}

kafka_libs() {
  # The jars `saga stack up` runs, fetched by its own code into the same cache (Maven, once).
  [[ -x ${PY} ]] || die "${PY} is missing: run \`make setup\` first"
  "${PY}" - <<'EOF'
from saga_cli.stack import check_prerequisites
from saga_cli.stack.kafka import fetch_jars, jars_ready
from eventing.settings import load_settings

settings = load_settings()
tools = check_prerequisites(kafka=False, maven=not jars_ready(settings), postgres=False)
print(fetch_jars(settings, tools, lambda line: print(line, file=__import__("sys").stderr)))
EOF
}

step_kafka() {
  image_exists "${BASE_IMAGE}" || step_base
  local libs version context
  libs=$(kafka_libs)
  version=${CHECKOUT_KAFKA_IMAGE##*:}
  [[ -f ${libs}/kafka_2.13-${version}.jar ]] ||
    die "${libs} holds no kafka_2.13-${version}.jar: the image tag in local.env and the jars disagree"
  # A context of its own: the jars live outside the work tree. Hard links when the cache is
  # on the same file system (no copy); identical bytes keep the COPY step a cache hit.
  context=$(mktemp -d)
  cp -R "${HERE}/kafka/." "${context}/"
  cp -al "${libs}" "${context}/libs" 2>/dev/null || cp -a "${libs}" "${context}/libs"
  build "${CHECKOUT_KAFKA_IMAGE}" "${context}" --build-arg "KAFKA_VERSION=${version}"
  rm -rf "${context}"
}

step_postgres() {
  image_exists "${BASE_IMAGE}" || step_base
  local context
  context=$(mktemp -d)
  cp -R "${HERE}/postgres/." "${context}/"
  cp "${ROOT}/deploy/postgres-init.sql" "${context}/"
  build "${CHECKOUT_POSTGRES_IMAGE}" "${context}"
  rm -rf "${context}"
}

steps=("$@")
(( ${#steps[@]} )) || steps=(all)
for s in "${steps[@]}"; do
  case ${s} in
    all) step_engine; step_base; step_wheels; step_app; step_kafka; step_postgres ;;
    engine | base | wheels | app | kafka | postgres) "step_${s}" ;;
    *) die "unknown step ${s}; steps: engine base wheels app kafka postgres all" ;;
  esac
done
say "done: $(docker images --filter "label=${LABEL}" --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -v '<none>' | tr '\n' ' ')"
