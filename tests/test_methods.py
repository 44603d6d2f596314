"""One vocabulary for methods: cai.methods names what Solution.method, the report and the CLI say."""
import pytest
import torch

import cai
from cai import cli
from cai.methods import ALIASES, METHODS, SUCCESSOR, VARIATIONAL, canonical_method, describe
from cai.report.compare import METHODS as REPORT_METHODS
from cai.worlds.builders import chain


def test_every_solver_reports_a_method_name_and_runs_its_successor_mode():
    mdp = chain(4)
    sols = {
        "exact": cai.backward_messages(mdp, 1.0),
        "soft_vi": cai.soft_value_iteration(mdp, 1.0),
        "vi": cai.value_iteration(mdp),
        "policy_evaluation": cai.soft_policy_evaluation(mdp, torch.full((mdp.horizon, mdp.n_states, mdp.n_actions), 1 / mdp.n_actions,
                                                                  dtype=torch.float64)),
    }
    for name, sol in sols.items():
        assert sol.method == name and name in METHODS and describe(name) == METHODS[name]
        assert sol._mode == SUCCESSOR[name]


def test_aliases_and_unknown_names():
    assert canonical_method("soft-vi") == "soft_vi" == canonical_method("soft_vi")
    for old, new in ALIASES.items():
        assert canonical_method(old) == new in METHODS
    for bad in ("soft vi", "magic", None, 3):
        with pytest.raises(ValueError, match="method"):
            canonical_method(bad)


def test_report_and_cli_use_the_vocabulary():
    assert set(REPORT_METHODS) == set(VARIATIONAL)
    for name, (method, description) in VARIATIONAL.items():
        assert method in METHODS and REPORT_METHODS[name][0] == description
    assert set(cli.METHODS) <= set(METHODS)      # (both spellings on the command line: tests/test_cli.py)
