"""The reference values pinned in tests/test_weightings.py for the methods LibMTL 1.1.5 (pip) lacks, from
LibMTL's main branch (commit 4336804847ea, 2025-05-14), run outside this repository:

    fetch github:median-research-group/LibMTL          # the tool library; or a git clone of it
    mkdir -p /tmp/libmtl-main && git --git-dir=DIR archive HEAD LibMTL | tar -x -C /tmp/libmtl-main
    python scripts/libmtl_reference.py /tmp/libmtl-main

Prints each method's weights and the shared/head gradients on the toy of tests/test_weightings.py
(``_toy``: a Linear(4, 3) encoder, two Linear(3, 1) heads, MSE) and further batches of generator 12.
Not a test (it needs LibMTL's source); torch_geometric, which LibMTL's trainer imports, is stubbed."""
import sys, types
import torch
import torch.nn.functional as F
from torch import nn
for name in ("torch_geometric", "torch_geometric.data", "torch_geometric.loader"):
    sys.modules.setdefault(name, types.ModuleType(name))
shim = types.ModuleType("torchvision.models.utils"); shim.load_state_dict_from_url = torch.hub.load_state_dict_from_url
sys.modules.setdefault("torchvision.models.utils", shim)
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "/tmp/libmtl-main")
import LibMTL.weighting as W
from LibMTL.architecture import HPS
print(W.__file__)

def toy(n_tasks=2):
    torch.manual_seed(0)
    encoder = nn.Linear(4, 3)
    heads = nn.ModuleDict({f"t{k}": nn.Linear(3, 1) for k in range(n_tasks)})
    g = torch.Generator().manual_seed(11)
    x = torch.randn(8, 4, generator=g)
    ys = [torch.randn(8, 1, generator=g) for _ in range(n_tasks)]
    return encoder, heads, x, ys

def batches(n_tasks, n):
    """n further batches of the toy's distribution (generator 12)."""
    g = torch.Generator().manual_seed(12)
    return [(torch.randn(8, 4, generator=g), [torch.randn(8, 1, generator=g) for _ in range(n_tasks)]) for _ in range(n)]

def losses(encoder, heads, x, ys):
    rep = encoder(x)
    return torch.stack([F.mse_loss(h(rep), y) for h, y in zip(heads.values(), ys)])

def model(cls_name, n_tasks=2):
    encoder, heads, x, ys = toy(n_tasks)
    class Model(HPS, getattr(W, cls_name)):
        def __init__(self):
            super().__init__(list(heads), lambda: encoder, heads, False, False, torch.device("cpu"))
            self.init_param()
        def zero_grad_share_params(self):
            self.encoder.zero_grad(set_to_none=False)
    return Model(), encoder, heads, x, ys

def show(tag, encoder, heads, w=None):
    print(tag, "weights", None if w is None else [round(float(v), 6) for v in w])
    for label, mod in (("shared", encoder), ("heads", heads)):
        print("  ", label, [round(float(v), 6) for p in mod.parameters() for v in p.grad.detach().ravel()])

# ExcessMTL: two steps on the toy batch then a batch of generator 12, SGD lr 0.1 between
m, enc, heads, x, ys = model("ExcessMTL")
opt = torch.optim.SGD([*enc.parameters(), *heads.parameters()], lr=0.1)
data = [(x, ys)] + batches(2, 2)
for i, (bx, bys) in enumerate(data):
    opt.zero_grad(set_to_none=False)
    m.zero_grad()
    w = m.backward(losses(enc, heads, bx, bys), robust_step_size=1e-2 * 100)
    if i == len(data) - 1:
        show("excessmtl (robust_step_size 1.0, 3rd step)", enc, heads, w)
    opt.step()

# STCH: epochs 0..2 (warmup_epoch 1): the nadir from epoch 1's two steps, then a step in epoch 2
m, enc, heads, x, ys = model("STCH")
data = batches(2, 4)
for epoch, group in ((0, data[:1]), (1, data[1:3]), (2, data[3:])):
    m.epoch = epoch
    for bx, bys in group:
        m.zero_grad()
        w = m.backward(losses(enc, heads, bx, bys), STCH_mu=0.5, STCH_warmup_epoch=1)
show("stch (mu 0.5, warmup 1, a step of epoch 2)", enc, heads, w)

# MoDo and SDMGrad: one step on three batches (the toy's, then two of generator 12), twice
for cls_name, args in (("MoDo", {"MoDo_gamma": 0.1, "MoDo_rho": 0.1}), ("SDMGrad", {"SDMGrad_lamda": 0.3, "SDMGrad_niter": 20})):
    m, enc, heads, x, ys = model(cls_name)
    opt = torch.optim.SGD([*enc.parameters(), *heads.parameters()], lr=0.1)
    group = [(x, ys)] + batches(2, 2)
    for step in range(2):
        opt.zero_grad(set_to_none=False)
        m.zero_grad()
        for p in [*enc.parameters(), *heads.parameters()]:
            p.grad = torch.zeros_like(p)
        w = m.backward(torch.stack([losses(enc, heads, bx, bys) for bx, bys in group]), **args)
        if step == 1 or cls_name == "SDMGrad":
            show(f"{cls_name.lower()} {args} (step {step + 1})", enc, heads, w if w is not None else None)
            if cls_name == "SDMGrad":
                print("   sdmgrad w", m.w.numpy().round(6).tolist())
        opt.step()

# MoCo and DB-MTL: three steps (the toy batch, then two of generator 12), SGD lr 0.1 between
for cls_name, args in (("MoCo", {"MoCo_beta": 0.5, "MoCo_beta_sigma": 0.5, "MoCo_gamma": 0.1, "MoCo_gamma_sigma": 0.5,
                                 "MoCo_rho": 0.0}),
                       ("DB_MTL", {"DB_beta": 0.9, "DB_beta_sigma": 0.0})):
    m, enc, heads, x, ys = model(cls_name)
    opt = torch.optim.SGD([*enc.parameters(), *heads.parameters()], lr=0.1)
    data = [(x, ys)] + batches(2, 2)
    for i, (bx, bys) in enumerate(data):
        opt.zero_grad(set_to_none=False)
        m.zero_grad()
        for p in [*enc.parameters(), *heads.parameters()]:
            p.grad = torch.zeros_like(p)
        w = m.backward(losses(enc, heads, bx, bys), **args)
        if i == len(data) - 1:
            show(f"{cls_name.lower()} (3rd step)", enc, heads, w)
        opt.step()
