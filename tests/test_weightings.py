"""Loss weightings (issue 13): fixed expected values on small inputs and properties, as torchjd tests
its aggregators, and a cross-check of every method LibMTL 1.1.5 has against LibMTL on one toy."""
from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.training.weighting.catalog import WEIGHTINGS, WeightingError, parse
from benchmark.training.weighting.registry import CLASSES, build_weighting

J = torch.tensor([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])   # torchjd's example Jacobian: conflicting rows

# The aggregated gradient of J (torchjd 0.18.0's aggregators, checked by hand for MGDA and IMTL-G).
EXPECTED = {
    "upgrad": [0.292902, 1.900352, 1.900352],
    "mgda": [0.0, 1.0, 1.0],
    "pcgrad": [0.584795, 3.801170, 3.801170],
    "cagrad": [0.183504 / 1.25, 1.204124 / 1.25, 1.204124 / 1.25],   # rescale 1: / (1 + c²)
    "nashmtl": [0.054153, 0.706069, 0.706069],
    "imtlg": [0.076697, 1.0, 1.0],
    "alignedmtl": [0.213279, 0.967333, 0.967333],
    # by hand: v with u_k·v = 1 for the unit rows u_k is (0.19218, 2.50566, 2.50566); its direction
    # times Σ g_k·d = 2.93254 gives the update
    "config": [0.158809, 2.070607, 2.070607],
    # by hand: the mean (1, 1, 1) conflicts with row 0 (-2); projected onto {x: J x >= 0} it is
    # (1 - 8/18, 1 + 2/18, 1 + 2/18) = (0.555556, 1.111111, 1.111111); torchjd's QP solver ends 8e-4 from it
    "dualproj": [0.556316, 1.110921, 1.110921],
    # by hand: w = (0.59146, 0.40707) solves (G w)_k = 1 / w_k (alpha 1), G = J Jᵀ = [[18, -22], [-22, 38]]
    "fairgrad": [0.076584, 0.998533, 0.998533],
    # by hand: the first step's EMA targets are 0, where GradVac's correction is PCGrad's projection
    "gradvac": [0.584795, 3.801170, 3.801170],
    # by hand: the first step is ExcessMTL's warm-up (the baseline excess risk): equal weights, summing to K
    "excessmtl": [2.0, 2.0, 2.0],
    # by hand: CR-MOGM's first smoothed weights are MGDA's own (λ_0 = λ̂_1)
    "crmogm": [0.0, 1.0, 1.0],
}
UNWEIGHTED = ("config",)   # its update is not a weighting of the rows: the loop logs NaN weights, as GradDrop's
LINEAR = ("upgrad", "mgda", "pcgrad", "cagrad", "imtlg", "alignedmtl", "config", "dualproj", "gradvac",
          "excessmtl", "crmogm")   # agg(aJ) = a agg(J)


