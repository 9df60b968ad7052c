"""The example's map side (the shuffle, one item per file of the clean day) once the clean step
bounds its files with `max_rows_per_file`, against the same shuffle as one item: what one file
per day gave before. On 2 cores the two should take the same time; what changes is how many
items a fleet can spread. BENCH_EVENTS events, BENCH_REPEATS interleaved rounds, the runner's
defaults. Writes `bench/results/map_side.txt`."""

import os
import tempfile
from pathlib import Path

import reduce_layout as layout
from runner_vs_peers import EVENTS, REPEATS, RUNNER, generate

RESULTS = Path(__file__).resolve().parent / "results" / "map_side.txt"


def main() -> None:
    out = layout.out
    out(f"runner: {RUNNER}")
    out(f"BENCH_EVENTS={EVENTS} BENCH_REPEATS={REPEATS}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-map-") as tmp:
        root = Path(tmp)
        out(f"generating {EVENTS:,} events and cleaning them with the example...")
        generate(root, EVENTS, files=8)
        layout.run(root, layout.EXAMPLE, "clean")
        out(f"  the clean day: {len(list((root / 'clean').rglob('*.parquet')))} files (max_rows_per_file)")
        layout.compare(
            "map side: the shuffle",
            root,
            "shuffle",
            {
                "split by file (an item per clean file)": (layout.variant("by_file"), {}),
                "one item (as from one file per day)": (layout.variant("one", map_split='"single"'), {}),
            },
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(out.lines) + "\n")


if __name__ == "__main__":
    main()
