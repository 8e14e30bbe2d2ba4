#!/usr/bin/env bash
# Makes a Kubernetes network's keys, genesis and TLS material with muri-init
# (in the muri image, with the addresses and counts of the muri-init
# ConfigMap rendered in settings.yaml) and loads them into the cluster:
#   ConfigMap muri-genesis (genesis.txt), Secret muri-keys (one key file per
#   node, payer.key, user.key), Secret muri-tls (when TLS is on).
#
#   deploy/k8s/make-secrets.sh [--keep DIR] [IMAGE]   (default muri:dev; needs docker and kubectl)
#
# The material is made in a temporary folder, loaded, then wiped. --keep DIR
# keeps DIR/payer.key and DIR/user.key (0600: the funded accounts; the payer
# makes the admin API key, see docs/security.md), DIR/genesis.txt and
# DIR/ca.pem (with TLS on).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
keep=
if [ "${1:-}" = --keep ]; then
  keep=${2:?--keep needs a folder}
  shift 2
fi
image=${1:-muri:dev}
ns=$(awk '/^  name: / && !n {print $2; n=1}' "$here/namespace.yaml")
work=$(mktemp -d)
trap 'find "$work" -type f -exec shred -u {} + 2>/dev/null; rm -rf "$work"' EXIT
chmod 777 "$work"   # written by the image's unprivileged user
# the muri-init ConfigMap's data, as docker --env flags
envs=()
while IFS= read -r line; do envs+=(-e "$line"); done < <(
  awk '/name: muri-init/ {on=1} on && /^  MURI_INIT_/ {sub(/^  /, ""); sub(/: /, "="); gsub(/"/, ""); print}' \
    "$here/settings.yaml")
docker run --rm --user "$(id -u):$(id -g)" -e MURI_NET_DIR=/out "${envs[@]}" -v "$work:/out" "$image" muri-init
kubectl apply -f "$here/namespace.yaml"
kubectl -n "$ns" create configmap muri-genesis --from-file=genesis.txt="$work/genesis.txt" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$ns" create secret generic muri-keys --from-file="$work/keys" --dry-run=client -o yaml |
  kubectl apply -f -
if [ -d "$work/tls" ]; then
  kubectl -n "$ns" create secret generic muri-tls --from-file="$work/tls" --dry-run=client -o yaml |
    kubectl apply -f -
fi
if [ -n "$keep" ]; then
  install -d -m 700 "$keep"
  install -m 600 "$work/keys/payer.key" "$work/keys/user.key" "$keep/"
  install -m 644 "$work/genesis.txt" "$keep/genesis.txt"
  [ -f "$work/tls/ca.pem" ] && install -m 644 "$work/tls/ca.pem" "$keep/ca.pem"
  echo "kept payer.key, user.key, genesis.txt and ca.pem in $keep"
fi
echo "made muri-genesis and muri-keys (and muri-tls with TLS on) in namespace $ns"
