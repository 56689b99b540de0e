"""The forward ensemble: several networks' symmetry-averaged predictions, weighted per constant, with a calibrated ±.

Each member predicts a Gaussian of log C for every cube-symmetric copy of a
structure (:meth:`LoadedModel.predict_transformed`). Per member the copies are
averaged; the members are combined with per-constant weights ``w`` fitted on
the validation split (a convex combination: the one with the lowest MAPE on a
simplex grid). The variance is that of the weighted mixture — the members' own
(aleatoric) variances, the spread over the symmetric copies and the members'
disagreement — times a per-constant factor ``scale²`` fitted on the validation
split (:func:`fit_scales`), so that the ± is neither over- nor underconfident.

A manifest ``MODEL.forward.json`` beside a model file names the members (files
relative to it, with their weights' checksums), the symmetry set, the weights
and the scales; :func:`~vaereg_core.model.inference.load_model` attaches it, so
the CLI and the app use the ensemble without flags. A member whose checksum no
longer matches makes the manifest stale: it is ignored, and the model predicts
alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from vaereg_core.errors import ModelFileError
from vaereg_core.symmetry import SYMMETRY_SETS, map_back, symmetries_for

if TYPE_CHECKING:
    from vaereg_core.model.inference import LoadedModel

FORMAT = "vaereg-forward-ensemble"
VERSION = 1
MANIFEST_SUFFIX = ".forward.json"
#: Member kinds, in the order a manifest lists them.
MEMBER_KINDS = ("network", "latent-svr", "feature-head")


def manifest_path(model_path: str | os.PathLike) -> Path:
    """Where a model file's ensemble manifest lives: ``NAME.forward.json`` beside ``NAME.pt``."""
    path = Path(model_path)
    return path.with_name(path.stem + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class MemberPrediction:
    """One member's symmetry-averaged Gaussians of log C, each (N, P): mean, own variance, spread over the copies."""

    mean: np.ndarray
    aleatoric: np.ndarray
    symmetry: np.ndarray

    @classmethod
    def from_transformed(cls, mean: np.ndarray, var: np.ndarray) -> "MemberPrediction":
        """From :meth:`LoadedModel.predict_transformed`'s (N, T, P) arrays: an equal-weight mixture over the copies.

        >>> p = MemberPrediction.from_transformed(np.array([[[1.0, 2.0], [3.0, 2.0]]]), np.full((1, 2, 2), 0.5))
        >>> p.mean.tolist(), p.variance.tolist()
        ([[2.0, 2.0]], [[1.5, 0.5]])
        """
        return cls(mean.mean(1), var.mean(1), mean.var(1))

    @property
    def variance(self) -> np.ndarray:
        """The member's whole variance: its own plus the spread over the symmetric copies."""
        return self.aleatoric + self.symmetry


def combine(parts: Sequence[MemberPrediction], weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mixture of the members' Gaussians: (mean, variance) of log C, (N, P).

    ``weights`` is (M, P), each column summing to one.

    >>> a = MemberPrediction(np.zeros((1, 1)), np.full((1, 1), 0.1), np.zeros((1, 1)))
    >>> b = MemberPrediction(np.ones((1, 1)), np.full((1, 1), 0.1), np.zeros((1, 1)))
    >>> m, v = combine([a, b], np.array([[0.5], [0.5]]))
    >>> float(m[0, 0]), round(float(v[0, 0]), 6)
    (0.5, 0.35)
    """
    w = np.asarray(weights, np.float64)[:, None, :]
    means = np.stack([p.mean for p in parts])
    own = np.stack([p.variance for p in parts])
    mean = (w * means).sum(0)
    return mean, (w * (own + (means - mean) ** 2)).sum(0)


def simplex_grid(members: int, step: float = 0.05) -> np.ndarray:
    """Every weight vector of ``members`` non-negative multiples of ``step`` summing to one, (G, M).

    >>> simplex_grid(2, 0.5).tolist()
    [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    """
    n = int(round(1 / step))
    rows = [c + (n - sum(c),) for c in itertools.product(range(n + 1), repeat=members - 1) if sum(c) <= n]
    return np.array(rows, np.float64) / n


def fit_weights(parts: Sequence[MemberPrediction], truth: np.ndarray, step: float = 0.05, orbits: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Convex weights (M, P) with the lowest mean absolute relative error of exp(mean) on ``truth`` (N, P) GPa.

    One weight vector per group of ``orbits`` (constants a symmetry carries
    into each other, :func:`~vaereg_core.symmetry.constant_orbits`), so a
    symmetry-averaged ensemble stays equivariant; per constant by default.
    """
    means = np.stack([p.mean for p in parts])  # (M, N, P)
    grid = simplex_grid(len(parts), step)  # (G, M)
    blended = np.exp(np.einsum("gm,mnp->gnp", grid, means))
    error = np.mean(np.abs(blended - truth) / truth, axis=1)  # (G, P)
    weights = np.empty((len(parts), truth.shape[1]))
    for group in orbits if orbits is not None else [[p] for p in range(truth.shape[1])]:
        weights[:, list(group)] = grid[np.argmin(error[:, list(group)].mean(1))][:, None]
    return weights


def fit_scales(mean: np.ndarray, var: np.ndarray, truth: np.ndarray, *, two_sd: float = 0.945, one_sd: tuple[float, float] = (0.68, 0.76),
               orbits: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Per-constant factor s (P,) on the standard deviation, from held-out truths (N, P) GPa.

    With ``orbits`` one factor per group of constants, from their pooled errors.

    The errors of these networks are heavier-tailed than a Gaussian: no single
    scale puts 68 % of the truths within 1 sd and 95 % within 2 sd (measured:
    the maximum-likelihood scale gives 74–79 % and 94–96 %). The rule: the
    smallest s that still has ``two_sd`` of the truths within 2 sd, with the
    fraction within 1 sd kept in ``one_sd`` — s is the q-quantile of
    |log(truth) − mean| / sd for the first q in ``one_sd`` (steps of 0.005)
    meeting the 2-sd condition (the upper end if none does). For Gaussian
    errors this is the exact scale (q = 0.68 already has 95 % within 2 sd).
    ``two_sd`` is 0.945 rather than the goal's 0.92 because the split the scale
    is applied to differs from the one it was fitted on: at 0.93 the default
    ensemble had 91–93 % within 2 sd on the test split.

    >>> rng = np.random.default_rng(0)
    >>> truth = np.exp(rng.normal(0.0, 0.2, (4000, 1)))
    >>> round(float(fit_scales(np.zeros((4000, 1)), np.full((4000, 1), 0.01), truth)[0]), 1)
    2.0
    """
    z = np.abs(np.log(truth) - mean) / np.sqrt(var)
    scales = np.empty(z.shape[1])
    for group in orbits if orbits is not None else [[p] for p in range(z.shape[1])]:
        pooled = z[:, list(group)].ravel()
        for q in np.arange(one_sd[0], one_sd[1] + 1e-9, 0.005):
            scale = np.quantile(pooled, q)
            if np.mean(pooled <= 2 * scale) >= two_sd:
                break
        scales[list(group)] = scale
    return scales


def coverage(mean: np.ndarray, var: np.ndarray, truth: np.ndarray, k: float) -> np.ndarray:
    """Fraction of truths within k standard deviations, per constant (P,), in log space."""
    return np.mean(np.abs(np.log(truth) - mean) <= k * np.sqrt(var), axis=0)


@dataclass
class ForwardEnsemble:
    """Members and what was fitted on the validation split.

    Attributes
    ----------
    networks : list of LoadedModel
        Networks predicting the same constants (members, in the weights' first rows).
    svrs : list of (int, LatentSVR)
        Latent-SVR members (the weights' next rows), each with the index of the
        network whose encoder gives its latents (from the same trunk pass).
    heads : list of (tuple of int, FeatureHead)
        Feature-head members (the weights' last rows), each with the indices of
        the networks whose trunk features it reads (from the same passes).
    weights : (M, P) array
        Per-constant convex weights, M = networks + SVRs + heads.
    scale : (P,) array
        Calibration factor on the standard deviation, per constant.
    symmetries : str
        The cube-symmetry set each member averages over.
    labels : list of str
        A name per member, for reports.
    fitted : dict
        Provenance of the fit (split, counts, figures).
    """

    networks: list
    svrs: list
    heads: list
    weights: np.ndarray
    scale: np.ndarray
    symmetries: str = "permutations"
    labels: list = field(default_factory=list)
    fitted: dict = field(default_factory=dict)

    @property
    def property_names(self) -> tuple[str, ...]:
        return tuple(self.networks[0].property_names)

    def member_predictions(self, voxels: np.ndarray, symmetries: str | None = None) -> list[MemberPrediction]:
        """Each member's symmetry-averaged Gaussians of log C, (N, P) arrays: networks first, then SVRs, then heads.

        ``symmetries`` overrides the fitted set (``"identity"``: one pass per network, for ranking many proposals).
        """
        which = symmetries_for(self.property_names, self.symmetries if symmetries is None else symmetries)
        names = self.property_names
        encoders = {i for i, _ in self.svrs}
        readers = {i for sources, _ in self.heads for i in sources}
        parts, latents, features = [], {}, {}
        for i, network in enumerate(self.networks):
            out = network.predict_transformed(voxels, which, latents=i in encoders, features=i in readers)
            parts.append(MemberPrediction.from_transformed(out[0], out[1]))
            if i in encoders:
                latents[i] = out[2]
            if i in readers:
                features[i] = out[-1]
        with _blas_single_thread():
            for i, svr in self.svrs:
                mean = map_back(svr.predict_log(latents[i]), which, names)
                parts.append(MemberPrediction(mean.mean(1), np.broadcast_to(svr.residual_var, mean.shape[::2]).copy(), mean.var(1)))
            for sources, head in self.heads:
                mean, var = head.predict_log(np.concatenate([features[i] for i in sources], axis=-1))
                parts.append(MemberPrediction.from_transformed(map_back(mean, which, names), map_back(var, which, names)))
        return parts

    def predict_log(self, voxels: np.ndarray, symmetries: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated Gaussian of log C: (mean, variance), each (N, P); ``symmetries`` as in :meth:`member_predictions`."""
        mean, var = combine(self.member_predictions(voxels, symmetries), self.weights)
        return mean, var * self.scale**2

    def predict(self, voxels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point estimate, standard deviation) in GPa, (P,) or (N, P), as :meth:`LoadedModel.predict`."""
        mean, var = self.predict_log(voxels)
        point, spread = self.networks[0].to_gpa(mean, var)
        return (point[0], spread[0]) if np.ndim(voxels) == 3 else (point, spread)

    def describe(self) -> str:
        """One line for the CLI and the status bar."""
        return f"ensemble of {len(self.labels)} ({', '.join(self.labels)}), {self.symmetries} symmetries"


_BLAS_LIMIT = threading.Lock()


@contextlib.contextmanager
def _blas_single_thread() -> Iterator[None]:
    """NumPy's BLAS on one thread for the SVR and head members' small products (tens of rows).

    Once torch is imported, OpenBLAS's second thread made them ~25x slower on
    2 cores (0.36 s against 20 ms for 18 copies; its threads wait for each
    other while torch's hold the cores). One thread rounds some results by an
    ulp differently (relative changes up to 1e-13 in the predictions). The
    limit is the process's: one prediction at a time holds it, since two that
    overlapped (the app predicts on several workers) restored it out of order
    and left BLAS on one thread for good.
    """
    from threadpoolctl import threadpool_limits

    with _BLAS_LIMIT, threadpool_limits(limits=1, user_api="blas"):
        yield


def file_checksum(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (members that are not model files)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_manifest(
    path: str | os.PathLike,
    members: Sequence[dict[str, Any]],
    property_names: Sequence[str],
    weights: np.ndarray,
    scale: np.ndarray,
    symmetries: str,
    fitted: dict[str, Any],
) -> Path:
    """Write an ensemble manifest atomically.

    ``members`` are dicts with ``kind`` (``network``, ``latent-svr`` or
    ``feature-head``), ``file``, ``checksum``, ``label`` and, for an SVR,
    ``latents_from`` (the index of its network), for a head ``features_from``
    (the indices of its networks); files are stored relative to the manifest's
    folder. Members are listed networks first, then SVRs, then heads.
    """
    from vaereg_core.voxel_io import atomic_paths

    path = Path(path)
    folder = path.parent.resolve()
    record = {
        "format": FORMAT,
        "version": VERSION,
        "symmetries": symmetries,
        "properties": list(property_names),
        "members": [{**m, "file": os.path.relpath(Path(m["file"]).resolve(), folder)} for m in members],
        "weights": {n: [float(w) for w in np.asarray(weights)[:, p]] for p, n in enumerate(property_names)},
        "sd_scale": {n: float(s) for n, s in zip(property_names, scale)},
        "fitted": fitted,
    }
    with atomic_paths(path, overwrite=True) as (temp,):
        temp.write_text(json.dumps(record, indent=2) + "\n")
    return path


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """A manifest's content, checked, with member paths made absolute; a clear error otherwise."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(path, f"unreadable ensemble manifest ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelFileError(path, "not a forward-ensemble manifest")
    if record.get("version") != VERSION:
        raise ModelFileError(path, f"ensemble manifest version {record.get('version')!r}; this program reads version {VERSION}")
    try:
        names = [str(n) for n in record["properties"]]
        members = []
        for m in record["members"]:
            kind = str(m.get("kind", "network"))
            if kind not in MEMBER_KINDS:
                raise ValueError(f"unknown member kind {kind!r}")
            member = {"kind": kind, "file": path.parent / str(m["file"]), "checksum": str(m["checksum"]), "label": str(m["label"])}
            if kind == "latent-svr":
                member["latents_from"] = int(m["latents_from"])
            if kind == "feature-head":
                member["features_from"] = [int(i) for i in m["features_from"]]
                if not member["features_from"]:
                    raise ValueError("a feature head reads no network")
            members.append(member)
        weights = np.array([record["weights"][n] for n in names], np.float64).T
        scale = np.array([record["sd_scale"][n] for n in names], np.float64)
        symmetries = str(record["symmetries"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(path, f"ensemble manifest is incomplete ({exc})") from None
    if symmetries not in SYMMETRY_SETS:
        raise ModelFileError(path, f"unknown symmetry set {symmetries!r}")
    networks = [m for m in members if m["kind"] == "network"]
    order = [MEMBER_KINDS.index(m["kind"]) for m in members]
    sources = [m.get("latents_from", 0) for m in members] + [i for m in members for i in m.get("features_from", [])]
    if order != sorted(order) or any(not 0 <= i < len(networks) for i in sources):
        raise ModelFileError(path, "ensemble members must list the networks first, then SVRs and heads, each reading a listed network")
    if weights.shape != (len(members), len(names)) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ModelFileError(path, "ensemble weights must be one non-negative row per member and constant")
    if not np.allclose(weights.sum(0), 1.0, atol=1e-6) or not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ModelFileError(path, "ensemble weights must sum to one per constant and scales be positive")
    return {"properties": tuple(names), "members": members, "weights": weights, "scale": scale,
            "symmetries": symmetries, "fitted": record.get("fitted", {})}


def attach_ensemble(model: "LoadedModel", path: str | os.PathLike) -> str | None:
    """Attach the ensemble named by the manifest beside ``path`` to ``model``; return why not, or None.

    ``model`` is used for the member whose checksum is its own; other members
    are loaded on its device. A stale manifest (a member replaced, missing or
    predicting other constants) is not attached.
    """
    from vaereg_core.model.feature_head import FeatureHead
    from vaereg_core.model.inference import load_model
    from vaereg_core.model.latent_svr import LatentSVR

    where = manifest_path(path)
    if not where.is_file():
        return "no ensemble manifest"
    spec = read_manifest(where)
    if spec["properties"] != tuple(model.property_names):
        return f"{where.name} is for {', '.join(spec['properties'])}; the model predicts {', '.join(model.property_names)}"
    networks, svrs, heads = [], [], []
    for member in spec["members"]:
        file = Path(member["file"])
        if member["kind"] == "network" and member["checksum"] == model.file.checksum:
            networks.append(model)
            continue
        if not file.is_file():
            return f"{where.name}: member {file.name} is missing"
        if member["kind"] != "network" and file_checksum(file) != member["checksum"]:
            return f"{where.name} is stale: {file.name} has changed since the ensemble was fitted"
        if member["kind"] == "feature-head":
            head = FeatureHead.load(file)
            sources = tuple(member["features_from"])
            if head.sources != tuple(networks[i].file.checksum for i in sources) or head.names != spec["properties"]:
                return f"{where.name} is stale: {file.name} was fitted to other networks"
            heads.append((sources, head))
            continue
        if member["kind"] == "latent-svr":
            svr = LatentSVR.load(file)
            source = networks[member["latents_from"]]
            if svr.model_checksum != source.file.checksum or svr.names != spec["properties"]:
                return f"{where.name} is stale: {file.name} was fitted to another encoder"
            svrs.append((member["latents_from"], svr))
            continue
        other = load_model(file, model.device, ensemble=False)
        if other.file.checksum != member["checksum"] or tuple(other.property_names) != spec["properties"]:
            return f"{where.name} is stale: {file.name} has changed since the ensemble was fitted"
        networks.append(other)
    if model not in networks:
        return f"{where.name} is stale: the model has changed since the ensemble was fitted"
    model.forward = ForwardEnsemble(networks, svrs, heads, spec["weights"], spec["scale"], spec["symmetries"],
                                    [m["label"] for m in spec["members"]], spec["fitted"])
    model.symmetries = spec["symmetries"]
    return None
