"""Unit checks of the PyTorch side of the parity harness.
Run: python3 -m pytest scripts/parity   (or: python3 scripts/parity/test_parity.py)"""

from __future__ import annotations

import math
import re
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import parity  # noqa: E402
import pt_data  # noqa: E402
import pt_model as pm  # noqa: E402
import pt_train  # noqa: E402

torch.set_num_threads(1)


# ---------------------------------------------------------------- mixers / kernels


def make_mixer(name, d=32, seed=0):
    torch.manual_seed(seed)
    store = pm.Params()
    mixer = pm.MIXER_CLASSES[name](store, "m", d, heads=4)
    # Random (non-default) norm scales so a wrong broadcast would show.
    with torch.no_grad():
        for n, p in store.named_parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    return mixer


def test_mixers_are_causal():
    t, d = 12, 32
    for name in pm.MIXERS:
        mixer = make_mixer(name, d)
        x = torch.randn(2, t, d)
        base = mixer(x)
        assert base.shape == x.shape
        for p in (0, 5, t - 1):
            x2 = x.clone()
            x2[:, p] += torch.randn(2, d)
            out = mixer(x2)
            assert torch.allclose(out[:, :p], base[:, :p], atol=1e-6), (name, p)
            assert not torch.allclose(out[:, p], base[:, p], atol=1e-6), (name, p)


def test_softmax_attention_masked_equals_loop():
    q, k, v = (torch.randn(2, 3, 9, 8) for _ in range(3))
    assert torch.allclose(pm.softmax_attention(q, k, v), pm.softmax_attention_loop(q, k, v), atol=1e-5)


def test_linear_attention_equals_masked_product():
    b, h, t, kd, vd = 2, 3, 10, 8, 5
    q, k, v = torch.randn(b, h, t, kd), torch.randn(b, h, t, kd), torch.randn(b, h, t, vd)
    scores = (q @ k.transpose(2, 3)) / math.sqrt(kd) * torch.tril(torch.ones(t, t))
    assert torch.allclose(pm.decay_attention(q, k, v), scores @ v, atol=1e-5)


def test_decay_attention_per_key_and_per_head_closed_form():
    b, h, t, kd, vd = 2, 2, 7, 4, 3
    q, k, v = torch.randn(b, h, t, kd), torch.randn(b, h, t, kd), torch.randn(b, h, t, vd)
    for gk in (kd, 1):
        g = -torch.rand(b, h, t, gk) * 2
        g[..., 0, :] = 0.7  # positive: must be clamped to 0
        gc = g.clamp_max(0).cumsum(2)  # G_t
        expect = torch.zeros(b, h, t, vd)
        for i in range(t):
            for j in range(i + 1):
                w = torch.exp(gc[:, :, i] - gc[:, :, j])  # [b,h,gk]
                a = (q[:, :, i] * k[:, :, j] * w).sum(-1) / math.sqrt(kd)
                expect[:, :, i] += a[..., None] * v[:, :, j]
        assert torch.allclose(pm.decay_attention(q, k, v, g), expect, atol=1e-5), gk


def test_delta_rule_matches_matrix_recurrence():
    b, h, t, kd, vd = 1, 2, 6, 4, 3
    q = torch.randn(b, h, t, kd)
    k = pm.l2_norm(torch.randn(b, h, t, kd))
    v = torch.randn(b, h, t, vd)
    beta = torch.rand(b, h, t, 1)
    g = -torch.rand(b, h, t, 1)
    for gate in (None, g):
        s = torch.zeros(b, h, kd, vd)
        outs = []
        eye = torch.eye(kd)
        for i in range(t):
            kk = k[:, :, i][..., :, None]  # [b,h,K,1]
            bt = beta[:, :, i][..., None]  # [b,h,1,1]
            decay = 1.0 if gate is None else torch.exp(gate[:, :, i])[..., None]
            s = decay * ((eye - bt * kk @ kk.transpose(-1, -2)) @ s) + bt * kk @ v[:, :, i][..., None, :]
            outs.append((s.transpose(-1, -2) @ q[:, :, i][..., None]).squeeze(-1) / math.sqrt(kd))
        expect = torch.stack(outs, 2)
        assert torch.allclose(pm.delta_rule(q, k, v, beta, gate), expect, atol=1e-5)


