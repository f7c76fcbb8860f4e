"""Several short clips through faster-whisper in one CTranslate2 call.

Whisper's decoder makes one token per step, in matrices too small to keep even one core busy, so
clips that arrive together decode faster as one batch: each step then serves them all
(docs/decisions/0010-one-speech-queue.md).

This follows faster-whisper's own steps for one window (`WhisperModel.generate_segments`):
Silero VAD, mel features, greedy decoding at temperature 0 with the same suppression and
first-timestamp rules, its no-speech rule, and its split at timestamp tokens. It covers the
common case only: a clip whose speech fits one window and decodes cleanly at temperature 0. For
any other clip `decode_together` answers None and the caller runs faster-whisper's full loop,
which also retries at higher temperatures.
"""

from __future__ import annotations

import numpy as np

from asr.transcriber import NO_SPEECH_PROB_LIMIT

# faster-whisper's defaults for transcribe(); the backend uses them too
COMPRESSION_RATIO_LIMIT = 2.4  # above: the text repeats itself; retried warmer
LOG_PROB_LIMIT = -1.0  # below: the decoder was unsure; retried warmer
MAX_INITIAL_TIMESTAMP_S = 1.0
_ONE_WINDOW_S = 29.5  # longer speech needs more than one window


def decode_together(model, audios: list[np.ndarray], language: str, beam_size: int,
                    vad_filter: bool) -> list[tuple[list | None, bool]]:
    """Per clip, faster-whisper `Segment`s with times on that clip (None where the clip needs
    faster-whisper's own loop), and whether the VAD found speech in it (without VAD: whether Whisper wrote anything).

    Args:
      model: A `faster_whisper.WhisperModel`.
      audios: Non-empty 16 kHz float32 clips.
      language: The language to decode in (one for the whole batch).
    """
    from faster_whisper.transcribe import restore_speech_timestamps
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    sampling_rate = model.feature_extractor.sampling_rate
    results: list[list | None] = [None] * len(audios)
    batch = []  # (index, speech chunks or None, features of the speech)
    spoken = set()  # clips where the VAD found speech
    for index, audio in enumerate(audios):
        chunks = None
        if vad_filter:
            chunks = get_speech_timestamps(audio, VadOptions())
            if not chunks:
                results[index] = []  # no speech: nothing to decode
                continue
            spoken.add(index)
            audio = np.concatenate(collect_chunks(audio, chunks)[0])
        if len(audio) > _ONE_WINDOW_S * sampling_rate:
            continue
        features = model.feature_extractor(audio)
        batch.append((index, chunks, features[:, : features.shape[-1] - 1]))  # the last frame is padding
    if batch:
        for (index, chunks, _), segments in zip(batch, _decode(model, batch, language, beam_size),
                                                strict=True):
            if segments is not None and chunks is not None:
                segments = list(restore_speech_timestamps(segments, chunks, sampling_rate))
            results[index] = segments
    return [(segments, index in spoken if vad_filter else bool(segments)) for index, segments in enumerate(results)]


def _decode(model, batch, language: str, beam_size: int) -> list[list | None]:
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
    encoder_output = model.encode(np.stack([pad_or_trim(features) for _, _, features in batch]))
    prompt = model.get_prompt(tokenizer, [], without_timestamps=False)
    generated = model.model.generate(
        encoder_output, [list(prompt) for _ in batch], beam_size=beam_size, patience=1, length_penalty=1,
        repetition_penalty=1, no_repeat_ngram_size=0, max_length=model.max_length, return_scores=True,
        return_no_speech_prob=True, suppress_blank=True, suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        max_initial_timestamp_index=int(round(MAX_INITIAL_TIMESTAMP_S / model.time_precision)))
    return [_segments(model, tokenizer, result, features.shape[-1])
            for (_, _, features), result in zip(batch, generated, strict=True)]


def _segments(model, tokenizer, result, frames: int) -> list | None:
    from faster_whisper.transcribe import Segment, get_compression_ratio

    tokens = result.sequences_ids[0]
    avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)  # as faster-whisper recovers it
    if result.no_speech_prob > NO_SPEECH_PROB_LIMIT and not avg_logprob > LOG_PROB_LIMIT:
        return []  # silence, which faster-whisper skips too
    compression_ratio = get_compression_ratio(tokenizer.decode(tokens).strip())
    if compression_ratio > COMPRESSION_RATIO_LIMIT or avg_logprob < LOG_PROB_LIMIT:
        return None
    duration_s = frames * model.feature_extractor.time_per_frame
    pieces, seek, _ = model._split_segments_by_timestamps(tokenizer, tokens, 0.0, frames, duration_s, 0)
    if seek < frames:
        return None  # the decode stopped inside the window; faster-whisper would decode the rest
    segments = []
    for piece in pieces:
        text = tokenizer.decode(piece["tokens"])
        if piece["start"] == piece["end"] or not text.strip():
            continue
        segments.append(Segment(id=len(segments) + 1, seek=0, start=piece["start"], end=piece["end"], text=text,
                                tokens=piece["tokens"], avg_logprob=avg_logprob, compression_ratio=compression_ratio,
                                no_speech_prob=result.no_speech_prob, words=None, temperature=0.0))
    return segments
