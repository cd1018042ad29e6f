from pathlib import Path

import pytest
from pydantic import ValidationError

from tmlsr_ray.config import Settings


def test_defaults_are_the_embedded_single_machine_setup():
    settings = Settings.load({}, environ={})
    assert settings.port == 6008 and settings.default_model == "realesr-animevideov3.pth"
    assert settings.allow_private_urls is False and settings.weights_dir.is_absolute()


def test_environment_overrides_application_args():
    settings = Settings.load(
        {"port": 7000, "max_workers": 3},
        environ={"TMLSR_PORT": "7100", "TMLSR_WEIGHTS_DIR": "/models", "TMLSR_DATA_DIR": "/srv/data",
                 "TMLSR_ALLOW_PRIVATE_URLS": "true"},
    )
    assert settings.port == 7100 and settings.max_workers == 3
    assert settings.weights_dir == Path("/models") and settings.data_dir == Path("/srv/data")
    assert settings.allow_private_urls is True


def test_unknown_or_invalid_settings_are_rejected():
    with pytest.raises(ValidationError, match="max_wrokers"):
        Settings.load({"max_wrokers": 2}, environ={})
    with pytest.raises(ValidationError, match="port"):
        Settings.load({}, environ={"TMLSR_PORT": "not-a-port"})
    with pytest.raises(ValidationError, match="upscaler_replicas_per_host"):
        Settings.load({"upscaler_replicas_per_host": -1}, environ={})


def test_list_settings_are_read_from_json_in_the_environment():
    settings = Settings.load({}, environ={"TMLSR_URL_ALLOWLIST": '["https://cdn.example.com/", "media.example.org"]'})
    assert settings.url_allowlist == ["https://cdn.example.com/", "media.example.org"]


def test_seedvr2_batches_and_vae_tiles_must_fit_the_model():
    assert Settings(seedvr2_batch_frames=9, seedvr2_temporal_overlap=2).seedvr2_batch_frames == 9
    for bad in ({"seedvr2_batch_frames": 4}, {"seedvr2_batch_frames": 5, "seedvr2_temporal_overlap": 5},
                {"seedvr2_vae_tile_size": 100}, {"seedvr2_vae_tile_size": 64, "seedvr2_vae_tile_overlap": 64}):
        with pytest.raises(ValidationError):
            Settings(**bad)


def test_the_default_seedvr2_seed_is_one_a_task_could_send():
    """A negative or over-2**63 default was recorded in tasks' params (which POST /tasks refuses),
    and one of 2**64 or more failed every SeedVR2 task at its first batch (torch cannot seed it)."""
    assert Settings(seedvr2_seed=0).seedvr2_seed == 0 and Settings(seedvr2_seed=2**63 - 1).seedvr2_seed == 2**63 - 1
    for bad in (-1, 2**63, 2**64):
        with pytest.raises(ValidationError, match="seedvr2_seed"):
            Settings(seedvr2_seed=bad)


def test_object_settings_are_read_from_json_in_the_environment():
    settings = Settings.load({}, environ={"TMLSR_UPSCALER_AUTOSCALING": '{"max_replicas": 4}'})
    assert settings.upscaler_autoscaling.max_replicas == 4 and settings.upscaler_parallelism == 4


def test_null_in_the_environment_unsets_an_optional_setting():
    settings = Settings.load({"public_base_url": "https://cdn.example.com"},
                             environ={"TMLSR_OUTPUT_RETENTION_S": "null", "TMLSR_PUBLIC_BASE_URL": " null "})
    assert settings.output_retention_s is None and settings.public_base_url is None
    with pytest.raises(ValidationError):
        Settings.load({}, environ={"TMLSR_PORT": "null"})


def test_a_cpu_model_leaves_the_api_a_core_unless_told_its_thread_count():
    assert [Settings().model_threads(cores) for cores in (1, 2, 16)] == [1, 1, 15]
    assert Settings(torch_threads=4).model_threads(16) == 4


def test_a_replicas_segments_in_flight_share_its_cpus_for_their_encoders_unless_told_a_thread_count():
    assert [Settings().encoder_threads(cpus) for cpus in (0, 1, 2, 14)] == [1, 1, 1, 7]
    assert Settings(video_segments_per_replica=7).encoder_threads(14) == 2
    assert Settings(video_segments_per_replica=4, video_encoder_threads=3).encoder_threads(14) == 3


def test_output_uploads_are_tried_four_times_with_back_off_by_default():
    settings = Settings()
    assert (settings.storage_backoff().attempts, settings.storage_backoff().base_s) == (4, 1.0)
    oss = Settings(oss_endpoint="http://127.0.0.1:1", oss_access_key_id="a", oss_access_key_secret="b",
                   oss_timeout_s=5).oss_config()
    assert oss.timeout_s == 5


def test_model_dtype_is_the_precision_setting_and_half_a_deprecated_alias_of_it():
    assert Settings.load({}, environ={}).model_dtype == "auto"
    assert Settings.load({}, environ={"TMLSR_MODEL_DTYPE": "bf16"}).model_dtype == "bf16"
    assert Settings(half=True).model_dtype == "fp16" and Settings(half=False).model_dtype == "fp32"
    assert Settings(half=True, model_dtype="bf16").model_dtype == "bf16"  # the new name wins
    with pytest.raises(ValidationError, match="model_dtype"):
        Settings(model_dtype="fp8")


def test_torch_compile_takes_a_mode_or_the_booleans_it_took_before():
    assert Settings().torch_compile == "off"
    assert Settings(torch_compile=True).torch_compile == "default"
    assert Settings.load({}, environ={"TMLSR_TORCH_COMPILE": "false"}).torch_compile == "off"
    assert Settings.load({"torch_compile": "reduce-overhead"}, environ={}).torch_compile == "reduce-overhead"
    with pytest.raises(ValidationError, match="torch_compile"):
        Settings(torch_compile="fastest")


def test_the_video_cutting_takes_each_segment_setting_in_bytes_where_it_counts_mib():
    cutting = Settings(video_segment_s=4, video_segment_max_frames=100, video_segment_max_preroll_frames=7,
                       video_rekey_segment_mib=3, video_segment_max_mib=5).video_cutting
    assert (cutting.segment_s, cutting.max_frames, cutting.max_preroll_frames) == (4, 100, 7)
    assert (cutting.rekey_max_bytes, cutting.max_bytes) == (3 << 20, 5 << 20)


def test_max_held_requests_and_max_arriving_bodies_must_leave_the_ingress_room_for_its_other_requests():
    with pytest.raises(ValidationError, match="max_held_requests"):
        Settings(max_held_requests=200)  # every one of the replica's 200 requests held: /health starves
    with pytest.raises(ValidationError, match="max_held_requests \\+ max_arriving_bodies"):
        Settings(max_held_requests=150, max_arriving_bodies=50)  # bodies arriving hold requests too
    assert Settings(max_held_requests=198, max_arriving_bodies=1).max_held_requests == 198
    assert Settings(max_held_requests=150, max_arriving_bodies=49).max_arriving_bodies == 49
