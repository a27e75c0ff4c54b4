#!/usr/bin/env python3
"""Track a model over a plain PyTorch training loop with git_theta.save (run inside a git repo).

    python examples/train_loop.py [--steps 5] [--path model.pt]

Every step commits the weights in the background while training goes on; afterwards any
version loads straight from git.
"""

import argparse

import torch

import git_theta


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--path", default="model.pt")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 16), torch.randn(64, 1)
    for step in range(args.steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        git_theta.save(model.state_dict(), args.path, f"step {step}: loss {loss.item():.4f}", background=True)
    git_theta.wait_for_saves()
    for version in git_theta.log(args.path):
        print(
            version.sha[:10],
            version.message,
            f"{len(version.modified)} changed, {version.stored_bytes} B stored",
        )
    first = git_theta.load(args.path, f"HEAD~{args.steps - 1}")
    print("first version loaded back:", {k: tuple(v.shape) for k, v in first.items()})


if __name__ == "__main__":
    main()
