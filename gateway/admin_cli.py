"""`moderation-admin`: list, activate and roll back model versions; reload the policy.

    moderation-admin --token-file admin.token list
    moderation-admin --token-file admin.token activate 3
    moderation-admin --token-file admin.token rollback
    moderation-admin --token-file admin.token reload-policy [--path policy.toml]
    moderation-admin --token-file admin.token --tls-ca ca.pem --tls-cert admin.pem --tls-key admin.key list   # TLS

The token file must be owner-only (chmod 600); MODERATION_ADMIN_TOKEN_FILE may name it.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc

from contract.pb import admin_pb2, admin_pb2_grpc
from gateway.secrets_files import SecretFileError, read_secret_file
from gateway.tls import add_client_arguments, open_channel


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="moderation-admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default="127.0.0.1:50052", help="the gateway's admin host:port")
    parser.add_argument("--token-file", default=os.environ.get("MODERATION_ADMIN_TOKEN_FILE", ""),
                        help="owner-only admin token file (default: env MODERATION_ADMIN_TOKEN_FILE)")
    parser.add_argument("--secret-files-group-readable", action="store_true", help="accept a group-readable token file")
    parser.add_argument("--timeout-s", type=float, default=120.0)
    add_client_arguments(parser, api_key=False)  # the admin port takes a client certificate, not an API key
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list")
    commands.add_parser("activate").add_argument("version")
    commands.add_parser("rollback")
    commands.add_parser("reload-policy").add_argument("--path", default="")
    args = parser.parse_args(argv)
    if not args.token_file:
        parser.error("--token-file is required (secrets are read from files only)")
    try:
        token = read_secret_file(args.token_file, "admin token", args.secret_files_group_readable)
    except SecretFileError as err:
        parser.error(str(err))
    metadata = [("authorization", f"Bearer {token}")]
    with open_channel(args.address, args) as channel:
        stub = admin_pb2_grpc.ModelAdminStub(channel)
        call = {"timeout": args.timeout_s, "metadata": metadata}
        try:
            if args.command == "list":
                reply = stub.ListModelVersions(admin_pb2.ListModelVersionsRequest(), **call)
                print(f"{reply.model_name}: active {reply.active_version or '-'}, previous {reply.previous_version or '-'}")
                for v in reply.versions:
                    mark = "*" if v.active else " "
                    print(f" {mark} {v.version:>4} {v.state:<12} {','.join(v.categories)} {v.reason}")
            elif args.command in ("activate", "rollback"):
                reply = (stub.ActivateVersion(admin_pb2.ActivateVersionRequest(version=args.version), **call)
                         if args.command == "activate" else stub.Rollback(admin_pb2.RollbackRequest(), **call))
                print(f"active {reply.active_version} (previous {reply.previous_version or '-'}): "
                      f"load {reply.load_ms:.0f} ms, switch {reply.switch_ms:.0f} ms; categories {', '.join(reply.categories)}")
            else:
                reply = stub.ReloadPolicy(admin_pb2.ReloadPolicyRequest(path=args.path), **call)
                print(f"policy {reply.source}: default {reply.default_threshold:.2f} "
                      + " ".join(f"{k}={v:.2f}" for k, v in sorted(reply.thresholds.items())))
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
