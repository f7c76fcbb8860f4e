"""asr/ stands alone: no gRPC, no Triton, no gateway (it turns audio into transcripts, nothing more)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN_PREFIXES = ("gateway", "grpc", "tritonclient", "pytriton")


@pytest.mark.integration  # starts a Python process that imports asr and its backends
def test_asr_imports_nothing_from_the_serving_side():
    probe = (
        "import sys, asr, asr.speech_queue, asr.executors, asr.models, asr.faster_whisper_backend, asr.openai_whisper_backend; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_PREFIXES!r}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])

    assert result.stdout.strip() == "[]"