def _step_on(jacobian: torch.Tensor, name: str, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Losses L_i = J_i·θ (so ∇_θ L_i = J_i, θ shared): the weighting's step; (θ.grad, weights)."""
    theta = nn.Parameter(torch.ones(jacobian.shape[1]))
    w = build_weighting(name, len(jacobian))
    weights = w.step(jacobian @ theta, [theta], [])
    return theta.grad.detach(), weights


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gradient_weightings_give_the_expected_update_on_a_fixed_jacobian(name):
    grad, weights = _step_on(J, name)
    torch.testing.assert_close(grad, torch.tensor(EXPECTED[name]), atol=2e-5, rtol=0)
    assert torch.isfinite(weights).all() if name not in UNWEIGHTED else weights.isnan().all()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gradient_weightings_are_finite_and_invariant_to_task_order(name):
    torch.manual_seed(0)
    grad, weights = _step_on(J, name)
    swapped, weights_swapped = _step_on(J.flip(0), name)
    torch.testing.assert_close(swapped, grad, atol=1e-4, rtol=1e-4)
    if name not in UNWEIGHTED:
        torch.testing.assert_close(weights_swapped.flip(0), weights, atol=1e-4, rtol=1e-4)
    if name in LINEAR:
        torch.testing.assert_close(_step_on(3.0 * J, name)[0], 3.0 * grad, atol=1e-4, rtol=1e-4)


def test_dualproj_is_the_hand_projection_of_the_mean_within_its_solver_tolerance():
    grad, _ = _step_on(J, "dualproj")
    torch.testing.assert_close(grad, torch.tensor([1 - 8 / 18, 1 + 2 / 18, 1 + 2 / 18]), atol=1e-3, rtol=0)


def test_gradvac_moves_towards_its_ema_targets_and_resumes_them():
    """Step 2 on J by hand: cos φ = g0·g1 / (|g0| |g1|) = -22 / sqrt(18 · 38); the target after step 1 is
    φ̂ = β φ (β 0.5); each row moves by w g_j with w = |g_i| (φ̂ sqrt(1-φ²) - φ sqrt(1-φ̂²)) / (|g_j| sqrt(1-φ̂²))."""
    w = build_weighting("gradvac", 2)
    theta = nn.Parameter(torch.ones(3))
    w.step(J @ theta, [theta], [])
    state = w.state_dict()
    second, _ = _step_on_weighting(w, J)
    g = J.double()
    norm = g.norm(dim=1)
    phi = float(g[0] @ g[1] / (norm[0] * norm[1]))
    target = 0.5 * phi
    rows = [g[i] + float(norm[i] * (target * math.sqrt(1 - phi ** 2) - phi * math.sqrt(1 - target ** 2))
                         / (norm[j] * math.sqrt(1 - target ** 2))) * g[j] for i, j in ((0, 1), (1, 0))]
    torch.testing.assert_close(second.double(), rows[0] + rows[1], atol=1e-5, rtol=0)
    resumed = build_weighting("gradvac", 2)
    resumed.load_state_dict(state)               # a checkpoint's weighting state: the same targets
    torch.testing.assert_close(_step_on_weighting(resumed, J)[0], second, atol=0, rtol=0)
    assert not torch.equal(_step_on(J, "gradvac")[0], second)   # a fresh one starts from 0 again


def _step_on_weighting(w, jacobian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    theta = nn.Parameter(torch.ones(jacobian.shape[1]))
    weights = w.step(jacobian @ theta, [theta], [])
    return theta.grad.detach(), weights


def _ill_conditioned_jacobian() -> torch.Tensor:
    """3 tasks, a 1:100 loss scale and two nearly parallel rows (condition number 1.5e4)."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(3, 64, generator=g, dtype=torch.float64)
    rows = torch.stack([base[0], base[0] + 1e-2 * base[1], base[2]])
    return (rows * torch.tensor([[1.0], [1.0], [100.0]], dtype=torch.float64)).float()   # exact in float32


DETERMINISTIC = ("alignedmtl", "cagrad", "config", "dualproj", "fairgrad", "imtlg", "mgda", "nashmtl", "pcgrad",
                 "upgrad")


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_task_order_changes_the_combined_gradient_by_less_than_1e6(name):
    """Aggregated in float32 (before): Aligned-MTL changed by 1.3e-4, IMTL-G by 6.7e-5 and CAGrad by
    2.6e-5 (relative) when the tasks were permuted, and Aligned-MTL's gradient was 250x off the exact
    one; in float64 every permutation agrees to < 1e-6."""
    import itertools

    jac = _ill_conditioned_jacobian()
    grad, _ = _step_on(jac, name)
    assert torch.isfinite(grad).all()
    for order in itertools.permutations(range(3)):
        other, _ = _step_on(jac[list(order)], name)
        assert float((other.double() - grad.double()).norm() / grad.double().norm()) < 1e-6, order


@pytest.mark.parametrize("name", ["alignedmtl", "imtlg", "upgrad", "config", "dualproj", "fairgrad"])   # CAGrad: ours rescales
def test_the_float64_aggregation_is_torchjds_aggregator_on_the_float64_matrix(name):
    jac = _ill_conditioned_jacobian()
    aggregator = build_weighting(name, 3).aggregator
    exact = aggregator(jac.double())
    grad, _ = _step_on(jac, name)
    assert float((grad.double() - exact).norm() / exact.norm()) < 1e-6


def test_mgda_meets_the_min_norm_point():
    """The exact solver against the KKT conditions and scipy's SLSQP on the simplex (tight tolerance);
    and 2 tasks by the closed form of Sener & Koltun's Algorithm 1."""
    from scipy.optimize import minimize

    from benchmark.training.weighting.mgda import min_norm_weights

    g = torch.Generator().manual_seed(0)
    b = torch.randn(3, 64, generator=g, dtype=torch.float64)
    # rows 0 and 1 nearly opposite, row 2 at 100x the scale in conflict with both: the min-norm point is
    # inside the simplex, (0.500233, 0.498819, 0.000948); torchjd 0.18's Frank-Wolfe (tolerance 1e-3)
    # stops at (0.526, 0.417, 0.057), a combined gradient 12x the exact one's norm away from it
    jac = torch.stack([b[0], -b[0] + 1e-2 * b[1], 100 * (-0.02 * b[0] + 1e-2 * b[2])]).float().double()
    gram = jac @ jac.T
    w = min_norm_weights(gram)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12) and bool((w >= 0).all())
    value = float(w @ gram @ w)
    slack = (gram @ w - value).numpy()                              # KKT: >= 0, = 0 on the support
    assert slack.min() > -1e-9 * float(gram.diagonal().max())
    assert np.abs(slack[w.numpy() > 1e-9]).max() < 1e-9 * float(gram.diagonal().max())
    gm = gram.numpy()
    ref = minimize(lambda x: x @ gm @ x, np.full(3, 1 / 3), jac=lambda x: 2 * gm @ x, method="SLSQP",
                   bounds=[(0, 1)] * 3, constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
                   options={"ftol": 1e-16, "maxiter": 1000}).x
    grad, ref_grad = w @ jac, torch.from_numpy(ref) @ jac
    assert float((grad - ref_grad).norm() / ref_grad.norm()) < 1e-5
    assert value <= float(ref @ gm @ ref) * (1 + 1e-9)
    torch.testing.assert_close(w, torch.tensor([0.500233, 0.498819, 0.000948], dtype=torch.float64), atol=1e-6, rtol=0)
    g1, g2 = jac[0], jac[2]                                          # two tasks: the closed form
    gamma = float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2))) if float((g1 - g2).norm()) else 0.5
    gamma = min(max(gamma, 0.0), 1.0)
    pair = torch.stack([g1, g2])
    torch.testing.assert_close(min_norm_weights(pair @ pair.T), torch.tensor([gamma, 1 - gamma], dtype=torch.float64))


