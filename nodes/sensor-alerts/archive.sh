#!/usr/bin/env bash
# Archive: pack the step's input files (the raw, filtered and classified
# readings) into one compressed file, events_archive.tar.gz, to keep.
set -euo pipefail

out="${PIPELOOM_OUTPUT_ARCHIVE:-events_archive.tar.gz}"

# The inputs sit in this folder under their file names; archive whichever
# ones this step was given (run by hand, the three demo files).
files=()
for var in "${!PIPELOOM_INPUT_@}"; do
  files+=("$(basename "${!var}")")
done
if [ "${#files[@]}" -eq 0 ]; then
  files=(raw_events.json events.json classified.json)
fi

# Compression level 1 (fast) to 9 (small) from the params, default 6.
level="$(printf '%s' "${PIPELOOM_PARAMS:-}" | sed -n 's/.*"level"[[:space:]]*:[[:space:]]*\([1-9]\).*/\1/p')"
level="${level:-6}"

# Write under a temporary name and rename at the end, so a half-written
# archive never looks finished.
tmp="$(dirname "$out")/.$(basename "$out").tmp-$$"
trap 'rm -f "$tmp"' EXIT
tar --create --dereference --file - "${files[@]}" | gzip "-$level" > "$tmp"
mv "$tmp" "$out"
trap - EXIT

echo "archive: packed ${#files[@]} files (${files[*]}) into $(basename "$out"), $(du -h "$out" | cut -f1)"
