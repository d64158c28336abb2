"""The reference values pinned in tests/test_bilevel.py for MOML and FORUM, from LibMTL's main branch
(commit 4336804847ea, 2025-05-14), whose bilevel methods are methods of its ``Trainer``
(``bacth_forward_MOML``, ``bacth_forward_FORUM``), run outside this repository:

    fetch github:median-research-group/LibMTL          # the tool library; or a git clone of it
    mkdir -p /tmp/libmtl-main && git --git-dir=DIR archive HEAD LibMTL | tar -x -C /tmp/libmtl-main
    python scripts/libmtl_bilevel_reference.py /tmp/libmtl-main

The trainer's methods are called unbound on a stand-in for the trainer that holds only what they read
(the model, its SGD optimiser, the task weights ``tw`` made by ``Trainer._prepare_tw``, the loss
function, the batches): the toy of tests/test_bilevel.py in float32 with every parameter trainable
(LibMTL differentiates ``model.parameters()``, all of them), 2 and 3 tasks, two steps, the inner batch
the update's and the outer batch the meta batch (as this suite's hook gives them). Prints softmax(α)
(MOML, and its min-norm solution) or λ (FORUM) after each step and the shared layer's weight after
the second. Not a test (it needs LibMTL's source); torch_geometric, which the trainer imports, is
stubbed."""
import sys
from pathlib import Path
import types

import numpy as np
import torch
import torch.nn.functional as F

for name in ("torch_geometric", "torch_geometric.data", "torch_geometric.loader"):
    sys.modules.setdefault(name, types.ModuleType(name))
shim = types.ModuleType("torchvision.models.utils"); shim.load_state_dict_from_url = torch.hub.load_state_dict_from_url
sys.modules.setdefault("torchvision.models.utils", shim)
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "/tmp/libmtl-main")
from LibMTL.trainer import Trainer  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository: the tests' own toy
from tests.test_bilevel import _Toy32 as Toy  # noqa: E402  (float32, every parameter trainable)



def batches(n_tasks, n):
    """n (update, meta) pairs of batches, generator 5 (the tests' ``_toy_batches``, continued)."""
    g = torch.Generator().manual_seed(5)
    make = lambda: (torch.randn(8, 4, generator=g), torch.randn(n_tasks, 8, 1, generator=g))  # noqa: E731
    return [(make(), make()) for _ in range(n)]


def stand_in(n_tasks, weight_args, lr=0.05):
    model = Toy(n_tasks)

    def forward4loss(m, x, y, return_preds=False):
        losses = torch.stack([F.mse_loss(o, t) for o, t in zip(m(x), y)])
        return (losses, None) if return_preds else losses
    t = types.SimpleNamespace(model=model, task_num=n_tasks, task_name=[f"t{k}" for k in range(n_tasks)], device="cpu", multi_input=False,
                              kwargs={"weight_args": weight_args}, forward4loss=forward4loss,
                              meter=types.SimpleNamespace(update=lambda *a, **k: None),
                              optimizer=torch.optim.SGD(model.parameters(), lr=lr))
    Trainer._prepare_tw(t, weight_args["outer_lr"])
    return t


def show_min_norm(method, n_tasks):
    """LibMTL's min-norm solver inside MOML, its solution printed at each step."""
    from LibMTL.weighting.MGDA import MGDA
    solve = MGDA._find_min_norm_element

    def shown(self, grads):
        sol = solve(self, grads)
        print(f"{method} K={n_tasks} min-norm solution {[float(v) for v in sol]}")
        return sol
    MGDA._find_min_norm_element = shown
    return lambda: setattr(MGDA, "_find_min_norm_element", solve)


def run(method, n_tasks):
    restore = show_min_norm(method, n_tasks) if method == "MOML" else (lambda: None)
    if method == "MOML":
        t = stand_in(n_tasks, {"inner_lr": 0.1, "inner_step": 1, "outer_lr": 1e-3})
    else:
        t = stand_in(n_tasks, {"FORUM_phi": 0.1, "inner_step": 5, "inner_lr": 0.1, "outer_lr": 1e-3})
        lam = np.zeros(n_tasks)
    for step, ((x, y), (mx, my)) in enumerate(batches(n_tasks, 2)):
        t._process_data = lambda loader, x=x, y=y: (x, y)            # the update's batch: the inner one
        if method == "MOML":
            Trainer.bacth_forward_MOML(t, x, y, mx, my, None)
            shown = torch.softmax(t.tw.weights.detach(), -1)
        else:
            lam = Trainer.bacth_forward_FORUM(t, x, y, mx, my, lam, epoch=step)
            shown = lam
        print(f"{method} K={n_tasks} step {step}: weights {[float(v) for v in shown]}")
    print(f"{method} K={n_tasks} shared.weight {t.model.shared.weight.detach().tolist()}")
    restore()


if __name__ == "__main__":
    for method in ("MOML", "FORUM"):
        for k in (2, 3):
            run(method, k)
