"""Operators of the solver on two array libraries: NumPy/SciPy and PyTorch.

The solver (:func:`vaereg_core.physics.solver.solve_cases`) needs, for a batch
of ``B`` load cases, the stiffness ``K p``, the reference-medium Green
operator ``K_0^{-1} r``, inner products and vector updates. Two operators
provide them:

:class:`SpectralOperator` (``"rotated"``)
    The CG vectors are the displacements' real-FFT half spectra. The voxel
    strain is ``D u`` with Willot's rotated gradient symbol, so ``K p`` costs
    6 inverse + 6 forward real FFTs and the preconditioner is a 3x3 product
    per frequency (no FFT at all).
:class:`GatherOperator` (any element, used for ``"fe-full"``)
    The CG vectors are nodal displacements in real space. ``K p`` gathers the
    8 corners of every voxel, applies the low-rank element factors (two small
    dense products) and scatter-adds back; the preconditioner is 3 + 3 real FFTs.

Each operator is written once against :class:`ArrayLib`, a handful of
primitives that :class:`NumpyLib` and :class:`TorchLib` implement.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from vaereg_core.physics.elements import NODE_OFFSETS, Element

PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
"""Order of the 6 stored entries of a symmetric 3x3 block (matches inverse_symbol)."""


def green_index(i: int, j: int) -> int:
    """Index in PAIRS of the symmetric entry (i, j)."""
    return PAIRS.index((i, j) if (i, j) in PAIRS else (j, i))


def cpu_threads() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


# ---- array libraries ---------------------------------------------------------------------------


class ArrayLib:
    """Primitives an operator needs from an array library."""

    name = "abstract"
    device = "cpu"

    def __init__(self, dtype: str) -> None:
        self.dtype_name = dtype

    def asarray(self, a: np.ndarray, complex_: bool = False) -> Any:
        raise NotImplementedError

    def empty(self, shape: tuple, complex_: bool = False) -> Any:
        raise NotImplementedError

    def zeros(self, shape: tuple, complex_: bool = False) -> Any:
        raise NotImplementedError

    def rfft(self, x: Any) -> Any:
        """Real FFT over the last three axes."""
        raise NotImplementedError

    def irfft(self, x: Any, shape: tuple[int, int, int]) -> Any:
        raise NotImplementedError

    def dots(self, a: Any, b: Any) -> np.ndarray:
        """Per-case real inner products of (B, ...) arrays (complex: Re sum conj(a) b), float64."""
        raise NotImplementedError

    def axpy(self, y: Any, alpha: np.ndarray, x: Any) -> None:
        """y[b] += alpha[b] x[b]."""
        raise NotImplementedError

    def xpay(self, p: Any, beta: np.ndarray, z: Any) -> None:
        """p[b] = z[b] + beta[b] p[b]."""
        raise NotImplementedError

    def mean(self, x: Any) -> np.ndarray:
        """Mean over the last three axes, as float64 numpy."""
        raise NotImplementedError

    def conj(self, x: Any) -> Any:
        raise NotImplementedError

    def mul(self, a: Any, b: Any, out: Any) -> None:
        """out = a * b without allocating."""
        raise NotImplementedError

    def addmul(self, out: Any, a: Any, b: Any) -> None:
        """out += a * b."""
        raise NotImplementedError

    def rfft_into(self, x: Any, out: Any) -> None:
        out[...] = self.rfft(x)

    def irfft_into(self, x: Any, shape: tuple[int, int, int], out: Any) -> None:
        out[...] = self.irfft(x, shape)

    def nbytes(self, x: Any) -> int:
        raise NotImplementedError


class NumpyLib(ArrayLib):
    """NumPy arrays, SciPy's pocketfft with ``workers`` threads, BLAS vector updates."""

    name = "numpy"

    def __init__(self, dtype: str, workers: int | None = None) -> None:
        super().__init__(dtype)
        import scipy.fft
        from scipy.linalg import blas

        self.fft = scipy.fft
        self.workers = workers or cpu_threads()
        self.real = np.dtype(dtype)
        self.complex = np.result_type(self.real, np.complex64)
        self._axpy = blas.get_blas_funcs("axpy", dtype=self.real)
        self._scal = blas.get_blas_funcs("scal", dtype=self.real)
        self._dot = blas.get_blas_funcs("dot", dtype=self.real)
        self._tmp: dict = {}

    def asarray(self, a, complex_=False):
        return np.ascontiguousarray(a, dtype=self.complex if complex_ else self.real)

    def empty(self, shape, complex_=False):
        return np.empty(shape, self.complex if complex_ else self.real)

    def zeros(self, shape, complex_=False):
        return np.zeros(shape, self.complex if complex_ else self.real)

    def rfft(self, x):
        return self.fft.rfftn(x, axes=(-3, -2, -1), workers=self.workers)

    def irfft(self, x, shape):
        return self.fft.irfftn(x, s=shape, axes=(-3, -2, -1), workers=self.workers, overwrite_x=True)

    def _flat(self, x, b):
        # A complex array is viewed as interleaved reals so that BLAS does the real work.
        flat = np.ascontiguousarray(x[b]).reshape(-1)
        return flat.view(self.real) if np.iscomplexobj(flat) else flat

    def dots(self, a, b):
        return np.array([float(self._dot(self._flat(a, c), self._flat(b, c))) for c in range(len(a))])

    def axpy(self, y, alpha, x):
        for c in range(len(y)):
            if alpha[c] != 0.0:
                self._axpy(self._flat(x, c), self._flat(y, c), a=float(alpha[c]))

    def xpay(self, p, beta, z):
        for c in range(len(p)):
            pc = self._flat(p, c)
            self._scal(float(beta[c]), pc)
            self._axpy(self._flat(z, c), pc)

    def mean(self, x):
        return np.asarray(x.mean(axis=(-3, -2, -1), dtype=np.float64))

    def conj(self, x):
        return np.conj(x)

    def mul(self, a, b, out):
        np.multiply(a, b, out=out)

    def addmul(self, out, a, b):
        key = (out.shape, out.dtype)
        tmp = self._tmp.get(key)
        if tmp is None:
            tmp = self._tmp[key] = np.empty(out.shape, out.dtype)
        np.multiply(a, b, out=tmp)
        out += tmp

    def irfft_into(self, x, shape, out):
        # scipy.fft has no out=; the result is copied (the input may be overwritten).
        np.copyto(out, self.irfft(x, shape))

    def nbytes(self, x):
        return int(x.nbytes)


