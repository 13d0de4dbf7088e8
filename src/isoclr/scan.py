"""The selective scan of Mamba, in pure PyTorch (CPU or GPU), with mamba-ssm's CUDA kernel when it is installed.

The scan runs, per channel ``d`` and state ``n``, the linear recurrence

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * x_t,        y_t = C_t . h_t + D * x_t

over ``x, delta`` (batch, length, d_inner), ``B, C`` (batch, length, d_state), ``A`` (d_inner, d_state)
(negative), ``D`` (d_inner,). Three implementations, which agree to float rounding (tests/model/test_mamba.py):

* :func:`selective_scan_reference`: one step at a time under autograd; the definition, for tests only.
* :func:`selective_scan`: chunked. The sequence is cut into chunks of ``chunk`` positions; the state is
  carried from chunk to chunk, and only one chunk's ``(chunk, batch, d_inner, d_state)`` states exist at a
  time. Backward recomputes a chunk's states from the state saved at its start and runs the adjoint
  recurrence backwards, so memory grows with ``length * d_inner`` (the inputs), not ``length * d_inner *
  d_state`` (every state) as under plain autograd or mambapy's parallel scan (benchmarks/mamba_scan.py).
  Inside a chunk either ``"sequential"`` (a loop over positions on ``(batch, d_inner, d_state)``: the least
  arithmetic, fastest on CPU) or ``"parallel"`` (a log-depth Hillis-Steele scan over the whole chunk: fewer,
  larger kernels, for a GPU without mamba-ssm).
* mamba-ssm's ``selective_scan_fn``, used by :func:`scan` for CUDA tensors when ``mamba_ssm`` imports.

Numerical stability: decays are formed in log space, ``delta * A <= 0``, and only ever exponentiated
there, so every decay lies in [0, 1]; windows of decays are combined by multiplying decays, never as
``exp(-cumsum)`` (the factorised form ``exp(S_t) * cumsum(exp(-S_s) u_s)`` overflows float32 once a
chunk's summed log-decay passes ~88, which trained deltas reach). The scan always runs in float32 (or
float64 when given float64), with autocast off, so bf16 autocast is safe around it.

Padding: a position with ``delta = 0`` leaves the state unchanged (decay 1, input 0), so zeroing delta
at padded positions makes them invisible to the recurrence (isoclr.mamba does it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor

try:  # the optional CUDA kernels (pyproject extra "gpu")
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _cuda_selective_scan
except (ImportError, OSError):  # pragma: no cover - not installed, or built for another CUDA/torch
    _cuda_selective_scan = None

HAS_MAMBA_SSM = _cuda_selective_scan is not None
# Positions per chunk: one chunk's states, (chunk, batch, d_inner, d_state), are the working set. On 2 CPU
# cores (8 x 2048, d_inner 512) the sequential scan ran fastest at 16-32 positions (4 MB-8 MB per chunk
# tensor, cache-sized) and 2.5x slower at 128; the parallel scan's depth grows only with log2(chunk).
DEFAULT_CHUNK = {"sequential": 32, "parallel": 128}
Method = Literal["auto", "sequential", "parallel"]


def selective_scan_reference(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor) -> Tensor:
    """The recurrence one position at a time (autograd through every step): the definition the others are tested
    against. x, delta (batch, length, d_inner); A (d_inner, d_state); B, C (batch, length, d_state); D (d_inner,)
    -> y (batch, length, d_inner)."""
    h = x.new_zeros(x.shape[0], x.shape[2], A.shape[1])
    ys = []
    for t in range(x.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * x[:, t])[..., None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    return torch.stack(ys, dim=1) + D * x


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the per-position loop's small ops on one thread: split over two OpenMP threads, each op waits at a
    barrier, and on a loaded 2-core machine that wait was 4-7x the op itself (an 8 x 512 x 16 addcmul: 2.0 ms
    on two threads, 0.26 ms on one). OpenMP's thread count is per calling thread, so other threads are unaffected.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _scan_sequential(u: Tensor, a: Tensor, h0: Tensor, reverse: bool = False) -> Tensor:
    """In place: u (T, batch, d, n) becomes the states h_t = a_t * h_{t-1} + u_t, h_{-1} = h0 (batch, d, n).

    ``reverse`` runs the adjoint instead, g_t = u_t + a_{t+1} * g_{t+1}, g_T = h0 (a_T taken as 1).
    """
    steps = range(u.shape[0] - 1, -1, -1) if reverse else range(u.shape[0])
    prev = h0
    with _one_cpu_thread(u.device):
        for t in steps:
            if not reverse:
                u[t].addcmul_(a[t], prev)
            elif t == u.shape[0] - 1:
                u[t].add_(prev)
            else:
                u[t].addcmul_(a[t + 1], prev)
            prev = u[t]
    return u


def _scan_parallel(u: Tensor, a: Tensor, h0: Tensor, reverse: bool = False) -> Tensor:
    """Same contract as :func:`_scan_sequential`, in ceil(log2 T) steps over the whole chunk (Hillis-Steele).

    After the step with offset k, position t holds the sum over the window (t - 2k, t] and ``win`` the
    product of that window's decays, so only decays in [0, 1] are ever multiplied.
    """
    if reverse:  # the adjoint is the forward recurrence on the time-reversed chunk, decays shifted by one
        shifted = torch.cat([a[1:], torch.ones_like(a[:1])])
        return _scan_parallel(u.flip(0), shifted.flip(0), h0).flip(0)
    win = a.clone()
    k = 1
    while k < u.shape[0]:
        u[k:] = torch.addcmul(u[k:], win[k:], u[:-k])  # the right side is evaluated before the assignment
        win[k:] = win[k:] * win[:-k]
        k *= 2
    return u.addcmul_(win, h0)


_SCANS = {"sequential": _scan_sequential, "parallel": _scan_parallel}


class _ChunkedScan(torch.autograd.Function):
    """y = C . h over time-major inputs: x, delta (L, batch, d); A (d, n); B, C (L, batch, n) -> y (L, batch, d).

    Saves its inputs and one state per chunk (the state before it); backward recomputes each chunk's states.
    """

    @staticmethod
    def forward(ctx, x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk: int, method: str) -> Tensor:
        run = _SCANS[method]
        h = x.new_zeros(x.shape[1], x.shape[2], A.shape[1])
        y = torch.empty_like(x)
        starts = []
        for s in range(0, x.shape[0], chunk):
            sl = slice(s, s + chunk)
            starts.append(h)
            states = run(*_chunk_inputs(x[sl], delta[sl], A, B[sl]), h)
            y[sl] = (states @ C[sl, :, :, None]).squeeze(-1)
            h = states[-1].clone()
        ctx.save_for_backward(x, delta, A, B, C, torch.stack(starts))
        ctx.chunk, ctx.method = chunk, method
        return y

    @staticmethod
    def backward(ctx, dy: Tensor):
        x, delta, A, B, C, starts = ctx.saved_tensors
        run = _SCANS[ctx.method]
        with torch.autocast(dy.device.type, enabled=False):
            grads = [torch.empty_like(t) for t in (x, delta, B, C)]
            dx, ddelta, dB, dC = grads
            dA = torch.zeros_like(A)
            carry = torch.zeros_like(starts[0])  # dLoss/dh at the chunk's last position, from later positions
            for c in reversed(range(starts.shape[0])):
                sl = slice(c * ctx.chunk, (c + 1) * ctx.chunk)
                h0, xs, ds = starts[c], x[sl], delta[sl]
                u, a = _chunk_inputs(xs, ds, A, B[sl])
                states = run(u, a, h0)
                # adjoint states g_t = dLoss/dh_t: C_t dy_t, plus what flows back through the next decay
                g = run(dy[sl, :, :, None] * C[sl, :, None, :], a, carry, reverse=True)
                carry = a[0] * g[0]
                dC[sl] = (states.transpose(-1, -2) @ dy[sl, :, :, None]).squeeze(-1)
                # dLoss/d(log-decay)_t = g_t * a_t * h_{t-1}
                w = g * a
                w[1:] *= states[:-1]
                w[0] *= h0
                dxdelta = (g @ B[sl, :, :, None]).squeeze(-1)  # dLoss/d(delta_t x_t)
                dB[sl] = (g.transpose(-1, -2) @ (ds * xs)[..., None]).squeeze(-1)
                ddelta[sl] = torch.einsum("tbdn,dn->tbd", w, A) + dxdelta * xs  # a bmm: faster than (w * A).sum(-1)
                dx[sl] = dxdelta * ds
                dA += (w * ds[..., None]).sum((0, 1))
        return dx, ddelta, dA, dB, dC, None, None


def _chunk_inputs(x: Tensor, delta: Tensor, A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """One chunk's inputs u_t = delta_t x_t B_t and decays a_t = exp(delta_t A), both (T, batch, d, n)."""
    return (delta * x)[..., None] * B[:, :, None, :], torch.exp(delta[..., None] * A)