def test_parallel_kernels_equal_loops_values_and_gradients():
    """The GPU path (set_kernels("parallel")) computes the loops' recurrences exactly."""
    torch.manual_seed(3)
    b, h, t, kd, vd = 2, 3, 11, 4, 5
    q, k, v = (torch.randn(b, h, t, n, dtype=torch.float64, requires_grad=True) for n in (kd, kd, vd))
    beta = torch.rand(b, h, t, 1, dtype=torch.float64, requires_grad=True)
    cases = [
        ("linear", [q, k, v], lambda: pm.decay_attention_loop(q, k, v),
         lambda: pm.decay_attention_parallel(q, k, v)),
        ("delta", [q, k, v, beta], lambda: pm.delta_rule_loop(q, pm.l2_norm(k), v, beta),
         lambda: pm.delta_rule_parallel(q, pm.l2_norm(k), v, beta)),
    ]
    for gk in (kd, 1):
        g = (torch.rand(b, h, t, gk, dtype=torch.float64) * -3 + 0.5).requires_grad_()  # some > 0
        cases.append((f"decay/{gk}", [q, k, v, g], lambda g=g: pm.decay_attention_loop(q, k, v, g),
                      lambda g=g: pm.decay_attention_parallel(q, k, v, g)))
    for name, inputs, loop, parallel in cases:
        want, got = loop(), parallel()
        assert torch.allclose(got, want, atol=1e-10), name
        w = torch.randn_like(want)
        grads_want = torch.autograd.grad((want * w).sum(), inputs)
        grads_got = torch.autograd.grad((got * w).sum(), inputs)
        for gw, gg in zip(grads_want, grads_got):
            assert torch.allclose(gg, gw, atol=1e-9), name
    # The dispatcher follows set_kernels, and delta with a decay keeps the loop.
    try:
        pm.set_kernels("parallel")
        assert torch.equal(pm.decay_attention(q, k, v), pm.decay_attention_parallel(q, k, v))
    finally:
        pm.set_kernels("loop")


def test_delta_rule_recalls_orthonormal_keys():
    kd = 8
    keys = torch.linalg.qr(torch.randn(kd, kd))[0].T[:5]  # 5 orthonormal rows
    v = torch.randn(5, 3)
    q = keys * math.sqrt(kd)
    out = pm.delta_rule(q[None, None], keys[None, None], v[None, None], torch.ones(1, 1, 5, 1))
    # Position i has written keys 0..i, so querying key i returns v_i exactly.
    assert torch.allclose(out[0, 0], v, atol=1e-5)


def test_short_conv_matches_conv1d():
    b, t, d, w = 2, 9, 6, 4
    x, weight = torch.randn(b, t, d), torch.randn(w, d)  # stored [width, D]
    # out[t] = sum_i weight[i] * x[t - i]  ==  conv1d with the taps reversed in time.
    ref = F.conv1d(F.pad(x.transpose(1, 2), (w - 1, 0)), weight.T.flip(-1)[:, None, :], groups=d)
    assert torch.allclose(pm.short_conv(x, weight), ref.transpose(1, 2), atol=1e-5)
    # Lag 0 uses weight row 0.
    one = torch.zeros(1, 3, d)
    one[0, 0] = 1
    out = pm.short_conv(one, weight)
    assert torch.allclose(out[0, 0], weight[0]) and torch.allclose(out[0, 1], weight[1])


