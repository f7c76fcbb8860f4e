"""`moderation-keys`: add callers to the gateway's keys file and list them.

    moderation-keys --keys-file callers.toml add game-eu --rate-per-s 50 --burst 100 --concurrency 16
    moderation-keys --keys-file callers.toml add ops-dashboard --scope scores
    moderation-keys --keys-file callers.toml add game-us --tls-identity game-us.example --no-key
    moderation-keys --keys-file callers.toml list

`add` prints a new key once (give it to the caller; only its hash is stored) and appends the
caller's entry. A running gateway picks the change up within a second, or at once on SIGHUP.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gateway.callers import SCOPES, CallerEntry, KeysFileError, generate_key, hash_key, parse_keys

HEADER = "# Callers of the moderation gateway (moderation-keys); keys are stored as sha256 hashes.\n"


def entry_toml(entry: CallerEntry) -> str:
    lines = ["", "[[caller]]", f"name = {json.dumps(entry.name)}"]  # a JSON string is a valid TOML basic string
    if entry.key_hash:
        lines.append(f'key_hash = "{entry.key_hash}"')
    if entry.tls_identity:
        lines.append(f"tls_identity = {json.dumps(entry.tls_identity)}")
    lines += [f"rate_per_s = {float(entry.rate_per_s)!r}", f"burst = {entry.burst}",
              f"concurrency = {entry.concurrency}", f'scope = "{entry.scope}"']
    return "\n".join(lines) + "\n"


def add_caller(path: Path, entry: CallerEntry) -> None:
    """Appends the entry after checking that the whole file still parses (duplicate names included)."""
    exists = path.exists()
    current = path.read_text(encoding="utf-8") if exists else ""
    addition = ("" if exists else HEADER) + entry_toml(entry)
    parse_keys(current + addition, str(path))
    if not exists:  # hashes only, yet nobody else needs to read it
        path.touch(mode=0o600)
    with path.open("a", encoding="utf-8") as file:
        file.write(addition)
        file.flush()
        os.fsync(file.fileno())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="moderation-keys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys-file", required=True, help="the gateway's --api-keys-file")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a caller; prints its new key once")
    add.add_argument("name")
    add.add_argument("--rate-per-s", type=float, default=CallerEntry.rate_per_s)
    add.add_argument("--burst", type=int, default=CallerEntry.burst)
    add.add_argument("--concurrency", type=int, default=CallerEntry.concurrency)
    add.add_argument("--scope", choices=SCOPES, default=CallerEntry.scope)
    add.add_argument("--tls-identity", default="", help="client certificate CN or SAN that is this caller")
    add.add_argument("--no-key", action="store_true", help="certificate identity only (needs --tls-identity)")
    commands.add_parser("list", help="callers with their log ids and limits (no keys)")
    args = parser.parse_args(argv)
    path = Path(args.keys_file)
    try:
        if args.command == "list":
            for e in parse_keys(path.read_text(encoding="utf-8"), str(path)) if path.exists() else []:
                print(f"{e.name:<24} id={e.caller_id} rate={e.rate_per_s:g}/s burst={e.burst} "
                      f"concurrency={e.concurrency} scope={e.scope}"
                      + (f" tls_identity={e.tls_identity}" if e.tls_identity else ""))
            return
        if args.no_key and not args.tls_identity:
            parser.error("--no-key needs --tls-identity")
        key = "" if args.no_key else generate_key()
        entry = CallerEntry(args.name, hash_key(key) if key else "", args.tls_identity, args.rate_per_s,
                            args.burst, args.concurrency, args.scope)
        add_caller(path, entry)
    except (KeysFileError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"added caller {entry.name} (log id {entry.caller_id}) to {path}", file=sys.stderr)
    if key:
        print("its key, shown only now (send it as 'authorization: Bearer <key>'):", file=sys.stderr)
        print(key)


if __name__ == "__main__":
    main()
