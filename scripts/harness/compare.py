"""archlab's benchmark scores against lm-evaluation-harness itself, on the same local files.

archlab scores a saved model (`archlab eval --items`); the harness (PyPI `lm-eval`, pinned in
requirements.txt) runs its own task configs, pointed at the same files, with the PyTorch model
of scripts/parity (pt_model.py) loaded from archlab's `model.safetensors` as its LM. The two
are compared per request (log-likelihood, greedy match, the context/continuation token split)
and per task (acc, acc_norm and their standard errors).

    python3 -m venv ~/.cache/archlab-harness
    ~/.cache/archlab-harness/bin/pip install -r scripts/harness/requirements.txt
    ~/.cache/archlab-harness/bin/python scripts/harness/compare.py \\
        --archlab target/release/archlab --checkpoint CKPT --config CONFIG.yaml

Only the four mixers pt_model implements can be compared (softmax_rope, linear_attention,
deltanet, gla), with untied embeddings. Nothing is downloaded (HF_DATASETS_OFFLINE=1): the
harness reads the files through `datasets`' json and parquet builders.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "parity"))
import pt_model  # noqa: E402

# archlab's layout → (the harness's task yaml, relative to lm_eval/tasks; the split it scores).
HARNESS_TASKS = {
    "piqa": ("piqa/piqa.yaml", "validation"),
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation"),
    "arc_easy": ("arc/arc_easy.yaml", "test"),
    "arc_challenge": ("arc/arc_challenge.yaml", "test"),
    "winogrande": ("winogrande/default.yaml", "validation"),
    "lambada_openai": ("lambada/lambada_openai.yaml", "test"),
    "multiple_choice": (None, "test"),
}


def load_model(checkpoint: Path, card: dict) -> pt_model.LanguageModel:
    """pt_model's LanguageModel with archlab's saved weights. Backbone names are the same on
    both sides; a block's mixer weights (`blockL.mixer.nK.*`) go in graph order, which is
    pt_model's creation order."""
    from safetensors.torch import load_file

    config = card["config"]
    mixer = card["program_name"]
    if mixer not in pt_model.MIXER_CLASSES:
        sys.exit(f"pt_model has no `{mixer}` (it has {sorted(pt_model.MIXER_CLASSES)})")
    if config["model"].get("tie_embeddings"):
        sys.exit("pt_model has an untied head; train the compared model without tie_embeddings")
    model = pt_model.LanguageModel(
        mixer, config["data"]["vocab_size"], config["model"]["d_model"],
        config["model"]["n_layers"], config["model"].get("d_ff"))
    saved = load_file(str(checkpoint / "model.safetensors"))

    def node(name: str) -> int:
        return int(name.split(".mixer.n", 1)[1].split(".", 1)[0])

    mixer_names: dict[str, list[str]] = {}
    for name in saved:
        if ".mixer." in name:
            mixer_names.setdefault(name.split(".mixer.", 1)[0], []).append(name)
    for names in mixer_names.values():
        names.sort(key=lambda n: (node(n), n))
    taken: dict[str, int] = {}
    for key, param, _ in model.named_decay_params():
        name = key.replace("__", ".")
        if ".mixer." in name:
            block = name.split(".mixer.", 1)[0]
            index = taken.get(block, 0)
            taken[block] = index + 1
            source = mixer_names[block][index]
        else:
            source = name
        value = saved[source].to(torch.float64)
        if value.numel() != param.numel():
            sys.exit(f"{source}: {tuple(value.shape)} in archlab, {tuple(param.shape)} in torch")
        param.data = value.reshape(param.shape)
    model.double().eval()
    return model