def test_graddrop_keeps_one_sign_per_coordinate():
    for seed in range(4):
        torch.manual_seed(seed)
        grad, weights = _step_on(J, "graddrop")
        assert grad[0].item() in (6.0, -4.0) and grad[1:].tolist() == [2.0, 2.0] and weights.isnan().all()


LOSSES = torch.tensor([1.445341, 1.505219])


def test_loss_weightings_give_the_expected_weights():
    expected = {"ew": [1.0, 1.0], "uw": [math.exp(0.5) / 2] * 2,
                "gls": [math.sqrt(LOSSES.prod().item()) / (2 * v) for v in LOSSES.tolist()]}
    z = 0.5 / (LOSSES + 1e-8)                        # FAMO at its start: z = softmax(0) = 1/2
    expected["famo"] = (z / z.sum()).tolist()
    for name, want in expected.items():
        w = build_weighting(name, 2)
        _, weights = w.combine(LOSSES.clone().requires_grad_())
        torch.testing.assert_close(weights, torch.tensor(want), atol=1e-6, rtol=1e-6, msg=name)
    torch.manual_seed(0)
    _, weights = build_weighting("rlw", 2).combine(LOSSES)
    torch.testing.assert_close(weights, torch.tensor([0.862288, 0.137712]), atol=1e-6, rtol=0)   # softmax(N(0,1))


def test_dwa_weights_by_hand():
    dwa = build_weighting("dwa", 2)
    for losses in ([1.0, 2.0], [0.5, 1.8]):
        dwa.start_epoch(0)
        np.testing.assert_allclose(dwa.weights(), [1, 1])
        dwa.end_epoch(np.array(losses))
    w = np.array([0.5 / 1.0, 1.8 / 2.0])
    expected = 2 * np.exp(w / 2) / np.exp(w / 2).sum()
    np.testing.assert_allclose(dwa.weights(), expected)
    assert dwa.weights().sum() == pytest.approx(2.0) and dwa.weights()[1] > dwa.weights()[0]
    again = build_weighting("dwa+T=4", 2)
    again.load_state_dict(dwa.state_dict())                     # the checkpointed state restores it
    np.testing.assert_allclose(again.weights(), 2 * np.exp(w / 4) / np.exp(w / 4).sum())


def test_famo_moves_weight_to_the_task_that_improved_less():
    famo = build_weighting("famo", 2)
    famo.combine(torch.tensor([1.0, 1.0]))
    famo.after_step(lambda: torch.tensor([0.5, 0.95]))          # task 0 improved a lot, task 1 little
    z = torch.softmax(famo.logits, -1)
    assert z[1] > z[0] and torch.isfinite(z).all()


@pytest.mark.parametrize("name", list(WEIGHTINGS))
def test_the_catalog_is_the_one_source_of_hyper_parameters(name):
    """Each constructor takes exactly the hyper-parameters its catalog entry lists, with the same
    defaults: a default changed in one place only would make a cell's label lie about what ran."""
    import inspect
    params = {k: p.default for k, p in inspect.signature(CLASSES[name].__init__).parameters.items()
              if k not in ("self", "n_tasks")}
    assert params == dict(WEIGHTINGS[name].defaults)


