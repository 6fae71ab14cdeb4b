"""The report without Docker: a history made here, checked, rendered.

report.html must be one file (every image inline, nothing fetched), carry the verdict
and the anomalies, and its plots must be real PNGs; the send latencies the plots use are
each send's invocation-to-completion time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from chaos.report import PLOTS, render_plots, send_completions, write_report
from harness.checker import check
from harness.history import NEMESIS, F, Fault, MemoryHistory, PartitionRead, Poll, Send

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def history(lose: bool) -> MemoryHistory:
    """Two producers, a kill of broker-2 in the middle, a final read (missing one
    acknowledged value when ``lose``)."""
    clock = iter(range(0, 10**12, 50_000_000))
    h = MemoryHistory(clock_ns=lambda: next(clock), wall_clock=lambda: 0.0)
    offsets = {0: 0, 1: 0}
    written: dict[int, list[tuple[int, str]]] = {0: [], 1: []}
    for i in range(40):
        if i == 20:
            h.invoke(NEMESIS, F.FAULT, Fault("kill", ("broker-2",), "leader"))
            h.ok(NEMESIS, F.FAULT, Fault("kill", ("broker-2",), "leader"))
        if i == 30:
            h.invoke(NEMESIS, F.HEAL, Fault("kill", ("broker-2",), "leader"))
            h.ok(NEMESIS, F.HEAL, Fault("kill", ("broker-2",), "leader"))
        process, partition = i % 2, (i // 2) % 2
        value = f"{process}-{i}"
        h.invoke(process, F.SEND, Send("t", partition, None, value))
        if i == 25:
            h.info(process, F.SEND, Send("t", partition, None, value), "_MSG_TIMED_OUT")
            continue
        offset = offsets[partition]
        offsets[partition] += 1
        h.ok(process, F.SEND, Send("t", partition, None, value, offset))
        written[partition].append((offset, value))
    h.invoke(9, F.POLL, Poll())
    h.ok(9, F.POLL, Poll((PartitionRead("t", 0, tuple(written[0][:5])),)))
    for partition, records in written.items():
        kept = records[:-1] if lose and partition == 1 else records
        h.invoke("final", F.POLL, Poll(final=True))
        h.ok("final", F.POLL, Poll((PartitionRead("t", partition, tuple(kept)),), final=True))
    return h


def test_latencies_pair_each_send_with_its_completion() -> None:
    done = send_completions(history(lose=False).ops)
    assert len(done) == 40
    assert {o for _, _, o, _ in done} == {"ok", "info"}
    assert all(latency == 0.05 for _, latency, _, _ in done)


def test_plots_are_pngs() -> None:
    h = history(lose=True)
    pngs = render_plots(h.ops, check(h.ops))
    assert sorted(pngs) == sorted(PLOTS)
    for png in pngs.values():
        assert png.startswith(PNG_MAGIC) and len(png) > 5000


def test_report_is_one_file_with_the_verdict(tmp_path: Path) -> None:
    h = history(lose=True)
    result = check(h.ops)
    assert not result.valid
    results: dict[str, Any] = {**result.to_json()}
    results["run"] = {"time_s": 2, "faults": ["kill"], "mutant": "x"}
    written = write_report(tmp_path / "report.html", h.ops, result, results)
    page = (tmp_path / "report.html").read_text()
    assert "INVALID: lost-write" in page
    assert "&quot;value&quot;: &quot;1-39&quot;" in page  # the lost write, an example
    images = re.findall(r"<img alt='(\w+)' src='data:image/png;base64,", page)
    assert images == list(PLOTS)
    assert not re.search(r"(src|href)=['\"](?!data:)", page)  # nothing outside the file
    assert "broker-2" in page  # the faults table
    for name, path in written.items():
        assert path.read_bytes().startswith(PNG_MAGIC), name
    json.dumps(results)  # what results.json holds stays JSON


def test_a_valid_run_says_so(tmp_path: Path) -> None:
    h = history(lose=False)
    result = check(h.ops)
    assert result.valid
    write_report(tmp_path / "report.html", h.ops, result, {"run": {}})
    page = (tmp_path / "report.html").read_text()
    assert "class='verdict valid'>VALID<" in page
