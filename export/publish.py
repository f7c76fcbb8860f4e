"""`moderation-publish`: an exported directory -> the next version of the model repository.

    moderation-export runs/new/model --out-dir exports/new
    moderation-publish exports/new                       # writes model_repository/toxicity/<next>/
    moderation-admin activate <next>                     # move traffic, under load, no failures

The directory is checked first (files present, labels valid, one smoke inference whose output
width matches the labels) and written atomically: staged beside the numbered versions, then
renamed, so Triton never sees half a version.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from contract import tensors
from export.repository import PublishError, publish_directory

logger = logging.getLogger("export.publish")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="moderation-publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dir", help="a directory written by moderation-export --out-dir")
    parser.add_argument("--repository", default="model_repository")
    parser.add_argument("--model-name", default=tensors.MODEL_NAME)
    parser.add_argument("--version", type=int, help="version number (default: next free)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        path = publish_directory(Path(args.export_dir), Path(args.repository) / args.model_name, args.version)
    except PublishError as err:
        logger.error("publish refused: %s", err)
        sys.exit(2)
    logger.info("published %s", path)
    print(path.name)


if __name__ == "__main__":
    main()
