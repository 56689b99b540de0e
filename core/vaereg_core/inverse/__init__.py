"""Inverse design: targets, mixture candidates, latent-space annealing, the PCA map."""

from vaereg_core.inverse.annealing import AnnealResult, AnnealSettings, Cancelled, anneal_latent
from vaereg_core.inverse.latent_map import LatentMap, latent_map
from vaereg_core.inverse.targets import Target, TargetError, parse_target

__all__ = ["AnnealResult", "AnnealSettings", "Cancelled", "LatentMap", "Target", "latent_map", "TargetError", "anneal_latent", "parse_target"]
