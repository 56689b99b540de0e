"""Experiments that measure the models and the inverse design, and the reports they write.

Each module runs one study for a command of the same name and writes its
Markdown report with plots: :mod:`~vaereg_core.experiments.forward_evaluation`
(``vaereg evaluate``: trained runs against the paper's baselines),
:mod:`~vaereg_core.experiments.inverse_evaluation` (``vaereg evaluate-inverse``:
prior candidates and annealing checked by the solver) and
:mod:`~vaereg_core.experiments.components` (``vaereg evaluate-components``: the
number of mixture components). The command line only parses their options.
"""
