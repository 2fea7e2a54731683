"""``python -m datasets build SOURCE [options]``: build a dataset and print its summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import os_error_line
from datasets.artifact import build
from datasets.sources import SourceError, source_help
from datasets.windows import SPLITS, WindowSpec


def summary(manifest: dict) -> str:
    """A small plain-text table of what a build produced."""
    lines = [
        f"source             {manifest['source']}",
        f"pieces             {manifest['pieces']} encoded, {manifest['pieces_with_windows']} with windows, "
        f"{len(manifest['skipped'])} skipped",
        "windows            " + ", ".join(f"{s} {manifest['windows_per_split'][s]}" for s in SPLITS),
        "pieces per split   " + ", ".join(f"{s} {manifest['pieces_per_split'][s]}" for s in SPLITS),
        f"density            play {manifest['density_play']:.4f}"
        + (f", articulate {manifest['density_articulate']:.4f}" if manifest["density_articulate"] is not None else ""),
        f"visible units      {manifest['n_visible']}",
        f"windows sha256     {manifest['windows_sha256']}",
        f"cache              {manifest['cache']} ({manifest['seconds']:.2f} s)",
    ]
    lines += [f"skipped            {item['file']}: {item['reason']}" for item in manifest["skipped"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="build or load a cached dataset artifact")
    b.add_argument("source", help=source_help())
    b.add_argument("--num-timesteps", type=int, default=15)
    b.add_argument("--stride", type=int, default=None, help="rows between window starts (default: num-timesteps)")
    b.add_argument("--low", type=int, default=24, help="lowest MIDI pitch kept")
    b.add_argument("--high", type=int, default=102, help="one past the highest MIDI pitch kept")
    b.add_argument("--play-only", action="store_true", help="drop the articulate half")
    b.add_argument(
        "--seed-encoding",
        action="store_true",
        help="the 2016 original: stop at a time signature other than 2 or 4, keep pieces of > 50 rows",
    )
    b.add_argument("--max-rows-per-piece", type=int, default=WindowSpec.max_rows_per_piece,
                   help="refuse (and report) a piece longer than this many rows")  # fmt: skip
    b.add_argument("--max-ticks", type=int, default=WindowSpec.max_ticks,
                   help="refuse (and report) a MIDI file whose last event lies beyond this tick")  # fmt: skip
    b.add_argument("--cache-dir", type=Path, default=None)
    b.add_argument("--refresh", action="store_true", help="ignore the cache and rebuild")
    args = parser.parse_args(argv)
    try:
        spec = WindowSpec(
            args.num_timesteps,
            args.stride or args.num_timesteps,
            args.low,
            args.high,
            not args.play_only,
            args.seed_encoding,
            51 if args.seed_encoding else 1,
            args.max_rows_per_piece,
            args.max_ticks,
        )
        dataset = build(args.source, spec, args.cache_dir, refresh=args.refresh)
    except (SourceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {os_error_line(error)}", file=sys.stderr)
        return 2
    print(summary(dataset.manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
