"""The solvers' device-generic route (issue 14, item 6): what runs on a GPU runs here on the CPU.

The fused values-only step (:class:`cai.ops.values_step.SoftValueStep`) and the SciPy product of
:func:`cai.ops.backup.action_operator` are CPU paths; off the CPU the solvers take the plain torch
route. That route is checked here on the CPU: with the fused step disabled the solvers agree with
it entry by entry, and the torch-only sparse operator equals SciPy's.
"""
import types

import pytest
import torch

import cai
from cai.mdp.tabular import uniform_action_prior
from cai.ops import backup
from cai.ops.values_step import SoftValueStep
from cai.worlds.builders import gridworld, random_mdp


def test_fused_step_declines_off_the_cpu():
    fake = types.SimpleNamespace(reward_layout="sa", batch_shape=torch.Size([]), device=torch.device("cuda"))
    assert SoftValueStep.for_solver(fake, torch.tensor(1.0), "expectation", None) is None
    assert SoftValueStep.for_solver(fake, torch.tensor(1.0), "log_expectation", None) is None


def test_torch_only_sparse_action_operator_equals_scipys():
    mdp = gridworld("S..\n.#.\n..G", horizon=4, slip=0.2, sparse=True)
    w = torch.rand(mdp.n_states, mdp.n_actions, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = backup._action_operator_csr(mdp.transitions, w).to_dense()
    got = backup._action_operator_csr_torch(mdp.transitions, w)
    assert got.layout == torch.sparse_csr
    torch.testing.assert_close(got.to_dense(), ref, atol=1e-15, rtol=0)
    dense = torch.einsum("sa,sat->st", w, mdp.transitions.to_dense().reshape(mdp.n_states, mdp.n_actions, -1))
    torch.testing.assert_close(ref, dense, atol=1e-15, rtol=0)


def _solves(mdp):
    stat = mdp.horizon is None
    out = {
        "soft_vi": cai.soft_value_iteration(mdp, 0.7, keep="values").V,
        "soft_vi_all": cai.soft_value_iteration(mdp, 0.7).V,
        "vi": cai.value_iteration(mdp, keep="values").V,
        # (rewards <= 0 and a normalised prior: the stationary evidence is finite)
        "exact": cai.backward_messages(mdp.replace(rewards=mdp.rewards - 1), 0.7, uniform_action_prior(mdp),
                                       keep="values").V,
    }
    if stat:
        out["pi"] = cai.policy_iteration(mdp, 0.7).V
        out["mpi"] = cai.modified_policy_iteration(mdp, sweeps=3).V
    return out


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("horizon", [6, None])
def test_solvers_without_the_cpu_fast_paths_agree(sparse, horizon, monkeypatch):
    kw = dict(horizon=horizon, discount=0.9 if horizon is None else None)
    mdp = random_mdp(12, 3, 4, seed=1, sparse=sparse, reward_scale=0.3, **kw)
    fused = _solves(mdp)
    monkeypatch.setattr(SoftValueStep, "for_solver", classmethod(lambda cls, *a, **k: None))
    monkeypatch.setattr(backup, "_action_operator_csr", backup._action_operator_csr_torch)
    monkeypatch.setattr("cai.dp.soft_vi._hard_values_step", lambda mdp, a: None)
    general = _solves(mdp)
    for k in fused:
        scale = max(1.0, general[k].abs().max().item())
        # stationary solves stop where their bound says (within 1e-10 of the same fixed point)
        atol = 1e-12 * scale if horizon is not None else 3e-10 * scale
        torch.testing.assert_close(fused[k], general[k], atol=atol, rtol=0, msg=k)


def test_float32_solves_track_float64():
    mdp = random_mdp(10, 3, 3, seed=2, horizon=None, discount=0.9)
    m32 = mdp.to(dtype=torch.float32)
    for f in (lambda m: cai.soft_value_iteration(m, 0.5, tol=1e-5), lambda m: cai.value_iteration(m, tol=1e-5),
              lambda m: cai.policy_iteration(m, 0.5, tol=1e-5), lambda m: cai.modified_policy_iteration(m, tol=1e-5)):
        v32, v64 = f(m32).V, f(mdp).V
        assert v32.dtype == torch.float32
        torch.testing.assert_close(v32.double(), v64, atol=1e-4 * max(1.0, v64.abs().max().item()), rtol=0)
