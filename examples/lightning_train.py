#!/usr/bin/env python3
"""A small LightningModule trained with PyTorch Lightning, committed by git-theta every epoch.

pip install 'git-theta[lightning]'
python examples/lightning_train.py [--epochs 3]     # inside a git repository
"""

import argparse
import tempfile

import lightning.pytorch as pl
import torch

import git_theta
from git_theta.integrations.lightning import GitThetaCheckpoint


class Regressor(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 8), torch.randn(64, 1))
    with tempfile.TemporaryDirectory() as logs:
        trainer = pl.Trainer(
            max_epochs=args.epochs,
            accelerator="cpu",
            default_root_dir=logs,
            enable_checkpointing=False,
            logger=False,
            enable_progress_bar=False,
            callbacks=[GitThetaCheckpoint("model.pt", every_n_epochs=1)],
        )
        trainer.fit(Regressor(), torch.utils.data.DataLoader(data, batch_size=16))
    for version in git_theta.log("model.pt"):
        print(version.sha[:10], version.message)


if __name__ == "__main__":
    main()
