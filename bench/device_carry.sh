#!/usr/bin/env bash
# Builds .carry/ (git-ignored) here, for bench/device_check.sh on the bare GPU machine, which has
# torch but not what the model and media paths import, and reaches no package registry:
#   site/    basicsr and realesrgan, pure Python, copied from this venv (the network architectures)
#   wheels/  PyAV's wheel for the device's Python (decode, encode; the pipeline and encoder stages)
#   shared/  the golden cases' inputs and outputs, a real 720p clip, the RRDBNet weights
# The device tool carries at most 64 MiB with the working tree: the shared files are added in that
# order of use while the whole stays under LIMIT_MIB (the RRDB weights, 18 MB, are the first to be
# left out: device_check.sh then times random weights of the same shape, as fast).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SHARED=${SHARED:-../shared}
LIMIT_MIB=${LIMIT_MIB:-58}
DEVICE_PYTHON=${DEVICE_PYTHON:-3.12}

rm -rf .carry
mkdir -p .carry/site .carry/wheels .carry/shared
site=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
for package in basicsr realesrgan; do
  cp -r "$site/$package" .carry/site/
done
find .carry/site -name __pycache__ -prune -exec rm -rf {} +

av_pin=$(grep -E '^av==' requirements.txt)
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$DEVICE_PYTHON" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .carry/wheels "$av_pin"

tree_bytes() {  # what the device tool sends: tracked and untracked-not-ignored files, and .carry
  { git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null
    find .carry -type f -exec stat -c %s {} +; } | awk '{s += $1} END {print s + 0}'
}

add() {  # add SOURCE DESTINATION (under .carry/shared) while the whole stays under the limit
  local source=$SHARED/$1
  [ -e "$source" ] || { echo "not found: $source"; return 0; }
  local size
  size=$(du -sb "$source" | cut -f1)
  if (( $(tree_bytes) + size > LIMIT_MIB * 1024 * 1024 )); then
    echo "left out (over ${LIMIT_MIB} MiB): $1"
    return 0
  fi
  mkdir -p ".carry/shared/$(dirname "$1")"
  cp -r "$source" ".carry/shared/$1"
}

add golden/realesrgan/cases.json
for input in $("$PYTHON" -c "import json,sys; print(' '.join(c['input'] for c in json.load(open(sys.argv[1]))))" \
               "$SHARED/golden/realesrgan/cases.json"); do
  add "media/$input"
done
add media/video/animation_bbb_1280x720_h264_aac_5.3s.mp4
for output in $("$PYTHON" -c "import json,sys; print(' '.join(c['output'] for c in json.load(open(sys.argv[1]))))" \
                "$SHARED/golden/realesrgan/cases.json"); do
  add "golden/realesrgan/$output"
done
add weights/RealESRGAN_x4plus_anime_6B.pth
echo "carry: $(du -sh .carry | cut -f1) in .carry; all that travels: $(( $(tree_bytes) / 1024 / 1024 )) MiB of 64"
