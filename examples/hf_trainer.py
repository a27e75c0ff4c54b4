#!/usr/bin/env python3
"""A tiny GPT-2 trained with `transformers.Trainer`, committed by git-theta at each save.

    pip install 'git-theta[transformers]'
    python examples/hf_trainer.py [--steps 4]     # inside a git repository; no downloads

Each Trainer save becomes a commit of model.safetensors (in the background); the working
tree gets no checkpoint files from git-theta.
"""

import argparse
import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import git_theta
from git_theta.integrations.transformers import GitThetaCallback


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int, length: int, vocab: int):
        g = torch.Generator().manual_seed(0)
        self.data = torch.randint(0, vocab, (n, length), generator=g)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return {"input_ids": self.data[i], "labels": self.data[i]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    config = GPT2Config(vocab_size=128, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config)
    with tempfile.TemporaryDirectory() as out:  # the Trainer's own files stay out of the repo
        training = TrainingArguments(
            output_dir=out,
            max_steps=args.steps,
            save_steps=1,
            save_strategy="steps",
            per_device_train_batch_size=4,
            report_to=[],
            use_cpu=True,
        )
        trainer = Trainer(
            model=model, args=training, train_dataset=Tokens(32, 16, 128), callbacks=[GitThetaCallback()]
        )
        trainer.train()
    for version in git_theta.log("model.safetensors"):
        print(version.sha[:10], version.message, f"{len(version.modified)} changed")


if __name__ == "__main__":
    main()
