"""Cutting Whisper's zero padding back to the clip (asr.faster_whisper_backend.shortened_window)."""

from __future__ import annotations

import numpy as np
import pytest

from asr.faster_whisper_backend import shortened_window


def _padded(audio_frames: int, total: int = 3000, mels: int = 80) -> np.ndarray:
    features = np.zeros((mels, total), dtype=np.float32)
    features[:, :audio_frames] = np.random.default_rng(0).uniform(-1.5, 1.0, (mels, audio_frames))
    return features


def test_keeps_the_audio_and_one_second_of_padding():
    window = shortened_window(_padded(562), min_frames=100)

    assert window.shape == (80, 662)
    assert window.flags.c_contiguous
    np.testing.assert_array_equal(window, _padded(562)[:, :662])


def test_never_shorter_than_the_minimum_and_always_even():
    assert shortened_window(_padded(120), min_frames=700).shape[-1] == 700
    assert shortened_window(_padded(601), min_frames=100).shape[-1] == 702


def test_a_long_clip_keeps_the_full_window():
    features = _padded(2950)
    assert shortened_window(features, min_frames=700) is features


def test_a_column_with_some_nonzero_mel_counts_as_audio():
    features = _padded(0)
    features[5, 899] = 0.25  # one bin of the last audio frame
    assert shortened_window(features, min_frames=100).shape[-1] == 1000


def test_batches_are_cut_to_their_longest_clip():
    batch = np.stack([_padded(300), _padded(900)])
    window = shortened_window(batch, min_frames=100)

    assert window.shape == (2, 80, 1000)


@pytest.mark.parametrize("audio_frames", [0, 1])
def test_all_padding_gives_the_minimum(audio_frames):
    assert shortened_window(_padded(audio_frames), min_frames=700).shape[-1] == 700
