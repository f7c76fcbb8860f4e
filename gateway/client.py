"""`moderation-client`: classify text from the command line and print the verdict.

    moderation-client "you played well, gg"
    moderation-client --batch "first message" "second message"
    moderation-client --info
    moderation-client --tls-ca ca.pem --api-key-file game.key "gg"   # TLS, with an API key
"""

from __future__ import annotations

import argparse
import sys

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="moderation-client", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", help="message(s) to classify")
    parser.add_argument("--address", default="127.0.0.1:50051", help="gateway host:port")
    parser.add_argument("--batch", action="store_true", help="send all texts in one ClassifyTextBatch call")
    parser.add_argument("--info", action="store_true", help="print the serving model's version and categories")
    parser.add_argument("--timeout-s", type=float, default=5.0)
    add_client_arguments(parser)
    args = parser.parse_args(argv)
    if not args.texts and not args.info:
        parser.error("give at least one text, or --info")
    call = {"timeout": args.timeout_s, "metadata": api_key_metadata(args)}
    with open_channel(args.address, args) as channel:
        stub = moderation_pb2_grpc.ModerationStub(channel)
        try:
            if args.info:
                info = stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), **call)
                print(f"{info.model_name} version {info.model_version}: {', '.join(info.categories)}")
            if args.batch:
                reply = stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=args.texts), **call)
                for verdict in reply.verdicts:
                    print(format_verdict(verdict))
            else:
                for text in args.texts:
                    print(format_verdict(stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text), **call)))
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