def test_rope_pairs_and_relative_positions():
    k = 8
    x = torch.randn(1, 1, 6, k)
    r = pm.rope(x)
    assert torch.allclose(r[0, 0, 0], x[0, 0, 0])  # position 0 untouched
    assert torch.allclose(r.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    # Position 1, pair (0, k/2) rotates by angle 1 rad (i = 0).
    c, s = math.cos(1.0), math.sin(1.0)
    assert torch.allclose(r[0, 0, 1, 0], x[0, 0, 1, 0] * c - x[0, 0, 1, k // 2] * s, atol=1e-6)
    assert torch.allclose(r[0, 0, 1, k // 2], x[0, 0, 1, k // 2] * c + x[0, 0, 1, 0] * s, atol=1e-6)
    # Pair i at position p uses angle p * 10000^(-2i/k).
    i, p = 2, 3
    ang = p * 10000 ** (-2 * i / k)
    assert torch.allclose(r[0, 0, p, i], x[0, 0, p, i] * math.cos(ang) - x[0, 0, p, i + k // 2] * math.sin(ang), atol=1e-6)
    # Scores depend only on the offset.
    q1, k1 = torch.randn(k), torch.randn(k)
    seq_q, seq_k = q1.expand(1, 1, 6, k), k1.expand(1, 1, 6, k)
    rq, rk = pm.rope(seq_q.contiguous()), pm.rope(seq_k.contiguous())
    assert torch.allclose(rq[0, 0, 4] @ rk[0, 0, 2], rq[0, 0, 3] @ rk[0, 0, 1], atol=1e-5)


def test_norms_eps_placement():
    x = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(pm.rms_norm(x, None), x / math.sqrt(12.5 + 1e-6))
    assert torch.allclose(pm.l2_norm(x), x / math.sqrt(25 + 1e-6))
    assert torch.allclose(pm.elu1(torch.tensor([-1.0, 2.0])), torch.tensor([math.exp(-1), 3.0]))


def test_param_counts_and_init():
    # Counts as archspec's ModelShape for d_model 64, 2 layers, vocab 256, d_ff 128.
    base = 2 * 256 * 64 + 64 + 2 * (2 * 64 + 3 * 64 * 128)
    mixer = {
        "softmax_rope": 4 * 64 * 64,
        "linear_attention": 4 * 64 * 64 + 16,
        "deltanet": 5 * 64 * 64 + 3 * 4 * 64 + 64 * 4 + 16,
        "gla": 5 * 64 * 64 + 3 * 4 * 64 + 64 * 16 + 16 * 64 + 16,
    }
    for name, count in mixer.items():
        model = pm.LanguageModel(name, 256)
        assert model.param_count() == base + 2 * count, name
        named = model.named_decay_params()
        for n, p, decay in named:
            if p.dim() == 1:
                assert not decay and torch.all(p == 1.0), n  # norm scales
            else:
                assert decay, n
                if n != "embedding":
                    bound = 1 / math.sqrt(p.shape[0])
                    assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound, n
        emb = model.embedding
        assert abs(float(emb.detach().std()) - 1.0) < 0.05 and abs(float(emb.detach().mean())) < 0.05


# ---------------------------------------------------------------- data


def test_mqar_invariants():
    gen = torch.Generator().manual_seed(0)
    for vocab, t, pairs in ((64, 32, 4), (256, 32, 8), (256, 64, 8)):
        x, y, m = pt_data.mqar_batch(gen, 200, vocab, t, pairs)
        half, ctx = vocab // 2, 2 * pairs
        assert x.shape == (200, t) and x.min() >= 0 and x.max() < vocab
        for b in range(200):
            keys, vals = x[b, 0:ctx:2], x[b, 1:ctx:2]
            assert len(set(keys.tolist())) == pairs and len(set(vals.tolist())) == pairs
            assert keys.min() >= 1 and keys.max() <= half - 1
            assert vals.min() >= half and vals.max() <= vocab - 1
            q_pos = m[b].nonzero().flatten()
            assert len(q_pos) == pairs
            assert all(p >= ctx and (p - ctx) % 2 == 0 for p in q_pos.tolist())
            assert sorted(x[b, q_pos].tolist()) == sorted(keys.tolist())  # every key queried once
            lookup = dict(zip(keys.tolist(), vals.tolist()))
            for p in q_pos.tolist():
                assert y[b, p].item() == lookup[x[b, p].item()]
        # Non-query positions after the context are uniform random tokens, not 0.
        after = torch.ones_like(m, dtype=torch.bool)
        after[:, :ctx] = False
        filler = x[after & (m == 0)]
        assert (filler == 0).float().mean() < 3.0 / vocab
        assert len(set(filler.tolist())) > 0.9 * vocab


def test_mqar_gap_distribution_is_power_law():
    # T 64, 4 pairs: space = 28 slots; with a = 0.01 the first slots dominate.
    gen = torch.Generator().manual_seed(1)
    x, y, m = pt_data.mqar_batch(gen, 2000, 256, 64, 4)
    slots = ((m.nonzero()[:, 1] - 8) // 2)
    counts = torch.bincount(slots, minlength=28).double()
    assert counts[0] > counts[1] > counts[5] > counts[20]
    # First-draw probability of slot 0 is 1 / H where H = sum g^(a-1).
    p = 0.01 * torch.arange(1, 29, dtype=torch.float64) ** (0.01 - 1)
    p0 = float(p[0] / p.sum())
    first_share = counts[0] / 2000  # slot 0 chosen at all among 4 draws: >= p0
    assert first_share >= p0


def test_streams_deterministic_and_disjoint():
    s = {"task": "mqar", "vocab": 64, "pairs": 4, "seq_len": 32}
    a = pt_data.Stream(s, "train", 0).batch(8)[0]
    b = pt_data.Stream(s, "train", 0).batch(8)[0]
    c = pt_data.Stream(s, "val", 0).batch(8)[0]
    d = pt_data.Stream(s, "train", 1).batch(8)[0]
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, d)


def test_text_split_and_windows(tmp_path=None):
    import tempfile
    d = Path(tmp_path or tempfile.mkdtemp())
    f1, f2 = d / "a.txt", d / "b.txt"
    f1.write_bytes(bytes(range(256)) * 3)
    f2.write_bytes(b"xyz" * 100)
    data = pt_data.read_text([f1, f2])
    n = len(data)
    assert pt_data.split_bytes(data, "train") == data[: n * 90 // 100]
    assert pt_data.split_bytes(data, "val") == data[n * 90 // 100 : n * 95 // 100]
    assert pt_data.split_bytes(data, "test") == data[n * 95 // 100 :]
    s = {"task": "text", "vocab": 256, "seq_len": 16}
    x, y, m = pt_data.Stream(s, "train", 0, [f1, f2]).batch(4)
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.all(m == 1)


# ---------------------------------------------------------------- optimisation


def test_schedule_matches_rust_formula():
    lr = lambda step: pt_train.learning_rate(1e-3, step, 100, 10, 0.1)  # noqa: E731
    assert math.isclose(lr(1), 1e-4)
    assert math.isclose(lr(5), 5e-4)
    assert math.isclose(lr(10), 1e-3)
    # step 11: progress 1/90; min + (base-min)*0.5*(1+cos(pi/90))
    assert math.isclose(lr(11), 1e-4 + 9e-4 * 0.5 * (1 + math.cos(math.pi / 90)))
    assert math.isclose(lr(55), 1e-4 + 9e-4 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert math.isclose(lr(100), 1e-4)
    # No warmup: step 1 is already decaying.
    assert math.isclose(pt_train.learning_rate(1e-3, 1, 100, 0, 0.1),
                        1e-4 + 9e-4 * 0.5 * (1 + math.cos(math.pi / 100)))
    # Warmup longer than training is capped at total.
    assert math.isclose(pt_train.learning_rate(1e-3, 5, 10, 50, 0.1), 5e-4)


def test_adamw_matches_torch_adamw():
    torch.manual_seed(0)
    w0, s0 = torch.randn(5, 4), torch.randn(4)
    w, s = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(s0.clone())
    w2, s2 = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(s0.clone())
    ours = pt_train.AdamW([("w", w, True), ("s", s, False)], 0.9, 0.98, 1e-8, 0.1)
    ref = torch.optim.AdamW([{"params": [w2], "weight_decay": 0.1},
                             {"params": [s2], "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.98), eps=1e-8)
    for step in range(1, 6):
        gw, gs = torch.randn(5, 4), torch.randn(4)
        w.grad, s.grad, w2.grad, s2.grad = gw, gs, gw.clone(), gs.clone()
        ours.step(step, 1e-2, 1.0)
        ref.step()
    assert torch.allclose(w, w2, atol=1e-6) and torch.allclose(s, s2, atol=1e-6)


def test_grad_clip_factor():
    p = torch.nn.Parameter(torch.zeros(2))
    q = torch.nn.Parameter(torch.zeros(1))
    p.grad, q.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    clip, norm = pt_train.clip_factor([p, q], 1.0)
    assert math.isclose(norm, 5.0) and math.isclose(clip, 0.2)
    assert pt_train.clip_factor([p, q], 10.0)[0] == 1.0
    assert pt_train.clip_factor([p, q], 0.0)[0] == 1.0


def test_masked_ce():
    logits = torch.randn(2, 3, 5)
    y = torch.randint(0, 5, (2, 3))
    m = torch.tensor([[1.0, 0, 1], [0, 0, 1]])
    full = F.cross_entropy(logits.reshape(-1, 5), y.reshape(-1), reduction="none").reshape(2, 3)
    assert torch.allclose(pt_train.masked_ce(logits, y, m), (full * m).sum() / 3)


def test_tiny_training_reduces_loss():
    s = {"task": "mqar", "vocab": 32, "pairs": 2, "seq_len": 16}
    cfg = parity.cell_config(parity.parse_args(["--quick", "--steps", "30"]), "a", 0)
    cfg.update(batch_size=8, eval_batches=1, threads=1, d_model=32)
    res = pt_train.run("gla", s, 0, cfg)
    assert res["status"] == "ok" and res["val_loss"] < math.log(32) + 0.5


# ---------------------------------------------------------------- archlab config


def test_archlab_config_uses_known_fields():
    src = (parity.REPO / "trainer" / "src" / "config.rs").read_text()
    fields = set(re.findall(r"pub (\w+):", src)) | {"kind", "num_kv_pairs", "paths", "power_a"}
    args = parity.parse_args(["--lr-sweep", "1e-3", "3e-3"])
    for name, setting in parity.SETTINGS.items():
        conf = parity.archlab_config(parity.cell_config(args, name, 0), setting, Path("/x"))

        def walk(obj):
            if isinstance(obj, dict):
                for k, v in obj.items():
                    assert k in fields, k
                    walk(v)
            elif isinstance(obj, list):
                for v in obj:
                    walk(v)

        walk(conf)
        assert conf["optim"]["lr_sweep"] == [1e-3, 3e-3]


# ---------------------------------------------------------------- exact check against archlab


def _archlab_binary():
    import exact

    return exact.DEFAULT_BINARY if exact.DEFAULT_BINARY.exists() else None


def _skip(reason):
    try:
        import pytest
    except ImportError:  # run as a script: report as passed-with-skip
        print(f"skip: {reason}")
        return True
    pytest.skip(reason)


def test_small_rng_matches_rand_reference():
    import archlab_stream

    # rand 0.9.5 src/rngs/xoshiro256plusplus.rs, test stable_seed_from_u64_and_from_seed.
    rng = archlab_stream.SmallRng(0)
    assert [rng.next_u64() for _ in range(4)] == [
        5987356902031041503, 7051070477665621255, 6633766593972829180, 211316841551650330]


def test_exact_first_step_matches_archlab():
    """archlab's dumped first step (params, batch, loss, logits, grads) against the torch
    mirror, one small config (MQAR V64 4 pairs T32, d_model 32, 2 layers, batch 2) per mixer."""
    binary = _archlab_binary()
    if binary is None and _skip("target/release/archlab not built"):
        return
    import exact

    for mixer in pm.MIXERS:
        r = exact.check(mixer, "a", binary, seed=0, f64=False)
        a = r["f32"]
        assert a["d_loss"] <= exact.LOSS_TOL, (mixer, a["d_loss"])
        assert a["d_logit"] <= exact.LOGIT_TOL, (mixer, a["d_logit"])
        assert a["grad_max_rel"] <= exact.GRAD_REL_TOL, (mixer, a["worst"], a["grad_max_rel"])


def test_exact_replay_short_training():
    """A few AdamW steps on both sides from the same init on the same batches."""
    binary = _archlab_binary()
    if binary is None and _skip("target/release/archlab not built"):
        return
    import exact

    for mixer in pm.MIXERS:
        r = exact.replay(mixer, "a", steps=8, batch=4, binary=binary, eval_batches=2, d_model=32)
        assert r["first_step_over_1e-3"] is None, (mixer, r["train_loss"])
        assert abs(r["val_loss_archlab"] - r["val_loss_torch"]) <= 1e-4, mixer


# ---------------------------------------------------------------- same distributions
#
# The exact checks load archlab's initial weights into torch and replay archlab's batches,
# so a difference in how either side *draws* its weights or its data would pass them and
# show only as noise in independent runs. These compare the draws themselves.


def _ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b|."""
    a, b = a.double().flatten().sort().values, b.double().flatten().sort().values
    grid = torch.cat([a, b])
    fa = torch.searchsorted(a, grid, right=True).double() / a.numel()
    fb = torch.searchsorted(b, grid, right=True).double() / b.numel()
    return float((fa - fb).abs().max())


def _ks_critical(n: int, m: int, c_alpha: float = 1.949) -> float:
    """Critical D at alpha = 0.001 (c(alpha) = sqrt(-ln(alpha / 2) / 2))."""
    return c_alpha * math.sqrt((n + m) / (n * m))


def _chi2_homogeneity_p(counts_a: torch.Tensor, counts_b: torch.Tensor) -> float:
    """p-value of a chi-square test that two histograms come from one distribution."""
    a, b = counts_a.double(), counts_b.double()
    keep = (a + b) > 0
    a, b = a[keep], b[keep]
    na, nb = a.sum(), b.sum()
    pooled = (a + b) / (na + nb)
    ea, eb = pooled * na, pooled * nb
    stat = ((a - ea) ** 2 / ea).sum() + ((b - eb) ** 2 / eb).sum()
    dof = a.numel() - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64), stat / 2))


def test_archlab_initial_weights_are_drawn_like_torch():
    """Every tensor of archlab's initial model (dumped, two seeds pooled) against the same
    tensor of pt_model's init: KS at alpha = 0.001, norms exactly 1. Would fail for the old
    U(+-1/sqrt(vocab)) embedding, a fan-out bound, or a conv initialised like a linear layer."""
    binary = _archlab_binary()
    if binary is None and _skip("target/release/archlab not built"):
        return
    import tempfile

    import exact

    c = exact.CONFIGS["c"]
    for mixer in pm.MIXERS:
        program = exact.REPO / "archspec" / "library" / f"{mixer}.arch"
        drawn: dict[str, list[torch.Tensor]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for seed in (0, 1):
                conf = exact.archlab_config(c, seed, None, None)
                d = exact.dump(binary, program, conf, Path(tmp), f"{mixer}_{seed}")
                for p in d["params"]:
                    drawn.setdefault(p["name"], []).append(torch.tensor(p["values"]))
        torch.manual_seed(0)
        model = pm.LanguageModel(mixer, c["vocab"], d_model=c["d_model"], n_layers=c["n_layers"])
        named = model.named_decay_params()
        assert len(named) == len(drawn), mixer
        for (key, p, _decay), (name, values) in zip(named, drawn.items()):
            ours, theirs = torch.cat(values), p.detach().flatten()
            if p.dim() == 1:
                assert torch.all(ours == 1.0) and torch.all(theirs == 1.0), (mixer, name)
                continue
            d_stat = _ks_statistic(ours, theirs)
            assert d_stat < _ks_critical(ours.numel(), theirs.numel()), (mixer, name, key, d_stat)


def test_archlab_mqar_draws_like_zoology():
    """archlab's MQAR (archlab_stream, the port checked against archlab's dumped batch)
    against pt_data's Zoology generator, V256 / 8 pairs / T64: the same distribution of
    keys, values, query slots and filler tokens (chi-square homogeneity, each p > 0.001)."""
    import archlab_stream

    vocab, seq_len, pairs, n = 256, 64, 8, 1500
    context, slots = 2 * pairs, (seq_len - 2 * pairs) // 2
    stream = archlab_stream.Stream({"kind": "mqar", "num_kv_pairs": pairs}, vocab, seq_len,
                                   "train", 7)
    xa, _, ma = stream.batch_of(n)
    xa = torch.tensor(xa).view(n, seq_len)
    ma = torch.tensor(ma).view(n, seq_len)
    xb, _, mb = pt_data.mqar_batch(torch.Generator().manual_seed(7), n, vocab, seq_len, pairs)

    def histograms(x, m):
        q = m > 0
        assert int(q.sum(1).min()) == pairs and int(q.sum(1).max()) == pairs
        keys, values = x[:, 0:context:2].flatten(), x[:, 1:context:2].flatten()
        positions = q.nonzero()[:, 1]
        filler = x[:, context:][~q[:, context:]]
        return {
            "keys": torch.bincount(keys, minlength=vocab),
            "values": torch.bincount(values, minlength=vocab),
            "query slots": torch.bincount((positions - context) // 2, minlength=slots),
            "filler": torch.bincount(filler, minlength=vocab),
        }

    ha, hb = histograms(xa, ma), histograms(xb, mb)
    for what in ha:
        p = _chi2_homogeneity_p(ha[what], hb[what])
        assert p > 0.001, (what, p)


def test_distribution_checks_can_fail():
    """The two tests above reject what they must: the old embedding bound, and a generator
    whose query slots are uniform instead of Zoology's power law."""
    emb_old = torch.empty(16384).uniform_(-1 / 16, 1 / 16)
    assert _ks_statistic(emb_old, torch.randn(16384)) > _ks_critical(16384, 16384)
    gen = torch.Generator().manual_seed(3)
    zoology = torch.bincount(torch.multinomial(
        0.01 * torch.arange(1, 25, dtype=torch.float64) ** -0.99, 12000, replacement=True,
        generator=gen), minlength=24)
    uniform = torch.bincount(torch.randint(0, 24, (12000,), generator=gen), minlength=24)
    assert _chi2_homogeneity_p(zoology, uniform) < 1e-6
    assert _chi2_homogeneity_p(uniform, torch.bincount(
        torch.randint(0, 24, (12000,), generator=gen), minlength=24)) > 1e-3


if __name__ == "__main__":
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print(f"ok   {name}")
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL {name}: {e!r}")
    sys.exit(1 if failed else 0)
