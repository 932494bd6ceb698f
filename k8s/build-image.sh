#!/usr/bin/env bash
# Builds the DDSplit container image from the repository's Dockerfile without a container engine
# (buildah, chroot isolation, vfs storage: works as root on a plain Debian machine), then runs
# every binary inside the image as uid 65532 to prove its shared libraries are all there.
# Slow (minutes: it compiles DDSplit), so it is not part of the CI test run.
#
#   k8s/build-image.sh [--tag ddsplit:0.1.0] [--targets "ddsplit-fragstore ..."] [--archive FILE]
#
# --archive writes a docker-archive tarball for `kind load image-archive FILE` or
# `docker load -i FILE`. With Docker or Podman available, `docker build -t ddsplit:0.1.0 .` does
# the same as this script.
#
# The Dockerfile starts FROM debian:bookworm and debian:bookworm-slim. When those images are not
# in local storage (no registry but Debian's is reachable here), the script makes a stand-in for
# both with `debootstrap --variant=minbase bookworm` and tags it with both names.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^project(ddsplit VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
tag="ddsplit:${version}"
targets=""
archive=""
while (($#)); do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --targets) targets="$2"; shift 2 ;;
    --archive) archive="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [[ -z "$targets" ]]; then
  targets=$(sed -n 's/^ARG DDSPLIT_TARGETS="\(.*\)"$/\1/p' Dockerfile)
  # A tree without the gateway yet builds the rest.
  if ! grep -rqs "ddsplit-gateway" services/*/CMakeLists.txt; then
    echo "note: this tree defines no ddsplit-gateway target; building without it"
    targets=${targets//ddsplit-gateway/}
  fi
fi

for tool in buildah debootstrap; do
  if ! command -v "$tool" >/dev/null; then
    echo "installing $tool"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah debootstrap
  fi
done
bah() { buildah --storage-driver vfs "$@"; }

start=$(date +%s)
for base in docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim; do
  if bah inspect --type image "$base" >/dev/null 2>&1; then continue; fi
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/ddsplit-image
  mkdir -p "$cache"
  if [[ ! -f "$cache/bookworm-minbase.tar" ]]; then
    echo "=== debootstrap bookworm (minbase) as a local stand-in for debian:bookworm(-slim)"
    rootfs=$(mktemp -d)
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$rootfs" -cf "$cache/bookworm-minbase.tar" .
    rm -rf "$rootfs"
  fi
  ctr=$(bah from scratch)
  bah add "$ctr" "$cache/bookworm-minbase.tar" / >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
  bah commit --quiet "$ctr" "$base" >/dev/null
  bah rm "$ctr" >/dev/null
done
base_done=$(date +%s)

echo "=== building $tag (targets: $targets)"
bah bud --isolation chroot --pull=never --layers=false \
  --build-arg DDSPLIT_TARGETS="$targets" --build-arg VERSION="$version" \
  -t "$tag" -f Dockerfile .
built=$(date +%s)

echo "=== smoke test: every binary starts inside the image as uid 65532"
ctr=$(bah from --pull=never "$tag")
trap 'bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
run() { bah run --isolation chroot --user 65532:65532 "$ctr" -- "$@"; }
for target in $targets; do
  run "/usr/local/bin/$target" --help >/dev/null
  echo "ok: $target --help"
done
run /usr/local/bin/ddsplit-splitter --check-config \
  --store-template "{id}=tcp://fragstore-{id}.fragstore:7100,tcp://fragstore-{id}.fragstore:7101" \
  --store-count 6 --client-bind tcp://0.0.0.0:7200 --ack-bind tcp://0.0.0.0:7201 --admin-port 9090 \
  | head -c 200
echo
run /bin/sleep 0  # the preStop hooks run /bin/sleep
echo "ok: /bin/sleep"
bah inspect --type image --format '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}' "$tag"
bah images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -F "${tag%%:*}" || true

if [[ -n "$archive" ]]; then
  bah push "$tag" "docker-archive:${archive}:${tag}"
  echo "wrote $archive (kind load image-archive $archive)"
fi
echo "=== done: base images $((base_done - start)) s, image build $((built - base_done)) s"
