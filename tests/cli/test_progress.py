"""What a task's progress bar says."""

from tmlsr_ray.cli.progress import progress_text


def view(*stages):
    return {"task_id": "t" * 32, "status": "processing",
            "stages": [{"name": name, "status": status, "detail": detail} for name, status, detail in stages]}


def test_a_video_being_upscaled_counts_frames_with_speed_and_time_left():
    task = view(("download", "success", None),
                ("process", "running", {"frames_done": 12, "frames_total": 96, "fps": 3.5, "eta_s": 24.2}),
                ("upload", "pending", None))
    assert progress_text(task) == (1125, 3000, "process 12/96 frames 3.50 fps ETA 24s")


def test_the_bar_never_steps_back_when_the_next_stage_starts():
    """It showed 12/12 frames, then fell to two stages of three once the upload began."""
    processing = view(("download", "success", None),
                      ("process", "running", {"frames_done": 12, "frames_total": 12, "fps": 30.7, "eta_s": 0}),
                      ("upload", "pending", None))
    uploading = view(("download", "success", None), ("process", "success", None), ("upload", "running", None))
    assert progress_text(processing)[0] <= progress_text(uploading)[0] < progress_text(uploading)[1]


def test_other_tasks_count_stages_done():
    task = view(("download", "success", None), ("process", "running", None), ("upload", "pending", None))
    assert progress_text(task) == (1000, 3000, "process")
    assert progress_text({**task, "status": "pending", "stages": []}) == (0, 1000, "pending")
