"""codecs_ser with the torch plugin beside torch.save/torch.load and safetensors.

A GPT-2-like state dict (about 400 MiB of float32, the token embedding tied to
the output head) is saved and loaded by each library in one run; every figure
is the best of N repeats, codecs_ser's as a ratio to torch in the same run.
Each load runs in a fresh process so its peak memory (the high-water mark of
RSS above the RSS before the call, file-backed pages of a mapping included, so
an mmap load that touches every byte counts the file) is its own; Linux only.

    python benchmarks/bench_torch.py [--layers 9] [--repeat 3] [--dir TMPDIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

CHILD = r"""
import json, os, sys, time
def status(field):
    # VmHWM, not ru_maxrss: the latter counts the parent's memory at fork time.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
op, path = sys.argv[1], sys.argv[2]
import torch, codecs_ser
try:
    import safetensors.torch as st
except ImportError:
    st = None
base = status("VmRSS")
start = time.perf_counter()
if op == "codecs_ser.load":
    out = codecs_ser.load(path)
elif op == "codecs_ser.load(mmap)":
    out = codecs_ser.load(path, mmap=True)
elif op == "codecs_ser.open+read":
    with codecs_ser.open(path) as c:
        out = c.read("h/5/mlp/c_fc/weight")
elif op == "torch.load":
    out = torch.load(path)
elif op == "torch.load(mmap)":
    out = torch.load(path, mmap=True)
elif op == "torch.load one":
    out = torch.load(path, mmap=True)["h.5.mlp.c_fc.weight"].clone()
elif op == "safetensors.load_file":
    out = st.load_file(path)
elif op == "safetensors one":
    with st.safe_open(path, "pt") as f:
        out = f.get_tensor("h.5.mlp.c_fc.weight")
load_seconds = time.perf_counter() - start
load_peak = status("VmHWM") - base
def tensors(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from tensors(v)
    else:
        yield x
# touch every byte, as using the weights would
total = sum(float(t.sum()) for t in tensors(out))
seconds = time.perf_counter() - start
peak = status("VmHWM") - base
print(json.dumps({"seconds": seconds, "peak": peak, "load_seconds": load_seconds,
                  "load_peak": load_peak}))
"""


def gpt2_like(layers: int) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    d, vocab, ctx = 768, 50257, 1024
    sd: dict[str, Any] = {}
    sd["wte.weight"] = torch.randn(vocab, d, generator=g)
    sd["wpe.weight"] = torch.randn(ctx, d, generator=g)
    for i in range(layers):
        p = f"h.{i}."
        for name, shape in (
            ("ln_1.weight", (d,)),
            ("ln_1.bias", (d,)),
            ("attn.c_attn.weight", (d, 3 * d)),
            ("attn.c_attn.bias", (3 * d,)),
            ("attn.c_proj.weight", (d, d)),
            ("attn.c_proj.bias", (d,)),
            ("ln_2.weight", (d,)),
            ("ln_2.bias", (d,)),
            ("mlp.c_fc.weight", (d, 4 * d)),
            ("mlp.c_fc.bias", (4 * d,)),
            ("mlp.c_proj.weight", (4 * d, d)),
            ("mlp.c_proj.bias", (d,)),
        ):
            sd[p + name] = torch.randn(*shape, generator=g)
    sd["ln_f.weight"] = torch.ones(d)
    sd["ln_f.bias"] = torch.zeros(d)
    sd["lm_head.weight"] = sd["wte.weight"]  # tied
    return sd


def nested(sd: dict[str, Any]) -> dict[str, Any]:
    """codecs_ser names leaves by path: the state dict as nested dicts (h/5/mlp/...)."""
    out: dict[str, Any] = {}
    for key, value in sd.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def child(op: str, path: str, repeat: int) -> tuple[float, int, float, int]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, op, path], capture_output=True, text=True
        )
        if out.returncode:
            raise RuntimeError(f"{op} failed:\n{out.stderr}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return (
        min(r["seconds"] for r in runs),
        min(r["peak"] for r in runs),
        min(r["load_seconds"] for r in runs),
        min(r["load_peak"] for r in runs),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--layers", type=int, default=9)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    import torch

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    sys.path.insert(0, root)  # this checkout's codecs_ser, also in the child processes
    import codecs_ser

    try:
        import safetensors.torch as st
    except ImportError:
        st = None
    sd = gpt2_like(args.layers)
    unique = {id(t.untyped_storage()): t for t in sd.values()}
    mib = sum(t.nbytes for t in unique.values()) / 2**20
    print(f"GPT-2-like state dict: {len(sd)} tensors, {mib:.0f} MiB (wte tied to lm_head)")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        ours, theirs = os.path.join(tmp, "sd.tar"), os.path.join(tmp, "sd.pt")
        safe = os.path.join(tmp, "sd.safetensors")
        tree = nested(sd)
        rows: list[tuple[str, float, int | None, float | None, int | None, str]] = []
        t_torch = best(lambda: torch.save(sd, theirs), args.repeat)
        t_ours = best(lambda: codecs_ser.dump(tree, ours, durable=False), args.repeat)
        rows.append(("torch.save", t_torch, None, None, None, ""))
        ratio = f"{t_ours / t_torch:.2f}x torch.save"
        rows.append(("codecs_ser.dump", t_ours, None, None, None, ratio))
        if st is not None:
            untied = {k: v for k, v in sd.items() if k != "lm_head.weight"}
            t_st = best(lambda: st.save_file(untied, safe), args.repeat)
            rows.append(("safetensors.save_file", t_st, None, None, None, ""))
        sizes = {p: os.path.getsize(p) for p in (ours, theirs, safe) if os.path.exists(p)}
        pairs = [
            ("torch.load", theirs, None),
            ("codecs_ser.load", ours, "torch.load"),
            ("torch.load(mmap)", theirs, None),
            ("codecs_ser.load(mmap)", ours, "torch.load(mmap)"),
            ("torch.load one", theirs, None),
            ("codecs_ser.open+read", ours, "torch.load one"),
        ]
        if st is not None:
            pairs += [("safetensors.load_file", safe, None), ("safetensors one", safe, None)]
        measured: dict[str, tuple[float, int, float, int]] = {}
        for op, path, _ in pairs:
            measured[op] = child(op, path, args.repeat)
        for op, _, base in pairs:
            seconds, peak, load_s, load_peak = measured[op]
            note = f"{seconds / measured[base][0]:.2f}x {base}" if base else ""
            if op == "codecs_ser.load" and "safetensors.load_file" in measured:
                note += f", {seconds / measured['safetensors.load_file'][0]:.2f}x safetensors"
            rows.append((op, seconds, peak, load_s, load_peak, note))
        print("seconds and peak: the call, then every byte read; 'call' columns: the call alone")
        head = f"{'operation':24} {'seconds':>8} {'peak MiB':>9} {'call s':>7} {'call MiB':>9}"
        print(head + "  ratio (seconds)")
        for op, seconds, peak, load_s, load_peak, note in rows:
            p = "" if peak is None else f"{peak / 2**20:9.0f}"
            cs = "" if load_s is None else f"{load_s:7.3f}"
            cp = "" if load_peak is None else f"{load_peak / 2**20:9.0f}"
            print(f"{op:24} {seconds:8.3f} {p:>9} {cs:>7} {cp:>9}  {note}")
        for p, n in sizes.items():
            print(f"size of {os.path.basename(p):16} {n / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