# Weightings whose step needs nothing but the losses; a bilevel one needs its meta step first, with a
# network to copy: tests/test_bilevel.py steps those through the loop under bf16 and resumes them.
STEP_ONLY = [name for name, info in WEIGHTINGS.items() if info.kind != "bilevel"]


def test_every_weighting_is_registered_named_and_checkpointable():
    assert list(CLASSES) == list(WEIGHTINGS)
    for name in WEIGHTINGS:
        w = build_weighting(name, 2)
        restored = build_weighting(name, 2)
        restored.load_state_dict(w.state_dict())
        assert w.kind == WEIGHTINGS[name].kind
    assert parse("cagrad+c=0.4").label == "cagrad+c=0.4" and parse("CAGrad+c=0.5").label == "cagrad"
    assert parse("dwa+t=4").label == "dwa+T=4.0"
    for bad in ("nope", "cagrad+c", "cagrad+c=x", "nashmtl+optim_niter=2.5", "dwa+temperature=2"):
        with pytest.raises(WeightingError):
            parse(bad)


@pytest.mark.parametrize("name", STEP_ONLY)
def test_every_weighting_steps_through_a_bfloat16_autocast_graph(name):
    """The quick, realcpu and paper profiles train under bf16 autocast: every weighting's step must
    work there (a vmapped task Jacobian failed on a bf16 convolution) and give finite gradients."""
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    heads = nn.ModuleList([nn.Conv2d(4, 1, 1), nn.Conv2d(4, 1, 1)])
    x, ys = torch.randn(4, 1, 8, 8), [torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)]
    w = build_weighting(name, 2)
    w.start_epoch(0)

    def losses():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rep = encoder(x)
            return torch.stack([F.mse_loss(h(rep).float(), y) for h, y in zip(heads, ys)])

    step_losses = torch.stack([losses() for _ in range(w.samples)]) if w.samples > 1 else losses()
    w.step(step_losses, list(encoder.parameters()), list(heads.parameters()))
    w.after_step(losses)
    for p in [*encoder.parameters(), *heads.parameters()]:
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
    assert any(p.grad.abs().sum() > 0 for p in encoder.parameters())


# ----------------------------------------------------------------------------- LibMTL cross-check
def _libmtl():
    """LibMTL 1.1.5 on current torch: its resnet module imports torchvision.models.utils, which
    torchvision no longer has; a module of that name pointing at torch.hub's function lets it load."""
    shim = types.ModuleType("torchvision.models.utils")
    shim.load_state_dict_from_url = torch.hub.load_state_dict_from_url
    sys.modules.setdefault("torchvision.models.utils", shim)
    weighting = pytest.importorskip("LibMTL.weighting")
    from LibMTL.architecture import HPS
    return weighting, HPS


def _toy(n_tasks: int = 2):
    torch.manual_seed(0)
    encoder = nn.Linear(4, 3)
    heads = nn.ModuleDict({f"t{k}": nn.Linear(3, 1) for k in range(n_tasks)})
    g = torch.Generator().manual_seed(11)                        # task gradients conflict on this batch
    x = torch.randn(8, 4, generator=g)
    ys = [torch.randn(8, 1, generator=g) for _ in range(n_tasks)]
    return encoder, heads, x, ys


def _losses(encoder, heads, x, ys) -> torch.Tensor:
    rep = encoder(x)
    return torch.stack([F.mse_loss(head(rep), y) for head, y in zip(heads.values(), ys)])


def _libmtl_update(cls_name: str, weight_args: dict, n_tasks: int = 2, epoch: int = 0, buffer=None):
    """Shared and head gradients (and the weighting's own) after LibMTL's ``backward`` on the toy."""
    W, HPS = _libmtl()
    encoder, heads, x, ys = _toy(n_tasks)

    class Model(HPS, getattr(W, cls_name)):                     # as LibMTL's Trainer builds it
        def __init__(self):
            super().__init__(list(heads), lambda: encoder, heads, False, False, torch.device("cpu"))
            self.init_param()

        def zero_grad_share_params(self):                        # torch >= 2 sets .grad to None; LibMTL
            self.encoder.zero_grad(set_to_none=False)             # writes into .grad.data afterwards

    model = Model()
    model.epoch, model.train_loss_buffer = epoch, np.zeros([n_tasks, 4]) if buffer is None else buffer
    torch.manual_seed(0)
    losses = _losses(model.encoder, model.decoders, x, ys)
    model.zero_grad()
    model.backward(losses, **weight_args)
    own = getattr(model, "loss_scale", None)
    return ([p.grad.clone() for p in encoder.parameters()], [p.grad.clone() for p in heads.parameters()],
            None if own is None else own.grad.clone())


