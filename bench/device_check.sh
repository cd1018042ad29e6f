#!/usr/bin/env bash
# Every GPU figure of issue 14 in one run on the bare GPU machine (torch and Triton, no Ray, maybe
# no PyAV), within about 8 minutes, into $OUT (at most 8 files):
#   env.txt          GPU, driver, torch/cuDNN, CPU cores, which packages are there
#   model.txt        profile split old vs new path; animevideov3 at 720p and 1080p, fp16/bf16/fp32,
#                    x2/x4, old vs new path; PSNR vs fp32 on the bench frames and the golden images
#   profile.txt      the profiler's kernel tables behind model.txt's split
#   encoder.txt      libx264 at 2560x1440 and 5120x2880, veryfast/faster/medium, 1 encoder vs 4 pieces;
#                    then libx265 likewise and prores_ks (no presets), with what time is left at the end
#   pipeline.txt     the decode stage, RGB vs 4:2:0 planes; the segment pipeline at x2 and x4, 1 and 4
#                    pieces, vs the model and encoder alone
#   rrdb.txt         RealESRGAN_x4plus_anime_6B (RRDBNet) at 720p against its compute floor
#   resize.txt       the device Lanczos resize (x4 output to x2) against the dense matrix product before it
#   compile.txt      torch.compile default / reduce-overhead / max-autotune vs eager (compile times)
# Stages without PyAV (encoder, pipeline) say so and the model stages still run; each stage has
# a time limit and the whole run a budget, so a slow stage costs its own figures only.
#
# Run here first: bench/device_carry.sh (builds .carry/: basicsr and realesrgan, PyAV's wheel,
# golden images, a clip; nothing is fetched on the device machine), then from the device tool:
#   run(command="bash bench/device_check.sh", carry=[".carry"], timeout_s=560)
# On a CPU, a smoke run of every stage at tiny sizes: QUICK=1 bash bench/device_check.sh
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
rm -f "$OUT"/{env,model,encoder,pipeline,rrdb,resize,compile}.txt  # stages add to their files
QUICK=${QUICK:-0}
BUDGET=${BUDGET:-$([ "$QUICK" = 1 ] && echo 900 || echo 470)}
START=$SECONDS
if [ -z "${PYTHON:-}" ]; then PYTHON=$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3); fi
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
SHARED=$([ -d .carry/shared ] && echo .carry/shared || echo ../shared)

can_import() { "$PYTHON" -c "$1" >/dev/null 2>&1; }
ARCHS="from tmlsr_ray.models.basicsr_compat import import_architectures; import_architectures()"
if ! can_import "$ARCHS" && [ -d .carry/site ]; then export PYTHONPATH=$PYTHONPATH:$PWD/.carry/site; fi
if ! can_import "import av" && ls .carry/wheels/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/tmlsr-site \
    .carry/wheels/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/tmlsr-site
fi
HAVE_AV=0; can_import "import av" && HAVE_AV=1

# stage NAME SECONDS command...: runs with at most SECONDS (less when the budget is nearly
# spent), its output added to $OUT/NAME.txt and, at the end, here.
stage() {
  local name=$1 limit=$2 left
  shift 2
  left=$((BUDGET - (SECONDS - START)))
  ((limit > left)) && limit=$left
  if ((limit < 20)); then
    echo "== $name: skipped (${left}s of the ${BUDGET}s budget left)"
    return
  fi
  local began=$SECONDS
  timeout -k 10 "$limit" "$@" >>"$OUT/$name.txt" 2>&1
  local rc=$?
  ((rc == 124 || rc == 137)) && echo "(stopped at its ${limit}s limit)" >>"$OUT/$name.txt"
  echo "== $name: rc=$rc in $((SECONDS - began))s (limit ${limit}s, ${SECONDS}s since start)"
  grep -v -E "^(USDT|ERROR).*(Profiler|DeviceProperties)" "$OUT/$name.txt" | tail -n 60
}

skip() { echo "$2" >"$OUT/$1.txt"; echo "== $1: $2"; }

if [ "$QUICK" = 1 ]; then
  SIZES="64x48"; BIG="96x64 128x96"; FRAMES=2; BATCH=2; REPEATS=1; PROFILE=1; CLIP_SIZE=64x48; CLIP_FRAMES=12; SEGMENT_S=0.2
  ENC_FRAMES="6 4"; RRDB_SIZE=32x24
else
  SIZES="1280x720 1920x1080"; BIG="2560x1440 5120x2880"; FRAMES=24; BATCH=8; REPEATS=3; PROFILE=6
  CLIP_SIZE=1280x720; CLIP_FRAMES=64; SEGMENT_S=0.5; ENC_FRAMES="48 24"; RRDB_SIZE=1280x720
fi

stage env 60 "$PYTHON" - <<'EOF'
import os, platform, shutil, subprocess, sys
import torch
print(f"python {platform.python_version()} ({sys.executable}); {os.cpu_count()} CPU cores")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print(f"GPU {props.name}: {props.total_memory / 2**30:.1f} GiB, {props.multi_processor_count} SMs")
if shutil.which("nvidia-smi"):
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit,pcie.link.gen.max,"
                          "pcie.link.width.max", "--format=csv"], capture_output=True, text=True).stdout)
