"""What ``vaereg train`` takes beside its configuration file: the model kind, the device and the overrides.

Examples
--------
>>> TrainingSettings().kind
'vae-regression'
>>> TrainingSettings(epochs=0)
Traceback (most recent call last):
...
vaereg_core.settings.fields.SettingError: training setting epochs must be at least 1, got 0
"""

from __future__ import annotations

from dataclasses import dataclass

from vaereg_core.settings.fields import check_settings, setting

MODEL_KINDS = ("vae-regression", "regression-only")
"""The trainable networks: the VAE-Regression model and the Reg-only 3-D CNN baseline (trunk + regressor)."""


@dataclass(frozen=True)
class TrainingSettings:
    """One training run's choices; ``None`` keeps the configuration's own value."""

    kind: str = setting("vae-regression", help="the model, or the Reg-only 3-D CNN baseline (trunk + regressor)", choices=MODEL_KINDS)
    device: str = setting("auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps", device=True)
    epochs: int | None = setting(None, help="override train.max_epochs", minimum=1, label="Epochs")
    seed: int | None = setting(None, help="override train.seed", minimum=0)
    split_seed: int | None = setting(None, help="override the dataset's split seed (repeated random splits)", minimum=0)
    time_limit: float | None = setting(None, help="stop after the last epoch that ends within this wall time (leased machines, sessions)",
                                       unit="min", minimum=0.0, metavar="MINUTES")

    def __post_init__(self) -> None:
        check_settings(self, "training")

    def config_overrides(self) -> dict:
        """The ``train`` section fields of the configuration these settings replace."""
        pairs = (("max_epochs", self.epochs), ("seed", self.seed), ("split_seed", self.split_seed))
        return {k: v for k, v in pairs if v is not None}
