"""Which encoder, container and encoder options an output gets (output_formats), without encoding a video."""

from tmlsr_ray.pipeline.output_formats import (MATROSKA, MOV, MP4, container_refusal, encoder_options, encoder_works,
                                               output_container, resolve_codec)


def test_auto_picks_the_hardware_encoder_only_where_it_really_opens():
    # Sizes and formats NVENC's H.264 cannot take never pick it, whatever the machine.
    assert resolve_codec("auto", (7680, 4320)) == "libx264"
    assert resolve_codec("auto", (1920, 1080), "yuv420p10le") == "libx264"
    assert resolve_codec("auto", (1920, 1080)) in ("h264_nvenc", "libx264")
    assert resolve_codec("libx264", (7680, 4320)) == "libx264"
    assert not encoder_works("no_such_encoder")
    assert encoder_options("libx264", 18, "medium") == {"crf": "18", "preset": "medium", "threads": "0",
                                                        "x264-params": "stitchable=1"}
    assert encoder_options("h264_nvenc", 20, "veryfast") == {"rc": "vbr", "cq": "20", "b": "0", "preset": "p3"}


def test_crf_zero_asks_nvenc_for_its_best_quality_not_its_automatic_one():
    """NVENC's cq 0 means "automatic" (FFmpeg: "0 to 51, 0 means automatic"), not the best."""
    assert encoder_options("h264_nvenc", 0, "medium")["cq"] == "1"
    assert encoder_options("h264_nvenc", 1, "medium")["cq"] == "1"
    assert encoder_options("h264_nvenc", 51, "medium")["cq"] == "51"


def test_prores_goes_into_quicktime_unless_told_and_no_container_is_given_a_codec_its_muxer_cannot_hold():
    assert output_container(None, "prores_ks") is MOV and output_container(None, "prores") is MOV
    assert output_container(None, "libx264") is MP4 and output_container("mkv", "prores_ks") is MATROSKA
    assert "ask for output_format mkv or mov" in container_refusal(MP4, "prores_ks")
    assert container_refusal(MP4, "prores") and container_refusal(MOV, "av1") and container_refusal(MOV, "libsvtav1")
    assert not any(container_refusal(MATROSKA, codec) for codec in ("prores", "av1", "h264", "hevc"))
    assert not container_refusal(MOV, "hevc") and not container_refusal(MP4, "auto")