class TorchLib(ArrayLib):
    """PyTorch tensors on the CPU or a CUDA GPU; batched over all cases."""

    name = "torch"

    def __init__(self, dtype: str, device: str = "cpu") -> None:
        super().__init__(dtype)
        import torch

        self.torch = torch
        self.device = str(device)
        self.dev = torch.device(device)
        self.real = torch.float64 if dtype == "float64" else torch.float32
        self.complex = torch.complex128 if dtype == "float64" else torch.complex64

    def asarray(self, a, complex_=False):
        return self.torch.as_tensor(np.array(a, copy=True), dtype=self.complex if complex_ else self.real, device=self.dev)

    def empty(self, shape, complex_=False):
        return self.torch.empty(shape, dtype=self.complex if complex_ else self.real, device=self.dev)

    def zeros(self, shape, complex_=False):
        return self.torch.zeros(shape, dtype=self.complex if complex_ else self.real, device=self.dev)

    def rfft(self, x):
        return self.torch.fft.rfftn(x, dim=(-3, -2, -1))

    def irfft(self, x, shape):
        return self.torch.fft.irfftn(x, s=shape, dim=(-3, -2, -1))

    def _real(self, x):
        return self.torch.view_as_real(x) if x.is_complex() else x

    def dots(self, a, b):
        a, b = self._real(a), self._real(b)
        d = (a.reshape(len(a), -1) * b.reshape(len(b), -1)).sum(dim=1, dtype=self.torch.float64)
        return d.cpu().numpy()

    def _scalars(self, values, like):
        shape = (len(values),) + (1,) * (like.dim() - 1)
        return self.torch.as_tensor(np.asarray(values), dtype=self.real, device=self.dev).reshape(shape)

    def axpy(self, y, alpha, x):
        yr, xr = self._real(y), self._real(x)
        yr.addcmul_(xr, self._scalars(alpha, xr))

    def xpay(self, p, beta, z):
        pr, zr = self._real(p), self._real(z)
        pr.mul_(self._scalars(beta, pr)).add_(zr)

    def mean(self, x):
        return x.mean(dim=(-3, -2, -1), dtype=self.torch.float64).cpu().numpy()

    def conj(self, x):
        return self.torch.conj(x).resolve_conj()

    def mul(self, a, b, out):
        self.torch.mul(a, b, out=out)

    def addmul(self, out, a, b):
        out.addcmul_(a, b)

    def rfft_into(self, x, out):
        self.torch.fft.rfftn(x, dim=(-3, -2, -1), out=out)

    def irfft_into(self, x, shape, out):
        self.torch.fft.irfftn(x, s=shape, dim=(-3, -2, -1), out=out)

    def nbytes(self, x):
        return int(x.element_size() * x.nelement())


