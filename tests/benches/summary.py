#!/usr/bin/env python3
"""Summarise the `peers` and `memory` benchmarks: medians, ratios, targets.

    python3 tests/benches/summary.py                  # every flavour found
    python3 tests/benches/summary.py --flavor multi_thread
    python3 tests/benches/summary.py --target-dir target/bench
    python3 tests/benches/summary.py --baselines run1,run2,run3

Reads criterion's `<target>/criterion/**/new/{benchmark,estimates}.json`
(written by `cargo bench -p nursery-tests --bench peers`) and
`<target>/nursery-bench/memory.json` (written by `--bench memory`), and
prints Markdown: one table per scenario with the median time of an
iteration, the median per child, and the ratio to the scenario's reference,
then the targets of the performance issue, each marked as met or missed.

With `--baselines`, the figures of several rounds saved with criterion's
`--save-baseline NAME` are combined: each benchmark's figure is the median
of its rounds' medians, and the spread of the rounds is shown. Rounds of
the whole suite taken one after another resist what a single round cannot:
a few seconds of disturbance on a shared machine, or a runtime that settles
into a slower pattern for a while.

The target directory is `--target-dir`, else `$CARGO_TARGET_DIR`, else
`target/` at the workspace root. Entries of benchmarks that no longer exist
stay in criterion's directory until it is removed; `--max-age-hours` hides
results older than that.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[2]

SCENARIOS = ["tiny", "cpu_unbounded", "cpu_bounded", "sleep", "cancel", "map", "pipeline"]
FLAVORS = {
    "multi_thread": "",
    "current_thread": "current_thread/",
    "worker": "worker/",
}
FLAVOR_TITLES = {
    "multi_thread": "multi-thread runtime, 2 workers, bench body in block_on (default)",
    "current_thread": "current-thread runtime",
    "worker": "multi-thread runtime, 2 workers, bench body spawned onto a worker",
}

# What each scenario's ratio column compares against: a fixed approach, or
# the fastest row ("best"), or the fastest row with the same limit ("best
# same limit").
REFERENCE = {
    "tiny": "spawn+Vec",
    "cpu_unbounded": "spawn+Vec",
    "cpu_bounded": "worker pool(2)",
    "sleep": "best",
    "cancel": "spawn+Vec abort()",
    "map": "best same limit",
    "pipeline": "hand-written mpsc(3x2)",
}

# Allowed extra bytes per pending child over tokio::spawn + JoinHandle.
MEMORY_MARGIN = 64


@dataclass
class Row:
    function: str
    count: int
    rounds_ns: list[float]  # the median of each round

    @property
    def median_ns(self) -> float:
        return statistics.median(self.rounds_ns)

    @property
    def per_child_ns(self) -> float:
        return self.median_ns / self.count if self.count else self.median_ns

    def spread(self) -> str:
        """The rounds' per-child range, relative to the median."""
        if len(self.rounds_ns) < 2:
            return ""
        low, high = min(self.rounds_ns), max(self.rounds_ns)
        return f"{(low / self.median_ns - 1) * 100:+.0f}% / {(high / self.median_ns - 1) * 100:+.0f}%"


