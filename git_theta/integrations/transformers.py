"""A Hugging Face `transformers.Trainer` callback: commit the model whenever the Trainer saves.

    trainer = Trainer(..., callbacks=[GitThetaCallback("model.safetensors")])

Needs `pip install 'git-theta[transformers]'`.
"""

from transformers import TrainerCallback

import git_theta


class GitThetaCallback(TrainerCallback):
    """On each save, commit the model's state dict at `path` (in the background by default)."""

    def __init__(
        self,
        path: str = "model.safetensors",
        repo: str = ".",
        message: str = "step {step}",
        background: bool = True,
        update_type: str = "auto",
    ):
        self.path, self.repo, self.message = path, repo, message
        self.background, self.update_type = background, update_type
        self.last = None

    def on_save(self, args, state, control, model=None, **kwargs):
        if model is None or not state.is_world_process_zero:
            return
        module = getattr(model, "module", model)  # unwrap DataParallel / DDP
        message = self.message.format(step=state.global_step, epoch=state.epoch)
        self.last = git_theta.save(
            module.state_dict(),
            self.path,
            message,
            repo=self.repo,
            update_type=self.update_type,
            background=self.background,
        )

    def on_train_end(self, args, state, control, **kwargs):
        if self.background and self.last is not None:
            self.last.result()  # the final save is committed before train() returns
