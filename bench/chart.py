#!/usr/bin/env python3
"""Turns the RESULT lines of benches/compare.rs (collected by bench/run.sh)
into BENCHMARKS.md and bench/chart.svg. Plain python3, no third-party packages.

    python3 bench/chart.py --results target/bench/results.txt \
        --meta target/bench/results.meta --out BENCHMARKS.md \
        --svg bench/chart.svg --notes bench/notes.md
"""

import argparse
import os
import shlex
import statistics
from collections import OrderedDict

WORKLOADS = OrderedDict(
    [
        ("W1", "trivial: each job returns its index; submit all, then await every handle"),
        ("W2", "sleep: each job sleeps 1 ms on its runtime's timer"),
        ("W3", "timeout storm: each job tries to sleep 10 s under a 1 ms timeout"),
        ("W4", "cpu: each job spins ~100 µs of pure CPU (blocking)"),
        ("W5", "queue memory: N = 1, the first job blocks until every other job is queued"),
        ("W6", "handles in select: a consumer selects over the handles and a channel of as many messages"),
        ("W7", "head-of-line: N = 8 on 2 executor threads; rounds 30 ms apart of one job spinning in a single poll, then at once 50 trivial jobs"),
    ]
)

CONTENDERS = OrderedDict(
    [
        ("wpxt", "workerpoolxt, embedded executor: `Pool::new(n)`, `submit` / `submit_blocking` / `submit_job(Job::new(..).timeout(..))`"),
        ("wpxt-tokio", "workerpoolxt, workers spawned on a tokio multi-thread runtime (2 workers) through `Builder::spawner`, tokio timer"),
        ("tokio-joinset", "tokio `JoinSet::spawn`, each task first takes an owned permit of `Arc<Semaphore>(n)`"),
        ("tokio-permit", "tokio: permit acquired in the submit loop, then `tokio::spawn`; the `JoinHandle`s are kept"),
        ("buffer-unordered", "futures `stream::iter(jobs).buffer_unordered(n)` in one task (no parallelism, no handles)"),
        ("smol-sem", "async-executor on 2 threads, async-lock `Semaphore` permit held inside the task, `Task` handles; executor threads and the awaiting thread run `smol::block_on`"),
        ("floor", "box a closure, push it into a Vec, call each: one job's cost with no concurrency"),
    ]
)
PEERS = ["tokio-joinset", "tokio-permit", "buffer-unordered", "smol-sem"]
OURS = ["wpxt", "wpxt-tokio"]

# workload -> (field, unit label, scale applied to the field for display, decimals)
METRIC = {
    "W1": ("ns_per_job", "ns/job", 1.0, 1),
    "W2": ("secs", "wall ms", 1e3, 1),
    "W3": ("secs", "wall ms", 1e3, 1),
    "W4": ("secs", "wall ms", 1e3, 1),
    "W5": ("bytes_per_job", "bytes/queued job", 1.0, 0),
    "W6": ("secs", "wall ms", 1e3, 2),
    "W7": ("p50_us", "p50 start µs", 1.0, 1),
}
# the unit of the metric alone, for "Ideal: ... = 12.3 <unit>"
SHORT_UNIT = {"W1": "ns/job", "W2": "ms", "W3": "ms", "W4": "ms", "W5": "bytes/job", "W6": "ms", "W7": "µs"
}
# W7's start-latency quantiles (RESULT fields, in µs), each given as median (min–max) over the runs.
W7_FIELDS = (("p50_us", "p50"), ("p99_us", "p99"), ("max_us", "max"))

PLACEHOLDER_NOTES = (
    "_To be written._ What dominates each workload for workerpoolxt (from a profile, e.g. "
    "`perf record` on `target/release/deps/compare-* W1 wpxt`): queue push and pop, waking a "
    "worker, the result slot, boxing the job; and why it is ahead of or behind the best peer. "
    "Write this section in `bench/notes.md`: `bench/chart.py` copies that file here on every run."
)


def parse_results(path):
    runs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("RESULT "):
                continue
            fields = {}
            for tok in shlex.split(line[len("RESULT "):]):
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    fields[k] = v
            if "workload" in fields and "contender" in fields:
                runs.append(fields)
    return runs


def parse_meta(path):
    meta = OrderedDict()
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    return meta


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


