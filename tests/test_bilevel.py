"""The bilevel hook (weighting/bilevel.py) and the weightings that use it: each meta step against its
quantity computed independently (autograd through the look-ahead), on every architecture, resumed."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from benchmark.training.loop import _draws, make_optimizer, train_epoch
from benchmark.training.losses import make_loss
from benchmark.training.weighting.bilevel import LookAhead
from benchmark.training.weighting.catalog import WEIGHTINGS
from benchmark.training.weighting.registry import build_weighting
from data import DATASETS
from data.base import Split
from models.registry import MODELS, build_model

BILEVEL = [name for name, info in WEIGHTINGS.items() if info.kind == "bilevel"]


class Toy(nn.Module):
    """A shared linear layer (trainable) and two fixed linear heads: the losses are quadratic in the
    trainable parameters, so the meta step's central difference is exact up to rounding."""

    def __init__(self, n_tasks: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.shared = nn.Linear(4, 3).double()
        self.heads = nn.ModuleList([nn.Linear(3, 1).double() for _ in range(n_tasks)])
        self.heads.requires_grad_(False)

    def forward(self, x):
        rep = self.shared(x)
        return [h(rep) for h in self.heads]


def _toy_batches(n_tasks: int = 2):
    g = torch.Generator().manual_seed(5)
    make = lambda: {"image": torch.randn(8, 4, generator=g, dtype=torch.float64),  # noqa: E731
                    "y": torch.randn(n_tasks, 8, 1, generator=g, dtype=torch.float64)}
    return make(), make()


def _toy_losses(model, batch):
    return torch.stack([F.mse_loss(o, y) for o, y in zip(model(batch["image"]), batch["y"])])


def _look(net, train, meta, lr=0.05, wd=1e-3):
    return LookAhead(net, _toy_losses(net, train), _toy_losses, train, meta, lr, wd)


def test_autolambda_meta_step_is_the_hypergradient_through_the_look_ahead():
    """λ's gradient equals d/dλ Σ_k L_k(meta; θ − α(∇θ Σ λ L(train) + wd θ)), computed by autograd through
    the virtual step (the authors' finite difference is exact on a quadratic loss), and its Adam's first
    step moves each λ by its lr against that gradient's sign."""
    net, (train, meta) = Toy(), _toy_batches()
    w = build_weighting("autolambda", 2)
    lam0 = w.lambdas.detach().clone()
    lr, wd = 0.05, 1e-3

    lam = lam0.double().requires_grad_(True)
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    theta = {n: p for n, p in net.named_parameters() if p.requires_grad}
    grads = torch.autograd.grad((lam * _toy_losses(net, train)).sum(), list(theta.values()), create_graph=True)
    ahead = {n: theta[n] - lr * (g + wd * theta[n]) for n, g in zip(names, grads)}
    meta_loss = _toy_losses(lambda x: functional_call(net, ahead, (x,)), meta).sum()
    exact = torch.autograd.grad(meta_loss, lam)[0]

    w.meta_step(_look(net, train, meta, lr, wd))
    torch.testing.assert_close(w.lambdas.grad.double(), exact, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(w.lambdas.detach(), lam0 - 1e-4 * torch.sign(exact).float(), rtol=0, atol=1e-9)


def test_the_update_after_a_meta_step_is_the_weighted_sum_with_the_new_weights():
    net, (train, meta) = Toy(), _toy_batches()
    w = build_weighting("autolambda", 2)
    look = _look(net, train, meta)
    w.meta_step(look)
    weights = w.step(look.losses, [], [])            # the loop's update: the same graph, kept by the meta step
    got = net.shared.weight.grad.clone()
    net.zero_grad()
    (w.lambdas.detach().double() * _toy_losses(net, train)).sum().backward()
    torch.testing.assert_close(got, net.shared.weight.grad, rtol=0, atol=0)
    assert torch.equal(weights, w.lambdas.detach())


def test_moml_hypergradients_are_the_meta_losses_gradients_through_the_look_ahead_and_combine_by_min_norm():
    """Row k of MOML's H is d/dα F_k(θ − η softmax(α) g_f) with the inner gradients g_f held fixed (autograd
    through the look-ahead); α's gradient is the min-norm point of the normalised rows (2 tasks: Sener &
    Koltun's closed form), and α's Adam moves each entry by its lr against it."""
    net, (train, meta) = Toy(), _toy_batches()
    w = build_weighting("moml", 2)
    eta, alpha0 = w.inner_lr, w.alpha.detach().clone()
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    theta = [p for p in net.parameters() if p.requires_grad]
    losses = _toy_losses(net, train)
    g_f = [torch.autograd.grad(losses[k], theta, retain_graph=True) for k in range(2)]
    alpha = alpha0.double().requires_grad_(True)
    s = torch.softmax(alpha, -1)
    ahead = {n: p - eta * (s[0] * g_f[0][i] + s[1] * g_f[1][i]) for i, (n, p) in enumerate(zip(names, theta))}
    meta_losses = _toy_losses(lambda x: functional_call(net, ahead, (x,)), meta)
    rows = torch.stack([torch.autograd.grad(meta_losses[k], alpha, retain_graph=True)[0] for k in range(2)])
    look = LookAhead(net, losses, _toy_losses, train, meta, 0.05, 0.0)
    torch.testing.assert_close(w.hypergradients(look), rows, rtol=1e-6, atol=1e-12)
    u, v = (r / r.norm() for r in rows)
    # with 2 tasks softmax's Jacobian has rank 1: the rows are parallel, ±(1, −1) / √2 once normalised
    gap = float((u - v) @ (u - v))
    gamma = min(max(float((v - u) @ v) / gap, 0.0), 1.0) if gap > 1e-12 else 1.0
    w.meta_step(LookAhead(net, _toy_losses(net, train), _toy_losses, train, meta, 0.05, 0.0))
    expected = gamma * u + (1 - gamma) * v
    torch.testing.assert_close(w.alpha.grad.double(), expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(w.alpha.detach(), alpha0 - 1e-3 * torch.sign(expected).float(), rtol=0, atol=1e-7)


def test_forum_weights_solve_its_quadratic_programme():
    """cvxpy's solution against scipy's SLSQP on the same programme (3 tasks + q), and its constraints."""
    from scipy.optimize import minimize

    from benchmark.training.weighting.forum import Programme
    g = np.random.default_rng(2).standard_normal((4, 6))
    gram, pi, c = g @ g.T, np.array([0.3, -0.2, 0.1]), 0.4
    programme = Programme(3)
    w = programme.solve(gram, pi, c)
    objective = lambda x: x @ gram @ x - c * x[3]  # noqa: E731
    ref = minimize(objective, np.array([1 / 3, 1 / 3, 1 / 3, 0.5]), method="SLSQP", bounds=[(0, None)] * 4,
                   constraints=[{"type": "eq", "fun": lambda x: x[:3].sum() - 1},
                                {"type": "ineq", "fun": lambda x: x[3] - pi @ x[:3]}], options={"ftol": 1e-12})
    assert abs(w[:3].sum() - 1) < 1e-6 and w[3] >= pi @ w[:3] - 1e-6 and (w >= -1e-8).all()
    assert objective(w) <= ref.fun + 1e-8 and np.abs(w - ref.x).max() < 1e-5
    again = programme.solve(gram[::-1, ::-1].copy(), pi, c)    # the same programme, new values: solved anew
    assert not np.allclose(again, w)


def test_forum_applies_only_what_its_meta_step_found():
    w = build_weighting("forum", 2)
    with pytest.raises(RuntimeError, match="meta_step first"):
        w.step(torch.ones(2), [], [])


@pytest.mark.parametrize("name", BILEVEL)
def test_a_bilevel_weighting_resumes_its_meta_steps_to_the_bit(name):
    """Three meta steps (and updates), the state loaded into a fresh weighting: the fourth gives the same
    weights and update, bit for bit (the meta optimiser's moments are in the state)."""
    def steps(w, ks):
        for k in ks:
            net = Toy()
            with torch.no_grad():
                net.shared.weight.add_(0.1 * k)
            train, meta = _toy_batches()
            look = _look(net, train, meta)
            w.meta_step(look)
            weights = w.step(look.losses, [], [])
        return net.shared.weight.grad.clone(), weights
    w = build_weighting(name, 2)
    steps(w, range(3))
    resumed = build_weighting(name, 2)
    resumed.load_state_dict(w.state_dict())
    (g1, w1), (g2, w2) = steps(w, [3]), steps(resumed, [3])
    assert torch.equal(g1, g2) and torch.equal(w1, w2)


@pytest.mark.parametrize("name", BILEVEL)
def test_a_bilevel_weighting_is_finite_and_invariant_to_task_order(name):
    """3 tasks at a 1:100 loss scale, two meta steps and updates: with the tasks (heads and targets)
    permuted, the network's gradient is the same and the weights are permuted, to 1e-6."""
    def run(order):
        net, (train, meta) = Toy(3), _toy_batches(3)
        net.heads = nn.ModuleList([net.heads[k] for k in order])
        with torch.no_grad():
            net.heads[order.index(2)].weight.mul_(10.0)              # task 2's loss ~100x the others'
        train, meta = ({"image": b["image"], "y": b["y"][order]} for b in (train, meta))
        w = build_weighting(name, 3)
        for _ in range(2):
            net.zero_grad()
            look = _look(net, train, meta)
            w.meta_step(look)
            weights = w.step(look.losses, [], [])
        return net.shared.weight.grad.clone(), weights.detach().double()
    grad, weights = run([0, 1, 2])
    assert torch.isfinite(grad).all() and torch.isfinite(weights).all() and grad.norm() > 0
    order = [2, 0, 1]
    other, other_weights = run(order)
    torch.testing.assert_close(other, grad, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(other_weights, weights[order], rtol=1e-6, atol=1e-9)


def test_a_bilevel_step_pairs_each_batch_with_one_of_a_second_shuffled_pass():
    n, bs = 22, 4
    split = Split(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), {}, np.arange(n), {})
    steps = list(_draws(split, bs, 1, meta=True, rng=np.random.default_rng(0)))
    assert len(steps) == n // bs and all(len(s) == 2 for s in steps)       # as many steps as one pass
    first = np.concatenate([s[0]["index"].numpy() for s in steps])
    second = np.concatenate([s[1]["index"].numpy() for s in steps])
    assert len(set(first)) == len(first) == len(set(second)) == (n // bs) * bs   # each a pass without repeats
    assert not np.array_equal(first, second)


def _tiny(spec, n=8, size=32):
    g = np.random.default_rng(0)
    image = g.standard_normal((n, spec.in_channels, size, size)).astype(np.float32)
    targets = {}
    for t in spec.tasks:
        if t.target == "segmentation":
            targets[t.name] = g.integers(0, t.num_outputs, (n, size, size))
        elif t.target == "regression":
            targets[t.name] = (g.random((n, 1, size, size)) * t.scale).astype(np.float32)
        else:
            targets[t.name] = g.integers(0, max(t.num_outputs, 2), n)
    return Split(image, targets, np.arange(n), {})


# Auto-Lambda through every architecture (the copies of each must work); the others through HPS and CTAN
PAIRS = [(m, "autolambda") for m in MODELS if m != "stl"] + [(m, n) for n in BILEVEL if n != "autolambda"
                                                           for m in ("hps", "ctan")]


@pytest.mark.parametrize("method,name", PAIRS)
def test_a_bilevel_weighting_trains_every_architecture_and_leaves_the_network_to_the_update(method, name):
    """Through the loop (bf16 autocast, as the quick profile) on Prostate's pair: finite losses, the weights
    moved, and the meta step alone leaves every parameter and buffer of the network as it was."""
    from benchmark.experiment.profiles import get_profile

    spec = DATASETS["prostate"].spec
    model = build_model(method, spec.tasks, "resnet18", pretrained=False, in_channels=spec.in_channels)
    (tasks, net), = model.networks()
    split, losses = _tiny(spec), {t.name: make_loss(t) for t in spec.tasks}
    w = build_weighting(name, len(tasks))
    batch = next(iter(_draws(split, 4, 1, meta=True, rng=np.random.default_rng(1))))

    def forward(m, b):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(b["image"])
            return torch.stack([losses[t.name](out[t.name].float(), b[t.name]) for t in tasks])
    net.train()
    step_losses = forward(net, batch[0])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    w.meta_step(LookAhead(net, step_losses, forward, batch[0], batch[1], 3e-3, 1e-5))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), method
    start = {k: v.clone() for k, v in w.state_dict().items() if isinstance(v, torch.Tensor)}
    mean, weights, _ = train_epoch(net, tasks, split, losses, make_optimizer(net, get_profile("quick")), w, 4,
                                   np.random.default_rng(0), amp=True)
    assert np.isfinite(mean).all() and np.isfinite(weights).all()
    assert any(not torch.equal(v, w.state_dict()[k]) for k, v in start.items())


# ---- pinned to the references' own code, run on this toy outside this repository, the numbers below
# copied from their output: MOML and FORUM from LibMTL's main branch (commit 4336804847ea), its
# Trainer.bacth_forward_MOML / bacth_forward_FORUM, by scripts/libmtl_bilevel_reference.py (the update's
# batch the inner one, SGD lr 0.05 on the network); Auto-Lambda from its authors' auto_lambda.py
# (lorenmt/auto-lambda, commit bdba636) by scripts/autolambda_reference.py. float32, every parameter
# trainable (LibMTL differentiates all of them).

class _Toy32(nn.Module):
    def __init__(self, n_tasks):
        super().__init__()
        torch.manual_seed(0)
        self.shared = nn.Linear(4, 3)
        self.heads = nn.ModuleList([nn.Linear(3, 1) for _ in range(n_tasks)])

    def forward(self, x):
        rep = self.shared(x)
        return [h(rep) for h in self.heads]


def _two_steps(method, k):
    """Two steps of ``method`` on the float32 toy: the weights after each, the shared weight after both.
    The network's optimiser as in each reference: SGD (LibMTL's toy), Adam with weight decay (Auto-Lambda's:
    this suite's optimiser, whose weight decay the authors' virtual step includes)."""
    g = torch.Generator().manual_seed(5)
    make = lambda: {"image": torch.randn(8, 4, generator=g), "y": torch.randn(k, 8, 1, generator=g)}  # noqa: E731
    net, w = _Toy32(k), build_weighting(method, k)
    wd = 1e-3 if method == "autolambda" else 0.0
    opt = (torch.optim.Adam(net.parameters(), lr=0.05, weight_decay=wd) if method == "autolambda"
           else torch.optim.SGD(net.parameters(), lr=0.05))
    shown, hyper = [], []
    for step in range(2):
        train, meta = make(), make()
        w.start_epoch(step)                          # FORUM's λ average: LibMTL's epoch (one step each here)
        look = LookAhead(net, _toy_losses(net, train), _toy_losses, train, meta, 0.05, wd)
        w.meta_step(look)
        if method == "autolambda":
            hyper.append(w.lambdas.grad.detach().clone())
        opt.zero_grad()
        w.step(look.losses, [], [])
        opt.step()
        shown.append(w.weights() if method == "moml" else w.lambdas.detach().clone())
    return shown, net.shared.weight.detach(), hyper


BILEVEL_REFERENCES = {   # (method, K): weights after steps 0 and 1, shared.weight after step 1
    ("autolambda", 2): ([[0.10010000318288803, 0.09989999979734421], [0.10019416362047195, 0.09985767304897308]],
                        [[0.06959401816129684, 0.363465279340744, -0.3185976445674896, -0.311866819858551],
                         [-0.13905276358127594, 0.23309332132339478, -0.0950828343629837, 0.30569565296173096],
                         [-0.02446463331580162, 0.1092592105269432, -0.2454407811164856, -0.19018837809562683]]),
    ("autolambda", 3): ([[0.10010000318288803, 0.10010000318288803, 0.10010000318288803],
                         [0.10019252449274063, 0.10014007985591888, 0.10019683837890625]],
                        [[-0.07355768978595734, 0.16832053661346436, -0.3302210867404938, -0.2874230444431305],
                         [-0.12210692465305328, 0.2267889380455017, -0.07787922024726868, 0.31730347871780396],
                         [0.012448251247406006, 0.22957967221736908, -0.20330290496349335, -0.16963128745555878]]),
    ("moml", 2): ([[0.500499963760376, 0.49949997663497925], [0.5009999871253967, 0.49900001287460327]],
                  [[0.001253723632544279, 0.27376383543014526, -0.4025816023349762, -0.3661089241504669],
                   [-0.19169852137565613, 0.1366668939590454, -0.02131030708551407, 0.37048405408859253],
                   [-0.04734639823436737, 0.13424724340438843, -0.17312276363372803, -0.14295192062854767]]),
    ("forum", 2): ([[0.5000000466432982, 0.4999999533567017], [0.4999999775597447, 0.5000000224402553]],
                   [[0.0048485626466572285, 0.27203693985939026, -0.41685810685157776, -0.3698030114173889],
                    [-0.20574848353862762, 0.1271391212940216, -0.0012106805806979537, 0.3920854926109314],
                    [-0.06993189454078674, 0.1193072721362114, -0.13421206176280975, -0.10407862812280655]]),
    ("forum", 3): ([[0.3310109848493855, 0.31374368703049393, 0.3552453281201206],
                    [0.3337874500711716, 0.367228387815758, 0.29898416211307033]],
                   [[-0.0072551597841084, 0.2691997289657593, -0.40379875898361206, -0.35735762119293213],
                    [-0.19426079094409943, 0.13170397281646729, -0.014412853866815567, 0.3926429748535156],
                    [-0.04503227397799492, 0.13299129903316498, -0.15755800902843475, -0.0978267565369606]]),
}


AUTOLAMBDA_HYPERGRADIENTS = {   # K: λ's gradient at steps 0 and 1 (the authors' unrolled_backward)
    2: [[-0.034492578357458115, 0.0863768681883812], [-0.0848536416888237, -0.02639191411435604]],
    3: [[-0.15324601531028748, -0.1284835934638977, -0.09915532171726227],
        [-0.07307769358158112, 0.042739514261484146, -0.06496577709913254]],
}


@pytest.mark.parametrize("method, k", list(BILEVEL_REFERENCES))
def test_bilevel_weightings_take_their_references_steps(method, k):
    weights, shared = BILEVEL_REFERENCES[method, k]
    shown, got, hyper = _two_steps(method, k)
    if method == "autolambda":      # λ's gradient too: Adam's first steps move λ by ±lr whatever its size
        torch.testing.assert_close(torch.stack(hyper), torch.tensor(AUTOLAMBDA_HYPERGRADIENTS[k]), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(torch.stack(shown).double(), torch.tensor(weights, dtype=torch.float64),
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(got, torch.tensor(shared), rtol=0, atol=1e-6)


def test_moml_min_norm_solution_is_libmtl_s_with_three_tasks():
    """With 3 tasks MOML's first step sits at a Pareto-stationary point: the three normalised rows of H
    surround the origin, their min-norm point is 0, and the solution (the rows' weights) is LibMTL's to
    its solver's 1e-5. The weights after the step are not pinned: LibMTL's iterative float32 solver leaves
    a residual of ~7e-7 that α's Adam, normalising, turns into a 1e-3 step (softmax(α) 0.33377, 0.33312,
    0.33311); the exact point here (~2e-8, equal in every entry) leaves softmax(α) at 1/3."""
    from benchmark.training.weighting.mgda import min_norm_weights
    g = torch.Generator().manual_seed(5)
    train = {"image": torch.randn(8, 4, generator=g), "y": torch.randn(3, 8, 1, generator=g)}
    meta = {"image": torch.randn(8, 4, generator=g), "y": torch.randn(3, 8, 1, generator=g)}
    net, w = _Toy32(3), build_weighting("moml", 3)
    h = w.hypergradients(LookAhead(net, _toy_losses(net, train), _toy_losses, train, meta, 0.05, 0.0))
    h = h / h.norm(dim=1, keepdim=True)
    sol = min_norm_weights(h @ h.T)
    torch.testing.assert_close(sol, torch.tensor([0.3394731283187866, 0.2884281277656555, 0.37209877371788025],
                                                 dtype=sol.dtype), rtol=0, atol=1e-5)
    assert float((sol @ h).abs().max()) < 1e-6
