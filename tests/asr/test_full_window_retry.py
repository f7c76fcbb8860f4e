"""Speech the short encoder window did not hear is decoded again with the full 30 s window
(issue 14, part 11): the decision, with a fake backend, and the real model on the clip that
showed the problem."""

from __future__ import annotations

import numpy as np
import pytest

from asr.audio import WHISPER_SAMPLE_RATE_HZ
from asr.executors import InProcessExecutor
from asr.speech_queue import SpeechQueue
from asr.transcriber import (
    Segment,
    Transcriber,
    TranscriberOptions,
    Transcript,
    choose_retried,
    needs_full_window,
)

SHORT_WINDOW_S = 7.0
CLIP = np.zeros(WHISPER_SAMPLE_RATE_HZ * 2, dtype=np.float32)


def _segment(text: str, no_speech_prob: float = 0.1) -> Segment:
    return Segment(start_s=0.0, end_s=1.0, text=text, avg_logprob=-0.3, no_speech_prob=no_speech_prob)


def _transcript(*segments: Segment, speech_detected: bool = True) -> Transcript:
    return Transcript(text=" ".join(s.text for s in segments), segments=list(segments), language="en",
                      duration_s=2.0, speech_detected=speech_detected)


HEARD = _transcript(_segment("you are a worthless idiot"))
UNHEARD = _transcript()  # the VAD found speech, Whisper wrote nothing
SILENCE = _transcript(speech_detected=False)


class FakeWhisper(Transcriber):
    """Answers `short` for the configured window and `full` for the full window, counting calls."""

    def __init__(self, short: Transcript, full: Transcript, encoder_window_s: float = SHORT_WINDOW_S):
        super().__init__(TranscriberOptions(encoder_window_s=encoder_window_s))
        self.short, self.full = short, full
        self.calls: list[str] = []

    def _transcribe(self, audio, language, duration_s):
        self.calls.append("short")
        return self.short

    def _transcribe_full_window(self, audio, language, duration_s):
        self.calls.append("full")
        return self.full


@pytest.mark.parametrize(
    "transcript, window_s, retry",
    [
        (UNHEARD, SHORT_WINDOW_S, True),
        (_transcript(_segment("   ")), SHORT_WINDOW_S, True),  # only blanks
        (_transcript(_segment("uh", 0.9), _segment("hm", 0.7)), SHORT_WINDOW_S, True),  # Whisper: no speech
        (_transcript(_segment("uh", 0.9), _segment("idiot", 0.2)), SHORT_WINDOW_S, False),
        (HEARD, SHORT_WINDOW_S, False),
        (SILENCE, SHORT_WINDOW_S, False),  # no speech: stays as it is, at no extra cost
        (UNHEARD, 30.0, False),  # already the full window: a second try would decode the same
    ],
    ids=["empty", "blank", "no-speech-prob", "some-speech", "heard", "silence", "full-window"],
)
def test_retry_decision(transcript, window_s, retry):
    assert needs_full_window(transcript, window_s) is retry


def test_the_retry_replaces_an_empty_transcript():
    whisper = FakeWhisper(short=UNHEARD, full=HEARD)

    transcript = whisper.transcribe(CLIP)

    assert whisper.calls == ["short", "full"]
    assert transcript.text == HEARD.text and transcript.speech_detected and transcript.full_window_retry


def test_an_empty_retry_keeps_speech_detected_and_no_text():
    whisper = FakeWhisper(short=UNHEARD, full=_transcript(speech_detected=False))

    transcript = whisper.transcribe(CLIP)

    assert whisper.calls == ["short", "full"]
    assert transcript.text == "" and transcript.speech_detected and transcript.full_window_retry


def test_an_empty_retry_keeps_the_doubtful_words_of_the_first_decode():
    doubtful = _transcript(_segment("idiot", 0.8))

    assert choose_retried(doubtful, UNHEARD).text == "idiot"


def test_silence_and_heard_speech_are_decoded_once():
    for short in (SILENCE, HEARD):
        whisper = FakeWhisper(short=short, full=HEARD)
        assert whisper.transcribe(CLIP) == short
        assert whisper.calls == ["short"]


def test_every_clip_of_a_batch_gets_its_retry():
    whisper = FakeWhisper(short=UNHEARD, full=HEARD)

    transcripts = whisper.transcribe_batch([CLIP, CLIP])

    assert [t.text for t in transcripts] == [HEARD.text] * 2
    assert whisper.calls == ["short", "short", "full", "full"]


def test_the_retry_runs_in_the_clips_own_queue_place():
    whisper = FakeWhisper(short=UNHEARD, full=HEARD)
    queue = SpeechQueue(InProcessExecutor(whisper), max_waiting=0)
    try:
        with queue.reserve() as place:
            assert place.transcribe(CLIP).text == HEARD.text
            assert queue.taken == 1  # one place for both decodes
        assert queue.taken == 0 and sum(queue.batch_sizes.values()) == 1
    finally:
        queue.close()


@pytest.mark.integration
def test_the_short_window_clip_is_heard_after_the_retry(audio_tools):
    """The 2.6 s espeak-ng clip of FACTS.md: empty with the 7 s window alone, every time."""
    from asr import create_transcriber, decode_audio
    from loadtest.speech import speak_wav

    audio = decode_audio(speak_wav("you are a worthless idiot, uninstall the game", words_per_minute=175))
    whisper = create_transcriber(TranscriberOptions(encoder_window_s=SHORT_WINDOW_S, cpu_threads=1))

    transcript = whisper.transcribe(audio)

    assert "idiot" in transcript.text.lower() and transcript.speech_detected and transcript.full_window_retry