class Cell:
    """All runs of one (workload, contender) pair."""

    def __init__(self, w, c, runs):
        self.w, self.c, self.runs = w, c, runs
        self.na = next((r["na"] for r in runs if "na" in r), None)
        self.errors = [r.get("error", "ok=false") for r in runs if r.get("ok") != "true"]
        field = METRIC[w][0]
        self.values = [v for v in (num(r.get(field)) for r in runs if r.get("ok") == "true") if v is not None]
        self.rss = [v for v in (num(r.get("maxrss_kb")) for r in runs) if v]
        self.extra = {}
        for key in ("alive_at_end", "timed_out", "results_once", "msgs_once", "waiting", "jobs", "n", "ideal_secs",
                    "rounds", "spin_ms", "measured"):
            vals = sorted({r[key] for r in runs if key in r})
            if vals:
                self.extra[key] = vals

    @property
    def ok(self):
        return not self.errors and self.na is None and bool(self.values)

    @property
    def median(self):
        return statistics.median(self.values) if self.values else None

    def field_values(self, key):
        """The values of RESULT field `key` over the runs that were ok."""
        return [v for v in (num(r.get(key)) for r in self.runs if r.get("ok") == "true") if v is not None]


def fmt(v, decimals):
    if v is None:
        return "—"
    if abs(v) >= 10000:
        return f"{v:,.0f}"
    return f"{v:,.{decimals}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def ideal_for(w, cells):
    """The ideal/floor value of the workload's metric (same unit as the metric field)."""
    floor = cells.get((w, "floor"))
    if w in ("W1", "W5"):
        return floor.median if floor and floor.ok else None, "floor"
    if w in ("W2", "W3"):
        ideals = [num(v) for c in cells.values() if c.w == w for v in c.extra.get("ideal_secs", [])]
        ideals = [i for i in ideals if i]
        return (max(ideals) if ideals else None), "ceil(jobs/N) × 1 ms"
    if w == "W4":
        # The floor runs the spins one after another on one thread: its CPU
        # time is the work, and (unlike its wall time) hardly moves when the
        # machine is busy. Older results without cpu_secs fall back to wall time.
        if not (floor and floor.ok):
            return None, None
        cpu = [v for v in (num(r.get("cpu_secs")) for r in floor.runs if r.get("ok") == "true") if v]
        if cpu:
            return statistics.median(cpu) / 2, "floor's CPU time / 2 cores"
        return floor.median / 2, "floor's wall time / 2 cores"
    return None, None


def w7_table(cells):
    """W7: the trivial jobs' start latency, p50 / p99 / max, each the median (min–max) over the runs."""
    w = "W7"
    present = [c for c in CONTENDERS if (w, c) in cells]

    def med(cell, key):
        vals = cell.field_values(key)
        return statistics.median(vals) if vals else None

    def spread(cell, key):
        vals = cell.field_values(key)
        if not vals:
            return "—"
        m, lo, hi = statistics.median(vals), min(vals), max(vals)
        return fmt(m, 1) if lo == hi else f"{fmt(m, 1)} ({fmt(lo, 1)}–{fmt(hi, 1)})"

    best = {}
    for key, _ in W7_FIELDS[:2]:
        meds = [(med(cells[(w, p)], key), p) for p in PEERS if (w, p) in cells and cells[(w, p)].ok]
        meds = [m for m in meds if m[0] is not None]
        best[key] = min(meds) if meds else (None, None)

    cs = [cells[(w, x)] for x in present]
    rounds = sorted({r for c in cs for r in c.extra.get("rounds", [])})
    spins = sorted({s for c in cs for s in c.extra.get("spin_ms", [])})
    ns = sorted({n for c in cs for n in c.extra.get("n", [])})
    lines = [f"### {w} {WORKLOADS[w]}", ""]
    bits = [
        f"Size: {'/'.join(rounds) or '?'} rounds × (1 job spinning {'/'.join(spins) or '?'} ms in one poll + 50 trivial jobs), "
        f"N = {'/'.join(ns) or '?'}, 2 executor threads; rounds start 30 ms apart, each waits for all its jobs.",
        "Start latency: from just before a trivial job's submit call to its first poll, over every trivial job of a run.",
    ]
    if best["p50_us"][1]:
        bits.append(f"Best peer (p50): **{best['p50_us'][1]}**.")
    bits.append("Ideal: microseconds (a thread and 7 workers are free while the spinning job runs).")
    lines.append(" ".join(bits))
    lines.append("")
    head = "| contender | p50 µs | p99 µs | max µs | p50 vs best peer | p99 vs best peer | peak RSS MiB | ok |"
    lines.append(head)
    lines.append("|" + "---|" * (head.count("|") - 1))
    for c in present:
        cell = cells[(w, c)]
        name, rss = name_and_rss(c, cell)
        if cell.na is not None:
            lines.append(f"| {name} | n/a | | | | | {rss} | n/a: {cell.na} |")
            continue
        okc = "yes" if cell.ok else "**NO**: " + "; ".join(sorted(set(cell.errors)))[:200]
        lines.append(
            f"| {name} | {spread(cell, 'p50_us')} | {spread(cell, 'p99_us')} | {spread(cell, 'max_us')} | "
            f"{ratio(med(cell, 'p50_us'), best['p50_us'][0])} | {ratio(med(cell, 'p99_us'), best['p99_us'][0])} | "
            f"{rss} | {okc} |"
        )
    lines.append("")
    return lines


