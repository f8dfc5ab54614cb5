"""`python -m lakehouse.glue_standin --folder DIR [--port N]`: run the stand-in until killed.

Prints one line, `GLUE_STANDIN_URL=http://127.0.0.1:<port>`, once it serves (its own process:
the stand-in's Spark must not share a JVM with a local lake build).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from lakehouse.glue_standin.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m lakehouse.glue_standin")
    parser.add_argument("--folder", type=Path, required=True, help="metastore + warehouse folder")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--statement-timeout", type=float, default=None, help="seconds")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    standin = serve(args.folder.resolve(), args.port, args.statement_timeout)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print(f"GLUE_STANDIN_URL={standin.url}", flush=True)
    # Whoever started us reads stdout only up to that line: anything else written there later
    # (by the JVM or a library) goes to stderr, so a full pipe can never block the stand-in.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stopped.wait()
    standin.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
