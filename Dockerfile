# The services and the `saga` CLI in one image: any saga command runs in it, e.g.
#   docker run --rm checkout-saga:local saga --help
#   docker run --rm -e SAGA_KAFKA_BOOTSTRAP_SERVERS=... -e SAGA_ORDER_DB_DSN=... checkout-saga:local saga run order
#
# Build it with `make images` (deploy/images/build.sh): that makes the Debian base image and
# the wheelhouse this file installs from, neither of which a registry has to provide.
#  - BASE_IMAGE is a Debian 12 (bookworm) minbase root imported locally; with Docker Hub in
#    reach, debian:bookworm-slim is the same system (--build-arg BASE_IMAGE=debian:bookworm-slim).
#  - deploy/images/wheelhouse/ holds this project's wheel and its dependencies' wheels,
#    built on the host with pinned versions: nothing is fetched from PyPI inside the build.
# Written for the legacy builder (Debian's docker.io has no BuildKit front end for the
# docker CLI): no RUN --mount, no heredocs.

ARG BASE_IMAGE=checkout-saga/debian:bookworm

# --- build: a virtualenv with the dependencies, then the project's wheel ---------------------
FROM ${BASE_IMAGE} AS build
# Marks this stage's image: the build script keeps the newest (its layers are the cache of the
# next build) and removes older ones.
LABEL org.checkout-saga.stage=build
# Debian's python3 (3.11 on bookworm); python3-venv brings pip for the installer venv only.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
# /opt/pip holds the installer; /opt/saga, the application venv, never gets pip or setuptools.
RUN python3 -m venv /opt/pip && python3 -m venv --without-pip /opt/saga
# Dependencies first, in a layer of their own: it stays cached while only the project changes.
COPY deploy/images/wheelhouse/deps/ /wheels/
RUN /opt/pip/bin/pip --python /opt/saga/bin/python install --quiet --no-index \
      --disable-pip-version-check --find-links /wheels -r /wheels/requirements.txt
COPY deploy/images/wheelhouse/app/ /dist/
RUN /opt/pip/bin/pip --python /opt/saga/bin/python install --quiet --no-index \
      --disable-pip-version-check --no-deps /dist/*.whl \
 && /opt/saga/bin/python -c "import saga_cli.main, order_svc.service, inventory_svc.service, payment_svc.service, fulfillment_svc.service"
COPY deploy/images/app/saga-healthcheck /opt/saga/bin/saga-healthcheck

# --- runtime: Debian's python3 and the venv; no pip, no compiler, no apt lists ---------------
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/saga \
      --shell /usr/sbin/nologin saga
COPY --from=build /opt/saga /opt/saga
# JSON logs (a container's output goes to a log driver, not a terminal); no .pyc writes into
# the root-owned venv at run time (pip compiled them at install).
ENV PATH=/opt/saga/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SAGA_LOG_FORMAT=json
USER saga
WORKDIR /home/saga
# The checkout API (order service); metrics and /healthz of the four services.
EXPOSE 8080 9101 9102 9103 9104
CMD ["saga", "--help"]