def name_and_rss(c, cell):
    """A table row's contender (ours in bold) and its median peak RSS in MiB."""
    name = f"**{c}**" if c in OURS else c
    rss = fmt(statistics.median(cell.rss) / 1024, 1) if cell.rss else "—"
    return name, rss


def workload_table(w, cells):
    if w == "W7":
        return w7_table(cells)
    field, unit, scale, dec = METRIC[w]
    present = [c for c in CONTENDERS if (w, c) in cells]
    peer_medians = [(cells[(w, p)].median, p) for p in PEERS if (w, p) in cells and cells[(w, p)].ok]
    best = min(peer_medians) if peer_medians else (None, None)
    ideal, ideal_name = ideal_for(w, cells)
    lines = []
    sizes = sorted({(c.extra.get("jobs", ["?"])[0], c.extra.get("n", ["?"])[0]) for c in (cells[(w, x)] for x in present)})
    size_txt = ", ".join(f"{int(j):,} jobs, N = {n}" if j.isdigit() else f"{j} jobs, N = {n}" for j, n in sizes)
    lines.append(f"### {w} {WORKLOADS[w]}")
    lines.append("")
    bits = [f"Size: {size_txt}."]
    if best[1]:
        bits.append(f"Best peer: **{best[1]}**.")
    if ideal is not None:
        bits.append(f"Ideal: {ideal_name} = {fmt(ideal * scale, dec)} {SHORT_UNIT[w]}.")
    lines.append(" ".join(bits))
    lines.append("")
    head = f"| contender | median {unit} | min–max | vs best peer | vs ideal | peak RSS MiB | ok |"
    if w == "W3":
        head = head[:-5] + " alive at end | ok |"
    if w == "W6":
        head = head[:-5] + " received once | ok |"
    if w == "W4":
        head = head[:-5] + " CPU ms | ok |"
    lines.append(head)
    lines.append("|" + "---|" * (head.count("|") - 1))
    for c in present:
        cell = cells[(w, c)]
        name, rss = name_and_rss(c, cell)
        if cell.na is not None:
            row = f"| {name} | n/a | | | | {rss} | n/a: {cell.na} |"
            if w in ("W3", "W4", "W6"):
                row = row[:-len(f" n/a: {cell.na} |")] + f" | n/a: {cell.na} |"
            lines.append(row)
            continue
        med = cell.median
        mn = min(cell.values) if cell.values else None
        mx = max(cell.values) if cell.values else None
        okc = "yes" if cell.ok else "**NO**: " + "; ".join(sorted(set(cell.errors)))[:200]
        vs_ideal = ratio(med, ideal) if c != "floor" else ("1.00×" if w in ("W1", "W5") else ratio(med, ideal))
        row = (
            f"| {name} | {fmt(med * scale if med is not None else None, dec)} | "
            f"{fmt(mn * scale if mn is not None else None, dec)}–{fmt(mx * scale if mx is not None else None, dec)} | "
            f"{ratio(med, best[0]) if c != 'floor' else '—'} | {vs_ideal} | {rss} |"
        )
        if w == "W3":
            row += f" {', '.join(cell.extra.get('alive_at_end', ['—']))} |"
        if w == "W4":
            cpu = [v for v in (num(r.get("cpu_secs")) for r in cell.runs if r.get("ok") == "true") if v is not None]
            row += f" {fmt(statistics.median(cpu) * 1e3, 0) if cpu else '—'} |"
        if w == "W6":
            r1 = ",".join(cell.extra.get("results_once", ["?"]))
            m1 = ",".join(cell.extra.get("msgs_once", ["?"]))
            row += f" {r1} results, {m1} msgs |"
        row += f" {okc} |"
        lines.append(row)
    lines.append("")
    return lines