def make_lm(model, tokenizer_path: Path, seq_len: int, eot: str | None):
    """The harness's TemplateLM over the torch model: its own request split and batching are
    the harness's; only the forward pass is ours."""
    from lm_eval.api.model import TemplateLM
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    candidates = [eot] if eot else ["<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"]
    eot_id = next(t for t in (tokenizer.token_to_id(c) for c in candidates) if t is not None)
    seen: dict[tuple[str, str], tuple[int, int]] = {}

    class ArchlabTorchLM(TemplateLM):
        def __init__(self):
            super().__init__()
            self.split_seen = seen

        @property
        def eot_token_id(self):
            return eot_id

        @property
        def max_length(self):
            return seq_len

        def tok_encode(self, string, add_special_tokens=None, **kwargs):
            return tokenizer.encode(string, add_special_tokens=False).ids

        def _loglikelihood_tokens(self, requests, disable_tqdm=False, **kwargs):
            out = []
            with torch.no_grad():
                for (context, continuation), context_enc, continuation_enc in requests:
                    seen[(context, continuation)] = (len(context_enc), len(continuation_enc))
                    inp = (context_enc + continuation_enc)[-(seq_len + 1):][:-1]
                    logits = model(torch.tensor([inp], dtype=torch.long))[0]
                    logp = F.log_softmax(logits, dim=-1)
                    n = len(continuation_enc)
                    picked = logp[len(inp) - n:]
                    target = torch.tensor(continuation_enc, dtype=torch.long)
                    ll = float(picked.gather(1, target[:, None]).sum())
                    greedy = bool((picked.argmax(-1) == target).all())
                    out.append((ll, greedy))
                    self.cache_hook.add_partial("loglikelihood", (context, continuation),
                                                (ll, greedy))
            return out

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError("not needed by the compared tasks")

        def generate_until(self, requests, disable_tqdm=False):
            raise NotImplementedError("not needed by the compared tasks")

    return ArchlabTorchLM()