def fmt_time(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def fmt_per_child(ns: float) -> str:
    return f"{ns:,.0f} ns" if ns < 1e5 else fmt_time(ns)


def target_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"])
    return WORKSPACE / "target"


def load_criterion(root: Path, baselines: list[str], max_age_hours: float | None) -> dict[str, list[Row]]:
    """Group id -> rows, from every `new/benchmark.json` under `root`, with
    the median of each of `baselines` that the benchmark has."""
    groups: dict[str, list[Row]] = {}
    now = time.time()
    for bench in sorted(root.glob("**/new/benchmark.json")):
        if max_age_hours is not None and now - bench.stat().st_mtime > max_age_hours * 3600:
            continue
        rounds = []
        for baseline in baselines:
            estimates = bench.parent.parent / baseline / "estimates.json"
            if estimates.exists():
                rounds.append(float(json.loads(estimates.read_text())["median"]["point_estimate"]))
        if not rounds:
            continue
        meta = json.loads(bench.read_text())
        throughput = meta.get("throughput") or {}
        count = throughput.get("Elements") or int(meta.get("value_str") or 0)
        groups.setdefault(meta["group_id"], []).append(Row(meta["function_id"], int(count), rounds))
    return groups


def limit_of(function: str) -> str | None:
    found = re.search(r"\((\d+)\)", function)
    return found.group(1) if found else None


def reference_for(scenario: str, rows: list[Row], row: Row) -> Row | None:
    rule = REFERENCE[scenario]
    if rule == "best":
        return min(rows, key=lambda r: r.per_child_ns)
    if rule == "best same limit":
        same = [r for r in rows if limit_of(r.function) == limit_of(row.function)]
        return min(same, key=lambda r: r.per_child_ns)
    return next((r for r in rows if r.function == rule), None)


def find(rows: list[Row], function: str) -> Row | None:
    return next((r for r in rows if r.function == function), None)


@dataclass
class Check:
    scenario: str
    what: str
    ratio: float | None  # measured / allowed reference (for times)
    limit: float  # the ratio allowed
    detail: str
    subject: str = ""  # the approach checked

    @property
    def met(self) -> bool | None:
        return None if self.ratio is None else self.ratio <= self.limit

    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        if self.met:
            return "meets"
        return f"**MISSES** by {(self.ratio / self.limit - 1) * 100:.0f}%"


def ratio_check(scenario, what, row, ref, limit, strict=False) -> Check:
    if row is None or ref is None:
        return Check(scenario, what, None, limit, "")
    ratio = row.per_child_ns / ref.per_child_ns
    detail = f"{fmt_per_child(row.per_child_ns)} vs {fmt_per_child(ref.per_child_ns)} = {ratio:.2f}x"
    if strict and ratio >= limit:
        # "faster than": equal is a miss too.
        ratio = max(ratio, limit * 1.0000001)
    return Check(scenario, what, ratio, limit, detail, row.function)


def time_checks(groups: dict[str, list[Row]], prefix: str) -> list[Check]:
    get = lambda scenario: groups.get(prefix + scenario, [])  # noqa: E731
    checks: list[Check] = []
    for scenario in ["tiny", "cpu_unbounded"]:
        rows = get(scenario)
        base, joinset = find(rows, "spawn+Vec"), find(rows, "JoinSet")
        for nursery in ["nursery spawn", "nursery spawn+Vec"]:
            row = find(rows, nursery)
            checks.append(ratio_check(scenario, f"`{nursery}` ≤ 1.10× `spawn+Vec`", row, base, 1.10))
            checks.append(
                ratio_check(scenario, f"`{nursery}` faster than `JoinSet`", row, joinset, 1.0, strict=True)
            )
    rows = get("cpu_bounded")
    pool = find(rows, "worker pool(2)")
    for nursery in ["nursery map(2)", "nursery for_each(2)"]:
        checks.append(
            ratio_check("cpu_bounded", f"`{nursery}` ≤ 1.05× `worker pool(2)`", find(rows, nursery), pool, 1.05)
        )
    checks.append(
        ratio_check(
            "cpu_bounded",
            "`nursery limit(2) spawn` ≤ 1.10× its unbounded figure (`cpu_unbounded/nursery spawn`)",
            find(rows, "nursery limit(2) spawn"),
            find(get("cpu_unbounded"), "nursery spawn"),
            1.10,
        )
    )
    rows = get("sleep")
    if rows:
        best = min(rows, key=lambda r: r.per_child_ns)
        for row in rows:
            if row.function.startswith("nursery"):
                checks.append(
                    ratio_check("sleep", f"`{row.function}` ≤ 1.05× the best (`{best.function}`)", row, best, 1.05)
                )
    rows = get("cancel")
    abort = find(rows, "spawn+Vec abort()")
    for nursery in ["nursery n.cancel()", "nursery drop scope"]:
        checks.append(
            ratio_check("cancel", f"`{nursery}` not slower than `spawn+Vec abort()`", find(rows, nursery), abort, 1.0)
        )
    return checks


def memory_checks(memory: list[dict]) -> list[Check]:
    by_name = {m["approach"]: m for m in memory}
    base = by_name.get("spawn+Vec")
    checks = []
    for nursery in ["nursery spawn", "nursery spawn+Vec"]:
        row = by_name.get(nursery)
        what = f"`{nursery}` ≤ `spawn+Vec` + {MEMORY_MARGIN} B/child"
        if row is None or base is None:
            checks.append(Check("memory", what, None, 1.0, "", nursery))
            continue
        extra = row["bytes_per_child"] - base["bytes_per_child"]
        allowed = base["bytes_per_child"] + MEMORY_MARGIN
        checks.append(
            Check(
                "memory",
                what,
                row["bytes_per_child"] / allowed,
                1.0,
                f"{row['bytes_per_child']:.1f} B vs {base['bytes_per_child']:.1f} B: {extra:+.1f} B",
                nursery,
            )
        )
    return checks


def scenario_table(scenario: str, rows: list[Row], checks: list[Check]) -> list[str]:
    rule = REFERENCE[scenario]
    ref_name = {"best": "the fastest", "best same limit": "the fastest with the same limit"}.get(rule, f"`{rule}`")
    rounds = max(len(r.rounds_ns) for r in rows)
    spread = rounds > 1
    out = [
        f"| approach | n | median / iteration | per child | vs {ref_name} |"
        + (f" rounds' spread (of {rounds}) |" if spread else "")
        + " target |",
        "|---|---:|---:|---:|---:|" + ("---:|" if spread else "") + "---|",
    ]
    counts = {r.count for r in rows}
    usual = max(counts, key=lambda c: sum(r.count == c for r in rows)) if counts else 0
    for row in sorted(rows, key=lambda r: r.per_child_ns):
        ref = reference_for(scenario, rows, row)
        ratio = f"{row.per_child_ns / ref.per_child_ns:.2f}x" if ref else "–"
        marks = [
            "✓" if check.met else "✗ MISSES"
            for check in checks
            if check.scenario == scenario and check.subject == row.function and check.met is not None
        ]
        n = f"{row.count:,}" + (" †" if row.count != usual else "")
        out.append(
            f"| {row.function} | {n} | {fmt_time(row.median_ns)} | {fmt_per_child(row.per_child_ns)} | {ratio} |"
            + (f" {row.spread()} |" if spread else "")
            + f" {' '.join(marks)} |"
        )
    if any(r.count != usual for r in rows):
        out.append("")
        out.append(f"† run with fewer children than the rest ({usual:,}): per-child figures only are comparable.")
    return out


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rustc = "rustc not found"
    return [f"- machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}", f"- {rustc}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target-dir")
    parser.add_argument("--flavor", choices=[*FLAVORS, "all"], default="all")
    parser.add_argument("--max-age-hours", type=float)
    parser.add_argument(
        "--baselines",
        default="new",
        help="comma-separated criterion baselines (rounds) to combine; default: the latest run",
    )
    args = parser.parse_args()

    target = target_dir(args.target_dir)
    baselines = [b for b in args.baselines.split(",") if b]
    groups = load_criterion(target / "criterion", baselines, args.max_age_hours)
    memory_file = target / "nursery-bench" / "memory.json"
    memory = json.loads(memory_file.read_text()) if memory_file.exists() else []
    if not groups and not memory:
        print(f"no results under {target}: run `cargo bench -p nursery-tests --bench peers` first", file=sys.stderr)
        return 1

    print("\n".join(machine()))
    if len(baselines) > 1:
        print(f"- figures: median of the rounds {', '.join(baselines)} (each round's figure is criterion's median)")
    all_checks: list[tuple[str, Check]] = []
    flavors = FLAVORS if args.flavor == "all" else {args.flavor: FLAVORS[args.flavor]}
    for flavor, prefix in flavors.items():
        if not any(prefix + s in groups for s in SCENARIOS):
            continue
        checks = time_checks(groups, prefix)
        all_checks += [(flavor, c) for c in checks]
        print(f"\n## {FLAVOR_TITLES[flavor]}\n")
        for scenario in SCENARIOS:
            rows = groups.get(prefix + scenario)
            if not rows:
                continue
            print(f"### {prefix}{scenario}\n")
            print("\n".join(scenario_table(scenario, rows, checks)))
            print()

    if memory:
        checks = memory_checks(memory)
        all_checks += [("memory", c) for c in checks]
        base = next((m for m in memory if m["approach"] == "spawn+Vec"), None)
        print(f"\n## memory: peak RSS per pending child ({memory[0]['children']:,} children, one process each)\n")
        print("| approach | bytes/child | vs `spawn+Vec` | target |")
        print("|---|---:|---:|---|")
        for m in sorted(memory, key=lambda m: m["bytes_per_child"]):
            diff = f"{m['bytes_per_child'] - base['bytes_per_child']:+.1f} B" if base else "–"
            mark = next(("✓" if c.met else "✗ MISSES" for c in checks if c.subject == m["approach"]), "")
            print(f"| {m['approach']} | {m['bytes_per_child']:.0f} | {diff} | {mark} |")

    if all_checks:
        print("\n## targets\n")
        print("| flavour | scenario | target | measured | verdict |")
        print("|---|---|---|---|---|")
        for flavor, check in all_checks:
            print(f"| {flavor} | {check.scenario} | {check.what} | {check.detail} | {check.verdict()} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