def summary_table(cells):
    lines = [
        "| contender | " + " | ".join(f"{w} {METRIC[w][1]}" for w in WORKLOADS) + " |",
        "|---|" + "---|" * len(WORKLOADS),
    ]
    for c in CONTENDERS:
        if not any((w, c) in cells for w in WORKLOADS):
            continue
        row = [f"**{c}**" if c in OURS else c]
        for w in WORKLOADS:
            cell = cells.get((w, c))
            _, _, scale, dec = METRIC[w]
            if cell is None:
                row.append("")
            elif cell.na is not None:
                row.append("n/a")
            elif not cell.ok:
                row.append("FAIL")
            else:
                row.append(fmt(cell.median * scale, dec))
        lines.append("| " + " | ".join(row) + " |")
    return lines


# ---------------------------------------------------------------------------
# SVG: horizontal bars (median) with min–max whiskers, one panel per metric.
# ---------------------------------------------------------------------------

COLORS = {"ours": "#d95f02", "peer": "#5e6bb0", "floor": "#9a9a9a"}


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_panel(title, w, cells, y0, width):
    field, unit, scale, dec = METRIC[w]
    label_w, value_w, bar_h, gap = 130, 120, 18, 8
    x0, bar_max = label_w + 10, width - label_w - value_w - 20
    rows = [c for c in CONTENDERS if (w, c) in cells]
    vmax = 0.0
    for c in rows:
        cell = cells[(w, c)]
        if cell.ok:
            vmax = max(vmax, max(cell.values) * scale)
    vmax = vmax or 1.0
    out = [f'<text x="10" y="{y0 + 16}" font-size="14" font-weight="bold">{esc(title)}</text>']
    y = y0 + 28
    for c in rows:
        cell = cells[(w, c)]
        kind = "ours" if c in OURS else ("floor" if c == "floor" else "peer")
        weight = ' font-weight="bold"' if kind == "ours" else ""
        out.append(f'<text x="{label_w}" y="{y + bar_h - 5}" font-size="12" text-anchor="end"{weight}>{esc(c)}</text>')
        if cell.na is not None:
            out.append(f'<text x="{x0 + 4}" y="{y + bar_h - 5}" font-size="11" fill="#777">n/a</text>')
        elif not cell.ok:
            out.append(f'<text x="{x0 + 4}" y="{y + bar_h - 5}" font-size="11" fill="#c00">failed</text>')
        else:
            med = cell.median * scale
            bw = max(1.0, bar_max * med / vmax)
            out.append(f'<rect x="{x0}" y="{y}" width="{bw:.1f}" height="{bar_h}" fill="{COLORS[kind]}"><title>{esc(c)}: {fmt(med, dec)} {esc(unit)}</title></rect>')
            lo, hi = min(cell.values) * scale, max(cell.values) * scale
            if hi > lo:
                xl, xh, ym = x0 + bar_max * lo / vmax, x0 + bar_max * hi / vmax, y + bar_h / 2
                out.append(f'<line x1="{xl:.1f}" y1="{ym}" x2="{xh:.1f}" y2="{ym}" stroke="#222" stroke-width="1"/>')
                out.append(f'<line x1="{xl:.1f}" y1="{ym - 4}" x2="{xl:.1f}" y2="{ym + 4}" stroke="#222" stroke-width="1"/>')
                out.append(f'<line x1="{xh:.1f}" y1="{ym - 4}" x2="{xh:.1f}" y2="{ym + 4}" stroke="#222" stroke-width="1"/>')
            tx = x0 + max(bw, bar_max * hi / vmax) + 6
            out.append(f'<text x="{tx:.1f}" y="{y + bar_h - 5}" font-size="11">{fmt(med, dec)}</text>')
        y += bar_h + gap
    return out, y


def write_svg(path, cells, meta):
    width = 720
    parts = []
    y = 0
    for w, title in (("W1", "W1 trivial jobs: ns per job (lower is better)"), ("W5", "W5 queue memory: bytes per queued job (lower is better)")):
        if not any(k[0] == w for k in cells):
            continue
        panel, y = svg_panel(title, w, cells, y, width)
        parts += panel
        y += 14
    foot = f"median of {meta.get('runs', '?')} runs, whiskers min–max; {meta.get('nproc', '?')} cores; {meta.get('date', '')}"
    parts.append(f'<text x="10" y="{y + 4}" font-size="10" fill="#555">{esc(foot)}</text>')
    height = y + 14
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        *parts,
        "</svg>",
    ]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(svg) + "\n")


# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--svg", default="bench/chart.svg")
    ap.add_argument("--notes", default="bench/notes.md")
    args = ap.parse_args()

    runs = parse_results(args.results)
    meta = parse_meta(args.meta)
    grouped = OrderedDict()
    for r in runs:
        grouped.setdefault((r["workload"], r["contender"]), []).append(r)
    cells = {k: Cell(k[0], k[1], v) for k, v in grouped.items() if k[0] in METRIC}

    svg_rel = os.path.relpath(args.svg, os.path.dirname(os.path.abspath(args.out)) or ".")
    R = meta.get("runs", "5")
    md = [
        "# Benchmarks",
        "",
        "<!-- Generated by bench/chart.py from the output of bench/run.sh: edit those (or bench/notes.md), not this file. -->",
        "",
        "workerpoolxt against the pools a user would pick instead, on the same machine in one run. "
        "Each (workload, contender) pair runs in its own process, "
        f"{R} time{'' if R == '1' else 's'}; the tables give the median and the min–max. The machines are shared and noisy: "
        "read the ratios, not the absolute times.",
        "",
        f"![W1 ns per job and W5 bytes per queued job]({svg_rel})",
        "",
        "## Summary (medians)",
        "",
        *summary_table(cells),
        "",
        "Lower is better everywhere. `n/a`: the workload makes no sense for that contender (the reason is in its table).",
        "",
        "## Contenders",
        "",
        "| contender | what it is |",
        "|---|---|",
        *[f"| {'**' + c + '**' if c in OURS else c} | {d} |" for c, d in CONTENDERS.items()],
        "",
        "All multi-threaded runtimes get 2 threads (the machine's cores). W2–W4 jobs use their own runtime's "
        "timer and blocking pool (`tokio::time`, `spawn_blocking`; async-io `Timer`, `blocking::unblock`); "
        "workerpoolxt's own timeout timer is async-io on the embedded executor and tokio's with `wpxt-tokio`.",
        "",
        "## Results per workload",
        "",
        "*vs best peer*: median ÷ the best median among tokio-joinset, tokio-permit, buffer-unordered and smol-sem. "
        "*vs ideal*: median ÷ the ideal (W1, W5: the floor; W2, W3: ceil(jobs/N) × 1 ms; W4: the floor's "
        "sequential CPU time ÷ 2 cores). W4's *CPU ms*: user + system time of the whole process. *peak RSS*: `/usr/bin/time -f %M` of the whole process. "
        "W7 gives start-latency quantiles (p50, p99, max of one run's trivial jobs), each as the median over the runs and their min–max; "
        "its summary column is the p50.",
        "",
    ]
    for w in WORKLOADS:
        if any(k[0] == w for k in cells):
            md += workload_table(w, cells)

    notes = None
    if args.notes and os.path.exists(args.notes):
        with open(args.notes, encoding="utf-8") as f:
            notes = f.read().strip()
    md += ["## Where the time goes", "", notes or PLACEHOLDER_NOTES, ""]

    md += [
        "## How to reproduce",
        "",
        "```sh",
        "apt-get install -y time                  # /usr/bin/time, for peak RSS",
        f"R={R} bench/run.sh                        # builds once, runs every pair R times, writes this file and bench/chart.svg",
        "cargo bench --bench compare -- W1 wpxt   # one pair, one process: prints one RESULT line",
        "cargo bench --bench compare -- W1 wpxt --jobs 1000   # smaller size (also --n N)",
        "cargo bench --bench compare -- smoke     # every pair at tiny sizes, checks correctness (CI)",
        "cargo bench --bench compare -- list      # the pairs",
        "```",
        "",
        "`bench/run.sh` builds with `cargo bench --bench compare --no-run` and then runs the bench executable "
        "directly, each run as `/usr/bin/time -f '%e %M' target/release/deps/compare-<hash> <workload> <contender>`, "
        "round-robin over the pairs so that noise spreads evenly. Filters: `WORKLOADS=\"W1 W5\"`, "
        "`CONTENDERS=\"wpxt tokio-joinset\"`, `JOBS=1000`.",
        "",
        "## Machine",
        "",
    ]
    for key, label in (("date", "date"), ("nproc", "nproc"), ("cpu", "cpu"), ("mem", "memory"), ("kernel", "kernel"),
                       ("rustc", "rustc"), ("cargo", "cargo"), ("commit", "commit"), ("load_start", "load average before"),
                       ("load_end", "load average after"), ("runs", "runs per pair"),
                       ("jobs_override", "--jobs override")):
        if meta.get(key):
            md.append(f"- {label}: `{meta[key]}`")
    md.append("")
    md += [
        "<details><summary>Raw results</summary>",
        "",
        "```text",
        *[
            "RESULT " + " ".join(f"{k}={shlex.quote(v)}" for k, v in r.items() if k != "vmhwm_kb")
            for r in runs
        ],
        "```",
        "",
        "</details>",
        "",
    ]
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    write_svg(args.svg, cells, meta)


if __name__ == "__main__":
    main()
