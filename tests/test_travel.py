"""Objects that travel: every model and result pickles, deep-copies and round-trips save/load
bit for bit (``torch.equal`` on every tensor), and an MDP solved in a spawned worker process
gives the same answer as here."""
import copy
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import cai
from cai.algorithms.tabular.lmdp import LMDP
from cai.exact.messages import ForwardMessages
from cai.gaussian.messages import lg_backward_messages, lg_forward_messages
from cai.mdp.linear_gaussian import LinearGaussianSystem
from cai.solution import Solution
from cai.worlds.builders import chain, gridworld, random_mdp


def _pickle(x):
    return pickle.loads(pickle.dumps(x))


def _same(a, b, path="x"):
    """Recursive exact equality: tensors by ``torch.equal`` (and dtype), containers by element."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.layout == b.layout, path
        if a.layout == torch.sparse_csr:
            for f in ("crow_indices", "col_indices", "values"):
                assert torch.equal(getattr(a, f)(), getattr(b, f)()), f"{path}.{f}"
        else:
            assert torch.equal(a, b), path
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), path
    else:
        assert a == b, path


def _same_mdp(a, b):
    for k in ("transitions", "rewards", "terminal_rewards", "initial", "reward_layout", "horizon", "discount",
              "state_names", "action_names", "batch_shape", "dtype"):
        _same(getattr(a, k), getattr(b, k), k)
    assert dict(a.metadata) == dict(b.metadata)


def _same_solution(a, b):
    _same_mdp(a.mdp, b.mdp)
    for k in ("V", "Q", "log_policy", "policy", "alpha", "value", "method", "iterations", "residual"):
        _same(getattr(a, k), getattr(b, k), k)
    for k in ("log_prior", "log_evidence"):
        assert (getattr(a, k) is None) == (getattr(b, k) is None), k
        if getattr(a, k) is not None:
            _same(getattr(a, k), getattr(b, k), k)
    t = 0 if a.mdp.horizon is not None else None
    _same(a.q_at(t), b.q_at(t), "q_at")


def _mdps():
    P = random_mdp(5, 3, 2, seed=0, horizon=4)
    flat = P.dense_transitions().reshape(15, 5).numpy()
    return {
        "grid": gridworld("S..\n.#G", slip=0.1, horizon=5),
        "stationary": chain(5, horizon=None, discount=0.9, slip=0.1),
        "sparse": cai.TabularMDP(sp.csr_matrix(flat), P.rewards, horizon=4),
        "batched-tsa": cai.TabularMDP(P.transitions, torch.randn(2, 4, 5, 3, dtype=torch.float64), horizon=4,
                                      reward_layout="tsa", state_names=list("abcde")),
    }


@pytest.mark.parametrize("name", list(_mdps()))
def test_tabular_mdp_travels(name, tmp_path):
    mdp = _mdps()[name]
    for back in (_pickle(mdp), copy.deepcopy(mdp), cai.TabularMDP.load(mdp.save(tmp_path / "m"))):
        _same_mdp(mdp, back)
        assert back.metadata is not mdp.metadata
        with pytest.raises(AttributeError):
            back.horizon = 3                                        # still immutable
        _same(cai.soft_value_iteration(back, 0.7).V, cai.soft_value_iteration(mdp, 0.7).V)
    # the copy's own in-place check works (its versions were recorded on arrival)
    back = _pickle(mdp)
    back.rewards.add_(1.0)
    with pytest.raises(ValueError, match="rewards was modified in place"):
        cai.soft_value_iteration(back)


_FIN = lambda: gridworld("S..\n.#G", slip=0.1, horizon=5)  # noqa: E731
_STA = lambda: gridworld("S..\n.#G", slip=0.1, horizon=None, discount=0.9)  # noqa: E731
_PRIOR = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)

SOLUTIONS = {
    "exact": lambda: cai.backward_messages(_FIN(), 0.5),
    "exact-stationary-prior": lambda: cai.backward_messages(_STA(), 0.5, _PRIOR),
    "soft-vi-values": lambda: cai.soft_value_iteration(_FIN(), 0.5, keep="values"),
    "soft-vi-batch": lambda: cai.soft_value_iteration(_FIN(), torch.tensor([0.2, 1.0], dtype=torch.float64)),
    "vi-stationary": lambda: cai.value_iteration(_STA()),
    "policy-evaluation": lambda: cai.soft_policy_evaluation(_FIN(), torch.full((5, 6, 4), 0.25), 0.5),
}


@pytest.mark.parametrize("name", list(SOLUTIONS))
def test_solution_travels(name, tmp_path):
    sol = SOLUTIONS[name]()
    path = sol.save(tmp_path / "sol")
    assert path.endswith(".npz")
    for back in (_pickle(sol), copy.deepcopy(sol), Solution.load(tmp_path / "sol")):
        _same_solution(sol, back)


def test_pickled_together_the_mdp_identity_survives(tmp_path):
    """forward_messages needs the messages' own MDP object: pickled together, they stay paired."""
    mdp = gridworld("S..\n.#G", slip=0.1, horizon=5)
    sol = cai.backward_messages(mdp, 0.5)
    mdp2, sol2 = _pickle((mdp, sol))
    assert sol2.mdp is mdp2
    fm, fm2 = cai.forward_messages(mdp, sol), cai.forward_messages(mdp2, sol2)
    _same(fm.log_state, fm2.log_state)
    loaded = Solution.load(sol.save(tmp_path / "s"))
    _same(cai.forward_messages(loaded.mdp, loaded).log_state_action, fm.log_state_action)