def make_lib(backend: str, dtype: str, device: str = "cpu", workers: int | None = None) -> ArrayLib:
    """The array library of a backend name."""
    if backend == "numpy":
        return NumpyLib(dtype, workers=workers)
    return TorchLib(dtype, device=device)


# ---- operators ---------------------------------------------------------------------------------


def _stress_in_place(strain: Any, lam: Any, mu: Any) -> None:
    """Voigt strain (..., 6, nx, ny, nz) -> isotropic stress, in place.

    ``lam`` and ``mu`` broadcast against one component (..., nx, ny, nz).
    """
    trace = (strain[..., 0, :, :, :] + strain[..., 1, :, :, :] + strain[..., 2, :, :, :]) * lam
    strain *= mu[..., None, :, :, :]
    strain[..., :3, :, :, :] *= 2.0
    strain[..., :3, :, :, :] += trace[..., None, :, :, :]


def _to_numpy(x: Any) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.detach().cpu().numpy()


class Operator:
    """Stiffness, Green operator and macroscopic quantities of a batch of load cases.

    Parameters
    ----------
    lib : ArrayLib
    el : Element
    lam, mu : (S, nx, ny, nz) float64 ndarray
        Lamé constants of every voxel of the S structures.
    cases_per_structure : int
        Case ``b`` belongs to structure ``b // cases_per_structure``.
    green : (6, nx, ny, nz//2+1) float64 ndarray
        Inverse reference stiffness symbol.
    """

    def __init__(self, lib: ArrayLib, el: Element, lam: np.ndarray, mu: np.ndarray, cases_per_structure: int, green: np.ndarray) -> None:
        self.lib = lib
        self.el = el
        self.shape = tuple(int(v) for v in lam.shape[1:])
        self.n_structures = lam.shape[0]
        self.cases = cases_per_structure
        self.batch = self.n_structures * cases_per_structure
        self.dtype_name = lib.dtype_name
        # Material per structure, broadcast over its load cases: (S, 1, nx, ny, nz).
        self.lam = lib.asarray(lam[:, None])
        self.mu = lib.asarray(mu[:, None])
        self.green = lib.asarray(green)
        self._allocated = 0

    # The solver's interface (see solve_cases).
    def zeros(self) -> Any:
        raise NotImplementedError

    def copy(self, x: Any) -> Any:
        return x.copy() if isinstance(x, np.ndarray) else x.clone()

    def dot(self, a: Any, b: Any) -> np.ndarray:
        return self.lib.dots(a, b)

    def axpy(self, y: Any, alpha: np.ndarray, x: Any) -> None:
        self.lib.axpy(y, alpha, x)

    def xpay(self, p: Any, beta: np.ndarray, z: Any) -> None:
        self.lib.xpay(p, beta, z)

    def _per_structure(self, x: Any) -> Any:
        """(B, ...) -> (S, cases, ...) view."""
        return x.reshape((self.n_structures, self.cases) + tuple(x.shape[1:]))

    def _green_apply(self, r: Any, out: Any) -> None:
        g = self.green
        for i in range(3):
            out[:, i] = g[green_index(i, 0)] * r[:, 0] + g[green_index(i, 1)] * r[:, 1] + g[green_index(i, 2)] * r[:, 2]

    def _uniform_stress(self, strains: np.ndarray) -> Any:
        """C(x) E for every case: (B, 6, nx, ny, nz)."""
        lib = self.lib
        sig = lib.empty((self.batch, 6) + self.shape)
        e = lib.asarray(strains)
        sig[...] = e[:, :, None, None, None]
        _stress_in_place(self._per_structure(sig), self.lam, self.mu)
        return sig

    def strain_field(self, u: Any, strains: np.ndarray) -> np.ndarray:
        """Total strain ``E + B u`` of every case at the voxel centres, (B, 6, nx, ny, nz) numpy (Voigt, engineering shear)."""
        raise NotImplementedError(f"{type(self).__name__} does not give strain fields")

    def work_bytes(self) -> int:
        """Bytes of the solver's vectors and work arrays (5 vectors + operator buffers)."""
        return self._allocated

    def release(self) -> None:
        """Drop large buffers."""


