"""One tqdm progress bar per task on stderr: frames, fps and ETA while a video is upscaled, else
the stages done."""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, Tuple

from tqdm import tqdm

TaskView = Dict[str, Any]


def _running_stage(view: TaskView) -> Optional[Dict[str, Any]]:
    return next((stage for stage in view.get("stages", []) if stage["status"] == "running"), None)


# Steps of the bar per stage: it moves through each stage (and through a stage's frames, where the
# stage counts them) and never steps back when the next stage starts.
STEPS_PER_STAGE = 1000


def progress_text(view: TaskView) -> Tuple[int, int, str]:
    """(done, total, words) of a task view, in steps of the whole task; the words name the running
    stage, with its frames, speed and time left where it reports them."""
    stages = view.get("stages", [])
    finished = sum(stage["status"] in ("success", "skipped") for stage in stages)
    total = max(len(stages), 1) * STEPS_PER_STAGE
    stage = _running_stage(view)
    detail = (stage or {}).get("detail") or {}
    if detail.get("frames_total"):
        eta = f"ETA {detail['eta_s']:.0f}s" if detail.get("eta_s") is not None else "ETA ?"
        words = f"{stage['name']} {detail['frames_done']}/{detail['frames_total']} frames " \
                f"{detail.get('fps') or 0:.2f} fps {eta}"
        within = STEPS_PER_STAGE * min(detail["frames_done"], detail["frames_total"]) // detail["frames_total"]
        return finished * STEPS_PER_STAGE + within, total, words
    return finished * STEPS_PER_STAGE, total, stage["name"] if stage else view["status"]


class TaskBars:
    def __init__(self, task_ids: List[str], file=None):
        file = file or sys.stderr
        self._bars = {task_id: tqdm(total=1, position=i, desc=task_id[:8], file=file, leave=True, dynamic_ncols=True,
                                    bar_format="{desc} |{bar}|{postfix}")
                      for i, task_id in enumerate(task_ids)}

    def show(self, view: TaskView) -> None:
        bar = self._bars[view["task_id"]]
        done, total, words = progress_text(view)
        bar.total, bar.n = total, min(done, total)
        bar.set_postfix_str(words, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
