"""`moderation-client`: classify text from the command line and print the verdict.

    moderation-client "you played well, gg"
    moderation-client --batch "first message" "second message"
    moderation-client --info
    moderation-client --tls-ca ca.pem --api-key-file game.key "gg"   # TLS, with an API key
    moderation-client --voice clip.ogg            # one ClassifyVoice call: transcript + verdict
    moderation-client --stream clip.wav           # StreamVoice in 100 ms chunks, paced in real time
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import grpc

from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway.tls import add_client_arguments, api_key_metadata, open_channel


def format_verdict(verdict) -> str:
    scores = " ".join(f"{s.category}={s.score:.3f}" for s in verdict.scores)
    flagged = ",".join(verdict.flagged) or "-"
    evidence = " ".join(f"{e.source}:{e.category}@{e.start}-{e.end}" for e in verdict.evidence)
    return (f"{'TOXIC' if verdict.toxic else 'ok'} action={verdict.action} severity={verdict.severity} "
            f"toxic_score={verdict.toxic_score:.3f} top={verdict.top_category} flagged={flagged} "
            f"[{scores}]{' evidence=' + evidence if evidence else ''} model_version={verdict.model_version}")


STREAM_CHUNK_S = 0.1  # a game client sends its microphone in chunks about this long
VOICE_TIMEOUT_S = 60.0  # a clip waits for Whisper; longer than a text call


def classify_voice_file(stub, path: str, timeout_s: float, sample_rate_hz: int = 0, metadata=()) -> None:
    """One ClassifyVoice call with the file's bytes (any format the gateway accepts; raw PCM16
    needs its rate); prints the transcript, the verdict and each segment's."""
    data = Path(path).read_bytes()
    request = moderation_pb2.ClassifyVoiceRequest(audio=data, format="pcm16" if sample_rate_hz else "",
                                                  sample_rate_hz=sample_rate_hz)
    reply = stub.ClassifyVoice(request, timeout=timeout_s, metadata=metadata)
    print(f"transcript: {reply.transcript!r} (speech_detected={reply.speech_detected} "
          f"duration_s={reply.duration_s:.1f} asr_ms={reply.asr_ms:.0f} classify_ms={reply.classify_ms:.0f})")
    print(format_verdict(reply.verdict))
    for segment in reply.segments:
        print(f"  [{segment.start_s:.1f}-{segment.end_s:.1f}s] {segment.text.strip()!r}: {format_verdict(segment.verdict)}")


def pcm16_chunks(path: str, chunk_s: float = STREAM_CHUNK_S) -> list[bytes]:
    """The file decoded locally (asr's decoder: the asr extra) to 16 kHz mono PCM16, in chunks."""
    import numpy as np

    from asr.audio import WHISPER_SAMPLE_RATE_HZ, AudioLimits, decode_audio

    samples = decode_audio(Path(path).read_bytes(), limits=AudioLimits(max_bytes=1 << 30, max_audio_s=3600.0))
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    step = int(WHISPER_SAMPLE_RATE_HZ * chunk_s) * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


def paced(chunks: list[bytes], chunk_s: float = STREAM_CHUNK_S):
    """AudioChunk requests sent no faster than real time, as a live microphone would."""
    from asr.audio import WHISPER_SAMPLE_RATE_HZ

    started = time.monotonic()
    for index, pcm in enumerate(chunks):
        time.sleep(max(0.0, started + index * chunk_s - time.monotonic()))
        yield moderation_pb2.AudioChunk(pcm16=pcm, sample_rate_hz=WHISPER_SAMPLE_RATE_HZ if index == 0 else 0)


def stream_voice_file(stub, path: str, timeout_s: float, metadata=()) -> None:
    """StreamVoice with the file as live audio; prints each event as it arrives."""
    try:
        chunks = pcm16_chunks(path)
    except ImportError as err:
        raise SystemExit(f"--stream decodes the file here and needs the asr extra ({err})") from None
    except ValueError as err:  # asr.AudioError: not audio, or a codec it does not take
        raise SystemExit(f"error: cannot decode {path}: {err}") from None
    started = time.monotonic()
    for event in stub.StreamVoice(paced(chunks), timeout=len(chunks) * STREAM_CHUNK_S + timeout_s, metadata=metadata):
        print(f"+{time.monotonic() - started:.1f}s utterance {event.utterance} [{event.start_s:.1f}-{event.end_s:.1f}s] "
              f"{event.transcript!r}: {format_verdict(event.verdict)}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="moderation-client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", help="message(s) to classify")
    parser.add_argument("--address", default="127.0.0.1:50051", help="gateway host:port")
    parser.add_argument("--batch", action="store_true", help="send all texts in one ClassifyTextBatch call")
    parser.add_argument("--info", action="store_true", help="print the serving model's version and categories")
    parser.add_argument("--voice", metavar="FILE", help="classify a voice clip (WAV, OGG/Opus, MP3, FLAC, M4A, ...)")
    parser.add_argument("--stream", metavar="FILE", help="send a clip as a live stream (StreamVoice, 100 ms chunks)")
    parser.add_argument("--sample-rate-hz", type=int, default=0, help="with --voice: the file is raw PCM16 at this rate")
    parser.add_argument("--timeout-s", type=float, default=None,
                        help=f"per call (default 5 for text, {VOICE_TIMEOUT_S:.0f} for voice; streams: the audio's length plus this)")
    add_client_arguments(parser)
    args = parser.parse_args(argv)
    if not args.texts and not args.info and not args.voice and not args.stream:
        parser.error("give at least one text, or --info, --voice FILE or --stream FILE")
    voice_timeout_s = args.timeout_s or VOICE_TIMEOUT_S
    args.timeout_s = args.timeout_s or 5.0
    metadata = api_key_metadata(args)
    call = {"timeout": args.timeout_s, "metadata": metadata}
    with open_channel(args.address, args) as channel:
        stub = moderation_pb2_grpc.ModerationStub(channel)
        try:
            if args.info:
                info = stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), **call)
                print(f"{info.model_name} version {info.model_version}: {', '.join(info.categories)}")
            if args.voice:
                classify_voice_file(stub, args.voice, voice_timeout_s, args.sample_rate_hz, metadata)
            if args.stream:
                stream_voice_file(stub, args.stream, voice_timeout_s, metadata)
            if args.batch and args.texts:
                reply = stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=args.texts), **call)
                for verdict in reply.verdicts:
                    print(format_verdict(verdict))
            else:
                for text in args.texts:
                    print(format_verdict(stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text), **call)))
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
            sys.exit(1)
        except OSError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
