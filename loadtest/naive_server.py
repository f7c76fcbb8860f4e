"""The naive alternative to gateway + Triton, for comparison: what a studio would write first.

    python -m loadtest.naive_server --model runs/default-v1/model --listen-address 127.0.0.1:50061

The same checkpoint behind `transformers.pipeline("text-classification")` in a small gRPC server
with the same moderation.v1.Moderation ClassifyText RPC: each call runs the pipeline on its own
message in a thread of a ThreadPoolExecutor, with no batching across callers. Other RPCs answer
UNIMPLEMENTED. It needs a Hugging Face checkpoint directory (config, weights, tokenizer files),
such as `moderation-train`'s `runs/<name>/model`; the TorchScript file in model_repository/ is not
one. grpc.health.v1 says SERVING once the pipeline is loaded.
"""

from __future__ import annotations

import argparse
import logging
import signal
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from contract.pb import moderation_pb2, moderation_pb2_grpc

logger = logging.getLogger(__name__)

NON_TOXIC = "non_toxic"
FLAG_THRESHOLD = 0.5  # a fixed threshold per category: the naive server has no policy file
MAX_TOKENS = 128  # the gateway's default max_length


class NaiveModeration(moderation_pb2_grpc.ModerationServicer):
    def __init__(self, classifier, categories: list[str], version: str = "naive"):
        self.classifier = classifier
        self.categories = categories  # the model's label order
        self.version = version

    def ClassifyText(self, request, context):
        if not request.text.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text is empty")
        results = self.classifier(request.text, truncation=True, max_length=MAX_TOKENS)
        if results and isinstance(results[0], list):  # some versions nest one list per input
            results = results[0]
        scores = {r["label"]: float(r["score"]) for r in results}
        flagged = [c for c, s in sorted(scores.items(), key=lambda cs: -cs[1]) if c != NON_TOXIC and s >= FLAG_THRESHOLD]
        return moderation_pb2.Verdict(
            scores=[moderation_pb2.CategoryScore(category=c, score=scores.get(c, 0.0)) for c in self.categories],
            top_category=max(scores, key=scores.get), toxic=bool(flagged), flagged=flagged,
            model_version=self.version, request_id=request.request_id)


def load_classifier(model_dir: str, threads: int = 0):
    """The text-classification pipeline on CPU, returning every category's softmax score."""
    import torch
    from transformers import pipeline

    if threads > 0:
        torch.set_num_threads(threads)
    # softmax like the served model, whatever problem_type the checkpoint's config names
    classifier = pipeline("text-classification", model=model_dir, tokenizer=model_dir, top_k=None,
                          function_to_apply="softmax", device="cpu")
    id2label = classifier.model.config.id2label
    return classifier, [id2label[i] for i in sorted(id2label)]


def create_server(servicer: NaiveModeration, listen_address: str, workers: int) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="naive"))
    moderation_pb2_grpc.add_ModerationServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(listen_address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {listen_address}")
    return server, port


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.naive_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a Hugging Face checkpoint directory (with tokenizer files)")
    parser.add_argument("--listen-address", default="127.0.0.1:50061")
    parser.add_argument("--workers", type=int, default=8, help="gRPC handler threads")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    classifier, categories = load_classifier(args.model, args.threads)
    server, port = create_server(NaiveModeration(classifier, categories), args.listen_address, args.workers)
    server.start()
    logger.info("naive pipeline server on %s (port %d), categories %s", args.listen_address, port, categories)
    signal.signal(signal.SIGTERM, lambda signum, frame: server.stop(1))
    signal.signal(signal.SIGINT, lambda signum, frame: server.stop(1))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