def test_forward_messages_lmdp_and_linear_gaussian_travel(tmp_path):
    mdp = gridworld("S..\n.#G", slip=0.1, horizon=5)
    fm = cai.forward_messages(mdp, cai.backward_messages(mdp, 0.5))
    for back in (_pickle(fm), copy.deepcopy(fm), ForwardMessages.load(fm.save(tmp_path / "fm"))):
        _same(tuple(fm), tuple(back))

    P = torch.rand(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.1
    lm = LMDP(P / P.sum(-1, keepdim=True), torch.linspace(0.1, 1.0, 6), terminal=[5], state_names=list("abcdef"))
    for back in (_pickle(lm), copy.deepcopy(lm), LMDP.load(lm.save(tmp_path / "lm"))):
        _same((back.passive, back.state_cost, back.terminal, back.state_names),
              (lm.passive, lm.state_cost, lm.terminal, lm.state_names))
        _same(tuple(back.solve_first_exit()), tuple(lm.solve_first_exit()))
    fe = lm.solve_first_exit()
    _same(tuple(_pickle(fe)), tuple(fe))

    system = LinearGaussianSystem.from_lqr(torch.eye(2), torch.ones(2, 1), torch.eye(2), torch.eye(1), horizon=3,
                                           W=0.1 * torch.eye(2), mu0=torch.tensor([1.0, -1.0]), Sigma0=0.2 * torch.eye(2))
    for back in (_pickle(system), copy.deepcopy(system), LinearGaussianSystem.load(system.save(tmp_path / "lg"))):
        assert back == system and hash(back) == hash(system)
        assert back != LinearGaussianSystem(**{**{k: getattr(system, k) for k in LinearGaussianSystem.TENSOR_FIELDS},
                                               "horizon": 3, "mu0": torch.zeros(2)})
        _same(tuple(lg_backward_messages(back, 0.5)), tuple(lg_backward_messages(system, 0.5)))
    msg = lg_backward_messages(system, 0.5)
    _same(tuple(_pickle(msg)), tuple(msg))
    _same(tuple(lg_forward_messages(system, _pickle(msg))), tuple(lg_forward_messages(system, msg)))


def test_mdp_solved_in_a_spawned_worker_gives_the_same_answer():
    mdp = gridworld("S..\n.#G", slip=0.1, horizon=5)
    here = cai.backward_messages(mdp, 0.5)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(cai.backward_messages, mdp, 0.5).result(timeout=120)
    _same_solution(here, there)
    _same(here.log_evidence, there.log_evidence)


def test_fitted_reward_learners_travel():
    """Issue 16's learners follow the others' conventions: a fitted MaxEntIRL, AIRL and Bayesian IRL
    pickle and deep-copy with every learned tensor (``*_`` attribute) unchanged, and the copy acts
    (its log-likelihood of the demonstrations) exactly as the original."""
    from cai.algorithms.tabular.airl import AIRL
    from cai.algorithms.tabular.bayes_irl import BayesianIRL
    from cai.algorithms.tabular.irl import MaxEntIRL

    gen = torch.Generator().manual_seed(0)
    fin = gridworld("S..\n...\n..G", horizon=6)
    demos = cai.sample_trajectories(fin, cai.soft_value_iteration(fin, 1.0).policy, 40, generator=gen)
    disc = gridworld("S..\n...\n..G", horizon=None, discount=0.9)
    ddemos = cai.sample_trajectories(disc, cai.soft_value_iteration(disc, 1.0).policy, 40, generator=gen, length=8)
    fitted = [MaxEntIRL(fin, n_iter=15).fit(demos), AIRL(disc, n_iter=5).fit(ddemos),
              BayesianIRL(fin, method="laplace").fit(demos)]
    for learner in fitted:
        learned = {k: v for k, v in vars(learner).items() if k.endswith("_") and not k.startswith("_")}
        assert learned, type(learner).__name__
        for back in (_pickle(learner), copy.deepcopy(learner)):
            assert type(back) is type(learner)
            for k, v in learned.items():
                w = getattr(back, k)
                if isinstance(v, (torch.Tensor, tuple, list, float, int)) or v is None:
                    _same(v, w, f"{type(learner).__name__}.{k}")
                elif isinstance(v, Solution):
                    _same_solution(v, w)
                else:                                 # a new kind of learned attribute must be compared too
                    raise AssertionError(f"{type(learner).__name__}.{k}: no comparison for {type(v).__name__}")
            if isinstance(learner, MaxEntIRL):
                _same(back.log_likelihood(demos), learner.log_likelihood(demos))
