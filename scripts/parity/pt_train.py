"""The PyTorch training loop, mirroring trainer/src/training.rs:
AdamW written out (bias-corrected moments, eps added after the sqrt, decoupled decay
`p *= 1 - lr*wd` on decay=True params only, applied before the update), global-norm
gradient clipping, warmup (lr*step/warmup for 1-based step <= warmup) then cosine to
min_lr_ratio*lr, mean masked cross-entropy, evaluation over eval_batches batches,
lr sweep keeping the best validation loss (strictly lower wins; first on ties)."""

from __future__ import annotations

import json
import math
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402

from pt_data import Stream  # noqa: E402
from pt_model import LanguageModel, set_kernels  # noqa: E402


def learning_rate(base: float, step: int, total: int, warmup_steps: int, min_lr_ratio: float,
                  schedule: str = "cosine") -> float:
    """trainer/src/training.rs::learning_rate (cosine / constant)."""
    warmup = min(warmup_steps, total)
    if step <= warmup and warmup > 0:
        return base * step / warmup
    min_lr = base * min_lr_ratio
    progress = (step - warmup) / max(total - warmup, 1)
    if schedule == "constant":
        return base
    assert schedule == "cosine"
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class AdamW:
    def __init__(self, named_params, beta1=0.9, beta2=0.98, eps=1e-8, weight_decay=0.1):
        self.params = [(p, decay) for _, p, decay in named_params]
        self.m = [torch.zeros_like(p) for p, _ in self.params]
        self.v = [torch.zeros_like(p) for p, _ in self.params]
        self.b1, self.b2, self.eps, self.wd = beta1, beta2, eps, weight_decay

    @torch.no_grad()
    def step(self, step: int, lr: float, clip: float):
        bias1 = 1.0 - self.b1 ** step
        bias2 = 1.0 - self.b2 ** step
        for i, (p, decay) in enumerate(self.params):
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            g = g * clip
            self.m[i] = self.m[i] * self.b1 + g * (1.0 - self.b1)
            self.v[i] = self.v[i] * self.b2 + g.square() * (1.0 - self.b2)
            update = (self.m[i] / bias1) / ((self.v[i] / bias2).sqrt() + self.eps)
            if decay and self.wd > 0.0:
                p.mul_(1.0 - lr * self.wd)
            p.sub_(update * lr)


def clip_factor(params, grad_clip: float) -> tuple[float, float]:
    # One float() for all parameters: on a GPU each float() waits for the device.
    squares = [p.grad.double().square().sum() for p in params if p.grad is not None]
    norm = math.sqrt(float(torch.stack(squares).sum())) if squares else 0.0
    if grad_clip > 0.0 and norm > grad_clip:
        return grad_clip / norm, norm
    return 1.0, norm


def masked_ce(logits, targets, mask):
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -(picked * mask).sum() / mask.sum().clamp_min(1.0)


@torch.no_grad()
def evaluate(model, setting, seed, cfg, text_paths, split="val"):
    stream = Stream(setting, split, seed, text_paths)
    device = torch.device(cfg.get("device", "cpu"))
    total_loss = total_scored = correct = 0.0
    for _ in range(cfg["eval_batches"]):
        x, y, m = (t.to(device) for t in stream.batch(cfg["batch_size"]))
        logits = model(x)
        scored = float(m.sum())
        total_loss += float(masked_ce(logits, y, m)) * scored
        total_scored += scored
        correct += float(((logits.argmax(-1) == y).float() * m).sum())
    return {
        "loss": total_loss / total_scored if total_scored else float("nan"),
        "accuracy": correct / total_scored if total_scored else 0.0,
    }


def train_trial(mixer, setting, seed, cfg, lr, text_paths=None, log=None):
    torch.manual_seed(seed)
    # Weights are drawn on the CPU whatever the device, so a seed gives the same model on both.
    device = torch.device(cfg.get("device", "cpu"))
    model = LanguageModel(mixer, setting["vocab"], cfg["d_model"], cfg["n_layers"],
                          cfg.get("d_ff"), cfg.get("heads", 4), cfg.get("embed_init", "normal"))
    model.to(device)
    named = model.named_decay_params()
    params = [p for _, p, _ in named]
    opt = AdamW(named, cfg["beta1"], cfg["beta2"], cfg["eps"], cfg["weight_decay"])
    stream = Stream(setting, "train", seed, text_paths)
    steps = cfg["steps"]
    started = time.time()
    window, window_n, status = 0.0, 0, "ok"
    for step in range(1, steps + 1):
        lr_now = learning_rate(lr, step, steps, cfg["warmup_steps"], cfg["min_lr_ratio"], cfg["schedule"])
        x, y, m = (t.to(device) for t in stream.batch(cfg["batch_size"]))
        for p in params:
            p.grad = None
        loss = masked_ce(model(x), y, m)
        lv = float(loss.detach())
        if not math.isfinite(lv):
            status = "diverged"
            break
        loss.backward()
        clip, norm = clip_factor(params, cfg["grad_clip"])
        if not math.isfinite(norm):
            status = "diverged"
            break
        opt.step(step, lr_now, clip)
        window += lv
        window_n += 1
        if log is not None and (step % cfg["progress_every"] == 0 or step == steps):
            log.write(json.dumps({"event": "progress", "step": step, "loss": window / window_n,
                                  "lr": lr_now, "grad_norm": norm,
                                  "elapsed_s": time.time() - started}) + "\n")
            log.flush()
            window, window_n = 0.0, 0
    train_s = time.time() - started
    ev = evaluate(model, setting, seed, cfg, text_paths, "val") if status == "ok" else None
    if ev is not None and not math.isfinite(ev["loss"]):
        status, ev = "diverged", None
    return {"lr": lr, "status": status, "val": ev, "train_s": train_s,
            "params": model.param_count(), "model": model}


def run(mixer, setting, seed, cfg, text_paths=None, log=None):
    """All learning rates; keep the best by validation loss (as archlab's run_inner)."""
    torch.set_num_threads(cfg.get("threads", 2))
    set_kernels(cfg.get("kernels", "loop"))
    if cfg.get("device", "cpu").startswith("cuda"):
        # Full float32, as archlab computes: no TF32 in matrix products.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    lrs = cfg["lr_sweep"] or [cfg["lr"]]
    best, trials = None, []
    for lr in lrs:
        trial = train_trial(mixer, setting, seed, cfg, lr, text_paths, log)
        trials.append({k: trial[k] for k in ("lr", "status", "val", "train_s")})
        if trial["val"] is not None and (best is None or trial["val"]["loss"] < best["val"]["loss"]):
            best = trial
    if best is None:
        return {"status": "diverged", "trials": trials}
    return {"status": "ok", "val_loss": best["val"]["loss"], "accuracy": best["val"]["accuracy"],
            "lr": best["lr"], "params": best["params"], "trials": trials,
            "wall_s": sum(t["train_s"] for t in trials)}
