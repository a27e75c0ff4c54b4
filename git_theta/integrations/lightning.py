"""A PyTorch Lightning callback: commit the model whenever Lightning saves a checkpoint.

    trainer = L.Trainer(..., callbacks=[GitThetaCheckpoint("model.pt")])

Needs `pip install 'git-theta[lightning]'`.
"""

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package name
    import pytorch_lightning as pl

import git_theta


class GitThetaCheckpoint(pl.Callback):
    """On each Lightning checkpoint save (and, with `every_n_epochs`, at epoch ends), commit the
    LightningModule's state dict at `path` (in the background by default)."""

    def __init__(
        self,
        path: str = "model.pt",
        repo: str = ".",
        message: str = "epoch {epoch} step {step}",
        background: bool = True,
        update_type: str = "auto",
        every_n_epochs: int | None = None,
    ):
        self.path, self.repo, self.message = path, repo, message
        self.background, self.update_type, self.every_n_epochs = background, update_type, every_n_epochs
        self.last = None

    def _commit(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        message = self.message.format(epoch=trainer.current_epoch, step=trainer.global_step)
        self.last = git_theta.save(
            pl_module.state_dict(),
            self.path,
            message,
            repo=self.repo,
            update_type=self.update_type,
            background=self.background,
        )

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self._commit(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._commit(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if self.background and self.last is not None:
            self.last.result()