def selective_scan(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    chunk: int | None = None,
    method: Method = "auto",
) -> Tensor:
    """The chunked pure-PyTorch scan: x, delta (batch, length, d_inner); A (d_inner, d_state); B, C (batch,
    length, d_state); D (d_inner,) -> y (batch, length, d_inner), float32 (float64 for float64 inputs).

    ``method="auto"`` picks ``"sequential"`` on CPU and ``"parallel"`` elsewhere (benchmarks/mamba_scan.py);
    ``chunk=None`` the method's :data:`DEFAULT_CHUNK`.
    """
    if method == "auto":
        method = "sequential" if x.device.type == "cpu" else "parallel"
    if method not in _SCANS:
        raise ValueError(f"method must be 'auto' or one of {sorted(_SCANS)}, got {method!r}")
    chunk = DEFAULT_CHUNK[method] if chunk is None else chunk
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    with torch.autocast(x.device.type, enabled=False):
        x, delta, B, C = (t.to(dtype).transpose(0, 1).contiguous() for t in (x, delta, B, C))
        y = _ChunkedScan.apply(x, delta, A.to(dtype), B, C, chunk, method).transpose(0, 1)
        return y + D.to(dtype) * x.transpose(0, 1)


def selective_scan_cuda(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor) -> Tensor:
    """mamba-ssm's fused kernel with the same contract as :func:`selective_scan` (it wants channels first)."""
    if _cuda_selective_scan is None:
        raise RuntimeError("mamba_ssm is not installed: pip install 'isoclr[gpu]' on a CUDA image")
    with torch.autocast(x.device.type, enabled=False):
        x, delta, B, C = (t.float().transpose(1, 2).contiguous() for t in (x, delta, B, C))
        y = _cuda_selective_scan(x, delta, A.float(), B, C, D.float(), delta_softplus=False)
        return y.transpose(1, 2)


@torch.compiler.disable  # a graph break: dynamo would unroll the per-chunk loops (and cannot trace the kernel)
def scan(
    x: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    use_kernel: bool = True,
    method: Method = "auto",
    chunk: int | None = None,
) -> Tensor:
    """:func:`selective_scan_cuda` for CUDA tensors when mamba-ssm is installed (and ``use_kernel``), else
    :func:`selective_scan` (with ``method`` and ``chunk``). Shapes as there."""
    if use_kernel and HAS_MAMBA_SSM and x.is_cuda:
        return selective_scan_cuda(x, delta, A, B, C, D)
    return selective_scan(x, delta, A, B, C, D, chunk=chunk, method=method)
