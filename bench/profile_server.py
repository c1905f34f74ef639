"""Run `kaskad` (normally `serve`) under cProfile and print the hottest functions when it stops.

    python bench/profile_server.py --top 40 --out /tmp/profile.txt -- serve --port 18765

Stop it with SIGINT (Ctrl+C): uvicorn shuts down gracefully, then the statistics are written.
cProfile slows the server (10-50%, depending on the code path) and attributes coroutine time
oddly (a coroutine's "cumulative" time counts only while it runs, not while it awaits), so read
`tottime` for where the CPU goes; bench/run.py --profile py-spy is the low-overhead alternative.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path


def report(profile: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs()
    for key in ("cumulative", "tottime"):
        out.write(f"\n===== top {top} by {key} =====\n")
        stats.sort_stats(key).print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", type=Path, help="write the report here (default: stdout)")
    parser.add_argument("kaskad_args", nargs=argparse.REMAINDER,
                        help="arguments of `kaskad` after `--`, e.g. -- serve --port 18765")
    args = parser.parse_args()
    kaskad_args = [a for a in args.kaskad_args if a != "--"] or ["serve"]

    from kaskad.cli import main as kaskad_main

    sys.argv = ["kaskad", *kaskad_args]
    profile = cProfile.Profile()
    profile.enable()
    try:
        kaskad_main()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        profile.disable()
        text = report(profile, args.top)
        if args.out:
            args.out.write_text(text)
        else:
            sys.stdout.write(text)


if __name__ == "__main__":
    main()