class SpectralOperator(Operator):
    """Willot's rotated scheme with the CG vectors in Fourier space (see module docstring).

    Work arrays are component-first, ``(6, B, ...)``, so that every product
    writes a contiguous block; all of them are allocated once.
    """

    def __init__(self, lib, el, lam, mu, cases_per_structure, green) -> None:
        super().__init__(lib, el, lam, mu, cases_per_structure, green)
        nx, ny, nz = self.shape
        xi = np.meshgrid(2 * np.pi * np.fft.fftfreq(nx), 2 * np.pi * np.fft.fftfreq(ny), 2 * np.pi * np.fft.rfftfreq(nz), indexing="ij")
        e = [np.exp(1j * x) for x in xi]
        avg = [(1 + ei) / 2 for ei in e]
        # Rotated gradient: difference along d, average of the 4 edges across it.
        d = np.stack([(e[0] - 1) * avg[1] * avg[2], (e[1] - 1) * avg[0] * avg[2], (e[2] - 1) * avg[0] * avg[1]])
        self.grad = lib.asarray(d, complex_=True)
        self.grad_conj = lib.asarray(np.conj(d), complex_=True)
        self.green = lib.asarray(green, complex_=True)
        self.spec_shape = (nx, ny, nz // 2 + 1)
        self.nyquist = nz % 2 == 0 and nz > 1
        b = self.batch
        self.strain_hat = lib.empty((6, b) + self.spec_shape, complex_=True)
        self.strain = lib.empty((6, b) + self.shape)
        self.trace = lib.empty((self.n_structures, self.cases) + self.shape)
        item = 8 if lib.dtype_name == "float64" else 4
        spectrum = b * int(np.prod(self.spec_shape)) * 2 * item
        self._allocated = 5 * 3 * spectrum + 6 * spectrum + (6 * b + b) * int(np.prod(self.shape)) * item

    def zeros(self):
        return self.lib.zeros((self.batch, 3) + self.spec_shape, complex_=True)

    def dot(self, a, b):
        # Real-space inner product from half spectra (Parseval): interior planes
        # of the last axis stand for two frequencies, kz = 0 (and Nyquist) for one.
        lib = self.lib
        total = 2.0 * lib.dots(a, b) - lib.dots(a[..., :1], b[..., :1])
        if self.nyquist:
            total -= lib.dots(a[..., -1:], b[..., -1:])
        return total

    def _strain_hat(self, u):
        lib, d, s = self.lib, self.grad, self.strain_hat
        lib.mul(d[0], u[:, 0], s[0])
        lib.mul(d[1], u[:, 1], s[1])
        lib.mul(d[2], u[:, 2], s[2])
        lib.mul(d[2], u[:, 1], s[3])
        lib.addmul(s[3], d[1], u[:, 2])
        lib.mul(d[2], u[:, 0], s[4])
        lib.addmul(s[4], d[0], u[:, 2])
        lib.mul(d[1], u[:, 0], s[5])
        lib.addmul(s[5], d[0], u[:, 1])
        return s

    def _stress(self, strain):
        """Isotropic stress of the (6, B, ...) strain, in place."""
        per = strain.reshape((6, self.n_structures, self.cases) + self.shape)
        tr = self.trace
        tr[...] = per[0]
        tr += per[1]
        tr += per[2]
        tr *= self.lam
        per *= self.mu
        per[:3] *= 2.0
        per[:3] += tr

    def _divergence_t(self, sig_hat, out, sign=1.0):
        """out = sign * D^H sigma_hat (nodal forces); sig_hat is (6, B, ...)."""
        lib, c = self.lib, self.grad_conj
        for i, (a, b_, c_) in enumerate(((0, 5, 4), (5, 1, 3), (4, 3, 2))):
            lib.mul(c[0], sig_hat[a], out[:, i])
            lib.addmul(out[:, i], c[1], sig_hat[b_])
            lib.addmul(out[:, i], c[2], sig_hat[c_])
        if sign != 1.0:
            out *= sign

    def apply_stiffness(self, u, out):
        lib = self.lib
        lib.irfft_into(self._strain_hat(u), self.shape, self.strain)
        self._stress(self.strain)
        lib.rfft_into(self.strain, self.strain_hat)
        self._divergence_t(self.strain_hat, out)

    def precondition(self, r, out):
        lib, g = self.lib, self.green
        for i in range(3):
            lib.mul(g[green_index(i, 0)], r[:, 0], out[:, i])
            lib.addmul(out[:, i], g[green_index(i, 1)], r[:, 1])
            lib.addmul(out[:, i], g[green_index(i, 2)], r[:, 2])

    def load_forces(self, strains, out):
        sig = self._uniform_stress(strains)  # (B, 6, ...)
        self.strain[...] = sig.swapaxes(0, 1)
        self.lib.rfft_into(self.strain, self.strain_hat)
        self._divergence_t(self.strain_hat, out, sign=-1.0)

    def strain_field(self, u, strains):
        lib = self.lib
        lib.irfft_into(self._strain_hat(u), self.shape, self.strain)
        total = self.strain + lib.asarray(np.ascontiguousarray(strains.T))[:, :, None, None, None]
        return _to_numpy(total).swapaxes(0, 1)

    def mean_stress(self, u, strains):
        lib = self.lib
        lib.irfft_into(self._strain_hat(u), self.shape, self.strain)
        self.strain += lib.asarray(np.ascontiguousarray(strains.T))[:, :, None, None, None]
        self._stress(self.strain)
        return lib.mean(self.strain).T.copy()

    def release(self):
        self.strain_hat = self.strain = self.trace = None


class GatherOperator(Operator):
    """Any voxel element, matrix-free in real space (see module docstring)."""

    def __init__(self, lib, el, lam, mu, cases_per_structure, green) -> None:
        super().__init__(lib, el, lam, mu, cases_per_structure, green)
        nx, ny, nz = self.shape
        self.factor = lib.asarray(el.factor)
        self.factor_t = lib.asarray(np.ascontiguousarray(el.factor.T))
        self.centre = lib.asarray(el.centre)
        self.centre_t = lib.asarray(np.ascontiguousarray(el.centre.T))
        # Work buffers for one structure's cases at a time (bounded memory).
        c = self.cases
        nv = nx * ny * nz
        self.pad = lib.empty((c, 3, nx + 1, ny + 1, nz + 1))
        self.gathered = lib.empty((24, c * nv))
        self.reduced = lib.empty((len(el.factor), c * nv))
        item = 8 if lib.dtype_name == "float64" else 4
        self._allocated = (5 * self.batch * 3 * nv + 3 * c * 3 * nv) * item + (24 + len(el.factor)) * c * nv * item
        self._allocated += 2 * self.batch * 3 * nx * ny * (nz // 2 + 1) * 2 * item

    def zeros(self):
        return self.lib.zeros((self.batch, 3) + self.shape)

    def _gather(self, u) -> None:
        """gathered[3a+i, (case, x)] = u_i(x + o_a), periodic; u is (cases, 3, nx, ny, nz)."""
        nx, ny, nz = self.shape
        p = self.pad
        p[:, :, :nx, :ny, :nz] = u
        p[:, :, nx, :ny, :nz] = u[:, :, 0]
        p[:, :, :, ny, :nz] = p[:, :, :, 0, :nz]
        p[:, :, :, :, nz] = p[:, :, :, :, 0]
        g = self.gathered.reshape(8, 3, self.cases, nx, ny, nz)
        for a, (i, j, k) in enumerate(NODE_OFFSETS):
            g[a] = p[:, :, i : i + nx, j : j + ny, k : k + nz].swapaxes(0, 1)

    def _scatter(self, out) -> None:
        """out_i(x) = sum_a gathered[3a+i, x - o_a], periodic (the transpose of _gather)."""
        nx, ny, nz = self.shape
        p = self.pad
        p[...] = 0
        g = self.gathered.reshape(8, 3, self.cases, nx, ny, nz)
        for a, (i, j, k) in enumerate(NODE_OFFSETS):
            p[:, :, i : i + nx, j : j + ny, k : k + nz] += g[a].swapaxes(0, 1)
        p[:, :, 0] += p[:, :, nx]
        p[:, :, :nx, 0] += p[:, :, :nx, ny]
        p[:, :, :nx, :ny, 0] += p[:, :, :nx, :ny, nz]
        out[...] = p[:, :, :nx, :ny, :nz]

    def _matmul(self, a, b, out) -> None:
        if isinstance(out, np.ndarray):
            np.matmul(a, b, out=out)
        else:
            import torch

            torch.matmul(a, b, out=out)

    def apply_stiffness(self, u, out):
        r_lam = self.el.r_lam
        nv = int(np.prod(self.shape))
        c = self.cases
        for s in range(self.n_structures):
            block = slice(s * c, (s + 1) * c)
            self._gather(u[block])
            self._matmul(self.factor, self.gathered, self.reduced)
            red = self.reduced.reshape(len(self.el.factor), c, nv)
            red[:r_lam] *= self.lam[s].reshape(1, 1, nv)
            red[r_lam:] *= self.mu[s].reshape(1, 1, nv)
            self._matmul(self.factor_t, self.reduced, self.gathered)
            self._scatter(out[block])

    def precondition(self, r, out):
        lib = self.lib
        spec = lib.rfft(r)
        res = lib.empty(tuple(spec.shape), complex_=True)
        self._green_apply(spec, res)
        out[...] = lib.irfft(res, self.shape)

    def load_forces(self, strains, out):
        nx, ny, nz = self.shape
        c = self.cases
        sig = self._uniform_stress(strains)
        for s in range(self.n_structures):
            block = sig[s * c : (s + 1) * c]  # (c, 6, ...)
            stress = block.reshape(c, 6, -1)
            g = self.gathered.reshape(24, c, -1)
            for cc in range(c):
                g[:, cc] = self.centre_t @ stress[cc]
            self._scatter(out[s * c : (s + 1) * c])
        out *= -1.0

    def strain_field(self, u, strains):
        return _to_numpy(self._strain(u, strains))

    def _strain(self, u, strains):
        c = self.cases
        strain = self.lib.empty((self.batch, 6) + self.shape)
        for s in range(self.n_structures):
            self._gather(u[s * c : (s + 1) * c])
            g = self.gathered.reshape(24, c, -1)
            for cc in range(c):
                strain[s * c + cc] = (self.centre @ g[:, cc]).reshape((6,) + self.shape)
        strain += self.lib.asarray(strains)[:, :, None, None, None]
        return strain

    def mean_stress(self, u, strains):
        lib = self.lib
        strain = self._strain(u, strains)
        _stress_in_place(self._per_structure(strain), self.lam, self.mu)
        return lib.mean(strain)

    def release(self):
        self.pad = self.gathered = self.reduced = None
