"""Medians of the `timings` objects in `bottle-core --json up` outputs.

    python3 bench/timings.py OUT...      # one file per `up`

Prints one line: `timings (median of K ups, ms): step=ms ...`, steps in the order
`up` runs them; files that are not an `up --json` status are left out and counted.
"""
import json
import statistics
import sys

ORDER = ["binaries", "images", "networks", "bundle_create", "bundle_start", "agent", "start_check", "record", "total"]

runs, bad = [], 0
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            runs.append(json.load(f)["timings"])
    except (OSError, ValueError, KeyError, TypeError):
        bad += 1
steps = sorted({k for r in runs for k in r}, key=lambda k: (ORDER.index(k[:-3]) if k[:-3] in ORDER else 99, k))
medians = " ".join(f"{k[:-3]}={statistics.median(r[k] for r in runs if k in r):.0f}" for k in steps)
print(f"timings (median of {len(runs)} ups, ms): {medians}" + (f"  ({bad} outputs without timings)" if bad else ""))
