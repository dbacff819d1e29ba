#
# A Redis image from Debian's redis-server, for hosts that cannot pull `redis:7`
# (no image registry). It behaves like redis:7 for compose.yaml: `redis-server` and
# `redis-cli` on PATH, data in /data, runs as the unprivileged `redis` user.
# scripts/cluster.sh builds it on its local base and sets REDIS_IMAGE; by hand:
#
#     docker build -t facepipe-redis --build-arg BASE_IMAGE=debian:bookworm-slim - < compose/redis.Dockerfile
#
# (no build context is needed). A base that already has redis-server installs nothing.

ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

RUN if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends redis-server \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && mkdir -p /data && chown redis:redis /data

# The named volume mounted here starts as a copy of this folder, owned by redis.
VOLUME /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--dir", "/data"]