def task_yaml(out: Path, name: str, layout: str, path: Path) -> str:
    """A task config of ours that includes the harness's and points it at `path`."""
    import lm_eval

    harness_yaml, split = HARNESS_TASKS[layout]
    builder = "parquet" if path.suffix == ".parquet" else "json"
    config: dict = {
        "task": f"archlab_{name}",
        "dataset_path": builder,
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path.resolve())}},
        "training_split": None,
        "validation_split": split if split == "validation" else None,
        "test_split": split if split == "test" else None,
        "fewshot_split": None,
    }
    if harness_yaml is None:
        config.update({
            "output_type": "multiple_choice",
            "doc_to_text": "{{context}}",
            "doc_to_target": "{{label}}",
            "doc_to_choice": "choices",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                            {"metric": "acc_norm", "aggregation": "mean",
                             "higher_is_better": True}],
        })
    else:
        config["include"] = str(Path(lm_eval.__file__).parent / "tasks" / harness_yaml)
    (out / f"archlab_{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return config["task"]


FIXTURES = HERE.parent.parent / "tests" / "fixtures" / "benchmarks"
FIXTURE_TASKS = [("piqa", "piqa.jsonl"), ("hellaswag", "hellaswag.jsonl"),
                 ("arc_easy", "arc_easy.parquet"), ("arc_challenge", "arc_easy.parquet"),
                 ("winogrande", "winogrande.jsonl"), ("lambada_openai", "lambada_openai.jsonl")]


def with_fixtures(config_path: Path, out: Path) -> Path:
    """The config with the fixture files added to its benchmarks, written under `out`
    (arc_challenge reads the ARC fixture too: the two share a layout)."""
    config = yaml.safe_load(config_path.read_text())
    benchmarks = config.setdefault("benchmarks", [])
    taken = {b.get("name") or b["task"] for b in benchmarks}
    for task, file in FIXTURE_TASKS:
        if task not in taken:
            benchmarks.append({"task": task, "path": str(FIXTURES / file)})
    merged = out / "config_with_fixtures.yaml"
    merged.write_text(yaml.safe_dump(config, sort_keys=False))
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archlab", type=Path, default=Path("target/release/archlab"))
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True,
                        help="the config whose `benchmarks` to score (archlab eval's)")
    parser.add_argument("--with-fixtures", action="store_true",
                        help="also score the six fixture files of tests/fixtures/benchmarks "
                             "(piqa, hellaswag, arc_easy, arc_challenge, winogrande, "
                             "lambada_openai) beside the config's own benchmarks")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest |Δ log-likelihood| per request that passes")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tasks").mkdir(exist_ok=True)

    if args.with_fixtures:
        args.config = with_fixtures(args.config, args.out)
    items_path = args.out / "archlab_items.jsonl"
    run = subprocess.run([str(args.archlab), "eval", "--checkpoint", str(args.checkpoint),
                          "--config", str(args.config), "--items", str(items_path)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"archlab eval failed:\n{run.stderr}")
    archlab_result = json.loads(run.stdout.strip().splitlines()[-1])
    items: dict[tuple[str, int, int], dict] = {}
    for line in items_path.read_text().splitlines():
        item = json.loads(line)
        items[(item["benchmark"], item["doc"], item["request"])] = item

    card = json.loads((args.checkpoint / "model.json").read_text())
    config = yaml.safe_load(args.config.read_text())
    corpus = next((t for t in config["data"]["tasks"] if t["kind"] == "corpus"), None)
    model = load_model(args.checkpoint, card)

    import lm_eval
    from lm_eval.tasks import TaskManager

    rows = []
    failed = False
    for bench in config.get("benchmarks", []):
        name = bench.get("name") or bench["task"]
        tokenizer = Path(bench.get("tokenizer") or corpus["tokenizer"])
        lm = make_lm(model, tokenizer, config["data"]["seq_len"],
                     None if bench.get("tokenizer") else corpus.get("eot"))
        task = task_yaml(args.out / "tasks", name, bench["task"], Path(bench["path"]))
        manager = TaskManager(include_path=str(args.out / "tasks"))
        result = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=manager,
                                         limit=bench.get("limit"), log_samples=True,
                                         bootstrap_iters=1000)
        metrics = result["results"][task]
        samples = result["samples"][task]
        worst, greedy_same, split_same, compared = 0.0, 0, 0, 0
        for sample in samples:
            for index, (ll, greedy) in enumerate(sample["filtered_resps"]):
                ours = items.get((name, sample["doc_id"], index))
                if ours is None:
                    sys.exit(f"{name}: archlab has no doc {sample['doc_id']} request {index}")
                compared += 1
                worst = max(worst, abs(float(ll) - ours["log_likelihood"]))
                greedy_same += bool(greedy) == ours["greedy"]
                split = lm.split_seen.get((ours["context"], ours["continuation"]))
                split_same += split == (ours["context_tokens"], ours["continuation_tokens"])
        ours = archlab_result["benchmarks"][name]
        row = {
            "benchmark": name, "task": bench["task"], "docs": len(samples), "requests": compared,
            "max_abs_dll": worst, "greedy_agree": greedy_same, "split_agree": split_same,
            "archlab_acc": ours["acc"], "harness_acc": metrics.get("acc,none"),
            "archlab_acc_stderr": ours.get("acc_stderr"),
            "harness_acc_stderr": metrics.get("acc_stderr,none"),
            "archlab_acc_norm": ours.get("acc_norm"), "harness_acc_norm": metrics.get("acc_norm,none"),
            "archlab_perplexity": ours.get("perplexity"),
            "harness_perplexity": metrics.get("perplexity,none"),
        }
        same = lambda a, b: (a is None and b is None) or (
            a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9))
        # Perplexity is exp(-mean log-likelihood): per-request agreement to the tolerance
        # bounds its relative difference by the same.
        close = lambda a, b: (a is None and b is None) or (
            a is not None and b is not None and math.isclose(a, b, rel_tol=args.tolerance))
        row["pass"] = (worst <= args.tolerance and greedy_same == compared
                       and split_same == compared and same(row["archlab_acc"], row["harness_acc"])
                       and same(row["archlab_acc_norm"], row["harness_acc_norm"])
                       and same(row["archlab_acc_stderr"], row["harness_acc_stderr"])
                       and close(row["archlab_perplexity"], row["harness_perplexity"]))
        failed |= not row["pass"]
        rows.append(row)

    fmt = lambda v, d=4: "-" if v is None else f"{v:.{d}f}"
    lines = [
        f"# archlab vs lm-evaluation-harness {lm_eval.__version__ if hasattr(lm_eval, '__version__') else ''}".rstrip(),
        "",
        f"Checkpoint `{args.checkpoint}` (`{card['program_name']}`, {card['params']} parameters, "
        f"{card['steps']} steps); config `{args.config}`. Per request: |Δ log-likelihood| "
        f"(tolerance {args.tolerance:g}), greedy match and token split agreement.",
        "",
        "| benchmark | docs | requests | max abs Δll | greedy agree | split agree | acc archlab / harness | acc_norm archlab / harness | acc stderr archlab / harness | perplexity archlab / harness | pass |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['benchmark']} | {r['docs']} | {r['requests']} | {r['max_abs_dll']:.2e} | "
            f"{r['greedy_agree']}/{r['requests']} | {r['split_agree']}/{r['requests']} | "
            f"{fmt(r['archlab_acc'])} / {fmt(r['harness_acc'])} | "
            f"{fmt(r['archlab_acc_norm'])} / {fmt(r['harness_acc_norm'])} | "
            f"{fmt(r['archlab_acc_stderr'])} / {fmt(r['harness_acc_stderr'])} | "
            f"{fmt(r['archlab_perplexity'], 1)} / {fmt(r['harness_perplexity'], 1)} | "
            f"{'yes' if r['pass'] else 'NO'} |")
    (args.out / "harness.md").write_text("\n".join(lines) + "\n")
    (args.out / "harness.json").write_text(json.dumps(rows, indent=2))
    print("\n".join(lines))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
