"""The TCP part's ratios against issue 14's targets, its Markdown table and its chart (bench/tcp.py's results)."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path
from typing import Any

from bench.tcp import DIRS, LOSS, ROWS

Row = tuple[str, float | None, str, str]  # what, value, target ("" = information), note


def _get(tcp: dict[str, Any], row: str, cmd: str, key: str) -> float | None:
    x = tcp.get("rows", {}).get(row, {}).get(cmd, {})
    v = x.get(key) if isinstance(x, dict) else None
    return float(v) if v is not None else None


def _why(tcp: dict[str, Any], *rows: str) -> str:
    for row in rows:
        r = tcp.get("rows", {}).get(row, {})
        if "unavailable" in r:
            return f"{row}: {r['unavailable']}"
    return ""


def ratios(tcp: dict[str, Any]) -> list[Row]:
    out: list[Row] = []

    def ratio(what: str, a: float | None, b: float | None, target: str, note: str) -> None:
        out.append((what, round(a / b, 3) if a is not None and b else None, target, note))

    for cmd, d in DIRS.items():
        for mode in ("plain", "offload"):
            t, f = f"tcpip-{mode}", f"floor-{mode}"
            ratio(f"TCP {d} Mbit/s: {t} / {f}", _get(tcp, t, cmd, "mbit_s"), _get(tcp, f, cmd, "mbit_s"), ">= 0.5",
                  _why(tcp, t, f) or f"{_get(tcp, t, cmd, 'mbit_s')} / {_get(tcp, f, cmd, 'mbit_s')}")
            tc, fc = _get(tcp, t, cmd, "cpu_ms_per_mb"), _get(tcp, f, cmd, "cpu_ms_per_mb")
            note = _why(tcp, t, f) or f"{tc} / {fc} ms/MB (user+sys, getrusage)"
            if cmd == "get":  # the receiver hashes what it gets; senders send a known stream
                h = float(tcp.get("sha256_ms_per_mb") or 0.0)
                ratio(f"TCP {d} CPU per MB: {t} / {f} (as measured)", tc, fc, "", note + ", sha256 check included")
                ratio(f"TCP {d} CPU per MB: {t} / {f} (less the sha256 check)", None if tc is None else tc - h,
                      None if fc is None else fc - h, "<= 2", _why(tcp, t, f) or f"both less {h} ms/MB")
            else:
                ratio(f"TCP {d} CPU per MB: {t} / {f}", tc, fc, "<= 2", note)
        for t in ("tcpip-plain", "tcpip-offload"):
            ratio(f"TCP {d} Mbit/s: {t} / kernel-veth", _get(tcp, t, cmd, "mbit_s"),
                  _get(tcp, "kernel-veth", cmd, "mbit_s"), "", _why(tcp, t) or "information")
    out.append(("TCP: PyTCP 3.0.9 row", None, "", tcp.get("pytcp", "")))
    lo = tcp.get("loss", {})
    if "runs" in lo:
        for cmd, d in DIRS.items():
            base = lo["runs"].get("0", {}).get(cmd, {}).get("mbit_s")
            for pct in LOSS[1:]:
                r = lo["runs"].get(str(pct), {}).get(cmd, {})
                ratio(f"TCP {d} {pct} % loss, {lo['bytes'] // 1_000_000} MB: Mbit/s / lossless", r.get("mbit_s"), base,
                      "", f"{lo['row']}, {'all verified' if r.get('verified') else 'NOT verified'}")
            r5 = lo["runs"].get("5", {}).get(cmd, {})
            secs = r5.get("max_seconds")
            out.append((f"TCP {d} 5 % loss: slowest transfer (s)", None if secs is None else round(secs, 2), "<= 30",
                        "every byte, sha256 checked" if r5.get("verified") else "NOT verified"))
            rt = r5.get("tcpip_retrans", {})
            if cmd == "put":  # receiving, tcpip resends only its request line or FIN: the kernel recovers
                share = rt.get("rto_share")
                out.append((f"TCP {d} 5 % loss: tcpip RTO-driven / all retransmissions", share, "<= 0.1",
                            f"{'n/a' if share is None else f'{share:.2%}'}: rto {rt.get('rto')}, fast/RACK/TLP/"
                            f"rescue {rt.get('fast_rack_tlp')}, all runs"))
    return out


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if v < 0.1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _met(v: float | None, target: str) -> str:
    if v is None or not target:
        return ""
    op, num = target.split()
    ok = v <= float(num) if op == "<=" else v >= float(num)
    return "yes" if ok else "**NO**"


def markdown(tcp: dict[str, Any]) -> list[str]:
    n, reps = tcp["bytes"], tcp["repeats"]
    out = ["", f"## TCP bulk ({n // 1_000_000} MB each way, median of {reps}, every run listed; receive = the "
           "subject receives, send = the subject sends)", "",
           "| row | receive Mbit/s | send Mbit/s | receive CPU ms/MB | send CPU ms/MB | sha256 | all runs (Mbit/s) |",
           "|---|---:|---:|---:|---:|---|---|"]
    if "error" in tcp.get("rows", {}):
        out.append(f"| all rows | error: {tcp['rows']['error']} | | | | | |")
    for row in ROWS:
        r = tcp.get("rows", {}).get(row, {})
        if "unavailable" in r:
            out.append(f"| {row} | unavailable: {r['unavailable']} | | | | | |")
            continue
        g, p = r.get("get", {}), r.get("put", {})
        runs = "; ".join(f"{DIRS[c]} " + ", ".join(
            str(x.get("mbit_s", x.get("error"))) for x in r.get(c, {}).get("runs", [])) for c in DIRS)
        ver = "ok" if g.get("verified") and p.get("verified") else "**FAILED**"
        out.append(f"| {row} | {g.get('mbit_s', g.get('error'))} | {p.get('mbit_s', p.get('error'))} | "
                   f"{g.get('cpu_ms_per_mb', '')} | {p.get('cpu_ms_per_mb', '')} | {ver} | {runs} |")
    out.append(f"| pytcp | unavailable: {tcp.get('pytcp')} | | | | | |")
    out += ["", f"Receive CPU figures include the subject's sha256 of the data: {tcp.get('sha256_ms_per_mb')} "
            "ms/MB, measured in the same run. CPU is user+sys from getrusage (microseconds); os.times() gives the "
            "same in 10 ms ticks, too coarse for the offload rows: `cpu_ticks_ms_per_mb` in results.json."]
    lo = tcp.get("loss", {})
    if "runs" in lo:
        out += ["", f"Loss ({lo['row']}, {lo['bytes'] // 1_000_000} MB, median of {lo.get('repeats')}; nftables "
                "drops on a router's forward hook, both ways):", "",
                "| loss | direction | Mbit/s | slowest s | sha256 | tcpip retrans rto / fast+RACK+TLP | kernel "
                "RetransSegs / Timeouts / FastRetrans / LossProbes | all runs |", "|---|---|---:|---:|---|---|---|---|"]
        for pct, byd in lo["runs"].items():
            for cmd, s in byd.items():
                rt, k = s.get("tcpip_retrans", {}), s.get("kernel", {})
                every = ", ".join(str(x.get("mbit_s", x.get("error"))) for x in s["runs"])
                out.append(
                    f"| {pct} % | {DIRS[cmd]} | {s.get('mbit_s', s.get('error'))} | {_fmt(s.get('max_seconds'))} | "
                    f"{'ok' if s.get('verified') else '**FAILED**'} | {rt.get('rto')} / {rt.get('fast_rack_tlp')} | "
                    f"{k.get('TcpRetransSegs')} / {k.get('TcpExtTCPTimeouts')} / {k.get('TcpExtTCPFastRetrans')} / "
                    f"{k.get('TcpExtTCPLossProbes')} | {every} |")
    elif lo:
        out += ["", f"Loss runs skipped: {lo.get('skipped')}"]
    return out


def chart(tcp: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    labels = [*ROWS, "pytcp"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    w = 0.38
    for i, (cmd, d) in enumerate(DIRS.items()):
        rates = [_get(tcp, r, cmd, "mbit_s") or 0.0 for r in labels]
        cpu = [_get(tcp, r, cmd, "cpu_ms_per_mb") or 0.0 for r in labels]
        xs = [x + (i - 0.5) * w for x in range(len(labels))]
        b1, b2 = ax.bar(xs, rates, w, label=d), ax2.bar(xs, cpu, w, label=d)
        ax.bar_label(b1, [f"{v:.0f}" if v else "" for v in rates], fontsize=7)
        ax2.bar_label(b2, [f"{v:.1f}" if v else "" for v in cpu], fontsize=7)
    for r_i, r in enumerate(labels):
        if r == "pytcp" or "unavailable" in tcp.get("rows", {}).get(r, {}):
            for a in (ax, ax2):
                a.text(r_i, 0.02, "unavailable", rotation=90, ha="center", va="bottom", fontsize=8,
                       transform=a.get_xaxis_transform())
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylabel("Mbit/s (higher is better)")
    ax.set_title(f"TCP bulk, {tcp['bytes'] // 1_000_000} MB, median of {tcp['repeats']}")
    ax2.set_ylabel("CPU ms per MB, user+sys (lower is better)")
    ax2.set_title("CPU of the subject process per MB")
    for a in (ax, ax2):
        a.set_xticks(range(len(labels)), labels, fontsize=8, rotation=20)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_docs(res: dict[str, Any], out_dir: Path) -> list[Path]:
    """docs/bench/tcp.md (ratios + tables) and tcp.png, committed beside the code."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    png = chart(res, out_dir / "tcp.png")
    when = res.get("date") or datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    lines = ["# TCP bulk transfer: floor, tcpip, kernel", "",
             f"`python -m bench --tcp` on Python {platform.python_version()}, {res.get('cpus')} CPUs, {when}. "
             "Ratios from one run, side by side; absolute rates depend on the machine and its load (see "
             "bench/README.md, TCP section, for what each row and figure means).", ""]
    if png is not None:
        lines += ["![TCP bulk](tcp.png)", ""]
        files.append(png)
    lines += ["| ratio | value | target | met | note |", "|---|---:|---|---|---|"]
    lines += [f"| {w} | {_fmt(v)} | {t} | {_met(v, t)} | {note} |" for w, v, t, note in ratios(res)]
    lines += markdown(res)
    md = out_dir / "tcp.md"
    md.write_text("\n".join(lines) + "\n")
    files.append(md)
    return files
