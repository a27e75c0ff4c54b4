"""`lora-<method>`: merge LoRA adapters by their products B @ A, not factor by factor.

Factors are found by name: a parameter whose name contains `lora_A` pairs with the one where
that is `lora_B` (peft's `...lora_A.weight` / `...lora_B.weight`, or `W.lora_A` / `W.lora_B`).
Per model the product P_i = B_i @ A_i is formed, the wrapped method merges the P_i (and the
ancestor's product), and the result is factored back at the adapters' rank by truncated SVD:
B' = U_r S_r, A' = V_r^T (the best rank-r approximation; exact when the merge has rank <= r).
Other parameters are merged by the wrapped method as they are.
"""

import torch

from git_theta.errors import ThetaError
from git_theta_merge_cli.methods.base import Inputs, MergeMethod


def partner(name: str) -> str | None:
    """The lora_B name of a lora_A parameter (None for anything else)."""
    return name.replace("lora_A", "lora_B", 1) if "lora_A" in name else None


class LoraVariant(MergeMethod):
    """Wraps a merge method so LoRA factor pairs are merged as products."""

    def __init__(self, base: MergeMethod):
        self.base = base
        self.name = f"lora-{base.name}"
        self.description = f"{base.name} on LoRA products B @ A, refactored at the adapters' rank"
        self.args = base.args
        self.needs_ancestor = base.needs_ancestor
        self.min_models, self.max_models = base.min_models, base.max_models
        if base.aux_kind:
            raise ThetaError(
                f"lora-{base.name}: aux data is per factor, {base.name} cannot merge products with it"
            )

    def groups(self, names: list[str]) -> list[list[str]]:
        present = set(names)
        out, seen = [], set()
        for n in names:
            if n in seen:
                continue
            b = partner(n)
            if b and b in present:
                out.append([n, b])
                seen.update((n, b))
            elif not ("lora_B" in n and n.replace("lora_B", "lora_A", 1) in present):
                out.append([n])
                seen.add(n)
        return out

    def copies_equal_models(self, args, has_ancestor, has_aux):
        return self.base.copies_equal_models(args, has_ancestor, has_aux)

    def merge(self, inputs: Inputs, args: dict) -> torch.Tensor:
        return self.base.merge(inputs, args)

    def merge_group(self, group: dict[str, Inputs], args: dict) -> dict[str, torch.Tensor]:
        if len(group) == 1:
            return super().merge_group(group, args)
        a_name, b_name = list(group)
        a_in, b_in = group[a_name], group[b_name]
        rank = a_in.models[0].shape[0]
        products = [b @ a for a, b in zip(a_in.models, b_in.models)]
        anc = b_in.ancestor @ a_in.ancestor if a_in.ancestor is not None else None
        merged = self.base.merge(Inputs(a_name, products, anc, None, a_in.generator_seed), args)
        u, s, vh = torch.linalg.svd(merged.double(), full_matrices=False)
        new_b = (u[:, :rank] * s[:rank]).to(merged.dtype)
        new_a = vh[:rank].to(merged.dtype).contiguous()
        return {a_name: new_a, b_name: new_b}
