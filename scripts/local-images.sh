#!/usr/bin/env bash
# Build, without any image registry, what compose/ needs on a host that cannot pull
# python:3.11-slim or redis:7:
#
#   1. a base image from Debian's own packages (mmdebstrap, then `docker import`):
#      Python 3.11 with venv, the libraries OpenCV links (libGL, glib), CA certificates
#      and redis-server; cached by tag (facepipe-base:bookworm-HASH of this recipe);
#   2. a Redis image on that base (compose/redis.Dockerfile);
#   3. a wheelhouse in compose/wheels/: every package of .venv as a wheel (`pip wheel`
#      of `pip freeze`), so compose/Dockerfile installs the very versions the host runs,
#      offline; cached in ~/.cache/facepipe/docker/wheels-HASH (HASH of the freeze).
#
# Prints BASE_IMAGE=... and REDIS_IMAGE=... on stdout (everything else goes to stderr),
# the values scripts/cluster.sh writes to compose/.env. Needs a running engine, and root
# with mmdebstrap for step 1 (scripts/docker-engine.sh install). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm              # Debian 12: Python 3.11, the wheels' ABI (cp311)
PYTHON_VERSION=3.11
PACKAGES=python3,python3-venv,ca-certificates,libgl1,libglib2.0-0,redis-server
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${FACEPIPE_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/facepipe/docker}
PATH_IN_IMAGE=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "local-images: $*" >&2; }
die() { say "$*"; exit 1; }
hash_of() { sha256sum | cut -c1-12; }

mkdir -p "$CACHE"
docker info >/dev/null 2>&1 || die "no Docker engine answers (scripts/docker-engine.sh start)"

# ---- 1. base image ---------------------------------------------------------------------
recipe=$(printf '%s\n' "$SUITE" "$PACKAGES" "$PATH_IN_IMAGE" "mmdebstrap-nodoc" | hash_of)
BASE_IMAGE=facepipe-base:$SUITE-$recipe
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "base image $BASE_IMAGE (cached)"
else
  [ "$(id -u)" = 0 ] || die "building the base image needs root (mmdebstrap)"
  command -v mmdebstrap >/dev/null || bash scripts/docker-engine.sh install
  tarball=$(mktemp --suffix=.tar /var/tmp/facepipe-rootfs.XXXXXX)
  trap 'rm -f "$tarball"' EXIT
  say "building $BASE_IMAGE with mmdebstrap from $MIRROR (log: $CACHE/mmdebstrap.log)"
  started=$SECONDS
  # minbase: Essential packages and apt, plus ours; no docs or man pages; apt's caches
  # and lists are left out of the tarball (mmdebstrap's own clean-up).
  if ! mmdebstrap --variant=minbase --include="$PACKAGES" \
       --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
       --dpkgopt='path-exclude=/usr/share/info/*' \
       "$SUITE" "$tarball" "$MIRROR" > "$CACHE/mmdebstrap.log" 2>&1; then
    tail -n 20 "$CACHE/mmdebstrap.log" >&2
    die "mmdebstrap failed; full log: $CACHE/mmdebstrap.log"
  fi
  docker import --change "ENV PATH=$PATH_IN_IMAGE" --change "ENV LANG=C.UTF-8" --change 'CMD ["bash"]' \
      "$tarball" "$BASE_IMAGE" >/dev/null
  rm -f "$tarball"
  trap - EXIT
  say "base image $BASE_IMAGE built in $((SECONDS - started)) s"
fi

# ---- 2. Redis image ----------------------------------------------------------------------
REDIS_IMAGE=facepipe-redis:$SUITE-$recipe
# Older recipes' images are of no further use (a Redis image first: it sits on its base).
for repo in facepipe-redis:"$REDIS_IMAGE" facepipe-base:"$BASE_IMAGE"; do
  for old in $(docker images --format '{{.Repository}}:{{.Tag}}' "${repo%%:*}" | grep -vx "${repo#*:}" || true); do
    docker rmi "$old" >/dev/null 2>&1 || true
  done
