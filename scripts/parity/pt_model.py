"""PyTorch mirror of archlab's backbone (trainer/src/model.rs), parameter init
(trainer/src/params.rs after the PyTorch-default fix) and four library mixers
(archspec/library/{softmax_rope,linear_attention,deltanet,gla}.arch) with the
semantics of trainer/src/mixer.rs and the *sequential reference* kernels in
trainer/src/kernels/*.rs.

Conventions copied from archlab:
  * weights are stored [in, out] (y = x @ W), init U(+-1/sqrt(in));
  * every parameter carries a `decay` flag (AdamW weight decay on matrices only);
  * RMSNorm: x / sqrt(mean(x^2) + 1e-6) * scale; L2 norm: x / sqrt(sum(x^2) + 1e-6);
  * q is scaled by 1/sqrt(K) in every attention-like kernel; no normaliser in
    linear / decay attention; log decays clamped to <= 0.
"""

from __future__ import annotations

import math
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

NORM_EPS = 1e-6
MIXERS = ("softmax_rope", "linear_attention", "deltanet", "gla")


# --------------------------------------------------------------------------------------
# Parameters


class Params(nn.Module):
    """Holds parameters with archlab's names and decay flags (in creation order)."""

    def __init__(self):
        super().__init__()
        self.decay: dict[str, bool] = {}

    def add(self, name: str, shape, init: str, decay: bool, value: float = 0.0) -> nn.Parameter:
        p = torch.empty(*shape, dtype=torch.float32)
        if init == "uniform_fan_in":
            bound = 1.0 / math.sqrt(max(shape[0], 1))
            nn.init.uniform_(p, -bound, bound)
        elif init == "normal":
            nn.init.normal_(p, 0.0, 1.0)
        elif init == "const":
            nn.init.constant_(p, value)
        else:
            raise ValueError(init)
        param = nn.Parameter(p)
        key = name.replace(".", "__")
        self.register_parameter(key, param)
        self.decay[key] = decay
        return param


def linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """archlab's matmul_last: [..., in] @ [in, out]."""
    return x @ w


def rms_norm(x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    y = x / torch.sqrt(x.square().mean(dim=-1, keepdim=True) + NORM_EPS)
    return y * scale if scale is not None else y


def l2_norm(x: torch.Tensor) -> torch.Tensor:
    return x / torch.sqrt(x.square().sum(dim=-1, keepdim=True) + NORM_EPS)


def split_heads(x: torch.Tensor, h: int) -> torch.Tensor:
    """[B,T,h*K] -> [B,H,T,K]; [B,T,h] -> [B,H,T,1]."""
    b, t, d = x.shape
    return x.reshape(b, t, h, d // h).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, t, k = x.shape
    return x.transpose(1, 2).reshape(b, t, h * k)


def elu1(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x, alpha=1.0) + 1.0


def short_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Causal depthwise conv, weight stored [width, D]: out[t] = sum_i w[i] * x[t-i]."""
    width = weight.shape[0]
    t = x.shape[1]
    padded = F.pad(x, (0, 0, width - 1, 0))
    out = None
    for i in range(width):
        term = padded[:, width - 1 - i : width - 1 - i + t] * weight[i]
        out = term if out is None else out + term
    return out


def rope(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary embedding on [B,H,T,K], rotating pairs (i, i + K/2); angles in float64."""
    _, _, t, k = x.shape
    half = k // 2
    pos = torch.arange(t, dtype=torch.float64, device=x.device)[:, None]
    inv = base ** (-2.0 * torch.arange(half, dtype=torch.float64, device=x.device) / k)
    angle = pos * inv[None, :]
    cos = angle.cos().to(x.dtype)
    sin = angle.sin().to(x.dtype)
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


# --------------------------------------------------------------------------------------
# Kernels: sequential references (loops over time), as in trainer/src/kernels/*.rs


def softmax_attention(q, k, v):
    """Causal softmax attention; additive -1e9 bias on masked scores, as archlab."""
    t, kd = q.shape[2], q.shape[3]
    scores = q @ k.transpose(2, 3) / math.sqrt(kd)
    keep = torch.tril(torch.ones(t, t, dtype=q.dtype, device=q.device))
    scores = scores + (keep - 1.0) * 1e9
    return torch.softmax(scores, dim=-1) @ v


def softmax_attention_loop(q, k, v):
    """Reference: each query attends to positions 0..t."""
    t, kd = q.shape[2], q.shape[3]
    outs = []
    for i in range(t):
        w = torch.softmax(q[:, :, i : i + 1] @ k[:, :, : i + 1].transpose(2, 3) / math.sqrt(kd), dim=-1)
        outs.append(w @ v[:, :, : i + 1])
    return torch.cat(outs, dim=2)


# The loops below are the reference. On a GPU they cost one kernel launch per position, so
# `set_kernels("parallel")` swaps in closed forms of the same recurrences (the whole sequence
# as one chunk); test_parity.py checks both against each other.
KERNELS = "loop"


def set_kernels(kind: str) -> None:
    global KERNELS
    if kind not in ("loop", "parallel"):
        raise ValueError(f"kernels must be 'loop' or 'parallel', not {kind!r}")
    KERNELS = kind


def decay_attention(q, k, v, g=None):
    if KERNELS == "parallel":
        return decay_attention_parallel(q, k, v, g)
    return decay_attention_loop(q, k, v, g)


def delta_rule(q, k, v, beta, g=None):
    if KERNELS == "parallel" and g is None:
        return delta_rule_parallel(q, k, v, beta)
    return delta_rule_loop(q, k, v, beta, g)


def decay_attention_parallel(q, k, v, g=None):
    """Closed form of decay_attention: o_t = sum_{s<=t} (q_t * exp(L_t - L_s)) . k_s v_s / sqrt(K)
    with L the running sum of min(g, 0); exponents are <= 0 on the kept (s <= t) entries."""
    t, kd = q.shape[2], q.shape[3]
    q = q / math.sqrt(kd)
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool, device=q.device))
    if g is None:
        scores = (q @ k.transpose(2, 3)).masked_fill(~causal, 0.0)
        return scores @ v
    cum = g.clamp_max(0.0).cumsum(dim=2)  # [B,H,T,Kg]
    diff = cum.unsqueeze(3) - cum.unsqueeze(2)  # [B,H,T(t),T(s),Kg]
    diff = diff.masked_fill(~causal[:, :, None], float("-inf"))
    weights = diff.exp()  # 0 where s > t
    scores = ((q.unsqueeze(3) * k.unsqueeze(2)) * weights).sum(dim=-1)  # [B,H,T,T]
    return scores @ v


