#!/usr/bin/env python3
"""Parity harness: trains the same model with archlab (the release binary) and with an
independent PyTorch implementation (pt_*.py here), then compares validation accuracy and
loss cell by cell.

  python3 scripts/parity/parity.py                      # default grid, seeds 0 1
  python3 scripts/parity/parity.py --quick              # smoke test
  python3 scripts/parity/parity.py --only gla/a --only deltanet --seeds 0 --steps 300

Goal per cell: |acc_archlab - acc_torch| <= 0.05 and |loss_archlab - loss_torch| / loss_torch
<= 5 % (or, for solved tasks near zero loss, |loss_archlab - loss_torch| <= 0.01 nats). Outputs (under --out): parity.md, parity.json, configs/, logs/.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import subprocess
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import pt_train  # noqa: E402
from pt_model import MIXERS  # noqa: E402

READY_FLAG = Path("/tmp/archlab-release-ready")
DEFAULT_BINARY = REPO / "target" / "release" / "archlab"

# name -> task definition, default batch size (tokens per step ~1k)
SETTINGS = {
    "a": {"task": "mqar", "vocab": 64, "pairs": 4, "seq_len": 32, "batch": 32, "eval_batches": 16,
          "desc": "MQAR V64 4 pairs T32"},
    "b": {"task": "mqar", "vocab": 256, "pairs": 8, "seq_len": 32, "batch": 32, "eval_batches": 16,
          "desc": "MQAR V256 8 pairs T32"},
    "c": {"task": "mqar", "vocab": 256, "pairs": 8, "seq_len": 64, "batch": 16, "eval_batches": 16,
          "desc": "MQAR V256 8 pairs T64"},
    # Text needs many eval windows: with 8 batches (8k bytes) the val loss of one side moved
    # by 2-5 % with the windows drawn; 64 batches cover the 19 kB val split ~3x.
    "d": {"task": "text", "vocab": 256, "seq_len": 64, "batch": 16, "eval_batches": 64,
          "desc": "bytes of cognition/*.yaml T64"},
}
GRIDS = {
    "default": {"mixers": list(MIXERS), "settings": ["a", "b", "c", "d"], "steps": 500},
    "quick": {"mixers": list(MIXERS), "settings": ["a", "d"], "steps": 40, "batch": 8,
              "eval_batches": 2},
}
ACC_TOL = 0.05
LOSS_TOL = 0.05
LOSS_ABS_FLOOR = 0.01


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", choices=sorted(GRIDS), default="default")
    ap.add_argument("--quick", action="store_true", help="same as --grid quick")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 (quick: 0)")
    ap.add_argument("--only", action="append", default=[],
                    help="MIXER/SETTING, MIXER or */SETTING (repeatable)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--steps", type=int, help="optimisation steps per lr (grid default otherwise)")
    ap.add_argument("--batch", type=int, help="batch size (per-setting default otherwise)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--lr-sweep", type=float, nargs="*", default=[],
                    help="train once per lr, keep the best by val loss (both sides)")
    ap.add_argument("--warmup", type=float, default=0.1,
                    help="warmup steps; < 1 means a fraction of --steps")
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0, help="archlab's default is 1.0")
    ap.add_argument("--eval-batches", type=int)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--embed-init", choices=["normal", "uniform"], default="normal",
                    help="torch embedding init: N(0,1) (archlab after the fix) or U(+-1/sqrt(vocab))")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch.set_num_threads (1: tiny ops; 2 threads oversubscribe a busy 2-core box)")
    ap.add_argument("--device", default="cpu",
                    help="torch side's device (cpu, cuda); the weights are drawn on the CPU either way")
    ap.add_argument("--torch-kernels", choices=["loop", "parallel"], default=None,
                    help="loop: the per-position reference loops; parallel: their closed forms "
                         "(one launch per layer; default on cuda)")
    ap.add_argument("--archlab", type=Path, default=DEFAULT_BINARY)
    ap.add_argument("--archlab-device", default=None,
                    help="archlab train --device (cpu: flex; tch-cpu, cuda with --features tch); default: cpu")
    ap.add_argument("--archlab-threads", type=int, default=None,
                    help="RAYON_NUM_THREADS for each archlab run (set it to 1 with --jobs)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="cells run at once, each in its own process (both sides of a cell in turn)")
    ap.add_argument("--no-wait", action="store_true", help="(the default; kept for old commands)")
    ap.add_argument("--wait", action="store_true",
                    help=f"wait until {READY_FLAG} exists before the first archlab cell")
    ap.add_argument("--wait-timeout", type=float, default=3 * 3600)
    ap.add_argument("--cell-timeout", type=float, default=1800)
    ap.add_argument("--skip-archlab", action="store_true")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--torch-from", type=Path, default=None,
                    help="take the torch side of each cell from DIR/cells/ (a run with --skip-archlab, "
                         "e.g. on a GPU machine) instead of training it here; configs must match "
                         "except device, kernels and threads")
    ap.add_argument("--archlab-from", type=Path, default=None,
                    help="take the archlab side of each cell from DIR/cells/ (a run with --skip-torch, "
                         "e.g. archlab on a GPU machine's cuda); configs must match except placement")
    ap.add_argument("--resume", action="store_true",
                    help="reuse cells already in OUT/cells/ (same config)")
    args = ap.parse_args(argv)
    if args.quick:
        args.grid = "quick"
    if args.seeds is None:
        args.seeds = [0] if args.grid == "quick" else [0, 1]
    if args.torch_kernels is None:
        args.torch_kernels = "parallel" if args.device.startswith("cuda") else "loop"
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    return args


def selected_cells(args):
    grid = GRIDS[args.grid]
    cells = []
    for setting in grid["settings"]:
        for mixer in grid["mixers"]:
            if args.only and not any(match(f, mixer, setting) for f in args.only):
                continue
            for seed in args.seeds:
                cells.append((mixer, setting, seed))
    return cells


def match(flt: str, mixer: str, setting: str) -> bool:
    m, _, s = flt.partition("/")
    return m in ("", "*", mixer) and s in ("", "*", setting)


def cell_config(args, setting_name: str, seed: int) -> dict:
    grid = GRIDS[args.grid]
    s = SETTINGS[setting_name]
    steps = args.steps or grid["steps"]
    warmup = int(round(args.warmup * steps)) if args.warmup < 1 else int(args.warmup)
    return {
        "d_model": args.d_model, "n_layers": args.n_layers, "d_ff": None, "heads": 4,
        "steps": steps, "batch_size": args.batch or grid.get("batch") or s["batch"],
        "eval_batches": args.eval_batches or grid.get("eval_batches") or s["eval_batches"],
        "lr": args.lr, "lr_sweep": list(args.lr_sweep), "schedule": "cosine",
        "warmup_steps": warmup, "min_lr_ratio": args.min_lr_ratio,
        "weight_decay": args.weight_decay, "beta1": 0.9, "beta2": 0.98, "eps": 1e-8,
        "grad_clip": args.grad_clip, "progress_every": max(1, steps // 10),
        "embed_init": args.embed_init, "threads": args.threads, "seed": seed,
        "device": args.device, "kernels": args.torch_kernels,
    }


def archlab_config(cfg: dict, setting: dict, text_file: Path) -> dict:
    if setting["task"] == "mqar":
        task = {"kind": "mqar", "num_kv_pairs": setting["pairs"]}
    else:
        task = {"kind": "text", "paths": [str(text_file)]}
    optim = {"lr": cfg["lr"], "schedule": "cosine", "warmup_steps": cfg["warmup_steps"],
             "min_lr_ratio": cfg["min_lr_ratio"], "weight_decay": cfg["weight_decay"],
             "beta1": cfg["beta1"], "beta2": cfg["beta2"], "eps": cfg["eps"],
             "grad_clip": cfg["grad_clip"]}
    if cfg["lr_sweep"]:
        optim["lr_sweep"] = cfg["lr_sweep"]
    return {
        "model": {"d_model": cfg["d_model"], "n_layers": cfg["n_layers"]},
        "data": {"vocab_size": setting["vocab"], "seq_len": setting["seq_len"], "tasks": [task]},
        "optim": optim,
        "steps": cfg["steps"], "batch_size": cfg["batch_size"], "seed": cfg["seed"],
        "eval_batches": cfg["eval_batches"], "progress_every": cfg["progress_every"],
    }


def make_text_file(out: Path) -> Path:
    """Concatenation of cognition/*.yaml sorted by name."""
    path = out / "data" / "cognition_concat.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(p.read_bytes() for p in sorted((REPO / "cognition").glob("*.yaml")))
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path


def wait_for_binary(args):
    # Waiting is opt-in (--wait): for scripts that start this while the binary is still building.
    if not args.wait or READY_FLAG.exists():
        return
    print(f"waiting for {READY_FLAG} (the lead's release build) ...", flush=True)
    start = time.time()
    while not READY_FLAG.exists():
        if time.time() - start > args.wait_timeout:
            sys.exit(f"gave up waiting for {READY_FLAG}; use --no-wait or --skip-archlab")
        time.sleep(30)


def run_archlab(args, mixer, cfg, setting, text_file, stem) -> dict:
    out = args.out
    conf_path = out / "configs" / f"{stem}.json"
    conf_path.parent.mkdir(parents=True, exist_ok=True)
    conf_path.write_text(json.dumps(archlab_config(cfg, setting, text_file), indent=2))
    program = REPO / "archspec" / "library" / f"{mixer}.arch"
    log_path = out / "logs" / f"{stem}.archlab.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(args.archlab), "train", "--program", str(program), "--config", str(conf_path)]
    if args.archlab_device:
        cmd += ["--device", args.archlab_device]
    env = dict(os.environ)
    if args.archlab_threads:
        env["RAYON_NUM_THREADS"] = str(args.archlab_threads)
    started = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.cell_timeout, env=env)
    except subprocess.TimeoutExpired as e:
        log_path.write_text((e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""))
        return {"status": "error", "error": f"timeout after {args.cell_timeout}s"}
    except OSError as e:
        return {"status": "error", "error": f"cannot run {cmd[0]}: {e}"}
    wall = time.time() - started
    log_path.write_text(proc.stdout)
    if proc.stderr:
        (out / "logs" / f"{stem}.archlab.stderr").write_text(proc.stderr)
    result = None
    for line in proc.stdout.splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(ev, dict) and ev.get("event") == "result":
            result = ev
    if result is None:
        err = (proc.stderr or proc.stdout).strip()[-2000:]
        return {"status": "error", "error": f"exit {proc.returncode}, no result line: {err}"}
    acc = result.get("accuracy") or {}
    key = "text" if setting["task"] == "text" else "mqar"
    return {"status": result.get("status"), "val_loss": result.get("val_loss"),
            "accuracy": acc.get(key), "params": result.get("params"), "lr": result.get("lr"),
            "tokens_per_s": result.get("tokens_per_s"), "wall_s": wall,
            "error": result.get("error"), "trials": result.get("trials")}


def run_torch(args, mixer, cfg, setting, text_file, stem) -> dict:
    log_path = args.out / "logs" / f"{stem}.torch.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(log_path, "w") as log:
        try:
            res = pt_train.run(mixer, setting, cfg["seed"], cfg, [text_file], log)
        except Exception as e:  # report and keep going
            return {"status": "error", "error": repr(e)}
    res["wall_s"] = time.time() - started
    return res


def compare(a: dict, t: dict) -> dict:
    row = {}
    aa, ta = a.get("accuracy"), t.get("accuracy")
    al, tl = a.get("val_loss"), t.get("val_loss")
    row["d_acc"] = aa - ta if aa is not None and ta is not None else None
    row["rel_loss"] = (al - tl) / tl if al is not None and tl else None
    # A solved task ends near zero loss, where 5 % relative is noise (0.003 vs 0.005 nats):
    # there the loss counts as equal within LOSS_ABS_FLOOR nats.
    close_loss = row["rel_loss"] is not None and (
        abs(row["rel_loss"]) <= LOSS_TOL + 1e-12 or abs(al - tl) <= LOSS_ABS_FLOOR)
    ok = (row["d_acc"] is not None and close_loss and abs(row["d_acc"]) <= ACC_TOL + 1e-12)
    row["pass"] = ok
    return row


def fmt(x, spec):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return format(x, spec)


HEADER = ["mixer", "setting", "seed", "acc archlab", "acc torch", "Δacc", "loss archlab",
          "loss torch", "rel Δloss", "pass", "params a/t", "s a/t"]


def row_cells(r):
    a, t = r["archlab"], r["torch"]
    params = f"{a.get('params') or '—'}/{t.get('params') or '—'}"
    secs = f"{fmt(a.get('wall_s'), '.0f')}/{fmt(t.get('wall_s'), '.0f')}"
    flag = "PASS" if r["pass"] else ("FAIL" if r["d_acc"] is not None else "n/a")
    return [r["mixer"], r["setting"], str(r["seed"]), fmt(a.get("accuracy"), ".3f"),
            fmt(t.get("accuracy"), ".3f"), fmt(r["d_acc"], "+.3f"), fmt(a.get("val_loss"), ".4f"),
            fmt(t.get("val_loss"), ".4f"), fmt(r["rel_loss"], "+.1%"), flag, params, secs]


def means(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["mixer"], r["setting"]), []).append(r)
    out = []
    for (mixer, setting), rs in groups.items():
        def avg(side, key):
            vals = [r[side].get(key) for r in rs]
            return None if any(v is None for v in vals) else sum(vals) / len(vals)
        a = {"accuracy": avg("archlab", "accuracy"), "val_loss": avg("archlab", "val_loss")}
        t = {"accuracy": avg("torch", "accuracy"), "val_loss": avg("torch", "val_loss")}
        out.append({"mixer": mixer, "setting": setting, "seeds": [r["seed"] for r in rs],
                    "archlab": a, "torch": t, **compare(a, t),
                    "pass_all_seeds": all(r["pass"] for r in rs)})
    return out


MEAN_HEADER = ["mixer", "setting", "seeds", "acc archlab", "acc torch", "Δacc", "loss archlab",
               "loss torch", "rel Δloss", "pass (mean)", "pass (all seeds)"]


def mean_cells(m):
    a, t = m["archlab"], m["torch"]
    return [m["mixer"], m["setting"], ",".join(map(str, m["seeds"])), fmt(a["accuracy"], ".3f"),
            fmt(t["accuracy"], ".3f"), fmt(m["d_acc"], "+.3f"), fmt(a["val_loss"], ".4f"),
            fmt(t["val_loss"], ".4f"), fmt(m["rel_loss"], "+.1%"),
            "PASS" if m["pass"] else ("FAIL" if m["d_acc"] is not None else "n/a"),
            "yes" if m["pass_all_seeds"] else "no"]


def text_table(header, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# Where a side ran does not change what it computes (test_parity checks the kernels' forms).
PLACEMENT_KEYS = ("device", "kernels", "threads")


def torch_side_from(directory: Path, stem: str, cfg: dict) -> dict:
    return side_from(directory, stem, cfg, "torch")


def side_from(directory: Path, stem: str, cfg: dict, which: str) -> dict:
    """One side ("torch" or "archlab") of a cell computed by another run of this harness."""
    path = directory / "cells" / f"{stem}.json"
    if not path.exists():
        return {"status": "error", "error": f"{path} does not exist"}
    cell = json.loads(path.read_text())
    theirs = {k: v for k, v in cell.get("config", {}).items() if k not in PLACEMENT_KEYS}
    ours = {k: v for k, v in cfg.items() if k not in PLACEMENT_KEYS}
    if theirs != ours:
        differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        return {"status": "error", "error": f"{path}: another configuration ({', '.join(differ)})"}
    side = dict(cell.get(which) or {"status": "error", "error": f"{path} has no {which} side"})
    if side.get("status") == "skipped":
        return {"status": "error", "error": f"{path}: its {which} side was skipped"}
    side["placement"] = {k: cell["config"].get(k) for k in PLACEMENT_KEYS}
    return side


def torch_placement(args, rows) -> str:
    """Where the torch side ran, as the table's header says it."""
    if not args.torch_from:
        return f"torch on {args.device} ({args.torch_kernels} kernels)"
    places = sorted({f"{p.get('device')} ({p.get('kernels')} kernels)"
                     for r in rows for p in [r["torch"].get("placement") or {}] if p})
    return f"torch side from {args.torch_from} (on {', '.join(places) or 'unknown'})"


def run_cell(args, mixer, setting_name, seed, text_file) -> dict:
    """Both sides of one cell (or its cached result); returns the table row."""
    setting = SETTINGS[setting_name]
    cfg = cell_config(args, setting_name, seed)
    stem = f"{mixer}_{setting_name}_s{seed}"
    cell_path = args.out / "cells" / f"{stem}.json"
    cached = None
    if args.resume and cell_path.exists():
        cached = json.loads(cell_path.read_text())
        if cached.get("config") != cfg:
            cached = None
    if cached:
        a, t = cached["archlab"], cached["torch"]
    else:
        print(f"[{stem}] {setting['desc']}: steps={cfg['steps']} batch={cfg['batch_size']} "
              f"lr={cfg['lr_sweep'] or cfg['lr']}", flush=True)
        if args.archlab_from:
            a = side_from(args.archlab_from, stem, cfg, "archlab")
        elif args.skip_archlab:
            a = {"status": "skipped"}
        else:
            a = run_archlab(args, mixer, cfg, setting, text_file, stem)
        if a.get("status") != "ok":
            print(f"  [{stem}] archlab: {a.get('status')}: {a.get('error')}", flush=True)
        if args.torch_from:
            t = torch_side_from(args.torch_from, stem, cfg)
        elif args.skip_torch:
            t = {"status": "skipped"}
        else:
            t = run_torch(args, mixer, cfg, setting, text_file, stem)
        if t.get("status") != "ok":
            print(f"  [{stem}] torch: {t.get('status')}: {t.get('error')}", flush=True)
        cell_path.parent.mkdir(parents=True, exist_ok=True)
        cell_path.write_text(json.dumps({"config": cfg, "archlab": a, "torch": t}, indent=1))
    row = {"mixer": mixer, "setting": setting_name, "seed": seed, "archlab": a, "torch": t,
           **compare(a, t)}
    print(f"  [{stem}] " + " | ".join(f"{h}={c}" for h, c in zip(HEADER[3:], row_cells(row)[3:])),
          flush=True)
    return row


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    text_file = make_text_file(args.out)
    cells = selected_cells(args)
    if not cells:
        sys.exit("no cells selected")
    if not args.skip_archlab and not args.archlab_from:
        wait_for_binary(args)
        if not args.archlab.exists():
            sys.exit(f"{args.archlab} does not exist (use --archlab or --skip-archlab)")
    print(f"{len(cells)} cells; grid={args.grid}; out={args.out}", flush=True)
    jobs = [(args, mixer, setting_name, seed, text_file) for mixer, setting_name, seed in cells]
    if args.jobs == 1:
        rows = [run_cell(*job) for job in jobs]
    else:
        # spawn: CUDA cannot be used in a forked child.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
            rows = list(pool.map(run_cell, *zip(*jobs)))

    ms = means(rows)
    table = text_table(HEADER, [row_cells(r) for r in rows])
    mtable = text_table(MEAN_HEADER, [mean_cells(m) for m in ms])
    print("\nPer cell (val split; Δ = archlab − torch; rel Δloss relative to torch):\n" + table)
    print(f"\nMeans over seeds (goal: |Δacc| ≤ {ACC_TOL}, |rel Δloss| ≤ {LOSS_TOL:.0%}):\n" + mtable)
    n_pass = sum(r["pass"] for r in rows)
    print(f"\n{n_pass}/{len(rows)} cells pass")

    settings_md = "\n".join(f"- {k}: {v['desc']}" for k, v in SETTINGS.items())
    cfg0 = cell_config(args, cells[0][1], cells[0][2])
    md = [
        "# archlab ↔ PyTorch parity",
        "",
        f"Grid `{args.grid}`, seeds {args.seeds}, d_model {args.d_model}, {args.n_layers} layers, "
        f"steps {cfg0['steps']}, lr {cfg0['lr_sweep'] or cfg0['lr']}, warmup {cfg0['warmup_steps']}, "
        "eval_batches " + ", ".join(
            f"{k} {cell_config(args, k, 0)['eval_batches']}" for k in GRIDS[args.grid]["settings"])
        + f", torch embedding init {args.embed_init}; " + torch_placement(args, rows)
        + (f", archlab side from {args.archlab_from}." if args.archlab_from
           else f", archlab on {args.archlab_device or 'cpu'}."),
        "",
        settings_md,
        "",
        f"Pass: |Δacc| ≤ {ACC_TOL} and (|rel Δloss| ≤ {LOSS_TOL:.0%} or |Δloss| ≤ {LOSS_ABS_FLOOR}) (Δ = archlab − torch).",
        "",
        "## Per cell",
        "",
        md_table(HEADER, [row_cells(r) for r in rows]),
        "",
        "## Means over seeds",
        "",
        md_table(MEAN_HEADER, [mean_cells(m) for m in ms]),
        "",
        f"{n_pass}/{len(rows)} cells pass.",
    ]
    (args.out / "parity.md").write_text("\n".join(md) + "\n")
    (args.out / "parity.json").write_text(json.dumps(
        {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
         "rows": rows, "means": ms}, indent=1, default=str))
    print(f"wrote {args.out / 'parity.md'} and {args.out / 'parity.json'}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
