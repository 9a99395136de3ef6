"""MTT (Cazenavette et al. 2022): one student step is one SGD step (loss, image update and
step-size update worked by hand), the step size stays positive, the NaN guard, the expert
buffer (exact size, round trip, checksum, half precision), determinism and bad inputs."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from distillkit.distill import METHODS, distill
from distillkit.distill.experts import (
    ExpertBuffer,
    expert_buffer_size,
    load_expert_trajectories,
    train_expert_trajectories,
)
from distillkit.distill.mtt import mtt
from distillkit.models import MLP


def mlp(generator=None):
    return MLP(4, 2, hidden=(3,), generator=generator)


def toy(n=30, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 4, generator=gen, dtype=dtype) + 0.8 * y[:, None].to(dtype)
    return x, y


def hand_forward(theta, x):
    """The MLP(4, 2, hidden=(3,)) written out; its parameter order is classifier (W2 (2,3), b2 (2,))
    then hidden layer (W1 (3,4), b1 (3,))."""
    w2, b2 = theta[:6].view(2, 3), theta[6:8]
    w1, b1 = theta[8:20].view(3, 4), theta[20:23]
    return torch.relu(x @ w1.T + b1) @ w2.T + b2


def hand_buffer(seed=0):
    gen = torch.Generator().manual_seed(seed)
    theta0 = torch.randn(23, generator=gen, dtype=torch.float64) * 0.5
    theta1 = theta0 + torch.randn(23, generator=gen, dtype=torch.float64) * 0.1
    return ExpertBuffer(torch.stack([theta0, theta1])[None])  # 1 expert, 1 epoch


def test_registered():
    assert METHODS["mtt"] is mtt


def test_one_student_step_is_one_sgd_step():
    x, y = toy()
    buf = hand_buffer()
    lr0, lr_img, lr_lr = 0.05, 2.0, 1e-3
    s = mtt(x, y, 3, experts=buf, model_fn=mlp, steps=1, syn_steps=1, expert_epochs=1, lr_img=lr_img, lr_lr=lr_lr,
            lr_init=lr0, generator=0)
    x0 = s.history[0][1].clone().requires_grad_(True)
    lr = torch.tensor(lr0, dtype=torch.float64, requires_grad=True)
    theta0 = buf.trajectories[0, 0].clone().requires_grad_(True)
    target = buf.trajectories[0, 1]
    (g,) = torch.autograd.grad(F.cross_entropy(hand_forward(theta0, x0), s.y), theta0, create_graph=True)
    theta1 = theta0 - lr * g  # one SGD step
    loss = ((theta1 - target) ** 2).sum() / ((theta0 - target) ** 2).sum()
    assert s.info["losses"][0] == pytest.approx(loss.item(), rel=1e-10)
    # the same step through torch.optim.SGD on a real module
    net = mlp(0).double()
    torch.nn.utils.vector_to_parameters(theta0.detach().clone(), net.parameters())
    opt = torch.optim.SGD(net.parameters(), lr=lr0)
    F.cross_entropy(net(x0.detach()), s.y).backward()
    opt.step()
    assert torch.allclose(torch.nn.utils.parameters_to_vector(net.parameters()), theta1.detach(), atol=1e-12)
    # the updates: SGD (first momentum step = plain step) on pixels, and lr in the reference's units
    g_x, g_lr = torch.autograd.grad(loss, [x0, lr])
    assert torch.allclose(s.x, x0.detach() - lr_img * g_x, rtol=0, atol=1e-12)
    assert g_lr.abs() > 0 and g_x.abs().sum() > 0
    assert s.lr == pytest.approx(lr0 * math.exp(-lr_lr * g_lr.item() / lr0), rel=1e-10)
    assert s.lr == pytest.approx(lr0 - lr_lr * g_lr.item(), rel=1e-3)  # first order: the reference's step


def test_step_size_stays_positive_where_the_reference_goes_negative():
    x, y = toy()
    buf = hand_buffer(1)  # a random target: the best step size is about 0
    # a huge step size overshoots, so the loss grows with lr (dL/dlr > 0) and the reference's
    # step lr - lr_lr * dL/dlr is negative from the first iteration on
    s = mtt(x, y, 3, experts=buf, model_fn=mlp, steps=30, syn_steps=3, expert_epochs=1, lr_init=3.0, lr_lr=10.0,
            lr_img=1e-3, generator=0)
    lrs = [3.0] + s.info["lrs"]
    assert s.info["losses"][0] > 1 and lrs[1] == pytest.approx(1.5)  # pushed down, by at most a factor 2
    assert all(0 < b < math.inf and 0.5 - 1e-12 <= b / a <= 2.0 + 1e-12 for a, b in zip(lrs, lrs[1:]))
    assert s.lr < 1e-3 and s.info["losses"][-1] == pytest.approx(1.0, abs=1e-3) and not s.info["skipped"]


def test_nan_guard_skips_the_update_and_keeps_the_images_finite():
    x, y = toy()
    good = hand_buffer().trajectories[0]
    theta = good[0]
    buf = ExpertBuffer(torch.stack([torch.stack([theta, theta]), good]))  # expert 0: target == start, 0 / 0
    s = mtt(x, y, 2, experts=buf, model_fn=mlp, steps=8, syn_steps=2, expert_epochs=1, lr_img=1.0,
            callback_every=1, generator=0)
    skipped = s.info["skipped"]
    assert 0 < len(skipped) < 8  # some steps drew the degenerate expert, some the good one
    snaps = dict(s.history)
    for step in range(1, 9):
        assert math.isfinite(s.info["losses"][step - 1]) == (step not in skipped)
        if step in skipped:  # no update at a skipped step
            assert torch.equal(snaps[step], snaps[step - 1])
    assert torch.isfinite(s.x).all() and not torch.equal(s.x, s.history[0][1])


def test_every_step_skipped_is_an_error_not_a_result():
    x, y = toy()
    theta = hand_buffer().trajectories[0, 0]
    buf = ExpertBuffer(torch.stack([theta, theta])[None])  # target == start: 0 in the denominator at every step
    with pytest.raises(FloatingPointError, match="mtt: every one of its 3 steps .* skipped"):
        mtt(x, y, 2, experts=buf, model_fn=mlp, steps=3, syn_steps=2, expert_epochs=1, lr_img=1.0, generator=0)


def test_expert_buffer_size_is_exact_and_matches_the_tensor():
    x, y = toy(dtype=torch.float32)
    n_params = sum(p.numel() for p in mlp(0).parameters())
    for dtype, nbytes in ((torch.float32, 4), (torch.bfloat16, 2), (torch.float16, 2)):
        buf = train_expert_trajectories(x, y, model_fn=mlp, n_experts=2, epochs=3, batch_size=8, dtype=dtype,
                                        generator=0)
        expected = 2 * (3 + 1) * n_params * nbytes
        assert expert_buffer_size(n_params, 2, 3, dtype) == expected
        assert expert_buffer_size(mlp, 2, 3, dtype) == expert_buffer_size(mlp(0), 2, 3, dtype) == expected
        assert buf.manifest["size_bytes"] == expected == buf.trajectories.numel() * buf.trajectories.element_size()
        assert buf.trajectories.dtype == dtype and (buf.n_experts, buf.epochs, buf.n_params) == (2, 3, n_params)


def test_experts_are_the_sgd_epochs_they_claim():
    x, y = toy(dtype=torch.float32)
    buf = train_expert_trajectories(x, y, model_fn=mlp, n_experts=1, epochs=2, lr=0.1, batch_size=30, generator=0)
    gen = torch.Generator().manual_seed(0)
    net = mlp(int(torch.randint(0, 2**62, (1,), generator=gen)))
    theta = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    assert torch.equal(buf.trajectories[0, 0], theta)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for epoch in (1, 2):  # full batch: the minibatch order does not matter
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        assert torch.allclose(buf.trajectories[0, epoch], torch.nn.utils.parameters_to_vector(net.parameters()),
                              atol=1e-6)


def test_half_precision_buffer_is_a_rounding_of_the_float32_one():
    x, y = toy(dtype=torch.float32)
    full = train_expert_trajectories(x, y, model_fn=mlp, n_experts=1, epochs=2, generator=3)
    half = train_expert_trajectories(x, y, model_fn=mlp, n_experts=1, epochs=2, generator=3, dtype=torch.bfloat16)
    assert torch.equal(half.trajectories, full.trajectories.to(torch.bfloat16))


def test_round_trip_with_checksum(tmp_path):
    x, y = toy(dtype=torch.float32)
    path = tmp_path / "experts.pt"
    buf = train_expert_trajectories(x, y, model_fn=mlp, n_experts=2, epochs=2, generator=0, path=path)
    loaded = load_expert_trajectories(path)
    assert torch.equal(loaded.trajectories, buf.trajectories) and loaded.manifest == buf.manifest
    m = buf.manifest
    assert m["data_shape"] == [30, 4] and m["epochs"] == 2 and m["lr"] == 0.01 and m["dtype"] == "float32"
    assert m["model"] == "MLP" and len(m["sha256"]) == 64
    # mtt accepts the path and gives the same result as the buffer
    a = mtt(x, y, 2, experts=path, model_fn=mlp, steps=2, syn_steps=2, lr_img=1.0, generator=1)
    b = mtt(x, y, 2, experts=buf, model_fn=mlp, steps=2, syn_steps=2, lr_img=1.0, generator=1)
    assert torch.equal(a.x, b.x)
    blob = torch.load(path, weights_only=True)
    blob["trajectories"][0, 1, 0] += 1.0  # corrupt one number
    torch.save(blob, path)
    with pytest.raises(ValueError, match="'path'.*SHA-256"):
        load_expert_trajectories(path)
    with pytest.raises(ValueError, match="'path'"):
        load_expert_trajectories(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="'path'"):
        load_expert_trajectories(tmp_path / "other.pt")
    with pytest.raises(TypeError, match="'path'"):
        load_expert_trajectories(3)


def test_deterministic_with_minibatches_checkpoint_and_augment():
    x, y = toy(dtype=torch.float32)
    buf = train_expert_trajectories(x, y, model_fn=mlp, n_experts=3, epochs=4, generator=0)

    def jitter(xb, generator):
        return xb + 0.1 * torch.randn(xb.shape, generator=generator)

    runs = [distill("mtt", x, y, 3, experts=buf, model_fn=mlp, steps=4, syn_steps=3, batch_syn=4, lr_img=10.0,
                    augment=jitter, checkpoint=c, generator=g) for c, g in ((False, 7), (False, 7), (True, 7), (False, 8))]
    assert torch.equal(runs[0].x, runs[1].x) and not torch.equal(runs[0].x, runs[3].x)
    assert torch.allclose(runs[0].x, runs[2].x, atol=1e-6)  # checkpointing changes memory, not the result
    assert runs[0].info["losses"] == pytest.approx(runs[2].info["losses"], rel=1e-5)
    assert [h[0] for h in runs[0].history] == [0, 1, 2, 3, 4] and runs[0].info["hyperparameters"]["batch_syn"] == 4


def test_training_on_the_set_lowers_the_matching_loss():
    x, y = toy(dtype=torch.float32, n=60)
    buf = train_expert_trajectories(x, y, model_fn=mlp, n_experts=2, epochs=3, lr=0.1, batch_size=10, generator=0)
    s = mtt(x, y, 2, experts=buf, model_fn=mlp, steps=60, syn_steps=5, expert_epochs=2, lr_img=30.0, lr_init=0.1,
            generator=0)
    first, last = sum(s.info["losses"][:10]) / 10, sum(s.info["losses"][-10:]) / 10
    assert last < first and not s.info["skipped"]


@pytest.mark.parametrize(
    "kwargs, error, param",
    [
        (dict(ipc=16), ValueError, "ipc"),
        (dict(experts="nowhere.pt"), ValueError, "path"),
        (dict(experts=torch.zeros(1, 2, 23)), TypeError, "experts"),
        (dict(experts=ExpertBuffer(torch.zeros(1, 3, 10))), ValueError, "experts"),
        (dict(steps=0), ValueError, "steps"),
        (dict(syn_steps=0), ValueError, "syn_steps"),
        (dict(expert_epochs=3), ValueError, "expert_epochs"),
        (dict(expert_epochs=0), ValueError, "expert_epochs"),
        (dict(max_start_epoch=3), ValueError, "max_start_epoch"),
        (dict(max_start_epoch=0), ValueError, "max_start_epoch"),
        (dict(lr_img=0.0), ValueError, "lr_img"),
        (dict(lr_img=-1.0), ValueError, "lr_img"),
        (dict(lr_lr=-1e-5), ValueError, "lr_lr"),
        (dict(lr_init=0.0), ValueError, "lr_init"),
        (dict(batch_syn=0), ValueError, "batch_syn"),
        (dict(batch_syn=5), ValueError, "batch_syn"),
        (dict(augment="dsa"), TypeError, "augment"),
        (dict(checkpoint=1), TypeError, "checkpoint"),
        (dict(init="zeros"), ValueError, "init"),
        (dict(callback=1), TypeError, "callback"),
        (dict(callback_every=0), ValueError, "callback_every"),
        (dict(progress=1), TypeError, "progress"),
        (dict(generator=-3), ValueError, "generator"),
        (dict(model_fn=lambda generator: MLP(5, 2, hidden=(3,), generator=generator)), ValueError, "'x'"),
    ],
)
def test_bad_inputs(kwargs, error, param):
    x, y = toy(dtype=torch.float32)
    buf = ExpertBuffer(torch.zeros(1, 3, 23))
    options = dict(ipc=2, experts=buf, model_fn=mlp, steps=1, syn_steps=1, expert_epochs=1)
    options.update(kwargs)
    ipc = options.pop("ipc")
    with pytest.raises(error, match=param):
        mtt(x, y, ipc, **options)


@pytest.mark.parametrize(
    "kwargs, error, param",
    [
        (dict(n_experts=0), ValueError, "n_experts"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(momentum=1.0), ValueError, "momentum"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(dtype=torch.int8), TypeError, "dtype"),
        (dict(augment=5), TypeError, "augment"),
        (dict(path=5), TypeError, "path"),
        (dict(path="/nonexistent-folder/x.pt"), ValueError, "path"),
        (dict(generator="seed"), TypeError, "generator"),
        (dict(progress=None), TypeError, "progress"),
        (dict(model_fn=None), TypeError, "model_fn"),
        (dict(model_fn=lambda generator: nn.Linear(3, 2)), ValueError, "'x'"),
    ],
)
def test_bad_expert_inputs(kwargs, error, param):
    x, y = toy(dtype=torch.float32)
    options = dict(model_fn=mlp, n_experts=1, epochs=1)
    options.update(kwargs)
    with pytest.raises(error, match=param):
        train_expert_trajectories(x, y, **options)
    with pytest.raises(TypeError, match="dtype"):
        expert_buffer_size(10, 1, 1, torch.int32)
    with pytest.raises(ValueError, match="n_experts"):
        expert_buffer_size(10, 0, 1)
    with pytest.raises(TypeError, match="'model'"):
        expert_buffer_size("net", 1, 1)
    with pytest.raises(TypeError, match="'y'"):
        train_expert_trajectories(x, y.float(), model_fn=mlp, n_experts=1, epochs=1)