def delta_rule_parallel(q, k, v, beta):
    """Closed form of delta_rule without decay (the WY form, one chunk): the state is
    S_t = sum_{j<=t} k_j u_j^T with u_t = b_t (v_t - sum_{j<t} (k_t . k_j) u_j), i.e.
    (I + diag(b) tril(K K^T, -1)) U = diag(b) V, and o_t = sum_{j<=t} (q_t . k_j) u_j / sqrt(K)."""
    t, kd = q.shape[2], q.shape[3]
    q = q / math.sqrt(kd)
    eye = torch.eye(t, dtype=q.dtype, device=q.device)
    system = eye + beta * torch.tril(k @ k.transpose(2, 3), diagonal=-1)
    u = torch.linalg.solve_triangular(system, beta * v, upper=False, unitriangular=True)
    return torch.tril(q @ k.transpose(2, 3)) @ u


def decay_attention_loop(q, k, v, g=None):
    """S_t = diag(exp(min(g_t,0))) S_{t-1} + k_t v_t^T ; o_t = S_t^T q_t / sqrt(K).
    g: None (plain linear attention), [B,H,T,1] (per head) or [B,H,T,K] (per key)."""
    b, h, t, kd = q.shape
    vd = v.shape[3]
    q = q / math.sqrt(kd)
    state = q.new_zeros(b, h, kd, vd)
    outs = []
    for pos in range(t):
        if g is not None:
            decay = g[:, :, pos].clamp_max(0.0).exp()  # [B,H,Kg]
            state = state * decay.unsqueeze(-1)  # rows of S are keys
        state = state + k[:, :, pos].unsqueeze(-1) * v[:, :, pos].unsqueeze(-2)
        outs.append((q[:, :, pos].unsqueeze(-2) @ state))  # [B,H,1,V]
    return torch.cat(outs, dim=2)


def delta_rule_loop(q, k, v, beta, g=None):
    """S_t = exp(g_t)(I - b_t k_t k_t^T) S_{t-1} + b_t k_t v_t^T ; o_t = S_t^T q_t / sqrt(K).
    beta, g: [B,H,T,1]. Sequential order as delta_rule_reference: decay, then delta update."""
    b, h, t, kd = q.shape
    vd = v.shape[3]
    q = q / math.sqrt(kd)
    state = q.new_zeros(b, h, kd, vd)
    outs = []
    for pos in range(t):
        if g is not None:
            state = state * g[:, :, pos : pos + 1].clamp_max(0.0).exp()  # [B,H,1,1]
        k_row = k[:, :, pos : pos + 1]  # [B,H,1,K]
        v_row = v[:, :, pos : pos + 1]  # [B,H,1,V]
        beta_t = beta[:, :, pos : pos + 1]  # [B,H,1,1]
        predicted = k_row @ state  # [B,H,1,V]
        state = state + k_row.transpose(2, 3) @ ((v_row - predicted) * beta_t)
        outs.append(q[:, :, pos : pos + 1] @ state)
    return torch.cat(outs, dim=2)


