#!/usr/bin/env bash
# The main command: installs what is missing (and Debian's
# dataset-fashion-mnist), builds muri, starts a local network in the
# background (`muri devnet up`: 4 ledger replicas, 3 indexers, a gateway),
# creates the collection "fashion", imports the 60,000 Fashion-MNIST training
# images (784-d, each with its label as metadata), shows a plain and a
# filtered search, then how to search it yourself and how to stop it.
# Run again, it finds the network and the data in place.
#
#   scripts/devnet.sh [--rows N]     import the first N images only
#   scripts/devnet.sh run [ARGS]     the foreground network with its demo; Ctrl-C stops it
# The devnet's folder is $MURI_DEVNET, default ~/.muri/devnet.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
muri="$root/build/tools/muri"
export OMP_WAIT_POLICY=passive

if [ "${1:-}" = run ]; then
  shift
  bash "$root/scripts/setup.sh" "$root/build" -Dtest_faults=false
  exec "$muri" devnet run "$@"
fi
rows=60000
while [ $# -gt 0 ]; do
  case $1 in
    --rows) rows=$2; shift 2 ;;
    *) echo "usage: scripts/devnet.sh [--rows N] | run [ARGS]" >&2; exit 2 ;;
  esac
done

MURI_EXTRA_PACKAGES=dataset-fashion-mnist bash "$root/scripts/setup.sh" "$root/build" -Dtest_faults=false
dir=${MURI_DEVNET:-$HOME/.muri/devnet}
say() { printf '\n== %s\n' "$*"; }

say "a local network in $dir"
"$muri" devnet up --dir "$dir"

# Debian ships the images as gzipped IDX files; muri imports .npy (uint8
# rows) with a .jsonl of metadata, one object per row.
src=$(dpkg -L dataset-fashion-mnist | grep '/train-images-idx3-ubyte.gz$' | head -1)
src=$(dirname "$src")
data="$dir/fashion"
mkdir -p "$data"
if [ ! -s "$data/train.npy" ] || [ ! -s "$data/query.json" ]; then
  say "converting $src to $data"
  python3 - "$src" "$data" <<'PY'
import gzip, json, struct, sys
src, out = sys.argv[1], sys.argv[2]
names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
def images(path):
    b = gzip.open(path).read()
    magic, n, r, c = struct.unpack(">IIII", b[:16])
    assert magic == 2051, path
    return n, r * c, b[16:]
def labels(path):
    b = gzip.open(path).read()
    assert struct.unpack(">I", b[:4])[0] == 2049, path
    return b[8:]
n, d, pix = images(f"{src}/train-images-idx3-ubyte.gz")
head = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
head += " " * (63 - (10 + len(head)) % 64) + "\n"
with open(f"{out}/train.npy.tmp", "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode() + pix)
with open(f"{out}/train.jsonl", "w") as f:
    for k in labels(f"{src}/train-labels-idx1-ubyte.gz"):
        f.write(json.dumps({"label": names[k], "class": k}) + "\n")
tn, td, tpix = images(f"{src}/t10k-images-idx3-ubyte.gz")
tl = labels(f"{src}/t10k-labels-idx1-ubyte.gz")
q = next(i for i in range(tn) if tl[i] == 7)  # the test set's first sneaker
json.dump({"label": names[tl[q]], "row": q, "vector": list(tpix[q * td:(q + 1) * td])}, open(f"{out}/query.json", "w"))
import os; os.rename(f"{out}/train.npy.tmp", f"{out}/train.npy")
PY
fi

if ! "$muri" collection describe fashion --dir "$dir" >/dev/null 2>&1; then
  say "collection fashion: 784-d, cosine distance, 4 fragments x 3 replicas"
  "$muri" collection create fashion --dim 784 --metric cosine --fragments 4 --dir "$dir" | head -1
fi
have=$("$muri" collection describe fashion --dir "$dir" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["vectors"])')
if [ "$have" -lt "$rows" ]; then
  say "importing $rows Fashion-MNIST images with their labels (resumes if interrupted)"
  "$muri" import "$data/train.npy" --metadata "$data/train.jsonl" --collection fashion --limit "$rows" --dir "$dir"
else
  say "fashion holds $have images already"
fi

query=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["vector"]))' "$data/query.json")
qlabel=$(python3 -c 'import json,sys; q=json.load(open(sys.argv[1])); print(q["label"], "(test image", q["row"], end=")")' "$data/query.json")
say "the 5 training images nearest to a $qlabel"
out=$("$muri" search fashion --vector "$query" --k 5 --dir "$dir")
printf '%s\n' "$out"
say "the same query, filtered to {\"label\": \"Sandal\"}"
"$muri" search fashion --vector "$query" --k 5 --filter '{"label": "Sandal"}' --dir "$dir"
first=$(printf '%s\n' "$out" | awk 'NR == 2 { print $3 }')

cat <<MSG

== search it yourself
  $muri search fashion --like $first --k 10 --dir $dir
  $muri search fashion --like $first --filter '{"label": {"\$in": ["Bag", "Coat"]}}' --dir $dir
  $muri get fashion $first --dir $dir
  $muri devnet status --dir $dir
  $muri --help
== stop it (the data stays; scripts/devnet.sh starts it again)
  $muri devnet down --dir $dir
MSG
