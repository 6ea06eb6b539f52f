#!/usr/bin/env bash
# The checks a GPU machine gets, in one go (README "On a GPU"): the suite's CUDA tests, the attack
# benchmark on CUDA, and a profile=full smoke run at tiny sizes. Each step's log goes to $LOGS
# (default: the current folder); a step that fails or runs past its limit does not stop the next.
#
#   PY=.venv/bin/python bash benchmarks/cuda_check.sh
set -u
PY=${PY:-python3}
LOGS=${LOGS:-.}
export PYTHONUNBUFFERED=1
status=0
step() {   # step NAME SECONDS COMMAND...: run COMMAND under a time limit, log it, time it
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc in $((SECONDS - start)) s (log $LOGS/$name.log)"
  [ $rc = 0 ] || status=1
}

$PY -c "import torch; print('torch', torch.__version__, 'CUDA', torch.cuda.is_available(),
torch.cuda.get_device_name() if torch.cuda.is_available() else '')"

step gpu_tests 240 $PY -m pytest -m gpu tests/gpu -q
step bench_attack 200 $PY benchmarks/bench_attack.py --device cuda --images 12 --rounds 2

# profile=full reads its data sets from disk; for a smoke run, 2,500 real Fashion-MNIST images in
# torchvision's ImageFolder layout stand in (read as RGB, resized to 32x32 as CIFAR-10's are).
images=$(mktemp -d)
$PY - "$images" <<'EOF'
import sys
from pathlib import Path

from torchvision.utils import save_image

from tracer.data import load_dataset

d = load_dataset("fashion_mnist", n_train=2000, n_test=500)
for split, xs, ys in (("train", d.x_train, d.y_train), ("test", d.x_test, d.y_test)):
    for i, (x, y) in enumerate(zip(xs, ys)):
        folder = Path(sys.argv[1]) / split / f"class{int(y)}"
        folder.mkdir(parents=True, exist_ok=True)
        save_image(x, folder / f"{i:05d}.png")
EOF
step profile_full_smoke 150 $PY -m tracer.pipeline profile=full dataset=image_folder \
  dataset.root="$images" model=resnet18 model.train.epochs=3 separation.tracer.train.epochs=3 \
  "attack=[hsja,pgd]" evidence.num=20 innocent.num=100 innocent.num_adversarial=20 \
  "innocent.num_adversarial_by_attack={pgd:40}" progress=false hydra.run.dir="$images/run"
cp "$images/run/metrics.json" "$LOGS/profile_full_smoke_metrics.json" 2>/dev/null
exit $status
