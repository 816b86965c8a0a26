"""``atbridge plot FILE.jsonl -o out.png|out.svg|out.html``: draw a watch.

RSRP, RSRQ and SNR of the samples over ``t_s``, with registration changes and
handovers as labelled vertical lines (:mod:`atbridge.plot`). matplotlib is the
optional ``plot`` extra and is imported only when drawing; without it the
command says how to install it (exit 2). A file that is not JSON lines, or has
no sample with a signal value, is a clear message and exit 2.
"""

from __future__ import annotations

import argparse

from atbridge.commands.options import EXIT_CODES_EPILOG

HELP = "draw RSRP/RSRQ/SNR of an atbridge watch file, with handovers and registration changes"

EPILOG = f"""\
the input is the JSON lines atbridge watch writes; the output format follows the
file name: .png, .svg, or .html (one self-contained page with the SVG inline).
needs matplotlib: pip install 'atbridge[plot]'

example:
  atbridge watch --port /dev/ttyACM0 --interval 5 --duration 600 -o drive.jsonl
  atbridge plot drive.jsonl -o drive.html

{EXIT_CODES_EPILOG}
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "file", metavar="FILE.jsonl", help="what atbridge watch wrote (- for stdin)"
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="out.png, out.svg or out.html"
    )
    parser.add_argument("--title", metavar="T", help="the figure's title (default: atbridge watch)")


def _read(path: str) -> str:
    import sys

    from atbridge.errors import PlotError

    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise PlotError(
            f"cannot read {path}: {reason}", hint="give the file atbridge watch --output wrote"
        ) from None


def run(args: argparse.Namespace) -> int:
    from atbridge import plot

    plot.output_format(args.output)  # a bad name is said before anything is read
    plot.require_matplotlib()
    records = plot.parse_records(_read(args.file), source=args.file)
    figure = plot.build_figure(records, title=args.title)
    summary = plot.describe(records)
    plot.save(
        figure, args.output, title=args.title or f"atbridge watch: {args.file}", summary=summary
    )
    print(f"wrote {args.output}: {summary}")
    return 0
