"""Ratios against the issue's targets, the Markdown/JSON report and the charts."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

Log = Callable[[str], None]


@dataclass
class Ratio:
    part: str  # micro / e2e / scale
    what: str  # e.g. "receive icmp-echo-60: tcpip / floor"
    value: float | None  # None: not measured
    target: str  # e.g. "<= 1.5", ">= 10", "" for information only
    met: bool | None  # None: no target or not measured
    note: str = ""


def _check(value: float | None, target: str) -> bool | None:
    if value is None or not target:
        return None
    op, num = target.split()
    return value <= float(num) if op == "<=" else value >= float(num)


def _ratio(rows: list[Ratio], part: str, what: str, a: float | None, b: float | None, target: str = "",
           note: str = "") -> None:
    v = a / b if a is not None and b else None
    rows.append(Ratio(part, what, None if v is None else round(v, 3), target, _check(v, target), note))


def _ns(row: dict[str, Any], impl: str) -> float | None:
    x = row.get(impl)
    return float(x["ns"]) if isinstance(x, dict) and "ns" in x else None


def ratios(res: dict[str, Any]) -> list[Ratio]:
    rows: list[Ratio] = []
    micro = res.get("micro")
    if micro:
        for frame, row in micro["receive"].items():
            t = _ns(row, "tcpip")
            note = "tcpip and floor answer the echo; peers only dispatch it" if frame.startswith("icmp") else ""
            _ratio(rows, "micro", f"receive {frame}: tcpip / floor (time)", t, _ns(row, "floor"), "<= 1.5", note)
            for peer, target in (("dpkt", ">= 10"), ("pypacker", ">= 10"), ("impacket", ""), ("scapy", "")):
                _ratio(rows, "micro", f"receive {frame}: {peer} / tcpip (speed-up)", _ns(row, peer), t, target, note)
        for payload, row in micro["transmit"].items():
            t = _ns(row, "tcpip")
            _ratio(rows, "micro", f"transmit {payload}: tcpip allocate_frame+write / floor (time)", t,
                   _ns(row, "floor"), "<= 1.5")
            _ratio(rows, "micro", f"transmit {payload}: tcpip UdpLayer.send / floor (time)", _ns(row, "tcpip-core"),
                   _ns(row, "floor"), "", "the path of tcpip's own UDP endpoints")
            for peer in ("dpkt", "pypacker", "impacket", "scapy"):
                _ratio(rows, "micro", f"transmit {payload}: {peer} / tcpip (speed-up)", _ns(row, peer), t)
        for size, row in micro["checksum"].items():
            best = row["best_idiom"]
            _ratio(rows, "micro", f"checksum {size} B: tcpip / best idiom (time)", _ns(row, "tcpip"), _ns(row, best),
                   "<= 1.2", f"best idiom: {best}")
    e2e = res.get("e2e")
    if e2e and "runs" in e2e:
        runs = e2e["runs"]

        def rate(label: str, kind: str) -> float | None:
            x = runs.get(label, {}).get(kind, {})
            return float(x["per_s"]) if "per_s" in x and "error" not in x else None

        def cpu(label: str, kind: str) -> float | None:
            x = runs.get(label, {}).get(kind, {})
            c = x.get("cpu_us_per_echo")
            return float(c) if c is not None and "error" not in x else None

        for sfx in ("", "+uvloop"):
            if f"tcpip{sfx}" not in runs:
                continue
            for kind in ("ping", "udp"):
                _ratio(rows, "e2e", f"TAP {kind} {'flood replies' if kind == 'ping' else 'round trips'}/s: "
                       f"tcpip{sfx} / responder{sfx}", rate(f"tcpip{sfx}", kind), rate(f"responder{sfx}", kind),
                       ">= 0.9")
            for kind in ("ping", "udp"):
                _ratio(rows, "e2e", f"TAP {kind} CPU per echo: tcpip{sfx} / responder{sfx} (time)",
                       cpu(f"tcpip{sfx}", kind), cpu(f"responder{sfx}", kind), "<= 1.3",
                       "user+sys of each responder's own process, same run")
        for name, q in (e2e.get("quoted") or {}).items():
            lo = min(q["cpu_us_per_echo"])
            for kind in ("ping", "udp"):
                _ratio(rows, "e2e", f"CPU per echo: {name} / tcpip, {kind}", float(lo), cpu("tcpip", kind), ">= 10",
                       f"{name}: {q['source']} ({lo} us, its lowest figure)")
        if "pytcp" in runs:  # measured in the same run (bench/pytcp_chroot.sh), beside the quoted figures
            for sfx in ("", "+uvloop"):
                for kind in ("ping", "udp"):
                    _ratio(rows, "e2e", f"CPU per echo: PyTCP 3.0.9 (measured) / tcpip{sfx}, {kind}",
                           cpu("pytcp", kind), cpu(f"tcpip{sfx}", kind), ">= 10" if not sfx else "",
                           "PyTCP: python -O, its stack's threads and an in-process UDP echo (bench/pytcp_server.py)")
                    _ratio(rows, "e2e", f"TAP {kind} rate: tcpip{sfx} / PyTCP 3.0.9", rate(f"tcpip{sfx}", kind),
                           rate("pytcp", kind), "")
        _ratio(rows, "e2e", "UDP round trips/s: tcpip (TAP) / kernel+asyncio server (veth)", rate("tcpip", "udp"),
               rate("kernel+asyncio", "udp"), ">= 1.2")
        _ratio(rows, "e2e", "ping replies/s: tcpip (TAP) / kernel answering itself (veth)", rate("tcpip", "ping"),
               rate("kernel+asyncio", "ping"), "")
        lost = 0
        for label, r in runs.items():
            if label == "pytcp":  # a peer's losses, shown in its row, not ours
                continue
            for kind in ("ping", "udp"):
                lost += int(r.get(kind, {}).get("lost_total", 0) or 0)
        rows.append(Ratio("e2e", "datagrams/echoes lost, all runs", float(lost), "<= 0", lost == 0))
    tcp = res.get("tcp")
    if tcp and "rows" in tcp:
        from bench import tcp_report

        for what, v, target, note in tcp_report.ratios(tcp):
            rows.append(Ratio("tcp", what, v, target, _check(v, target), note))
    scale = res.get("scale")
    if scale:
        mem = scale.get("memory", [])
        if len(mem) >= 2:
            _ratio(rows, "scale", f"memory per host: N={mem[-1]['hosts']} / N={mem[0]['hosts']}",
                   mem[-1]["bytes_per_host"], mem[0]["bytes_per_host"], "",
                   f"{mem[-1]['bytes_per_host'] / 1024:.1f} KiB per host at N={mem[-1]['hosts']}")
        arp = scale.get("arp", {}).get("rows", [])
        if arp:
            for key in ("lookup_ns", "learn_ns"):
                xs = [r[key] for r in arp]
                _ratio(rows, "scale", f"ARP {key[:-3]} cost: max / min over fills {arp[0]['fill']}..{arp[-1]['fill']}",
                       max(xs), min(xs), "<= 1.5", "flat: no O(table) work")
        rs = scale.get("reassembly", {}).get("rows", [])
        if rs:
            xs = [r["ns_per_datagram"] for r in rs]
            _ratio(rows, "scale", f"reassembly cost: max / min over fills {rs[0]['fill']}..{rs[-1]['fill']}",
                   max(xs), min(xs), "<= 1.5", "flat: no O(table) work")
    ts = res.get("tcp_scale")
    if ts and "bulk_ratio" in ts:
        n, idle = ts["connections"], ts["idle"]
        rows.append(Ratio("tcp-scale", f"bulk MB per CPU s: {n} idle connections open / none", ts["bulk_ratio"],
                          ">= 0.8", ts["bulk_ratio"] >= 0.8, f"{ts['bulk_mb_per_cpu_s']}, {ts['bulk_mb']} MB"))
        rows.append(Ratio("tcp-scale", f"connections whose timer ran in {ts['idle_seconds']} idle s (of {n})",
                          float(idle["connections_touched"]), "<= 0", idle["connections_touched"] == 0,
                          f"timer calls: none open {idle['none']}, {n} open {idle['full']}"))
        rows.append(Ratio("tcp-scale", "bytes per idle connection (both ends, tracemalloc)",
                          float(ts["tracemalloc_bytes_per_connection"]), "", None,
                          f"RSS growth {ts['rss_bytes_per_connection']} B per connection"))
    ct = res.get("callgrind_tcp")
    if ct and "ratio" in ct:
        t, f = ct["tcpip"]["instructions_per_segment"], ct["floor"]["instructions_per_segment"]
        rows.append(Ratio("callgrind", "instructions per received 1448-byte segment: tcpip / floor", ct["ratio"],
                          "", None, f"tcpip {t}, floor {f}"))
    cg = res.get("callgrind")
    if cg and "ratio" in cg:
        t, f = cg["tcpip"]["instructions_per_echo"], cg["floor"]["instructions_per_echo"]
        rows.append(Ratio("callgrind", "instructions per echo: tcpip / floor", cg["ratio"], "", None,
                          f"tcpip {t}, floor {f}"))
    return rows


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def markdown(res: dict[str, Any], rows: list[Ratio]) -> str:
    meta = res["meta"]
    out = [f"# tcpip benchmark results ({meta['mode']})", "",
           f"`{meta['command']}` on {meta['cpu']}, Python {meta['python']}, {meta['date']}.", "",
           "Time ratios (`/ floor`, `/ best idiom`): lower is better. Speed-ups (`peer / tcpip`) and "
           "rates: higher is better.", "",
           "| part | ratio | value | target | met | note |", "|---|---|---:|---|---|---|"]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**NO**")
        out.append(f"| {r.part} | {r.what} | {_fmt(r.value)} | {r.target} | {met} | {r.note} |")
    micro = res.get("micro")
    if micro:
        out += ["", f"## Micro: ns per frame (median of {meta['repeats']} repeats; the timing loop adds "
                f"{micro['loop_overhead_ns']} ns to each)", ""]
        for part in ("receive", "transmit"):
            impls: list[str] = []
            for row in micro[part].values():
                impls += [k for k in row if k not in impls]
            out += [f"| {part} | " + " | ".join(impls) + " |", "|---" * (len(impls) + 1) + "|"]
            for name, row in micro[part].items():
                out.append(f"| {name} | " + " | ".join(_fmt(_ns(row, i)) for i in impls) + " |")
            out.append("")
        idioms = [k for k in next(iter(micro["checksum"].values())) if k != "best_idiom"]
        out += ["| checksum bytes | " + " | ".join(idioms) + " |", "|---" * (len(idioms) + 1) + "|"]
        for size, row in micro["checksum"].items():
            out.append(f"| {size} | " + " | ".join(_fmt(_ns(row, i)) for i in idioms) + " |")
    e2e = res.get("e2e")
    if e2e and "runs" in e2e:
        out += ["", f"## End to end (count {e2e['count']}, cap {e2e['cap_s']} s, median of {e2e['repeats']}, "
                f"pinned CPU {e2e.get('pinned_cpu')})", "",
                "CPU: user+sys of the answering process per echo answered (us, median of the repeats; the kernel "
                "rows are not measured).", "",
                "| implementation | ping replies/s | ping CPU us/echo | ping lost | UDP round trips/s "
                "| UDP CPU us/echo | UDP lost | all rates | all CPU us/echo |",
                "|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for label, r in e2e["runs"].items():
            if "error" in r:
                out.append(f"| {label} | error: {r['error']} | | | | | | | |")
                continue
            p, u = r.get("ping", {}), r.get("udp", {})
            out.append(f"| {label} | {_fmt(p.get('per_s'))} | {_fmt(p.get('cpu_us_per_echo'))} | "
                       f"{p.get('lost_total', p.get('error', ''))} | {_fmt(u.get('per_s'))} | "
                       f"{_fmt(u.get('cpu_us_per_echo'))} | {u.get('lost_total', u.get('error', ''))} | "
                       f"ping {p.get('rates')}, udp {u.get('rates')} | "
                       f"ping {p.get('cpu_us_all', '')}, udp {u.get('cpu_us_all', '')} |")
        for name, q in (e2e.get("quoted") or {}).items():
            lo, hi = min(q["cpu_us_per_echo"]), max(q["cpu_us_per_echo"])
            out.append(f"| {name} ({q['source']}) | | {lo}-{hi} | | | {lo}-{hi} | | | |")
    elif e2e:
        out += ["", f"End to end skipped: {e2e.get('skipped')}"]
    tcp = res.get("tcp")
    if tcp and "rows" in tcp:
        from bench import tcp_report

        out += tcp_report.markdown(tcp)
    elif tcp:
        out += ["", f"TCP bulk skipped: {tcp.get('skipped')}"]
    scale = res.get("scale")
    if scale:
        out += ["", "## Scale", "", "| hosts | bytes per host | peak bytes | announcements |", "|---:|---:|---:|---:|"]
        for m in scale["memory"]:
            out.append(f"| {m['hosts']} | {m['bytes_per_host']} | {m['peak_bytes']} | {m['hub_frames']} |")
        arp = scale["arp"]
        out += ["", f"ARP cache (size {arp['cache_size']}):", "", "| learned | entries | lookup ns | learn ns |",
                "|---:|---:|---:|---:|"]
        out += [f"| {r['fill']} | {r['entries']} | {r['lookup_ns']} | {r['learn_ns']} |" for r in arp["rows"]]
        ra = scale["reassembly"]
        if "rows" in ra:
            out += ["", f"Reassembly (max_memory {ra['max_memory']}, max_datagrams {ra['max_datagrams']}; "
                    f"{ra['stats']}):", "", "| fill | held | memory | ns per datagram |", "|---:|---:|---:|---:|"]
            out += [f"| {r['fill']} | {r['held']} | {r['memory']} | {r['ns_per_datagram']} |" for r in ra["rows"]]
        else:
            out += ["", f"Reassembly skipped: {ra.get('skipped')}"]
    errs = [e for part in ("micro",) for e in (res.get(part) or {}).get("errors", [])]
    if errs:
        out += ["", "## Correctness failures (excluded from the figures)", ""] + [f"- {e}" for e in errs]
    return "\n".join(out) + "\n"


def charts(res: dict[str, Any], out_dir: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    files: list[str] = []
    e2e = res.get("e2e")
    if e2e and "runs" in e2e:
        labels = [k for k, v in e2e["runs"].items() if "error" not in v]
        ping = [e2e["runs"][k].get("ping", {}).get("per_s", 0) or 0 for k in labels]
        udp = [e2e["runs"][k].get("udp", {}).get("per_s", 0) or 0 for k in labels]
        fig, ax = plt.subplots(figsize=(9, 4.5))
        xs = range(len(labels))
        w = 0.38
        b1 = ax.bar([x - w / 2 for x in xs], ping, w, label="ping -f replies/s")
        b2 = ax.bar([x + w / 2 for x in xs], udp, w, label="UDP echo round trips/s (1 in flight)")
        ax.bar_label(b1, fmt="%.0f", fontsize=7)
        ax.bar_label(b2, fmt="%.0f", fontsize=7)
        ax.set_xticks(list(xs), labels, fontsize=8)
        ax.set_ylabel("per second (higher is better)")
        ax.set_title(f"End to end, kernel peer ({e2e['count']} each, median of {e2e['repeats']})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out_dir / "e2e.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        files.append(str(p))
    micro = res.get("micro")
    if micro:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, part in zip(axes, ("receive", "transmit"), strict=True):
            names = list(micro[part])
            impls: list[str] = []
            for row in micro[part].values():
                impls += [k for k in row if k not in impls]
            w = 0.8 / max(1, len(impls))
            for i, impl in enumerate(impls):
                ax.bar([x + i * w for x in range(len(names))], [_ns(micro[part][n], impl) or 0 for n in names], w,
                       label=impl)
            ax.set_xticks([x + w * (len(impls) - 1) / 2 for x in range(len(names))], names, fontsize=8)
            ax.set_yscale("log")
            ax.set_ylabel("ns per frame (log, lower is better)")
            ax.set_title(part)
            ax.legend(fontsize=7)
        fig.tight_layout()
        p = out_dir / "micro.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        files.append(str(p))
    tcp = res.get("tcp")
    if tcp and "rows" in tcp:
        from bench import tcp_report

        png = tcp_report.chart(tcp, out_dir / "tcp.png")
        if png is not None:
            files.append(str(png))
    return files


def write(res: dict[str, Any], out_dir: Path, log: Log) -> list[Ratio]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = ratios(res)
    res["ratios"] = [asdict(r) for r in rows]
    res["charts"] = charts(res, out_dir)
    (out_dir / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out_dir / "results.md").write_text(markdown(res, rows))
    width = max((len(r.what) for r in rows), default=10)
    log("")
    log(f"{'ratio':{width}}  {'value':>7}  {'target':8}  met")
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        log(f"{r.what:{width}}  {_fmt(r.value):>7}  {r.target:8}  {met}")
    log("")
    log(f"written: {out_dir / 'results.json'}, {out_dir / 'results.md'}" +
        "".join(f", {c}" for c in res["charts"]))
    return rows