def _our_update(name: str, n_tasks: int = 2, epochs=()):
    encoder, heads, x, ys = _toy(n_tasks)
    w = build_weighting(name, n_tasks)
    for k, mean in enumerate(epochs):                            # the epochs before this step
        w.start_epoch(k)
        w.end_epoch(np.asarray(mean))
    w.start_epoch(len(epochs))
    torch.manual_seed(0)
    losses = _losses(encoder, heads, x, ys)
    w.step(losses, list(encoder.parameters()), list(heads.parameters()))
    own = next(iter(w.parameters()), None)
    return ([p.grad.clone() for p in encoder.parameters()], [p.grad.clone() for p in heads.parameters()],
            None if own is None else own.grad.clone())


# ours, LibMTL's class and weight_args, the epochs before the step (LibMTL's train_loss_buffer), tasks
CROSS = {
    "ew": ("EW", {}, (), 2),
    "dwa": ("DWA", {"T": 2.0}, ([2.0, 1.0], [1.5, 0.9]), 2),
    "uw": ("UW", {}, (), 2),
    "rlw": ("RLW", {"dist": "Normal"}, (), 2),
    "gls": ("GLS", {}, (), 2),
    "gradnorm": ("GradNorm", {"alpha": 1.5}, ([2.0, 1.0],), 2),
    "mgda": ("MGDA", {"mgda_gn": "none"}, (), 2),
    "pcgrad": ("PCGrad", {}, (), 2),
    "imtlg": ("IMTL", {}, (), 2),            # IMTL's loss scales start at 0: its first step is IMTL-G's
    "cagrad": ("CAGrad", {"calpha": 0.5, "rescale": 1}, (), 3),   # LibMTL 1.1.5 hard-codes 3 tasks
}


@pytest.mark.parametrize("name", sorted(CROSS))
def test_our_update_equals_libmtls_on_the_same_toy(name):
    cls_name, args, epochs, n_tasks = CROSS[name]
    buffer = np.zeros([n_tasks, 4])
    for k, mean in enumerate(epochs):
        buffer[:, k] = mean
    theirs = _libmtl_update(cls_name, args, n_tasks, epoch=len(epochs), buffer=buffer)
    ours = _our_update(name, n_tasks, epochs)
    tol = 2e-4 if name == "cagrad" else 1e-5        # CAGrad: scipy SLSQP (LibMTL) vs cvxpy CLARABEL (torchjd)
    for a, b in zip(ours[0] + ours[1], theirs[0] + theirs[1]):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=name)
    if name in ("uw", "gradnorm"):                  # the weighting's own parameters learn alike
        torch.testing.assert_close(ours[2], theirs[2], atol=1e-5, rtol=1e-5)


# ------------------------------------------------- methods LibMTL 1.1.5 lacks: pinned from its main branch
def _batches(n_tasks: int, n: int):
    """``n`` further batches of the toy's distribution (generator 12), as scripts/libmtl_reference.py draws them."""
    g = torch.Generator().manual_seed(12)
    return [(torch.randn(8, 4, generator=g), [torch.randn(8, 1, generator=g) for _ in range(n_tasks)]) for _ in range(n)]


def _run_plan(name: str, plan, sgd: bool = True):
    """Our weighting through ``plan`` (epoch, [step's batches, ...]) on the toy, SGD lr 0.1 between steps
    (as the reference script): the last step's weights and flattened shared and head gradients."""
    encoder, heads, x, ys = _toy(2)
    w = build_weighting(name, 2)
    opt = torch.optim.SGD([*encoder.parameters(), *heads.parameters()], lr=0.1)
    for epoch, steps in plan(x, ys):
        w.start_epoch(epoch)
        for group in steps:
            opt.zero_grad(set_to_none=True)
            losses = torch.stack([_losses(encoder, heads, bx, bys) for bx, bys in group])
            weights = w.step(losses if w.samples > 1 else losses[0], list(encoder.parameters()),
                             list(heads.parameters()))
            grads = [torch.cat([p.grad.detach().ravel() for p in m.parameters()]) for m in (encoder, heads)]
            if sgd:
                opt.step()
    return weights, grads[0], grads[1]


