"""The reusable training callbacks: each fires when it should, and each result is checked against an
independent path (the loop's own evaluation, an uninterrupted run, a plain-Python stopping rule, the
learner's ``history_``). Runs are tiny (a few hundred steps, one hidden layer of 16 units)."""
import math
import sys

import numpy as np
import pytest

from cai.algorithms.deep.callbacks import BaseCallback, CallbackList, CheckpointCallback, EarlyStopping, EvalCallback, TensorBoardCallback
from cai.algorithms.deep.sac import SAC
from cai.algorithms.deep.soft_dqn import SoftDQN
from cai.algorithms.deep.sql import SQL, SQLConfig
from tests.algorithms.deep.test_persistence import assert_same_learner, dqn_config, sac_config

gym = pytest.importorskip("gymnasium")


class Counter(BaseCallback):
    """Counts steps and hook calls; returns False at ``stop_at``."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.stop_at, self.steps, self.starts, self.ends = stop_at, [], 0, 0

    def on_training_start(self, local):
        super().on_training_start(local)
        self.starts += 1

    def on_step(self, local):
        self.steps.append(local["step"])
        return local["step"] != self.stop_at

    def on_training_end(self, local):
        self.ends += 1


# --------------------------------------------------------------------------- EvalCallback


def test_eval_callback_gives_the_loops_own_evaluations_and_does_not_change_training(tmp_path):
    builtin = SoftDQN(dqn_config(eval_every=50, eval_episodes=2)).fit("CartPole-v1", 200)
    cb = EvalCallback("CartPole-v1", eval_every=50, n_episodes=2, best_model_path=tmp_path / "best.pt")
    agent = SoftDQN(dqn_config()).fit("CartPole-v1", 200, callback=cb)
    assert cb.n_calls == 200
    assert cb.eval_steps == agent.history_.eval_steps == builtin.history_.eval_steps == [50, 100, 150, 200]
    assert cb.eval_returns == agent.history_.eval_returns == builtin.history_.eval_returns   # exact: same seeds
    assert_same_learner(builtin, agent)          # evaluating in a callback leaves training as it was
    means = [float(np.mean(r)) for r in builtin.history_.eval_returns]
    assert cb.last_mean_return == means[-1]
    assert cb.best_mean_return == max(means) and cb.best_step == 50 * (1 + means.index(max(means)))
    best = SoftDQN.load(tmp_path / "best.pt")
    assert best.num_timesteps_ == cb.best_step                   # the first time the best was reached
    obs = np.array([0.01, -0.02, 0.03, 0.04], np.float32)
    assert best.act(obs) in (0, 1)


def test_eval_callback_on_sql_samples_like_the_loops_evaluation():
    """SQL acts by sampling (torch's generator): the callback must evaluate with the same draws."""
    cfg = dict(hidden_sizes=(16,), batch_size=8, learning_starts=30, progress=False, seed=2, buffer_size=1000,
               value_particles=4, kernel_particles=4)
    builtin = SQL(SQLConfig(**cfg, eval_every=40, eval_episodes=1)).fit("Pendulum-v1", 80)
    cb = EvalCallback("Pendulum-v1", eval_every=40, n_episodes=1)
    agent = SQL(SQLConfig(**cfg)).fit("Pendulum-v1", 80, callback=cb)
    assert cb.eval_returns == builtin.history_.eval_returns and len(cb.eval_returns) == 2
    assert_same_learner(builtin, agent)


def test_eval_callback_fixed_seed_repeats_the_same_start_states():
    cb = EvalCallback("CartPole-v1", eval_every=30, n_episodes=1, seed=7, record_in_history=False)
    agent = SoftDQN(dqn_config(learning_starts=1000)).fit("CartPole-v1", 90, callback=cb)   # no updates: one policy
    assert agent.history_.eval_steps == []                       # not recorded in the history
    assert cb.eval_returns[0] == cb.eval_returns[1] == cb.eval_returns[2]


# --------------------------------------------------------------------------- CheckpointCallback


def test_checkpoint_callback_fires_on_schedule_and_its_checkpoint_resumes_bit_for_bit(tmp_path):
    cb = CheckpointCallback(60, tmp_path / "ck" / "sac_{step}.pt")
    straight = SAC(sac_config()).fit("Pendulum-v1", 200, callback=cb)
    assert cb.n_calls == 200
    assert cb.saved_paths == [str(tmp_path / "ck" / f"sac_{s}.pt") for s in (60, 120, 180)]
    resumed = SAC.load(cb.saved_paths[1])
    assert resumed.num_timesteps_ == 120
    resumed.fit(None, 80, reset_num_timesteps=False)             # continue from step 120 to 200
    assert_same_learner(straight, resumed)


def test_checkpoint_callback_without_step_overwrites_one_file(tmp_path):
    cb = CheckpointCallback(25, tmp_path / "last.pt")
    SoftDQN(dqn_config()).fit("CartPole-v1", 110, callback=cb)
    assert cb.saved_paths == [str(tmp_path / "last.pt")] * 4
    assert SoftDQN.load(tmp_path / "last.pt").num_timesteps_ == 100


# --------------------------------------------------------------------------- EarlyStopping


def reference_stop(means, every, threshold=None, patience=None, min_delta=0.0):
    """Where the stopping rule stops, written out on the list of evaluation means (None: never)."""
    best, bad = -math.inf, 0
    for i, m in enumerate(means):
        if m > best + min_delta:
            best, bad = m, 0
        else:
            bad += 1
        if (threshold is not None and m >= threshold) or (patience is not None and bad >= patience):
            return (i + 1) * every
    return None


@pytest.fixture(scope="module")
def cartpole_evaluations():
    """Evaluation means of a 400-step soft DQN run on CartPole, every 40 steps (the reference run)."""
    cb = EvalCallback("CartPole-v1", eval_every=40, n_episodes=1)
    SoftDQN(dqn_config(learning_starts=20)).fit("CartPole-v1", 400, callback=cb)
    return [float(np.mean(r)) for r in cb.eval_returns]


@pytest.mark.parametrize("rule", ["threshold", "patience", "patience-delta", "first", "never-improves"])
def test_early_stopping_stops_at_the_step_the_rule_gives(cartpole_evaluations, rule):
    means = cartpole_evaluations
    if rule == "threshold":      # the first evaluation to reach a value reached later than the first one
        later = [m for m in means[1:] if m > means[0]]
        kw = dict(threshold=later[0] if later else means[0])
    elif rule == "patience":
        kw = dict(patience=2)
    elif rule == "patience-delta":
        kw = dict(patience=2, min_delta=0.5)
    elif rule == "first":
        kw = dict(threshold=-1e9)
    else:
        kw = dict(patience=3, min_delta=1e9)
    expected = reference_stop(means, 40, **kw)
    if rule == "first":
        assert expected == 40
    if rule == "never-improves":
        assert expected == 160                                    # the first sets the best; 3 more fail
    es = EarlyStopping(**kw)
    cb = EvalCallback("CartPole-v1", eval_every=40, n_episodes=1)
    agent = SoftDQN(dqn_config(learning_starts=20)).fit("CartPole-v1", 400, callback=[cb, es])
    stop = expected if expected is not None else 400
    assert agent.num_timesteps_ == stop and es.n_calls == stop
    assert [float(np.mean(r)) for r in cb.eval_returns] == means[:stop // 40]      # the same run up to the stop
    assert es.stopped_step == expected
    if expected is not None:
        assert es.reason == ("threshold" if "threshold" in kw else "patience")


def test_early_stopping_reads_the_loops_own_evaluations():
    es = EarlyStopping(threshold=-1e9)
    agent = SoftDQN(dqn_config(eval_every=30, eval_episodes=1)).fit("CartPole-v1", 200, callback=es)
    assert agent.num_timesteps_ == 30 and es.stopped_step == 30


# --------------------------------------------------------------------------- CallbackList and hooks


def test_callback_list_calls_everything_in_order_and_stops_when_one_says_so():
    a, b = Counter(stop_at=37), Counter()
    order = []
    lst = CallbackList([a, lambda local: order.append(local["step"]), b])
    agent = SoftDQN(dqn_config()).fit("CartPole-v1", 100, callback=lst)
    assert agent.num_timesteps_ == 37
    assert a.steps == b.steps == order == list(range(1, 38))     # b still called at the stopping step
    assert lst.n_calls == 37 and (a.starts, a.ends, b.starts, b.ends) == (1, 1, 1, 1)
    agent.fit(None, 10, reset_num_timesteps=False, callback=lst)  # hooks once per fit
    assert (a.starts, a.ends) == (2, 2) and a.steps[-1] == 47


def test_end_hook_runs_when_a_callback_raises():
    c = Counter()

    def boom(local):
        if local["step"] == 5:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        SoftDQN(dqn_config()).fit("CartPole-v1", 50, callback=[c, boom])
    assert (c.starts, c.ends, len(c.steps)) == (1, 1, 5)


# --------------------------------------------------------------------------- TensorBoard


def read_scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def expected_scalars(history, since=None):
    """The history as TensorBoard scalars (float32 values), optionally only entries after ``since``."""
    since = since or dict(losses={}, episodes=0, evals=0)
    out = {f"train/{k}": [(s, np.float32(v)) for s, v in curve[since["losses"].get(k, 0):]]
           for k, curve in history.losses.items()}
    out["rollout/episode_return"] = [(s, np.float32(v)) for s, v in
                                     zip(history.episode_steps[since["episodes"]:], history.episode_returns[since["episodes"]:])]
    out["eval/mean_return"] = [(s, np.float32(np.mean(r))) for s, r in
                               zip(history.eval_steps[since["evals"]:], history.eval_returns[since["evals"]:])]
    return {k: v for k, v in out.items() if v}


def test_tensorboard_scalars_are_the_learners_history(tmp_path):
    pytest.importorskip("tensorboard")
    tb = TensorBoardCallback(tmp_path / "tb", flush_every=50)
    agent = SAC(sac_config(eval_every=100, eval_episodes=1)).fit("Pendulum-v1", 200, callback=tb)
    got = read_scalars(tmp_path / "tb")
    assert set(got) == {"train/critic", "train/actor", "train/alpha_loss", "train/alpha", "train/entropy",
                        "rollout/episode_return", "eval/mean_return"}
    assert got == expected_scalars(agent.history_)
    assert len(got["train/alpha"]) == agent.n_updates_ // 10 and got["eval/mean_return"][-1][0] == 200
    # a resumed fit with the same callback appends only what is new (no step written twice)
    agent.fit(None, 60, reset_num_timesteps=False, callback=tb)
    got = read_scalars(tmp_path / "tb")
    assert got == expected_scalars(agent.history_)


def test_tensorboard_writes_only_what_happens_during_its_fits(tmp_path):
    pytest.importorskip("tensorboard")
    agent = SoftDQN(dqn_config()).fit("CartPole-v1", 100)
    h = agent.history_
    since = dict(losses={k: len(v) for k, v in h.losses.items()}, episodes=len(h.episode_returns), evals=0)
    agent.fit(None, 100, reset_num_timesteps=False, callback=TensorBoardCallback(tmp_path / "tb"))
    got = read_scalars(tmp_path / "tb")
    assert got == expected_scalars(h, since) and min(s for s, _ in got["train/loss"]) > 100


def test_tensorboard_missing_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"control-as-inference\[tensorboard\]"):
        TensorBoardCallback(tmp_path)


# --------------------------------------------------------------------------- bad input


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(ValueError, match="eval_every"):
        EvalCallback("CartPole-v1", eval_every=0)
    with pytest.raises(ValueError, match="n_episodes"):
        EvalCallback("CartPole-v1", eval_every=5, n_episodes=1.5)
    with pytest.raises(TypeError, match="eval_env"):
        EvalCallback(3, eval_every=5)
    with pytest.raises(ValueError, match="save_every"):
        CheckpointCallback(-1, tmp_path / "x.pt")
    with pytest.raises(TypeError, match="path"):
        CheckpointCallback(5, 7)
    with pytest.raises(ValueError, match="threshold, patience"):
        EarlyStopping()
    with pytest.raises(ValueError, match="threshold"):
        EarlyStopping(threshold=math.nan)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="min_delta"):
        EarlyStopping(patience=2, min_delta=-1.0)
    with pytest.raises(TypeError, match="callbacks"):
        CallbackList(lambda local: True)
    with pytest.raises(TypeError, match=r"callbacks\[1\]"):
        CallbackList([Counter(), "no"])
    with pytest.raises(ValueError, match="flush_every"):
        TensorBoardCallback(tmp_path, flush_every=0)
