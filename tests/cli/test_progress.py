"""What a task's progress bar says."""

from tmlsr_ray.cli.progress import progress_text


def view(*stages):
    return {"task_id": "t" * 32, "status": "processing",
            "stages": [{"name": name, "status": status, "detail": detail} for name, status, detail in stages]}


def test_a_video_being_upscaled_counts_frames_with_speed_and_time_left():
    task = view(("download", "success", None),
                ("process", "running", {"frames_done": 12, "frames_total": 96, "fps": 3.5, "eta_s": 24.2}),
                ("upload", "pending", None))
    assert progress_text(task) == (12, 96, "process 12/96 frames 3.50 fps ETA 24s")


def test_other_tasks_count_stages_done():
    task = view(("download", "success", None), ("process", "running", None), ("upload", "pending", None))
    assert progress_text(task) == (1, 3, "process")
    assert progress_text({**task, "status": "pending", "stages": []}) == (0, 1, "pending")
