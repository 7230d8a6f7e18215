"""The SynTrack positive control (ground-truth renders through the metric stack: the ceiling; corrupted renders score
lower), written with its provenance to the file the test suite reproduces. Regenerate it only after an intended
change of the generator or the metrics, and say so in the commit:

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_syntrack_ceiling.py [--json tests/data/syntrack_ceiling.json]
"""

from __future__ import annotations

import argparse
import time

from provenance import REPO, provenance, write_json

from trackdiffusion.evaluation.metrics.control import DEFAULTS, positive_control

DEFAULT_JSON = REPO / "tests" / "data" / "syntrack_ceiling.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=DEFAULTS["n_clips"])
    parser.add_argument("--corrupted", type=int, default=DEFAULTS["n_corrupted"])
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write ('-': nowhere)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    result = positive_control(n_clips=args.clips, n_corrupted=args.corrupted)
    ceiling = result["ceiling"]
    print(f"ceiling ({args.clips} clips): TrackAP {ceiling['TrackAP']:.3f}, AP50 {ceiling['AP50']:.3f} "
          f"in {time.perf_counter() - t0:.0f} s")
    if args.json != "-":
        write_json(args.json, {"provenance": provenance(), **result})


if __name__ == "__main__":
    main()
