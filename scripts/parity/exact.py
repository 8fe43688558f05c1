#!/usr/bin/env python3
"""Exact first-step check: archlab's forward and backward pass against the PyTorch mirror,
number for number, on the same parameters and the same batch.

For each mixer and config, `archlab train --dump-first-step` writes archlab's initial
parameters, its first training batch, the loss, the logits and every parameter's gradient.
This script loads those parameters into pt_model.LanguageModel (mapped by creation order;
every shape and name checked), runs the same batch through it in float32 and float64, and
compares loss, logits and gradients. Optionally (--adamw) it also applies one AdamW step
(pt_train.AdamW, the mirror of trainer/src/training.rs) with each side's gradients and
compares the updated parameters.

  python3 scripts/parity/exact.py                       # 4 mixers x configs a, c
  python3 scripts/parity/exact.py --configs a a1 c t --adamw --keep DIR

Pass: |Δloss| <= 1e-4, max |Δlogit| <= 1e-4 and, for every gradient tensor,
max |Δgrad| / max |grad_archlab| <= 1e-3 (float32 torch vs archlab). archlab uses its chunked
kernels (chunk_size, default 16); torch uses the sequential recurrences, so agreement is to
float32 rounding, not bit for bit. The float64 column shows how much of the difference is
rounding: if float64 torch is as far from archlab as float32 torch, it is archlab's rounding.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import pt_train  # noqa: E402
from pt_model import MIXERS, LanguageModel, set_kernels  # noqa: E402

DEFAULT_BINARY = REPO / "target" / "release" / "archlab"
LOSS_TOL = 1e-4
LOGIT_TOL = 1e-4
GRAD_REL_TOL = 1e-3

# name -> model/data config (batch 2: enough for a check, cheap to dump)
CONFIGS = {
    "a": {"task": "mqar", "vocab": 64, "pairs": 4, "seq_len": 32, "d_model": 32, "n_layers": 2,
          "batch": 2, "desc": "MQAR V64 4 pairs T32 d32 L2 B2"},
    "a1": {"task": "mqar", "vocab": 64, "pairs": 4, "seq_len": 32, "d_model": 32, "n_layers": 1,
           "batch": 2, "desc": "MQAR V64 4 pairs T32 d32 L1 B2"},
    "c": {"task": "mqar", "vocab": 256, "pairs": 8, "seq_len": 64, "d_model": 64, "n_layers": 2,
          "batch": 2, "desc": "MQAR V256 8 pairs T64 d64 L2 B2"},
    "t": {"task": "text", "vocab": 256, "seq_len": 64, "d_model": 64, "n_layers": 2, "batch": 2,
          "desc": "bytes of cognition/*.yaml T64 d64 L2 B2"},
}


def archlab_config(c: dict, seed: int, chunk_size: int | None, text_file: Path | None) -> dict:
    if c["task"] == "mqar":
        task = {"kind": "mqar", "num_kv_pairs": c["pairs"]}
    else:
        task = {"kind": "text", "paths": [str(text_file)]}
    conf = {
        "model": {"d_model": c["d_model"], "n_layers": c["n_layers"]},
        "data": {"vocab_size": c["vocab"], "seq_len": c["seq_len"], "tasks": [task]},
        "optim": {"lr": 3e-3},
        "steps": 1, "batch_size": c["batch"], "seed": seed, "eval_batches": 1,
    }
    if chunk_size is not None:
        conf["chunk_size"] = chunk_size
    return conf


def text_file_for(workdir: Path) -> Path:
    path = workdir / "cognition_concat.txt"
    data = b"".join(p.read_bytes() for p in sorted((REPO / "cognition").glob("*.yaml")))
    path.write_bytes(data)
    return path


def dump(binary: Path, program: Path, conf: dict, workdir: Path, stem: str,
         device: str = "cpu") -> dict:
    conf_path = workdir / f"{stem}.config.json"
    out_path = workdir / f"{stem}.dump.json"
    conf_path.write_text(json.dumps(conf, indent=1))
    cmd = [str(binary), "train", "--program", str(program), "--config", str(conf_path),
           "--device", device, "--dump-first-step", str(out_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(out_path.read_text())


# ------------------------------------------------------------------------ parameter mapping


def expected_archlab_name(torch_name: str) -> tuple[str, str | None]:
    """(prefix that must match, required suffix) for a torch parameter name. Backbone names
    are identical; mixer parameters are `{block}.mixer.n{node}.{weight|scale}` in archlab."""
    if ".mixer." not in torch_name:
        return torch_name, None
    block, _, what = torch_name.partition(".mixer.")
    return f"{block}.mixer.n", ".scale" if what == "norm" else ".weight"


def load_params(model: LanguageModel, params: list, dtype) -> list[tuple[str, str]]:
    """Copies archlab's parameters into `model` by creation order; checks names and shapes.
    Returns [(torch name, archlab name)]."""
    named = model.named_decay_params()
    if len(named) != len(params):
        raise AssertionError(f"parameter count: torch {len(named)}, archlab {len(params)}: "
                             f"{[n for n, _, _ in named]} vs {[p['name'] for p in params]}")
    pairs = []
    for (key, p, _decay), a in zip(named, params):
        tname = key.replace("__", ".")
        prefix, suffix = expected_archlab_name(tname)
        aname = a["name"]
        ok_name = (aname == prefix) if suffix is None else (
            aname.startswith(prefix) and aname.endswith(suffix))
        if not ok_name:
            raise AssertionError(f"name mismatch at position {len(pairs)}: torch {tname}, "
                                 f"archlab {aname}")
        rows, cols = a["shape"]
        tshape = tuple(p.shape)
        if tshape != (rows, cols) and not (rows == 1 and tshape == (cols,)):
            raise AssertionError(f"shape mismatch: torch {tname} {tshape}, archlab {aname} "
                                 f"{[rows, cols]}")
        values = torch.tensor(a["values"], dtype=torch.float32).reshape(tshape)
        p.data = values.to(dtype)
        pairs.append((tname, aname))
    return pairs


# ------------------------------------------------------------------------ comparison


def torch_step(model: LanguageModel, d: dict, dtype):
    b, t = d["batch_size"], d["seq_len"]
    x = torch.tensor(d["inputs"], dtype=torch.long).reshape(b, t)
    y = torch.tensor(d["targets"], dtype=torch.long).reshape(b, t)
    m = torch.tensor(d["mask"], dtype=dtype).reshape(b, t)
    for p in model.store.parameters():
        p.grad = None
    logits = model(x)
    loss = pt_train.masked_ce(logits, y, m)
    loss.backward()
    grads = [p.grad.detach().clone() for _, p, _ in model.named_decay_params()]
    return float(loss.detach()), logits.detach(), grads


def compare(d: dict, loss, logits, grads, names) -> dict:
    a_logits = torch.tensor(d["logits"], dtype=torch.float64).reshape(logits.shape)
    res = {
        "loss_archlab": d["loss"], "loss_torch": loss,
        "d_loss": abs(loss - d["loss"]),
        "d_logit": float((logits.double() - a_logits).abs().max()),
        "grads": [],
    }
    for (tname, aname), g, a in zip(names, grads, d["grads"]):
        ag = torch.tensor(a["values"], dtype=torch.float64).reshape(g.shape)
        diff = float((g.double() - ag).abs().max())
        scale = float(ag.abs().max())
        rel = diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)
        res["grads"].append({"torch": tname, "archlab": aname, "max_abs": diff, "scale": scale,
                             "rel": rel})
    worst = max(res["grads"], key=lambda r: r["rel"])
    res["grad_max_abs"] = max(r["max_abs"] for r in res["grads"])
    res["grad_max_rel"] = worst["rel"]
    res["worst"] = worst["torch"]
    res["pass"] = (res["d_loss"] <= LOSS_TOL and res["d_logit"] <= LOGIT_TOL
                   and all(r["rel"] <= GRAD_REL_TOL for r in res["grads"]))
    return res


def adamw_compare(model: LanguageModel, d: dict, torch_grads, lr=3e-3, clip_to=1.0) -> dict:
    """One AdamW step (first step: bias-corrected update = g/(|g|+eps)) from the same start,
    once with torch's gradients and once with archlab's; both through pt_train.AdamW, which
    mirrors trainer/src/training.rs. Reports the gradient norms, the clip factors and the
    largest difference in the updated parameters in units of lr."""
    named = model.named_decay_params()
    start = [p.detach().clone() for _, p, _ in named]
    results = {}
    for side in ("torch", "archlab"):
        for (_, p, _), s in zip(named, start):
            p.data = s.clone()
        if side == "torch":
            gs = [g.clone() for g in torch_grads]
        else:
            gs = [torch.tensor(a["values"], dtype=s.dtype).reshape(s.shape)
                  for a, s in zip(d["grads"], start)]
        for (_, p, _), g in zip(named, gs):
            p.grad = g
        params = [p for _, p, _ in named]
        clip, norm = pt_train.clip_factor(params, clip_to)
        opt = pt_train.AdamW(named, 0.9, 0.98, 1e-8, 0.1)
        opt.step(1, lr, clip)
        results[side] = {"norm": norm, "clip": clip,
                         "after": [p.detach().clone() for _, p, _ in named]}
    worst_name, worst = None, -1.0
    flipped = 0
    for (key, _, _), pt, pa in zip(named, results["torch"]["after"], results["archlab"]["after"]):
        delta = float((pt.double() - pa.double()).abs().max()) / lr
        flipped += int(((pt.double() - pa.double()).abs() > lr).sum())
        if delta > worst:
            worst, worst_name = delta, key.replace("__", ".")
    for (_, p, _), s in zip(named, start):
        p.data = s
        p.grad = None
    return {"norm_torch": results["torch"]["norm"], "norm_archlab": results["archlab"]["norm"],
            "clip_torch": results["torch"]["clip"], "clip_archlab": results["archlab"]["clip"],
            "max_d_update_over_lr": worst, "worst": worst_name, "n_flipped": flipped}


def check(mixer: str, config: str, binary: Path = DEFAULT_BINARY, seed: int = 0,
          chunk_size: int | None = None, workdir: Path | None = None, f64: bool = True,
          adamw: bool = False, dumped: dict | None = None, device: str = "cpu") -> dict:
    """Runs archlab's dump for (mixer, config) and compares. Returns a result row."""
    c = CONFIGS[config]
    own_tmp = None
    if workdir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="archlab-exact-")
        workdir = Path(own_tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        text_file = text_file_for(workdir) if c["task"] == "text" else None
        conf = archlab_config(c, seed, chunk_size, text_file)
        program = REPO / "archspec" / "library" / f"{mixer}.arch"
        d = dumped or dump(binary, program, conf, workdir, f"{mixer}_{config}_s{seed}", device)
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()
    model = LanguageModel(mixer, c["vocab"], c["d_model"], c["n_layers"], None, 4)
    row = {"mixer": mixer, "config": config, "seed": seed, "chunk_size": chunk_size or 16}
    for dtype in ([torch.float32, torch.float64] if f64 else [torch.float32]):
        names = load_params(model, d["params"], dtype)
        loss, logits, grads = torch_step(model, d, dtype)
        tag = "f32" if dtype == torch.float32 else "f64"
        row[tag] = compare(d, loss, logits, grads, names)
        if tag == "f32":
            g32, l32 = grads, logits
        else:  # torch's own rounding: float32 torch vs float64 torch
            row["f32_vs_f64"] = {
                "d_logit": float((l32.double() - logits).abs().max()),
                "grad_max_rel": max(float((a.double() - b).abs().max())
                                    / max(float(b.abs().max()), 1e-300)
                                    for a, b in zip(g32, grads)),
            }
    if adamw:
        names = load_params(model, d["params"], torch.float32)
        _, _, grads = torch_step(model, d, torch.float32)
        row["adamw"] = adamw_compare(model, d, grads)
    row["pass"] = row["f32"]["pass"]
    return row


# ------------------------------------------------------------------------ replay


def _tensors(flat, b, t, dtype):
    xs, ys, ms = flat
    return (torch.tensor(xs, dtype=torch.long).reshape(b, t),
            torch.tensor(ys, dtype=torch.long).reshape(b, t),
            torch.tensor(ms, dtype=dtype).reshape(b, t))


def replay(mixer: str, config: str, steps: int, batch: int, binary: Path = DEFAULT_BINARY,
           seed: int = 0, lr: float = 3e-3, eval_batches: int = 16, d_model: int | None = None,
           workdir: Path | None = None, dtype=torch.float32, device: str = "cpu") -> dict:
    """Trains `steps` AdamW steps on both sides from the *same* initial parameters on the *same*
    batches (archlab's stream, reproduced by archlab_stream.py) and compares the per-step
    training loss (archlab's progress lines with progress_every 1) and the final validation
    loss and accuracy. Optimiser as parity.py: AdamW (0.9, 0.98), eps 1e-8, wd 0.1, 10 % warmup
    + cosine to 0.1 lr, clip 1.0."""
    import archlab_stream

    c = dict(CONFIGS[config])
    c["batch"] = batch
    if d_model:
        c["d_model"] = d_model
    own_tmp = None
    if workdir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="archlab-replay-")
        workdir = Path(own_tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        text_file = text_file_for(workdir) if c["task"] == "text" else None
        conf = archlab_config(c, seed, None, text_file)
        warmup = int(round(0.1 * steps))
        conf["optim"] = {"lr": lr, "schedule": "cosine", "warmup_steps": warmup,
                         "min_lr_ratio": 0.1, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.98,
                         "eps": 1e-8, "grad_clip": 1.0}
        conf.update(steps=steps, eval_batches=eval_batches, progress_every=1)
        program = REPO / "archspec" / "library" / f"{mixer}.arch"
        stem = f"replay_{mixer}_{config}_s{seed}"
        d = dump(binary, program, conf, workdir, stem, device)
        conf_path = workdir / f"{stem}.config.json"
        proc = subprocess.run([str(binary), "train", "--program", str(program), "--config",
                               str(conf_path), "--device", device],
                              capture_output=True, text=True, timeout=3600)
        task = conf["data"]["tasks"][0]
        train = archlab_stream.Stream(task, c["vocab"], c["seq_len"], "train", seed)
        val = archlab_stream.Stream(task, c["vocab"], c["seq_len"], "val", seed)
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()
    a_loss, a_result = {}, None
    for line in proc.stdout.splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if ev.get("event") == "progress":
            a_loss[ev["step"]] = ev["loss"]
        elif ev.get("event") == "result":
            a_result = ev
    if a_result is None:
        raise RuntimeError(f"archlab train failed: {proc.stderr[-2000:]}")

    model = LanguageModel(mixer, c["vocab"], c["d_model"], c["n_layers"], None, 4)
    load_params(model, d["params"], dtype)
    named = model.named_decay_params()
    params = [p for _, p, _ in named]
    opt = pt_train.AdamW(named, 0.9, 0.98, 1e-8, 0.1)
    b, t = batch, c["seq_len"]
    t_loss = {}
    for step in range(1, steps + 1):
        lr_now = pt_train.learning_rate(lr, step, steps, warmup, 0.1, "cosine")
        flat = train.next_batch(b)
        if step == 1 and flat[0] != d["inputs"]:
            raise AssertionError("archlab_stream does not reproduce archlab's first batch")
        x, y, m = _tensors(flat, b, t, dtype)
        for p in params:
            p.grad = None
        loss = pt_train.masked_ce(model(x), y, m)
        loss.backward()
        clip, _ = pt_train.clip_factor(params, 1.0)
        opt.step(step, lr_now, clip)
        t_loss[step] = float(loss.detach())
    total = scored = correct = 0.0
    with torch.no_grad():
        for _ in range(eval_batches):
            x, y, m = _tensors(val.batch_of(b), b, t, dtype)
            logits = model(x)
            n = float(m.sum())
            total += float(pt_train.masked_ce(logits, y, m)) * n
            scored += n
            correct += float(((logits.argmax(-1) == y).to(dtype) * m).sum())
    key = "text" if c["task"] == "text" else "mqar"
    diffs = [abs(a_loss[s] - t_loss[s]) for s in range(1, steps + 1)]
    first_big = next((s for s in range(1, steps + 1) if diffs[s - 1] > 1e-3), None)
    checkpoints = sorted(s for s in {1, 10, steps // 4, steps // 2, 3 * steps // 4, steps}
                         if 1 <= s <= steps)
    return {"mixer": mixer, "config": config, "seed": seed, "steps": steps, "batch": batch,
            "d_model": c["d_model"], "lr": lr,
            "val_loss_archlab": a_result.get("val_loss"), "val_loss_torch": total / scored,
            "acc_archlab": (a_result.get("accuracy") or {}).get(key),
            "acc_torch": correct / scored,
            "first_step_over_1e-3": first_big,
            "max_d_train_loss_first10": max(diffs[:10]),
            "train_loss": {s: (a_loss[s], t_loss[s]) for s in checkpoints},
            "mean_train_loss_archlab": sum(a_loss.values()) / steps,
            "mean_train_loss_torch": sum(t_loss.values()) / steps}


# ------------------------------------------------------------------------ report

HEADER = ["mixer", "config", "loss archlab", "|Δloss|", "max|Δlogit|", "grad max|Δ|",
          "grad max rel", "worst tensor", "f64: |Δloss|", "f64: max|Δlogit|", "f64: grad rel",
          "pass"]


def cells(r) -> list[str]:
    a, b = r["f32"], r.get("f64")
    out = [r["mixer"], r["config"], f"{a['loss_archlab']:.6f}", f"{a['d_loss']:.1e}",
           f"{a['d_logit']:.1e}", f"{a['grad_max_abs']:.1e}", f"{a['grad_max_rel']:.1e}",
           a["worst"]]
    if b:
        out += [f"{b['d_loss']:.1e}", f"{b['d_logit']:.1e}", f"{b['grad_max_rel']:.1e}"]
    else:
        out += ["—", "—", "—"]
    out.append("PASS" if r["pass"] else "FAIL")
    return out


ADAM_HEADER = ["mixer", "config", "‖g‖ archlab", "‖g‖ torch", "max|Δp|/lr", "worst", "# |Δp|>lr"]


def adam_cells(r) -> list[str]:
    a = r["adamw"]
    return [r["mixer"], r["config"], f"{a['norm_archlab']:.6f}", f"{a['norm_torch']:.6f}",
            f"{a['max_d_update_over_lr']:.2e}", a["worst"], str(a["n_flipped"])]


def text_table(header, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = lambda cs: "  ".join(c.ljust(w) for c, w in zip(cs, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def md_table(header, rows):
    esc = lambda cs: [c.replace("|", "\\|") for c in cs]  # noqa: E731
    out = ["| " + " | ".join(esc(header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(out + ["| " + " | ".join(esc(r)) + " |" for r in rows])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mixers", nargs="+", default=list(MIXERS), choices=list(MIXERS))
    ap.add_argument("--configs", nargs="+", default=["a", "c"], choices=sorted(CONFIGS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk-size", type=int, default=None, help="archlab chunk_size (default 16)")
    ap.add_argument("--archlab", type=Path, default=DEFAULT_BINARY)
    ap.add_argument("--archlab-device", default="cpu",
                    help="archlab's backend: cpu (flex, the default build) or, with a binary "
                         "built with --features tch, tch-cpu or cuda (the backend of GPU runs)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "exact.md")
    ap.add_argument("--keep", type=Path, default=None, help="keep configs and dumps in this dir")
    ap.add_argument("--no-f64", action="store_true")
    ap.add_argument("--adamw", action="store_true", help="also compare one AdamW update")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--replay", type=int, default=0, metavar="STEPS",
                    help="also train STEPS steps on both sides from the same init on the same "
                         "batches and compare (per config, mixer and --replay-seeds)")
    ap.add_argument("--replay-batch", type=int, default=32)
    ap.add_argument("--replay-d-model", type=int, default=64)
    ap.add_argument("--replay-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--replay-only", action="store_true", help="skip the first-step check")
    ap.add_argument("--replay-kernels", choices=["loop", "parallel"], default="loop",
                    help="torch's kernels in the replay: the sequential loops or their closed "
                         "forms (faster for long replays; test_parity.py checks they agree)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.archlab.exists():
        sys.exit(f"{args.archlab} does not exist")

    if args.replay_only:
        return replay_main(args)
    rows = []
    for config in args.configs:
        for mixer in args.mixers:
            r = check(mixer, config, args.archlab, args.seed, args.chunk_size, args.keep,
                      not args.no_f64, args.adamw, device=args.archlab_device)
            rows.append(r)
            print("  " + " | ".join(f"{h}={c}" for h, c in zip(HEADER, cells(r))), flush=True)

    table = text_table(HEADER, [cells(r) for r in rows])
    desc = "\n".join(f"- `{k}`: {CONFIGS[k]['desc']}" for k in args.configs)
    crit = (f"Pass (float32 torch vs archlab): |Δloss| ≤ {LOSS_TOL:g}, max |Δlogit| ≤ {LOGIT_TOL:g}, "
            f"every gradient tensor max |Δ| / max |g_archlab| ≤ {GRAD_REL_TOL:g}.")
    print(f"\n{table}\n\n{crit}")
    n_pass = sum(r["pass"] for r in rows)
    print(f"{n_pass}/{len(rows)} pass")
    md = ["# archlab ↔ PyTorch: exact first step", "",
          f"Seed {args.seed}, archlab device {args.archlab_device}, chunk_size "
          f"{args.chunk_size or 16}, torch sequential "
          "kernels; gradients relative to each tensor's max |g_archlab|. "
          "`f64:` columns: the same torch model in float64 against archlab's float32.", "",
          desc, "", md_table(HEADER, [cells(r) for r in rows]), "", crit, "",
          f"{n_pass}/{len(rows)} pass.", ""]
    rounding = [(r["mixer"], r["config"], r["f32_vs_f64"]) for r in rows if "f32_vs_f64" in r]
    if rounding:
        md += ["torch float32 vs torch float64 (torch's own rounding): " + "; ".join(
            f"{m}/{c} logit {x['d_logit']:.1e}, grad rel {x['grad_max_rel']:.1e}"
            for m, c, x in rounding) + ".", ""]
    if args.adamw:
        at = text_table(ADAM_HEADER, [adam_cells(r) for r in rows])
        print("\nOne AdamW step (lr 3e-3, clip 1.0) from each side's gradients:\n" + at)
        md += ["## One AdamW step", "",
               "From archlab's initial parameters, pt_train.AdamW (lr 3e-3, wd 0.1, clip 1.0) "
               "applied with torch's and with archlab's gradients; Δp in units of lr.", "",
               md_table(ADAM_HEADER, [adam_cells(r) for r in rows]), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(md))
    (args.out.with_suffix(".json")).write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out}")
    rc = 0 if n_pass == len(rows) else 1
    if args.replay:
        rc |= replay_main(args)
    return rc


REPLAY_HEADER = ["mixer", "config", "seed", "steps", "first step |Δloss|>1e-3",
                 "train loss a/t (last)", "val loss archlab", "val loss torch", "acc archlab",
                 "acc torch"]


def replay_cells(r):
    la, lt = r["train_loss"][r["steps"]]
    return [r["mixer"], r["config"], str(r["seed"]), str(r["steps"]),
            str(r["first_step_over_1e-3"] or "none"), f"{la:.4f}/{lt:.4f}",
            f"{r['val_loss_archlab']:.6f}", f"{r['val_loss_torch']:.6f}",
            f"{r['acc_archlab']:.4f}", f"{r['acc_torch']:.4f}"]


def replay_main(args) -> int:
    set_kernels(args.replay_kernels)
    rows = []
    for config in args.configs:
        for mixer in args.mixers:
            for seed in args.replay_seeds:
                r = replay(mixer, config, args.replay, args.replay_batch, args.archlab, seed,
                           d_model=args.replay_d_model, workdir=args.keep,
                           device=args.archlab_device)
                rows.append(r)
                print("  " + " | ".join(f"{h}={c}" for h, c in zip(REPLAY_HEADER, replay_cells(r))),
                      flush=True)
    table = text_table(REPLAY_HEADER, [replay_cells(r) for r in rows])
    print("\nReplay (same init, same batches; AdamW lr 3e-3, 10 % warmup, cosine, clip 1):\n"
          + table)
    out = args.out.with_name(args.out.stem + "_replay.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join([
        "# archlab ↔ PyTorch: training replay", "",
        f"Both sides start from archlab's initial parameters and train on archlab's batches "
        f"(reproduced by archlab_stream.py): d_model {args.replay_d_model}, batch "
        f"{args.replay_batch}, AdamW (0.9, 0.98) lr 3e-3, wd 0.1, 10 % warmup + cosine to "
        "0.1·lr, clip 1.0. archlab's per-step loss from its progress lines (progress_every 1); "
        f"validation on archlab's validation stream. archlab on `{args.archlab_device}`, torch "
        f"with its {args.replay_kernels} kernels.", "",
        md_table(REPLAY_HEADER, [replay_cells(r) for r in rows]), ""]))
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
