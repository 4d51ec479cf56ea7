"""The differential tester against real Keras 3: `make parity` (hundreds of random cases) or

    .venv/bin/python tests/keras_parity/run.py --cases 300 --first-seed 0 [--no-shrink]

prints the per-check totals, the probes (probes.py), and for every failing check the smallest
reproducer the shrinker found. Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import generate
from differential import CHECKS, KerasWorker, Outcome, compare_case, reproducer, shrink_failure
from probes import PROBES


def totals_table(outcomes: list[Outcome]) -> str:
    rows = ["| check | pass | fail | known | n/a |", "|---|---:|---:|---:|---:|"]
    for check in CHECKS:
        counts = Counter(outcome.status.get(check, "n/a") for outcome in outcomes if outcome.keras_error is None)
        rows.append(f"| {check} | {counts['pass']} | {counts['fail']} | {counts['known']} | {counts['n/a']} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--no-shrink", action="store_true")
    parser.add_argument("--shrink-per-check", type=int, default=3, help="failures to shrink for each check")
    arguments = parser.parse_args()
    started = time.perf_counter()
    with KerasWorker() as worker:
        outcomes = [
            compare_case(generate(seed), worker)
            for seed in range(arguments.first_seed, arguments.first_seed + arguments.cases)
        ]
        probes = [compare_case(case, worker) for case in PROBES]
        refused = sum(outcome.keras_error is not None for outcome in outcomes)
        print(
            f"## Random cases: {len(outcomes)} (seeds {arguments.first_seed}.."
            f"{arguments.first_seed + arguments.cases - 1}), "
            f"{refused} refused by Keras (invalid, not counted)\n"
        )
        print(totals_table(outcomes))
        failing = [outcome for outcome in outcomes if outcome.failures]
        print(f"\n{len(outcomes) - refused - len(failing)} of {len(outcomes) - refused} cases agree on every check.\n")
        print("## Probes\n")
        for outcome in probes:
            verdict = (
                "ok"
                if not outcome.failures
                else f"DIFFERS ({outcome.first_failure}: {outcome.failures[outcome.first_failure]})"
            )
            if outcome.keras_error:
                verdict = f"Keras refused: {outcome.keras_error}"
            print(f"- {outcome.case['probe']}: {verdict}")
        if failing and not arguments.no_shrink:
            print("\n## Smallest reproducers\n")
            shrunk: Counter[str] = Counter()
            for outcome in failing:
                check = outcome.first_failure or ""
                if shrunk[check] >= arguments.shrink_per_check:
                    continue
                shrunk[check] += 1
                smallest = shrink_failure(outcome, worker)
                print(f"### {check}: {smallest.failures[check]}\n```python\n{reproducer(smallest.case)}\n```\n")
        print(f"\n{worker.calls} Keras runs in {time.perf_counter() - started:.0f} s")
    probes_failing = sum(bool(outcome.failures) or outcome.keras_error is not None for outcome in probes)
    return 1 if failing or probes_failing else 0


if __name__ == "__main__":
    sys.exit(main())