# --------------------------------------------------------------------------------------
# Mixers, one per .arch program (heads = 4, d_head = d_model / heads, conv = 4, rank = 16)


class SoftmaxRope(nn.Module):
    def __init__(self, store: Params, prefix: str, d: int, heads: int = 4):
        super().__init__()
        self.h = heads
        hk = d  # heads * d_head
        self.wq = store.add(f"{prefix}.q", (d, hk), "uniform_fan_in", True)
        self.wk = store.add(f"{prefix}.k", (d, hk), "uniform_fan_in", True)
        self.wv = store.add(f"{prefix}.v", (d, hk), "uniform_fan_in", True)
        self.wo = store.add(f"{prefix}.out", (hk, d), "uniform_fan_in", True)

    def forward(self, x, loop: bool = False):
        q = rope(split_heads(linear(x, self.wq), self.h))
        k = rope(split_heads(linear(x, self.wk), self.h))
        v = split_heads(linear(x, self.wv), self.h)
        o = (softmax_attention_loop if loop else softmax_attention)(q, k, v)
        return linear(merge_heads(o), self.wo)


class LinearAttention(nn.Module):
    def __init__(self, store: Params, prefix: str, d: int, heads: int = 4):
        super().__init__()
        self.h = heads
        hk = d
        self.wq = store.add(f"{prefix}.q", (d, hk), "uniform_fan_in", True)
        self.wk = store.add(f"{prefix}.k", (d, hk), "uniform_fan_in", True)
        self.wv = store.add(f"{prefix}.v", (d, hk), "uniform_fan_in", True)
        self.norm = store.add(f"{prefix}.norm", (hk // heads,), "const", False, 1.0)
        self.wo = store.add(f"{prefix}.out", (hk, d), "uniform_fan_in", True)

    def forward(self, x, loop: bool = True):
        q = elu1(split_heads(linear(x, self.wq), self.h))
        k = elu1(split_heads(linear(x, self.wk), self.h))
        v = split_heads(linear(x, self.wv), self.h)
        o = decay_attention(q, k, v, None)
        return linear(merge_heads(rms_norm(o, self.norm)), self.wo)


class DeltaNet(nn.Module):
    # Parameters are created in archlab's order (graph node order: the output gate's linear
    # comes before the rmsnorm of the return line), so exact.py can map them by position.
    def __init__(self, store: Params, prefix: str, d: int, heads: int = 4, conv: int = 4):
        super().__init__()
        self.h = heads
        hk = d
        add = store.add
        self.wq = add(f"{prefix}.q", (d, hk), "uniform_fan_in", True)
        self.cq = add(f"{prefix}.q_conv", (conv, hk), "uniform_fan_in", True)
        self.wk = add(f"{prefix}.k", (d, hk), "uniform_fan_in", True)
        self.ck = add(f"{prefix}.k_conv", (conv, hk), "uniform_fan_in", True)
        self.wv = add(f"{prefix}.v", (d, hk), "uniform_fan_in", True)
        self.cv = add(f"{prefix}.v_conv", (conv, hk), "uniform_fan_in", True)
        self.wbeta = add(f"{prefix}.beta", (d, heads), "uniform_fan_in", True)
        self.wg = add(f"{prefix}.g", (d, hk), "uniform_fan_in", True)
        self.norm = add(f"{prefix}.norm", (hk // heads,), "const", False, 1.0)
        self.wo = add(f"{prefix}.out", (hk, d), "uniform_fan_in", True)

    def forward(self, x, loop: bool = True):
        h = self.h
        q = l2_norm(split_heads(F.silu(short_conv(linear(x, self.wq), self.cq)), h))
        k = l2_norm(split_heads(F.silu(short_conv(linear(x, self.wk), self.ck)), h))
        v = split_heads(F.silu(short_conv(linear(x, self.wv), self.cv)), h)
        beta = split_heads(torch.sigmoid(linear(x, self.wbeta)), h)  # [B,H,T,1]
        o = delta_rule(q, k, v, beta)
        g = F.silu(linear(x, self.wg))
        return linear(merge_heads(rms_norm(o, self.norm)) * g, self.wo)


class GLA(nn.Module):
    def __init__(self, store: Params, prefix: str, d: int, heads: int = 4, conv: int = 4, rank: int = 16):
        super().__init__()
        self.h = heads
        hk = d
        add = store.add
        self.wq = add(f"{prefix}.q", (d, hk), "uniform_fan_in", True)
        self.cq = add(f"{prefix}.q_conv", (conv, hk), "uniform_fan_in", True)
        self.wk = add(f"{prefix}.k", (d, hk), "uniform_fan_in", True)
        self.ck = add(f"{prefix}.k_conv", (conv, hk), "uniform_fan_in", True)
        self.wv = add(f"{prefix}.v", (d, hk), "uniform_fan_in", True)
        self.cv = add(f"{prefix}.v_conv", (conv, hk), "uniform_fan_in", True)
        self.wg1 = add(f"{prefix}.g_down", (d, rank), "uniform_fan_in", True)
        self.wg2 = add(f"{prefix}.g_up", (rank, hk), "uniform_fan_in", True)
        self.wgate = add(f"{prefix}.gate", (d, hk), "uniform_fan_in", True)
        self.norm = add(f"{prefix}.norm", (hk // heads,), "const", False, 1.0)
        self.wo = add(f"{prefix}.out", (hk, d), "uniform_fan_in", True)

    def forward(self, x, loop: bool = True):
        h = self.h
        q = split_heads(F.silu(short_conv(linear(x, self.wq), self.cq)), h)
        k = split_heads(F.silu(short_conv(linear(x, self.wk), self.ck)), h)
        v = split_heads(F.silu(short_conv(linear(x, self.wv), self.cv)), h)
        g = split_heads(F.logsigmoid(linear(linear(x, self.wg1), self.wg2)), h)
        o = decay_attention(q, k, v, g / 16.0)
        gate = F.silu(linear(x, self.wgate))
        return linear(merge_heads(rms_norm(o, self.norm)) * gate, self.wo)


MIXER_CLASSES = {
    "softmax_rope": SoftmaxRope,
    "linear_attention": LinearAttention,
    "deltanet": DeltaNet,
    "gla": GLA,
}


# --------------------------------------------------------------------------------------
# Backbone


class LanguageModel(nn.Module):
    """embedding -> n_layers x [x + mixer(RMSNorm(x)); x + down(silu(gate(n)) * up(n))]
    -> RMSNorm -> untied head. No biases."""

    def __init__(self, mixer: str, vocab: int, d_model: int = 64, n_layers: int = 2,
                 d_ff: int | None = None, heads: int = 4, embed_init: str = "normal"):
        super().__init__()
        d = d_model
        d_ff = d_ff or 2 * d
        self.store = Params()
        add = self.store.add
        if embed_init == "normal":
            self.embedding = add("embedding", (vocab, d), "normal", True)
        else:  # the pre-fix archlab init: U(+-1/sqrt(vocab))
            self.embedding = add("embedding", (vocab, d), "uniform_fan_in", True)
        self.blocks = []
        self.mixers = nn.ModuleList()
        for layer in range(n_layers):
            p = f"block{layer}"
            blk = {
                "mixer_norm": add(f"{p}.mixer_norm", (d,), "const", False, 1.0),
            }
            self.mixers.append(MIXER_CLASSES[mixer](self.store, f"{p}.mixer", d, heads=heads))
            blk["mlp_norm"] = add(f"{p}.mlp_norm", (d,), "const", False, 1.0)
            blk["gate"] = add(f"{p}.mlp.gate", (d, d_ff), "uniform_fan_in", True)
            blk["up"] = add(f"{p}.mlp.up", (d, d_ff), "uniform_fan_in", True)
            blk["down"] = add(f"{p}.mlp.down", (d_ff, d), "uniform_fan_in", True)
            self.blocks.append(blk)
        self.final_norm = add("final_norm", (d,), "const", False, 1.0)
        self.head = add("head", (d, vocab), "uniform_fan_in", True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.embedding[tokens]
        for blk, mixer in zip(self.blocks, self.mixers):
            hidden = hidden + mixer(rms_norm(hidden, blk["mixer_norm"]))
            n = rms_norm(hidden, blk["mlp_norm"])
            hidden = hidden + linear(F.silu(linear(n, blk["gate"])) * linear(n, blk["up"]), blk["down"])
        return linear(rms_norm(hidden, self.final_norm), self.head)

    def named_decay_params(self):
        """(name, parameter, decay) in creation order."""
        return [(n, p, self.store.decay[n]) for n, p in self.store.named_parameters()]

    def param_count(self) -> int:
        return sum(p.numel() for p in self.store.parameters())
