"""A timing report anyone can reproduce: the machine (CPU model, the instruction sets that decide the fast paths,
threads, load), the library versions, the exact command, and the figures, as JSON and as a markdown table.

    add_section("speed.json", "network alone", rows, command)   # benchmark.py --report speed.json
    add_section("speed.json", "end to end", rows, command)      # tools/bench_segment.py --report speed.json

Each script adds its section to the file (creating it), so one report holds the network alone beside the end to
end figures of the same machine; speed.md beside it is rewritten from the JSON every time.
"""
import json
import os
import platform
import re
import shlex
import sys
from importlib import metadata

from utils.device import cpu_info
from utils.files import save_json, save_text

# The CPU flags that choose a kernel in torch / OpenVINO: AVX2, AVX-512, VNNI (int8 dot products), native bf16.
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
PACKAGES = ("torch", "openvino", "onnxruntime", "numpy", "opencv-python")
# Settings in the environment that change the figures: threads, the instruction sets oneDNN (torch's and OpenVINO's)
# and torch's own kernels may use, the allocator.
ENVIRONMENT = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
               "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")


def cpu():
    """(model name, [the FLAGS this CPU has])."""
    name, flags = cpu_info()
    return name or platform.processor() or platform.machine(), [f for f in FLAGS if f in (flags or ())]


def versions():
    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def machine():
    import torch
    name, flags = cpu()
    info = {"cpu": name, "cpu_flags": flags, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "versions": versions()}
    if hasattr(os, "getloadavg"):
        info["load_average"] = round(os.getloadavg()[0], 2)  # other work on the machine slows every figure
    return info


def command():
    """The command line that ran, as a shell would take it back, with the ENVIRONMENT settings it ran under."""
    settings = [f"{k}={shlex.quote(os.environ[k])}" for k in ENVIRONMENT if k in os.environ]
    return " ".join(settings + [shlex.quote(a) for a in ["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]]])


def files(path):
    """(JSON, markdown) of the report --report names: `speed`, `speed.json` and `speed.md` all mean speed.json and
    speed.md, as the flags' help says."""
    root, ext = os.path.splitext(path)
    root = root if ext.lower() in (".json", ".md") else path
    return root + ".json", root + ".md"


def add_section(path, name, rows, cmd=None, note=""):
    """Add (or replace) the section `name` of the report `path` names (files()): rows are dicts, 'configuration'
    first, then the figures (the table's columns, in order). Writes the JSON and, beside it, its .md."""
    path, md = files(path)
    report = {"sections": {}}
    if os.path.isfile(path):
        with open(path) as f:
            report = json.load(f)
    report["machine"] = machine()
    report["sections"][name] = {"command": cmd or command(), "note": note, "rows": rows}
    save_json(path, report)
    save_text(md, markdown(report))
    return report


def markdown(report, level=0):
    """A report as markdown: its machine, its versions, then each section's command and table. level: the section
    titles as headings of that level (docs/speed.md), or 0 for bold lines (the report's own .md)."""
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, flags {', '.join(m['cpu_flags']) or 'none of ' + str(FLAGS)}"
             f"; torch threads {m['torch_threads']}; load average {m.get('load_average', '?')}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".", ""]
    for name, section in report["sections"].items():
        rows = section["rows"]
        # Any rows: the columns are every key the rows have, in the order they first appear, configuration first.
        keys = list(dict.fromkeys(["configuration", *(k for r in rows for k in r)])) if rows else ["configuration"]
        how = f"`{section['command']}`" + (f" — {section['note']}" if section["note"] else "")
        lines += [f"{'#' * level} {name}", "", how] if level else [f"**{name}** — {how}"]
        lines += ["", "| " + " | ".join(keys) + " |", "|---" * len(keys) + "|"]
        lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def page(folder, link=""):
    """docs/speed.md: every report (*.json) in `folder`, in name order, each under a heading of its name with the
    machine, the versions, and each section's command and table; link: the folder as the page links to it."""
    names = sorted(os.path.splitext(os.path.basename(p))[0] for p in os.listdir(folder) if p.endswith(".json"))
    lines = ["# Speed", "",
             f"Generated from the reports in [`{link or folder}/`]({link or folder}/) by `python tools/speed_page.py`: "
             "do not edit it by hand. Each report was written on one machine by a script's `--report FILE` "
             "(`benchmark.py`, `tools/bench_segment.py`, `tools/run_report.py` for training runs); it names the "
             "machine (CPU model, the instruction sets that choose the kernels, threads, load average) and the library "
             "versions, and above each table the command that made it. Compare the rows of one table only. How to "
             "measure, and what each mode is: [deploy.md](deploy.md#measure-the-speed).", "", "## Contents", ""]
    lines += [f"- [{name}](#{anchor(name)})" for name in names]
    for name in names:
        with open(os.path.join(folder, name + ".json")) as f:
            report = json.load(f)
        lines += ["", f"## {name}", "", f"The report [`{name}.json`]({link or folder}/{name}.json).",
                  "", markdown(report, level=3).rstrip()]
    return "\n".join(lines) + "\n"


def anchor(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped but hyphens and underscores, spaces to
    hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def cell(value):
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)