done
# Legacy builder, no context: the Dockerfile comes on stdin. Layer-cached after the first time.
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$REDIS_IMAGE" - \
  < compose/redis.Dockerfile >/dev/null 2> "$CACHE/redis-build.log" \
  || { cat "$CACHE/redis-build.log" >&2; die "could not build $REDIS_IMAGE"; }
say "redis image $REDIS_IMAGE"

# ---- 3. wheelhouse -------------------------------------------------------------------------
check_wheels() {  # a dry-run install of facepipe's dependencies in the base, from $1 alone
  docker run --rm --network none -v "$1:/wheels:ro" -v "$PWD/pyproject.toml:/src/pyproject.toml:ro" \
    "$BASE_IMAGE" sh -c 'python3 -m venv --without-pip /tmp/venv && cd /src && python3 -c "import tomllib
print(\"\\n\".join(tomllib.load(open(\"pyproject.toml\", \"rb\"))[\"project\"][\"dependencies\"]))" > /tmp/req.txt \
      && /tmp/venv/bin/python "$(ls /wheels/pip-*.whl | head -n 1)/pip" install --dry-run -q --no-index \
           --find-links /wheels -r /tmp/req.txt "setuptools>=68"' 2>&1
}
[ -x .venv/bin/python ] || bash scripts/setup.sh >&2
venv_version=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$venv_version" = "$PYTHON_VERSION" ] \
  || die ".venv runs Python $venv_version; the $SUITE base runs $PYTHON_VERSION, so its wheels would not fit (recreate .venv with PYTHON=python$PYTHON_VERSION scripts/setup.sh)"
freeze=$(.venv/bin/python -m pip freeze --exclude-editable | grep -viE '^facepipe( |=|@)' || true)
key=$(printf '%s\n%s\n' "$freeze" "$BASE_IMAGE" | hash_of)
wheels=$CACHE/wheels-$key
if [ -f "$wheels/.complete" ]; then
  say "wheelhouse $wheels (cached)"
else
  say "building the wheelhouse $wheels (pip wheel of .venv's packages; log: $CACHE/wheels.log)"
  rm -rf "$wheels.tmp"
  printf '%s\n' "$freeze" > "$CACHE/requirements-$key.txt"
  if ! .venv/bin/python -m pip wheel -q -w "$wheels.tmp" -r "$CACHE/requirements-$key.txt" \
       'setuptools>=68' wheel pip > "$CACHE/wheels.log" 2>&1; then
    tail -n 20 "$CACHE/wheels.log" >&2
    die "pip wheel failed; full log: $CACHE/wheels.log"
  fi
  # The base's own pip must find everything there, offline. Its Python (Debian's 3.11.2)
  # can need what the host's does not (a dependency under a python_full_version marker):
  # add each such requirement, built on the host, until nothing is missing.
  for _ in $(seq 10); do
    missing=$(check_wheels "$wheels.tmp" | sed -n 's/.*No matching distribution found for \([^;( ]*\).*/\1/p' | head -n 1 || true)
    [ -n "$missing" ] || break
    say "adding $missing, which the base's Python needs"
    .venv/bin/python -m pip wheel -q -w "$wheels.tmp" "$missing" >> "$CACHE/wheels.log" 2>&1 \
      || { tail -n 20 "$CACHE/wheels.log" >&2; die "pip wheel $missing failed"; }
  done
  if ! out=$(check_wheels "$wheels.tmp"); then
    echo "$out" | tail -n 20 >&2
    die "the wheelhouse does not install in $BASE_IMAGE"
  fi
  rm -rf "$wheels"
  mv "$wheels.tmp" "$wheels"
  touch "$wheels/.complete"
  # Only the newest wheelhouse is kept.
  for old in "$CACHE"/wheels-*; do
    [ "$old" = "$wheels" ] || rm -rf "$old"
  done
  rm -f "$CACHE"/requirements-*.txt
fi
find compose/wheels -maxdepth 1 -name '*.whl' -delete
cp -al "$wheels"/*.whl compose/wheels/ 2>/dev/null || cp "$wheels"/*.whl compose/wheels/
say "compose/wheels: $(find compose/wheels -maxdepth 1 -name '*.whl' | wc -l) wheels"

echo "BASE_IMAGE=$BASE_IMAGE"
echo "REDIS_IMAGE=$REDIS_IMAGE"