_MORE = _batches(2, 4)
# Printed by `python scripts/libmtl_reference.py /tmp/libmtl-main` (LibMTL main, 4336804847ea, 2025-05-14):
# ours, the plan, LibMTL's weights (None: LibMTL's are not the weights, or none), shared and head gradients, and the
# factor LibMTL's head gradients are of ours (its SDMGrad sums the 3 batches' head gradients, ours averages)
LIBMTL_MAIN = {
    "excessmtl+robust_step_size=1.0": (        # three steps: the first sets the baseline
        lambda x, ys: [(0, [[(x, ys)], [_MORE[0]], [_MORE[1]]])], True, [0.550864, 1.449136],
        [-0.126763, -0.256029, 0.051212, 0.209664, 0.158354, 0.313493, -0.065802, -0.255938, 0.450258, 0.777068,
         -0.22002, -0.620006, -0.211534, 0.261627, 0.696602],
        [0.028905, 0.103412, 0.114715, -0.170063, 0.278982, -0.858231, 0.110026, 1.379321], 1.0),
    "stch+mu=0.5+warmup_epoch=1": (            # epoch 0 log-sum, epoch 1 collects the nadir, epoch 2 STCH
        lambda x, ys: [(0, [[_MORE[0]]]), (1, [[_MORE[1]], [_MORE[2]]]), (2, [[_MORE[3]]])], False, None,
        [0.048185, -0.06631, 0.011767, 0.042676, -0.145039, -0.546466, -0.342961, 0.370148, -0.256859, -0.820423,
         -0.546632, 0.557043, -0.090495, -0.579337, -0.857766],
        [0.567156, 1.302387, 0.286332, -2.660935, 0.029493, -0.002962, 0.017324, 0.133585], 1.0),
    "modo+gamma=0.1": (                        # two steps on the same three batches
        lambda x, ys: [(0, [[(x, ys), _MORE[0], _MORE[1]]] * 2)], True, [0.438956, 0.561044],
        [-0.117949, -0.07117, 0.024675, 0.024189, 0.105578, 0.074417, 0.00377, -0.025373, 0.244491, 0.162773,
         -0.014339, -0.055437, -0.047632, 0.016471, 0.061487],
        [0.581561, 0.216743, 0.208891, -0.607508, -0.280408, -0.137804, -0.175812, 0.093859], 1.0),
    "moco": (                                  # three steps, SGD between
        lambda x, ys: [(0, [[(x, ys)], [_MORE[0]], [_MORE[1]]])], True, [0.501517, 0.498483],
        [-0.060247, 0.035958, -0.025043, -0.041494, 0.131374, -0.012509, -0.076615, 0.045465, 0.262147, -0.034579,
         -0.113012, 0.081141, -0.026067, -0.027799, -0.015552],
        [0.048719, 0.136037, 0.069889, -0.361928, 0.16164, -0.483917, -0.020358, 0.672005], 1.0),
    "dbmtl": (                                 # three steps, SGD between (LibMTL returns ones, not its α)
        lambda x, ys: [(0, [[(x, ys)], [_MORE[0]], [_MORE[1]]])], True, None,
        [-0.052732, -0.010754, -0.037048, -0.003454, 0.114048, 0.022601, -0.038528, 0.030347, 0.207843, 0.048854,
         -0.033265, 0.020471, 0.027878, -0.083327, -0.127556],
        [0.491975, 0.11513, 0.323234, -1.217337, 0.194508, -0.633824, -0.015454, 0.896319], 1.0),
    "sdmgrad": (                               # one step (a second would start from other heads)
        lambda x, ys: [(0, [[(x, ys), _MORE[0], _MORE[1]]])], True, None,
        [0.009003, 0.046227, -0.075257, -0.024075, 0.252214, 0.085387, -0.568791, -0.02012, 0.391497, 0.106871,
         -0.850231, -0.017345, -0.051941, -0.146922, -0.200298],
        [2.105256, 0.946886, 0.824217, -2.533483, -0.990104, -0.505045, -0.524632, 0.499149], 3.0),
}


@pytest.mark.parametrize("label", sorted(LIBMTL_MAIN))
def test_our_update_equals_libmtl_main_branch_pinned(label):
    plan, sgd, weights, shared, heads, head_factor = LIBMTL_MAIN[label]
    ours_weights, ours_shared, ours_heads = _run_plan(label, plan, sgd)
    torch.testing.assert_close(ours_shared, torch.tensor(shared), atol=2e-6, rtol=0)
    torch.testing.assert_close(ours_heads * head_factor, torch.tensor(heads), atol=5e-6, rtol=0)
    if weights is not None:
        torch.testing.assert_close(ours_weights, torch.tensor(weights), atol=2e-6, rtol=0)
    assert torch.isfinite(ours_weights).all()


