"""An open-loop load generator: calls sent on a fixed schedule, whatever the answers.

    python -m loadtest.open_loop --address 127.0.0.1:50051 --rate 800 --seconds 15 --out step.json

Locust's users wait for their answers, so a slow server slows its own load down; past saturation
they cannot offer 2-10x the load a server can take, and a Locust process is costly per call.
Here one asyncio process sends call i at start + i/rate on one grpc.aio channel and never waits
for answers before sending more: ClassifyText calls, and with `--voice-share` that share as
ClassifyVoice clips. Each call records its status code and its latency from the moment it was
sent. Writes per-code counts and latency percentiles as JSON;
`loadtest.overload` runs it at a series of rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEADLINE_S = 2.0  # what a game server would give a chat verdict before letting the message through
VOICE_DEADLINE_S = 5.0  # a voice clip is moderated after it was spoken; it can wait longer


async def send_at_rate(address: str, rate: float, seconds: float, deadline_s: float, messages: list[str],
                       clips: list[bytes] = (), voice_share: float = 0.0,
                       voice_deadline_s: float = VOICE_DEADLINE_S) -> dict:
    """Sends rate x seconds calls; a voice_share of them (spread evenly) are ClassifyVoice calls with clips."""
    import grpc

    from contract.pb import moderation_pb2

    if voice_share and not clips:
        raise ValueError("voice_share needs clips")
    # Requests serialized once and answers left as bytes: the generator only needs each call's
    # status, and every microsecond it spends per call is CPU the server on the same cores loses.
    texts = [moderation_pb2.ClassifyTextRequest(text=text).SerializeToString() for text in messages]
    audio = [moderation_pb2.ClassifyVoiceRequest(audio=clip).SerializeToString() for clip in clips]
    latencies: dict[str, dict[str, list[float]]] = {"text": {}, "voice": {}}
    first_message: dict[str, dict[str, str]] = {"text": {}, "voice": {}}  # per kind and code, the first error's text
    send_lag: list[float] = []

    service = moderation_pb2.DESCRIPTOR.services_by_name["Moderation"].full_name
    async with grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", 16 << 20)]) as channel:
        classify_text = channel.unary_unary(f"/{service}/ClassifyText")  # no (de)serializers: bytes in and out
        classify_voice = channel.unary_unary(f"/{service}/ClassifyVoice")

        async def call(kind: str, index: int, due: float) -> None:
            sent = time.perf_counter()
            send_lag.append(sent - due)  # how far behind its schedule the generator sent it
            try:
                if kind == "voice":
                    await classify_voice(audio[index % len(audio)], timeout=voice_deadline_s)
                else:
                    await classify_text(texts[index % len(texts)], timeout=deadline_s)
                code = "OK"
            except grpc.aio.AioRpcError as err:
                code = err.code().name
                first_message[kind].setdefault(code, err.details() or "")
            latencies[kind].setdefault(code, []).append(time.perf_counter() - sent)

        calls = int(rate * seconds)
        pending: set[asyncio.Task] = set()
        started = time.perf_counter()
        for index in range(calls):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(call(call_kind(index, voice_share), index, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        sending_s = time.perf_counter() - started
        await asyncio.gather(*pending)
    result = summarise(rate, calls, sending_s, latencies["text"], first_message["text"])
    if voice_share:
        result.update(voice_latencies_ms=_rounded_ms(latencies["voice"]), voice_messages=first_message["voice"])
    result["send_lag_ms"] = {"p50": float(np.percentile(send_lag, 50) * 1e3), "p99": float(np.percentile(send_lag, 99) * 1e3)}
    return result


def call_kind(index: int, voice_share: float) -> str:
    """Voice for a voice_share of the calls, evenly spread: call i is voice when floor((i+1)*share) steps up."""
    return "voice" if int((index + 1) * voice_share) > int(index * voice_share) else "text"


def _rounded_ms(latencies: dict[str, list[float]]) -> dict[str, list[float]]:
    return {code: [round(value * 1e3, 3) for value in values] for code, values in latencies.items()}


def summarise(rate: float, calls: int, sending_s: float, latencies: dict[str, list[float]],
              first_message: dict[str, str] | None = None) -> dict:
    """What one generator saw; `merge` combines several."""
    return {"target_rate": rate, "calls": calls, "sending_s": sending_s, "messages": first_message or {},
            "latencies_ms": _rounded_ms(latencies)}


@dataclass(frozen=True)
class CodeStats:
    """The calls of one step that ended with one status code."""

    count: int
    per_s: float  # over the step's sending time
    p50_ms: float
    p99_ms: float
    max_ms: float
    first_message: str = ""  # the first error's details, "" for OK


@dataclass
class StepResult:
    """What the generators of one step saw together: offered rate and per-code statistics."""

    target_rate: float  # calls/s asked for
    offered_rate: float  # calls/s actually sent: a generator that fell behind sends fewer
    calls: int
    codes: dict[str, CodeStats]  # text calls, by status code name
    # the generators' own delay: calls sent this late were timed from their actual send
    send_lag_p99_ms: float | None
    voice_codes: dict[str, CodeStats] | None = None  # only when some calls were voice clips
    generators: int = 0


def merge(parts: list[dict]) -> StepResult:
    """Generators that ran side by side (each one's `summarise` output) -> one StepResult."""
    sending_s = max(part["sending_s"] for part in parts)
    calls = sum(part["calls"] for part in parts)
    lags = [part["send_lag_ms"] for part in parts if "send_lag_ms" in part]
    voice = any("voice_latencies_ms" in part for part in parts)
    return StepResult(target_rate=sum(part["target_rate"] for part in parts), offered_rate=calls / sending_s,
                      calls=calls, codes=_per_code(parts, "latencies_ms", "messages", sending_s),
                      send_lag_p99_ms=max((lag["p99"] for lag in lags), default=None),
                      voice_codes=_per_code(parts, "voice_latencies_ms", "voice_messages", sending_s) if voice else None)


def _per_code(parts: list[dict], latency_key: str, message_key: str, sending_s: float) -> dict[str, CodeStats]:
    by_code: dict[str, list[float]] = {}
    messages: dict[str, str] = {}
    for part in parts:
        for code, values in part.get(latency_key, {}).items():
            by_code.setdefault(code, []).extend(values)
        for code, message in part.get(message_key, {}).items():
            messages.setdefault(code, message)
    codes = {}
    for code, values in sorted(by_code.items()):
        ms = np.array(values)
        codes[code] = CodeStats(count=len(values), per_s=len(values) / sending_s, p50_ms=float(np.percentile(ms, 50)),
                                p99_ms=float(np.percentile(ms, 99)), max_ms=float(ms.max()),
                                first_message=messages.get(code, ""))
    return codes


def main(argv=None) -> None:
    from loadtest.corpus import chat_messages, voice_clips

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", required=True, help="the gateway, host:port")
    parser.add_argument("--rate", type=float, required=True, help="calls per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--deadline-s", type=float, default=DEADLINE_S)
    parser.add_argument("--voice-share", type=float, default=0.0,
                        help="fraction of calls that are ClassifyVoice with ~5 s espeak-ng clips (0-1)")
    parser.add_argument("--voice-deadline-s", type=float, default=VOICE_DEADLINE_S)
    parser.add_argument("--out", type=Path, required=True, help="where the JSON summary goes")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.rate * args.seconds < 1:
        parser.error("--rate and --seconds must be > 0 and give at least one call")
    if not 0 <= args.voice_share <= 1:
        parser.error("--voice-share must be in 0..1")
    clips = voice_clips() if args.voice_share else []
    if args.voice_share and not clips:
        parser.error("--voice-share needs espeak-ng to make the clips")
    result = asyncio.run(send_at_rate(args.address, args.rate, args.seconds, args.deadline_s, chat_messages(2000),
                                      clips, args.voice_share, args.voice_deadline_s))
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
