#!/usr/bin/env bash
# Checks that a change keeps maslow's outputs byte-identical: builds two
# revisions, runs tools/same-outputs/outputs.sh on each and compares the
# hash lists.
#
#   tools/same-outputs/compare.sh OLD_REV [NEW_REV]
#
# NEW_REV defaults to the working tree as it is (uncommitted changes
# included). Both are built in release mode with one shared target dir
# (target/same-outputs/target) so dependencies compile once; revisions are
# checked out as git worktrees under target/same-outputs/. Exits 0 when
# every hashed file is identical, 1 naming the files that differ or exist
# on one side only, 2 on a build or usage error. Takes ~10 min on 2 cores
# once built (the feature suite dominates).
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,13p' "$0"; exit 2; }
root="$(git rev-parse --show-toplevel)"
work="$root/target/same-outputs"
export CARGO_TARGET_DIR="$work/target"
mkdir -p "$work"

checkout() { # REV NAME -> prints the directory
  local rev="$1" name="$2" dir="$work/$2"
  if [ -z "$rev" ]; then echo "$root"; return; fi
  git -C "$root" worktree remove --force "$dir" >/dev/null 2>&1 || rm -rf "$dir"
  git -C "$root" worktree prune
  git -C "$root" worktree add --detach "$dir" "$rev" >/dev/null
  echo "$dir"
}

run_side() { # DIR NAME
  local dir="$1" name="$2"
  (cd "$dir" && cargo build --release --quiet --bin maslow) || exit 2
  cp "$CARGO_TARGET_DIR/release/maslow" "$work/maslow-$name"
  bash "$root/tools/same-outputs/outputs.sh" "$work/maslow-$name" "$dir" "$work/out-$name"
}

old_dir="$(checkout "$1" old)"
new_dir="$(checkout "${2:-}" new)"
run_side "$old_dir" old
run_side "$new_dir" new

if diff <(cat "$work/out-old/status.txt") <(cat "$work/out-new/status.txt") >/dev/null \
  && diff "$work/out-old/hashes.txt" "$work/out-new/hashes.txt" >/dev/null; then
  echo "same outputs: $(wc -l < "$work/out-new/hashes.txt") files byte-identical"
  exit 0
fi
echo "outputs differ (old < > new):"
diff "$work/out-old/status.txt" "$work/out-new/status.txt" || true
diff <(awk '{print $2, $1}' "$work/out-old/hashes.txt") \
     <(awk '{print $2, $1}' "$work/out-new/hashes.txt") | grep '^[<>]' | head -50
exit 1
