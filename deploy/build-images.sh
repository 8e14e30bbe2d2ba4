#!/usr/bin/env bash
# Builds muri's container images on a machine with a Docker engine and no
# registry:
#   1. the base image (a Debian bookworm minbase, like debian:bookworm-slim),
#      made with mmdebstrap from this machine's own apt configuration (read
#      now; no mirror is named in the repository) and `docker import`ed, unless
#      it exists already;
#   2. faiss, built once outside the clone by scripts/setup.sh --deps (the
#      same cache the host build uses; MURI_FAISS_VERSION picks the version
#      as there) and sent in the build context;
#   3. deploy/Dockerfile (muri-ledger, muri-indexer, muri-gateway, muri) and
#      deploy/prometheus.Dockerfile (Debian's prometheus).
#
#   deploy/build-images.sh [--tag TAG] [--base NAME:TAG] [--no-prometheus]
#
# Images: muri:TAG and muri-prometheus:TAG (TAG defaults to "dev"; env
# MURI_IMAGE_TAG). Builds run under nice. Re-running with nothing changed
# takes seconds (every layer is cached).
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
tag=${MURI_IMAGE_TAG:-dev}
base=${MURI_BASE_IMAGE:-muri-base:bookworm}
prometheus=1
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --no-prometheus) prometheus=0; shift ;;
    *) echo "usage: $0 [--tag TAG] [--base NAME:TAG] [--no-prometheus]" >&2; exit 2 ;;
  esac
done

say() { printf 'build-images: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# This machine's Debian entries for the base's suite, as deb822 stanzas: the
# deb stanzas of /etc/apt/sources.list.d/*.sources whose suites name the
# suite, and the matching one-line entries of /etc/apt/sources.list.
apt_sources() {
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk -v cn="$suite" '
      function flush() {
        if (stanza != "" && isdeb && hascn) { print stanza; print "" }
        stanza = ""; isdeb = 0; hascn = 0
      }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      {
        if ($1 == "Types:") { isdeb = 0; for (i = 2; i <= NF; i++) if ($i == "deb") isdeb = 1; $0 = "Types: deb" }
        if ($1 == "Suites:") { for (i = 2; i <= NF; i++) if (index($i, cn) == 1) hascn = 1 }
        stanza = stanza (stanza == "" ? "" : "\n") $0
      }
      END { flush() }' "$f"
  done
  if [ -f /etc/apt/sources.list ]; then
    awk -v cn="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if (index($i, cn) == 1) { print; break } }' \
      /etc/apt/sources.list
  fi
}

make_base() {
  local suite=bookworm
  if docker image inspect "$base" >/dev/null 2>&1; then return; fi
  command -v mmdebstrap >/dev/null || {
    say "installing mmdebstrap"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >&2
  }
  local work; work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  apt_sources "$suite" > "$work/debian.sources"
  [ -s "$work/debian.sources" ] || { say "no $suite entry in this machine's apt configuration"; return 1; }
  # one-line entries and deb822 stanzas cannot share a file
  if grep -q '^deb ' "$work/debian.sources"; then
    grep '^deb ' "$work/debian.sources" > "$work/debian.list"; : > "$work/debian.sources"
  fi
  say "making $base with mmdebstrap (minbase $suite, no docs or man pages); about 2 minutes"
  # like debian:*-slim: no documentation, man pages or locales but C
  as_root nice -n 10 mmdebstrap --variant=minbase --quiet \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --aptopt='APT::Install-Recommends "false"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$suite" "$work/base.tar" - < <(cat "$work"/debian.list "$work"/debian.sources 2>/dev/null)
  docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$work/base.tar" "$base" >/dev/null
  say "made $base ($(du -h "$work/base.tar" | cut -f1) tar)"
}

make_base
faiss_dir=$(bash "$root/scripts/setup.sh" --deps | tail -n1)
[ -f "$faiss_dir/.complete" ] || { say "no faiss build in $faiss_dir"; exit 1; }

# The build context: the source tree as git sees it (tracked and new files,
# not what .gitignore names: build folders), without the Python tests (the
# image's build needs none of them: editing them leaves the compile layer
# cached), and the faiss build under faiss/.
context_tar() {
  local out=$1
  (cd "$root" && git ls-files -co --exclude-standard -z | grep -zv '^tests/\(python\|deploy\)/' |
     tar --null -T - -cf "$out")
  tar -rf "$out" -C "$faiss_dir" --transform 's,^\.,faiss,' .
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
context_tar "$work/context.tar"
say "building muri:$tag"
nice -n 10 docker build --build-arg BASE="$base" -f deploy/Dockerfile -t "muri:$tag" - < "$work/context.tar" >&2
if [ "$prometheus" = 1 ]; then
  say "building muri-prometheus:$tag"
  tar -cf - -C "$root/deploy" prometheus.Dockerfile |
    nice -n 10 docker build --build-arg BASE="$base" -f prometheus.Dockerfile -t "muri-prometheus:$tag" - >&2
fi
[ "$prometheus" = 1 ] && say "done: muri:$tag muri-prometheus:$tag" || say "done: muri:$tag"