for name in ("av", "cv2", "numpy", "triton", "basicsr", "realesrgan"):
    try:
        if name in ("basicsr", "realesrgan"):
            from tmlsr_ray.models.basicsr_compat import import_architectures
            import_architectures()
        module = __import__(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as exc:
        print(f"{name}: MISSING ({type(exc).__name__}: {exc})")
try:
    import av
    print("encoders:", [c for c in ("libx264", "libx265", "h264_nvenc", "hevc_nvenc") if c in av.codecs_available])
except ImportError:
    pass
EOF

# shellcheck disable=SC2086
stage model 170 "$PYTHON" bench/frames.py --sizes $SIZES --frames $FRAMES --batch $BATCH --repeats $REPEATS \
  --dtype fp16 bf16 fp32 --outscale 2 4 --old-path --planes --precision --shared "$SHARED" --profile $PROFILE \
  --profile-out "$OUT/profile.txt" --budget-s 110

CLIP=$SHARED/media/video/animation_bbb_1280x720_h264_aac_5.3s.mp4
if [ "$HAVE_AV" = 1 ]; then
  if [ "$QUICK" = 1 ] || [ ! -f "$CLIP" ]; then
    CLIP=/tmp/tmlsr-bench-clip.mp4
    "$PYTHON" bench/clip.py "$CLIP" --size $CLIP_SIZE --frames $CLIP_FRAMES
  fi
  # shellcheck disable=SC2086
  stage encoder 80 "$PYTHON" bench/encoder.py --clip "$CLIP" --sizes $BIG --codecs libx264 \
    --presets veryfast faster medium --pieces 4 --frames $ENC_FRAMES --repeats $REPEATS --budget-s 65
  stage pipeline 20 "$PYTHON" bench/decode.py --clip "$CLIP" --repeats $REPEATS
  stage pipeline 120 "$PYTHON" bench/frames.py --clip "$CLIP" --frames $CLIP_FRAMES --batch $BATCH \
    --repeats $REPEATS --dtype fp16 --outscale 2 4 --pipeline --pieces 1 4 --segment-s $SEGMENT_S \
    --preset veryfast
else
  skip encoder "skipped: PyAV is not importable here (run bench/device_carry.sh before the device run)"
  skip pipeline "skipped: PyAV is not importable here (the segment pipeline decodes and encodes with it)"
fi

RRDB=$SHARED/weights/RealESRGAN_x4plus_anime_6B.pth
if [ ! -f "$RRDB" ]; then  # the same shape with random weights: the speed is the same
  RRDB=/tmp/RealESRGAN_x4plus_anime_6B-shape-random.pth
  "$PYTHON" - "$RRDB" <<'EOF'
import sys, torch
from tmlsr_ray.models.basicsr_compat import import_architectures
rrdbnet, _ = import_architectures()
torch.manual_seed(0)
net = rrdbnet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=6, num_grow_ch=32, scale=4)
torch.save({"params_ema": net.state_dict()}, sys.argv[1])
EOF
fi
stage rrdb 50 "$PYTHON" bench/frames.py --model "$RRDB" --sizes $RRDB_SIZE --frames $((BATCH / 2 > 0 ? BATCH / 2 : 1)) \
  --batch $((BATCH / 2 > 0 ? BATCH / 2 : 1)) --repeats $REPEATS --dtype fp16 bf16 --outscale 4

if [ "$QUICK" = 1 ]; then
  stage resize 30 "$PYTHON" bench/resize.py --cases 128x96:64x48 64x48:96x72 --frames 2 --repeats 1
else
  stage resize 30 "$PYTHON" bench/resize.py --frames 2 --repeats 3 --no-cv2
fi

if [ "$QUICK" = 1 ] && [ "${QUICK_COMPILE:-0}" != 1 ]; then
  skip compile "skipped in QUICK mode (QUICK_COMPILE=1 runs it: minutes on a CPU)"
else
  # shellcheck disable=SC2086
  stage compile 150 "$PYTHON" bench/frames.py --sizes ${SIZES%% *} --frames $FRAMES --batch $BATCH \
    --repeats $REPEATS --dtype fp16 --outscale 2 4 --compile default reduce-overhead max-autotune
fi

if [ "$HAVE_AV" = 1 ]; then
  # shellcheck disable=SC2086
  stage encoder 90 "$PYTHON" bench/encoder.py --clip "$CLIP" --sizes $BIG --codecs libx265 prores_ks \
    --presets veryfast faster medium --pieces 4 --frames $ENC_FRAMES --repeats 1 --budget-s 60
else
  echo "libx265: skipped: PyAV is not importable here" >>"$OUT/encoder.txt"
fi
echo "== done in $((SECONDS - START))s; outputs in $OUT: $(ls "$OUT" | tr '\n' ' ')"
