"""The reference values pinned in tests/test_bilevel.py for Auto-Lambda, from its authors' code
(lorenmt/auto-lambda, commit bdba636, ``auto_lambda.py``), run outside this repository:

    fetch github:lorenmt/auto-lambda                     # the tool library; or a git clone of it
    mkdir -p /tmp/autol && git --git-dir=DIR archive HEAD auto_lambda.py utils.py | tar -x -C /tmp/autol
    python scripts/autolambda_reference.py /tmp/autol

Drives the authors' ``AutoLambda`` as their ``trainer_dense.py`` does (each step: ``unrolled_backward``
at the optimiser's lr, a step of the λ's Adam at 1e-4, then the network's step on Σ λ_k L_k), on the
float32 toy of tests/test_bilevel.py with every parameter trainable, 2 and 3 tasks, two steps, every
task primary, the network's optimiser Adam (lr 0.05, weight decay 1e-3: this suite's kind; its
param group has no momentum, so the virtual step has none). Prints λ's gradient (the
hypergradient) and λ after each step and the shared layer's weight after the second. Not a test (it needs the authors' source)."""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "/tmp/autol")
from auto_lambda import AutoLambda  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository: the tests' own toy
from tests.test_bilevel import _Toy32 as Toy  # noqa: E402  (float32, every parameter trainable)



class MSELambda(AutoLambda):
    def model_fit(self, pred, targets):                  # the authors' hook for the task losses
        return [F.mse_loss(pred[i], targets[t]) for i, t in enumerate(self.train_tasks)]


def run(n_tasks, lr=0.05, weight_decay=1e-3):
    model = Toy(n_tasks)
    tasks = {f"t{k}": None for k in range(n_tasks)}
    autol = MSELambda(model, "cpu", tasks, list(tasks), weight_init=0.1)
    meta_optimizer = torch.optim.Adam([autol.meta_weights], lr=1e-4)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(5)
    for step in range(2):
        x, y = torch.randn(8, 4, generator=g), torch.randn(n_tasks, 8, 1, generator=g)
        vx, vy = torch.randn(8, 4, generator=g), torch.randn(n_tasks, 8, 1, generator=g)
        y, vy = dict(zip(tasks, y)), dict(zip(tasks, vy))
        meta_optimizer.zero_grad()
        autol.unrolled_backward(x, y, vx, vy, lr, optimizer)
        print(f"Auto-Lambda K={n_tasks} step {step}: hypergradient {autol.meta_weights.grad.tolist()}")
        meta_optimizer.step()
        optimizer.zero_grad()
        losses = autol.model_fit(model(x), y)
        sum(w * losses[i] for i, w in enumerate(autol.meta_weights)).backward()
        optimizer.step()
        print(f"Auto-Lambda K={n_tasks} step {step}: lambdas {autol.meta_weights.detach().tolist()}")
    print(f"Auto-Lambda K={n_tasks} shared.weight {model.shared.weight.detach().tolist()}")


if __name__ == "__main__":
    for k in (2, 3):
        run(k)