def test_sdmgrad_weights_are_libmtls_inner_solve_by_hand():
    """The step's weights (w + λ w̃)/(1 + λ) from w after 20 projected SGD steps (lr 5, momentum 0.5) on
    A = J₁ J₂ᵀ / mean(√diag A)², from w = 1/K -- LibMTL's loop, written out; its w after the step is (1, 0)."""
    encoder, heads, x, ys = _toy(2)
    group = [(x, ys), _MORE[0], _MORE[1]]
    rows = []
    for bx, bys in group:
        losses = _losses(encoder, heads, bx, bys)
        rows.append(torch.stack([torch.cat([g.ravel() for g in torch.autograd.grad(l, list(encoder.parameters()),
                                                                                   retain_graph=True)])
                                 for l in losses]).double())
    a = rows[1] @ rows[2].T
    a = a / (a.diagonal().clamp(min=0).sqrt().mean() ** 2 + 1e-8)
    w, velocity = torch.full((2,), 0.5, dtype=torch.float64), None
    for _ in range(20):
        grad = a @ (w + 0.3 * torch.full((2,), 0.5, dtype=torch.float64))
        velocity = grad if velocity is None else 0.5 * velocity + grad
        v = w - 5 * velocity                      # Euclidean projection onto the simplex (2 tasks: clip)
        w = torch.clamp((v - (v.sum() - 1) / 2), 0, 1)
        w = w / w.sum()
    expected = (w + 0.3 * 0.5) / 1.3
    weights, _, _ = _run_plan("sdmgrad", lambda x_, ys_: [(0, [group])])
    torch.testing.assert_close(weights.double(), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(w, torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_modo_first_step_by_hand_and_it_needs_three_batches():
    """λ = Π(λ₀ − γ(J₁J₂ᵀλ₀ + ρλ₀)) with λ₀ = 1/2; the same J for the three batches: J Jᵀ = [[18, -22], [-22, 38]]."""
    theta = nn.Parameter(torch.ones(3))
    w = build_weighting("modo+gamma=0.01", 2)
    weights = w.step(torch.stack([J @ theta] * 3), [theta], [])
    step = 0.5 - 0.01 * (torch.tensor([18 * 0.5 - 22 * 0.5, -22 * 0.5 + 38 * 0.5]) + 0.1 * 0.5)
    lam = step - (step.sum() - 1) / 2                 # both entries stay positive: the shift is the projection
    torch.testing.assert_close(weights, lam, atol=1e-6, rtol=0)
    torch.testing.assert_close(theta.grad, lam @ J, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"3 batches per step"):
        w.step(J @ theta, [theta], [])


@pytest.mark.parametrize("name", ["modo", "sdmgrad"])
def test_a_sampled_weighting_takes_each_batchs_jacobian_through_that_batch_alone(name):
    """The loop hands MoDo/SDMGrad each batch's losses unstacked: a batch's features then see one backward
    pass per task (K), not one per row of all three batches (3K: a row of a stacked tensor carries zeros
    back through every batch's graph, which made a step 17x DWA's); the gradients equal the stacked input's."""
    theta = nn.Parameter(torch.ones(3))
    grads, calls = [], []
    for stacked in (True, False):
        theta.grad = None
        features = [theta * (1.0 + b) for b in range(3)]            # one "batch" each
        n = [0, 0, 0]
        for b, f in enumerate(features):
            f.register_hook(lambda g, b=b: n.__setitem__(b, n[b] + 1))
        rows = [J @ f for f in features]
        build_weighting(name, 2).step(torch.stack(rows) if stacked else rows, [theta], [])
        grads.append(theta.grad.clone())
        calls.append(n)
    assert calls == [[6, 6, 6], [2, 2, 2]]
    assert torch.equal(grads[0], grads[1])


def test_stch_log_sum_then_nadir_normalised_tchebycheff_by_hand():
    losses = LOSSES.clone().requires_grad_()
    w = build_weighting("stch+mu=0.5+warmup_epoch=1", 2)
    w.start_epoch(0)
    _, weights = w.combine(losses)                   # Σ log L: weights 1/L
    torch.testing.assert_close(weights, 1 / LOSSES, atol=1e-6, rtol=1e-6)
    w.start_epoch(1)
    for scale in (1.0, 3.0):                          # the nadir point: the mean of epoch 1's losses, 2 L
        w.combine((LOSSES * scale).requires_grad_())
    w.start_epoch(2)
    loss, weights = w.combine(losses)
    y = torch.log(LOSSES / (2 * LOSSES) + 1e-20)      # log(1/2) for both: the max is smoothed over equals
    torch.testing.assert_close(loss, 2 * 0.5 * torch.logsumexp(y / 0.5, 0), atol=1e-6, rtol=0)
    torch.testing.assert_close(weights, 2 * torch.softmax(y / 0.5, 0) / LOSSES, atol=1e-6, rtol=1e-6)


def test_pbi_and_imtll_by_hand():
    """PBI, w = (1, 1)/√2: d₁ = (a + b)/√2, d₂ = |a − b|/√2, so ∂/∂(a, b) = (1 ∓ θ)/√2 for a < b; IMTL-L at its
    start: the plain sum, weights e⁰ = 1, and ∂/∂s_k = e^{s_k} L_k − 1 = L_k − 1."""
    losses = LOSSES.clone().requires_grad_()
    loss, weights = build_weighting("pbi", 2).combine(losses)
    a, b = LOSSES.tolist()
    assert float(loss.detach()) == pytest.approx((a + b) / math.sqrt(2) + 5 * abs(a - b) / math.sqrt(2), abs=1e-5)
    torch.testing.assert_close(weights, torch.tensor([-4.0, 6.0]) / math.sqrt(2), atol=1e-5, rtol=0)
    imtll = build_weighting("imtll", 2)
    loss, weights = imtll.combine(losses)
    assert float(loss.detach()) == pytest.approx(a + b, abs=1e-6) and weights.tolist() == [1.0, 1.0]
    loss.backward()
    torch.testing.assert_close(imtll.learnable()[0].grad, LOSSES - 1, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", STEP_ONLY)
def test_every_weighting_resumes_from_its_state_dict_to_the_bit(name):
    """Seven steps in epochs 0..6 (STCH leaves its warm-up after epoch 4); the state after the sixth,
    loaded into a fresh weighting, gives the seventh step's update and weights exactly."""
    theta0 = torch.tensor([1.0, -0.5, 2.0])
    def step(w, k):
        theta = nn.Parameter(theta0.clone())
        jac = J * (1 + 0.1 * k) + torch.tensor([[0.0, 0.3 * k, 0.0], [0.2 * k, 0.0, -0.1]])
        losses = torch.stack([(jac @ theta) ** 2 / 10 + 1.0 for _ in range(w.samples)]) if w.samples > 1 \
            else (jac @ theta) ** 2 / 10 + 1.0
        torch.manual_seed(k)                            # RLW and GradDrop draw
        weights = w.step(losses, [theta], [])
        return theta.grad.clone(), weights
    w = build_weighting(name, 2)
    for k in range(6):
        w.start_epoch(k)
        step(w, k)
        w.end_epoch(np.array([1.0 + 0.1 * k, 2.0 - 0.1 * k]))
    resumed = build_weighting(name, 2)
    resumed.load_state_dict(w.state_dict())
    for x in (w, resumed):
        x.start_epoch(6)
    (g1, w1), (g2, w2) = step(w, 6), step(resumed, 6)
    assert torch.equal(g1, g2) and torch.equal(w1.nan_to_num(7.0), w2.nan_to_num(7.0)), name


@pytest.mark.parametrize("name", ["excessmtl", "modo", "sdmgrad", "stch", "pbi", "imtll", "moco", "dbmtl", "crmogm"])
def test_the_added_weightings_are_finite_and_invariant_to_task_order_over_steps(name):
    """Three steps on three tasks whose Jacobian changes per step and per batch (the sampled ones see three
    different batches): with the tasks permuted, the same update and the weights permuted, to 1e-6."""
    g = torch.Generator().manual_seed(3)
    jacs = torch.randn(3, 3, 3, 5, generator=g, dtype=torch.float64).float()   # step, batch, task, parameter
    def run(order):
        w = build_weighting(name, 3)
        for k in range(3):
            w.start_epoch(k)
            theta = nn.Parameter(torch.linspace(-1, 1, 5))
            per_batch = torch.stack([(jacs[k, b][order] @ theta) ** 2 / 10 + 1.0 for b in range(3)])
            weights = w.step(per_batch if w.samples > 1 else per_batch[0], [theta], [])
        return theta.grad.double(), weights.double()
    order = [2, 0, 1]
    grad, weights = run([0, 1, 2])
    other, other_weights = run(order)
    assert torch.isfinite(grad).all() and torch.isfinite(weights).all()
    assert float((other - grad).norm() / grad.norm()) < 1e-6
    torch.testing.assert_close(other_weights, weights[order], atol=1e-6, rtol=1e-6)


def test_crmogm_smooths_mgdas_weights_by_hand():
    """Step 2: λ = 0.9 λ̂₁ + 0.1 λ̂₂, λ̂ the exact min-norm weights of each step's Jacobian."""
    from benchmark.training.weighting.mgda import min_norm_weights

    second = torch.tensor([[1.0, 2.0, 0.0], [-1.0, 1.0, 3.0]])
    w = build_weighting("crmogm", 2)
    for jac in (J, second):
        theta = nn.Parameter(torch.ones(3))
        weights = w.step(jac @ theta, [theta], [])
    hat = [min_norm_weights((j @ j.T).double()).float() for j in (J, second)]
    expected = 0.9 * hat[0] + 0.1 * hat[1]
    torch.testing.assert_close(weights, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(theta.grad, expected @ second, atol=1e-5, rtol=0)
