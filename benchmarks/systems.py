"""Systems benchmarks: N-body all-pairs throughput against NumPy, and Lennard-Jones
molecular dynamics against jax-md on the same state.

1. **N-body** (`ds.systems.NBody`, softening 0.01, G = 1, float32): one evaluation of all
   accelerations, jit-compiled, for N = 256 ... 16384; against the same all-pairs sum in
   vectorised NumPy (float32, in blocks of rows so that N = 16384 fits in memory).
   Reported as pair interactions per second, N (N - 1) / time. Target: >= 5x NumPy.
2. **Lennard-Jones** (`ds.systems.LennardJones`, N = 4096 = 16^3, density 0.8, switched
   between r = 2.0 and 2.5, float32): velocity-Verlet steps per second from one
   equilibrated state (lattice at T = 1, then 300 steps), dt = 0.005. diffsim: `ds.simulate`
   with `ds.Leapfrog()` in chunks of 10 steps, the Verlet neighbour list (skin 0.5)
   rebuilt between chunks, all under one `jax.jit`. jax-md: `simulate.nve` with
   `energy.lennard_jones_neighbor_list` (dense format, the same switch, `dr_threshold`
   0.5), the neighbour list updated every step, in a `lax.fori_loop` under `jax.jit`:
   its documented usage. Target: diffsim within 1.5x of jax-md or faster.

3. **Pairwise kernels** (`--kernels`, issue 20): the compiled all-pairs gravity kernel
   behind `NBody` (C++ through `jax.ffi` on the CPU) against the XLA code it replaced
   (`pair_sum` with a law the kernel does not know, the same maths) and a hand-written
   Numba kernel (`prange` + `fastmath`, the issue's anchor; a comparison only, skipped
   without numba), in interactions per second for N = 1024, 4096, 16384; the forward+VJP
   time (`grad` of a loss of the accelerations) over the forward time; and a 100-step
   `Leapfrog` rollout of `NBody` (N = 1024) and its gradient, kernel against XLA
   (`lean_gradients=False`, the plain-XLA pair sum). Targets: >= 3.5e9 interactions/s
   and >= 50% of Numba at N >= 4096; forward+VJP <= 3x forward.

Timing: every function is compiled and run once first; then the methods take turns, each
call ending in `block_until_ready`, and the median over rounds is reported (ratios are of
medians). Agreement: the N-body accelerations against NumPy, and the Lennard-Jones forces
and 10-step trajectories against jax-md, are printed.

jax-md is not a dependency of diffsim: `pip install jax-md` into the venv to run part 2
(it is skipped, with a message, without it).

Run: `python benchmarks/systems.py [--quick] [--rounds R]`.
"""

import argparse
import datetime
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import diffsim as ds
from diffsim.systems import LennardJones

SOFTENING = 0.01
NBODY_SIZES = (256, 1024, 4096, 16384)
LJ_SIDE = 16  # 16^3 = 4096 particles
LJ_DENSITY = 0.8
LJ_DT = 0.005
LJ_SKIN = 0.5
LJ_CHUNK = 10
LJ_STEPS = 100
NBODY_TARGET = 5.0
LJ_TARGET = 1.5


def _median_time(fn, rounds):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def _interleaved(fns: dict, rounds: int) -> dict:
    for fn in fns.values():
        jax.block_until_ready(fn())  # compile / warm up
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            jax.block_until_ready(fns[name]())
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


# ---------------------------------------------------------------------------------------
# N-body


def numpy_accelerations(q, m, G=1.0, eps=SOFTENING, block=512):
    """All-pairs softened gravity in NumPy, float32, a block of target rows at a time."""
    n = q.shape[0]
    out = np.empty_like(q)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        r = q[None, :, :] - q[rows, None, :]  # (b, n, 3)
        s = np.einsum("bnd,bnd->bn", r, r) + np.float32(eps**2)
        inv = s ** np.float32(-1.5)
        idx = np.arange(rows.start, rows.stop)
        inv[np.arange(len(idx)), idx] = 0.0  # no self-interaction
        out[rows] = np.float32(G) * np.einsum("bn,bnd->bd", inv * m[None, :], r)
    return out


def bench_nbody(rounds: int, sizes) -> list[dict]:
    rows = []
    for n in sizes:
        q = jax.random.normal(jax.random.key(n), (n, 3), jnp.float32)
        m = jnp.full((n,), 1.0 / n, jnp.float32)
        system = ds.systems.NBody(masses=m, softening=jnp.float32(SOFTENING))
        accel = jax.jit(lambda q, system=system: system.acceleration(0.0, q, q))
        q_np, m_np = np.asarray(q), np.asarray(m)
        ref = numpy_accelerations(q_np, m_np)
        err = float(np.abs(np.asarray(accel(q)) - ref).max() / np.abs(ref).max())
        fns = {
            "diffsim": lambda accel=accel, q=q: accel(q),
            "numpy": lambda q_np=q_np, m_np=m_np: numpy_accelerations(q_np, m_np),
        }
        t = _interleaved(fns, rounds if n <= 4096 else max(3, rounds // 3))
        pairs = n * (n - 1)
        row = dict(n=n, err=err, **{k: v for k, v in t.items()})
        row["speedup"] = t["numpy"] / t["diffsim"]
        rows.append(row)
        print(
            f"  N={n:6d}  NBody {t['diffsim'] * 1e3:9.2f} ms ({pairs / t['diffsim']:.2e}/s, "
            f"x{row['speedup']:.1f})  NumPy "
            f"{t['numpy'] * 1e3:9.2f} ms ({pairs / t['numpy']:.2e}/s)  max rel diff "
            f"{row['err']:.1e}",
            flush=True,
        )
    return rows


def plain_jax_accelerations(q, m, eps=SOFTENING):
    """All-pairs gravity as one writes it in plain JAX: `(B, N, 3)` separations per block
    of rows, `(s + eps^2)^(-3/2)` as a power, no custom VJP. The accelerator reference."""
    n = q.shape[0]
    block = max(1, min(n, 2**24 // n))
    rows = jnp.arange(-(-n // block) * block).reshape(-1, block)

    def one_block(r):
        d = q[None, :, :] - q[jnp.minimum(r, n - 1)][:, None, :]
        inv = (jnp.sum(d * d, axis=-1) + eps**2) ** -1.5
        inv = jnp.where(r[:, None] == jnp.arange(n)[None, :], 0.0, inv)
        return jnp.einsum("bn,bnd->bd", inv * m[None, :], d)

    return jax.lax.map(one_block, rows).reshape(-1, 3)[:n]


def bench_nbody_device(rounds: int, sizes) -> None:
    """On an accelerator: `NBody` against the plain-JAX sum (NumPy would take minutes)."""
    for n in sizes:
        q = jax.random.normal(jax.random.key(n), (n, 3), jnp.float32)
        m = jnp.full((n,), 1.0 / n, jnp.float32)
        system = ds.systems.NBody(masses=m, softening=jnp.float32(SOFTENING))
        accel = jax.jit(lambda q, system=system: system.acceleration(0.0, q, q))
        plain = jax.jit(lambda q, m=m: plain_jax_accelerations(q, m))
        a, b = np.asarray(accel(q)), np.asarray(plain(q))
        err = float(np.abs(a - b).max() / np.abs(b).max())
        fns = {"diffsim": lambda a=accel, q=q: a(q), "plain": lambda p=plain, q=q: p(q)}
        t = _interleaved(fns, rounds)
        pairs = n * (n - 1)
        print(
            f"  N={n:6d}  NBody {t['diffsim'] * 1e3:9.3f} ms ({pairs / t['diffsim']:.2e}/s)  "
            f"plain JAX {t['plain'] * 1e3:9.3f} ms ({pairs / t['plain']:.2e}/s)  "
            f"plain/NBody {t['plain'] / t['diffsim']:.2f}  max rel diff {err:.1e}",
            flush=True,
        )


# ---------------------------------------------------------------------------------------
# Lennard-Jones


def diffsim_lj_runner(system, cells, max_neighbours, n_steps):
    n_chunks = n_steps // LJ_CHUNK

    def chunk(y, _):
        s = system.with_neighbour_list(
            y.q, skin=LJ_SKIN, cells=cells, max_neighbours=max_neighbours
        )
        traj = ds.simulate(s, y, n_steps=LJ_CHUNK, dt=LJ_DT, integrator=ds.Leapfrog())
        return jax.tree.map(lambda x: x[-1], traj.ys), None

    @jax.jit
    def run(y):
        return jax.lax.scan(chunk, y, None, length=n_chunks)[0]

    return run


def jaxmd_lj_runner(box, q0, n_steps):
    from jax_md import energy, partition, simulate, space

    displacement, shift = space.periodic(box)
    neighbor_fn, energy_fn = energy.lennard_jones_neighbor_list(
        displacement, box, r_onset=2.0, r_cutoff=2.5, dr_threshold=LJ_SKIN,
        format=partition.Dense,
    )  # fmt: skip
    nbrs = neighbor_fn.allocate(q0)
    init, apply = simulate.nve(energy_fn, shift, LJ_DT)

    @jax.jit
    def run(state, nbrs):
        def body(_, carry):
            state, nbrs = carry
            state = apply(state, neighbor=nbrs)
            return state, nbrs.update(state.position)

        return jax.lax.fori_loop(0, n_steps, body, (state, nbrs))

    return init, run, nbrs, energy_fn


def bench_lj(rounds: int) -> dict | None:
    try:
        import jax_md  # noqa: F401
    except ImportError:
        print("  jax-md is not installed (pip install jax-md): Lennard-Jones part skipped.")
        return None
    from jax_md import quantity, simulate

    system, y = LennardJones.lattice(
        LJ_SIDE, density=LJ_DENSITY, temperature=1.0, key=jax.random.key(0), dtype=jnp.float32
    )
    n = y.q.shape[0]
    listed = system.with_neighbour_list(y.q, skin=LJ_SKIN)
    cells, k = listed.neighbours.cells, listed.neighbours.max_neighbours
    print(f"  N={n}, box {float(system.box[0]):.3f}, cells {cells.grid} x {cells.capacity}, "
          f"max_neighbours {k}", flush=True)  # fmt: skip
    equilibrate = diffsim_lj_runner(system, cells, k, 300)
    y = equilibrate(y)  # the shared start: a melted, equilibrated liquid
    ours = diffsim_lj_runner(system, cells, k, LJ_STEPS)

    box = float(system.box[0])
    init, theirs, nbrs, energy_fn = jaxmd_lj_runner(box, y.q, LJ_STEPS)
    # jax-md keeps positions wrapped in [0, box) and momenta; start from the same state.
    q_wrapped = jnp.mod(y.q, box)
    state = init(jax.random.key(1), q_wrapped, kT=1.0, neighbor=nbrs)
    state = state.set(momentum=y.v * state.mass)

    # Agreement: forces on the shared state, and positions after 10 steps.
    f_theirs = quantity.force(energy_fn)(q_wrapped, neighbor=nbrs)
    f_ours = listed.with_neighbour_list(y.q, skin=LJ_SKIN).acceleration(0.0, y.q, y.v)
    force_diff = float(jnp.abs(f_ours - f_theirs).max() / jnp.abs(f_theirs).max())
    short_ours = diffsim_lj_runner(system, cells, k, 10)(y)
    _, short_run, _, _ = jaxmd_lj_runner(box, y.q, 10)
    short_theirs, _ = short_run(state, nbrs)
    from jax_md import space

    disp, _ = space.periodic(box)
    dq = jax.vmap(disp)(short_ours.q % box, short_theirs.position)
    pos_diff = float(jnp.abs(dq).max())
    print(f"  forces: max rel diff {force_diff:.1e}; positions after 10 steps: max diff "
          f"{pos_diff:.1e}", flush=True)  # fmt: skip

    def run_ours():
        return ours(y)

    def run_theirs():
        return theirs(state, nbrs)

    t = _interleaved({"diffsim": run_ours, "jax-md": run_theirs}, rounds)
    final_state, final_nbrs = run_theirs()
    temperature = float(listed.temperature(run_ours()))
    result = dict(
        n=n, diffsim=LJ_STEPS / t["diffsim"], jaxmd=LJ_STEPS / t["jax-md"],
        ratio=t["diffsim"] / t["jax-md"], force_diff=force_diff, pos_diff=pos_diff,
        overflow=bool(final_nbrs.did_buffer_overflow), temperature=temperature,
        jaxmd_temperature=float(quantity.temperature(momentum=final_state.momentum)),
    )  # fmt: skip
    print(
        f"  diffsim {result['diffsim']:.1f} steps/s, jax-md {result['jaxmd']:.1f} steps/s: "
        f"diffsim time / jax-md time = {result['ratio']:.2f} (target <= {LJ_TARGET}); "
        f"T after {LJ_STEPS} steps {temperature:.3f} (jax-md {result['jaxmd_temperature']:.3f})",
        flush=True,
    )
    del simulate
    return result


def bench_fused_device(rounds: int, n: int = 2**23, steps: int = 1000) -> None:
    """On a GPU: the Lorenz ensemble (tuple state, rho per member, Tsit5 tableau at a fixed
    step, final state) through the fused kernel against the vmapped scan. Issue 20's
    target: <= 35 ms for 2^23 members x 1000 steps on an H200."""

    def final(rho):
        lorenz = ds.systems.Lorenz(rho=rho)
        traj = ds.simulate(lorenz, (1.0, 0.0, 0.0), t1=steps * 1e-3, dt=1e-3,
                           integrator=ds.Tsit5Fixed())  # fmt: skip
        return traj.ys

    rhos = jnp.linspace(0.0, 28.0, n, dtype=jnp.float32)
    run = {s: (lambda s=s: ds.ensemble(final, rhos, batch_size=n, schedule=s).values)
           for s in ("fused", "vmap")}  # fmt: skip
    a, b = run["fused"](), run["vmap"]()
    err = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(a, b, strict=True))
    t = _interleaved(run, rounds)
    print(f"  Lorenz N={n}, {steps} Tsit5Fixed steps: fused {t['fused'] * 1e3:.1f} ms, "
          f"vmap {t['vmap'] * 1e3:.1f} ms (x{t['vmap'] / t['fused']:.2f}); target <= 35 ms "
          f"{'PASS' if t['fused'] <= 0.035 else 'FAIL'}; max |diff| {err:.1e}", flush=True)  # fmt: skip


# ---------------------------------------------------------------------------------------
# Pairwise kernels


def numba_kernel():
    """All-pairs gravity as a user writes it in Numba: the issue's CPU anchor."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(parallel=True, fastmath=True)
    def accel(x, y, z, m, eps2, ax, ay, az):
        n = x.shape[0]
        for i in numba.prange(n):
            xi, yi, zi = x[i], y[i], z[i]
            sx = sy = sz = np.float32(0.0)
            for j in range(n):
                dx, dy, dz = x[j] - xi, y[j] - yi, z[j] - zi
                s = dx * dx + dy * dy + dz * dz + eps2
                inv = np.float32(1.0) / np.sqrt(s)
                c = m[j] * inv * inv * inv
                sx += c * dx
                sy += c * dy
                sz += c * dz
            ax[i], ay[i], az[i] = sx, sy, sz

    return accel


def _xla_gravity(s, theta):
    """`softened_gravity`'s maths under another name: `pair_sum` then runs its XLA code."""
    G, softening = theta
    inv = jax.lax.rsqrt(s + softening**2)
    return G * (inv * inv * inv)


def _kernel_timings(n: int, rounds: int, accel_nb) -> dict:
    from diffsim.systems._pairwise import pair_sum, softened_gravity

    q = jax.random.normal(jax.random.key(n), (n, 3), jnp.float32)
    m = jnp.full((n,), 1.0 / n, jnp.float32)
    theta = (jnp.float32(1.0), jnp.float32(SOFTENING))
    cot = jax.random.normal(jax.random.key(1), (n, 3), jnp.float32)
    kernel = jax.jit(lambda q, m: pair_sum(q, m, softened_gravity, theta))
    xla = jax.jit(lambda q, m: pair_sum(q, m, _xla_gravity, theta))
    loss = lambda q, m: jnp.sum(cot * pair_sum(q, m, softened_gravity, theta))  # noqa: E731
    grad = jax.jit(jax.grad(loss))
    fns = {"kernel": lambda: kernel(q, m), "xla": lambda: xla(q, m), "grad": lambda: grad(q, m)}
    err = float(jnp.max(jnp.abs(kernel(q, m) - xla(q, m))) / jnp.max(jnp.abs(xla(q, m))))
    t = _interleaved(fns, rounds)
    if accel_nb is not None:
        # Timed on its own, not interleaved: Numba's and XLA's worker threads each keep
        # spinning for a while after their work, and would slow whichever runs next.
        x, y, z = (np.ascontiguousarray(np.asarray(q[:, k])) for k in range(3))
        outs = [np.empty(n, np.float32) for _ in range(3)]
        m_np, eps2 = np.asarray(m), np.float32(SOFTENING**2)
        accel_nb(x, y, z, m_np, eps2, *outs)
        t["numba"] = _median_time(lambda: accel_nb(x, y, z, m_np, eps2, *outs), rounds)[0]
        t["kernel_after"] = _median_time(fns["kernel"], rounds)[0]  # the same, after Numba
    rate = {k: n * (n - 1) / v for k, v in t.items() if k != "grad"}
    if "kernel_after" in rate:  # the better of the two kernel timings
        rate["kernel"] = max(rate["kernel"], rate.pop("kernel_after"))
    return dict(n=n, err=err, rate=rate, grad_ratio=t["grad"] / t["kernel"])


def bench_kernel_forces(rounds: int, sizes) -> list[dict]:
    accel_nb = numba_kernel()
    rows = []
    for n in sizes:
        row = _kernel_timings(n, rounds if n <= 4096 else max(3, rounds // 2), accel_nb)
        rows.append(row)
        rate = row["rate"]
        numba_text = (
            f"  Numba {rate['numba']:.2e}/s (kernel/Numba {rate['kernel'] / rate['numba']:.2f})"
            if "numba" in rate
            else "  (Numba not installed)"
        )
        print(f"  N={n:6d}  kernel {rate['kernel']:.2e}/s  XLA {rate['xla']:.2e}/s "
              f"(x{rate['kernel'] / rate['xla']:.1f}){numba_text}  fwd+VJP/fwd "
              f"{row['grad_ratio']:.2f}  max rel diff {row['err']:.1e}", flush=True)  # fmt: skip
    return rows


def bench_kernel_rollout(rounds: int, n: int = 1024, steps: int = 100) -> None:
    q0 = jax.random.normal(jax.random.key(0), (n, 3), jnp.float32)
    y0 = ds.PhaseState(q=q0, v=jnp.zeros_like(q0))
    m = jnp.full((n,), 1.0 / n, jnp.float32)

    def rollout(lean):
        system = ds.systems.NBody(masses=m, softening=jnp.float32(SOFTENING), lean_gradients=lean)
        run = lambda y0: ds.simulate(system, y0, t1=steps * 1e-3, dt=1e-3, integrator=ds.Leapfrog())  # noqa: E731
        loss = lambda y0: jnp.sum(run(y0).ys.q[-1] ** 2)  # noqa: E731
        return jax.jit(lambda y0: run(y0).ys.q[-1]), jax.jit(jax.grad(loss))

    (fk, gk), (fx, gx) = rollout(True), rollout(False)
    t = _interleaved(
        {"fk": lambda: fk(y0), "fx": lambda: fx(y0), "gk": lambda: gk(y0), "gx": lambda: gx(y0)},
        rounds,
    )
    diff = float(jnp.max(jnp.abs(fk(y0) - fx(y0))))
    print(f"  NBody N={n}, {steps} Leapfrog steps: kernel {t['fk'] * 1e3:.1f} ms, XLA "
          f"{t['fx'] * 1e3:.1f} ms (x{t['fx'] / t['fk']:.1f}); gradient: kernel "
          f"{t['gk'] * 1e3:.1f} ms, XLA {t['gx'] * 1e3:.1f} ms (x{t['gx'] / t['gk']:.1f}); "
          f"max |q diff| {diff:.1e}", flush=True)  # fmt: skip


def _xla_lj(system, q, idx=None):
    """`LennardJones`'s forces on the XLA pair sums it used before the kernel."""
    from diffsim.systems._lennard_jones import _lj_phi
    from diffsim.systems._periodic_pairs import neighbour_pair_sum, periodic_pair_sum

    theta = system._theta()
    if idx is None:
        return periodic_pair_sum(q, 1.0, _lj_phi, theta, system.box, system.cutoff)
    return neighbour_pair_sum(q, 1.0, _lj_phi, theta, system.box, system.cutoff, idx)


class _XLALennardJones(LennardJones):
    """`LennardJones` on the XLA pair sums it used before the kernel (a type of its own,
    so that no compiled rollout of one is reused for the other)."""

    def _kernel(self, q, idx=None):
        return _xla_lj(self, q, idx)


def bench_kernel_lj(rounds: int) -> None:
    """Lennard-Jones on the kernel against the XLA pair sums, N = 4096 (16^3, density 0.8):
    all-pairs forces and their gradient, and the 100-step Verlet-list rollout of part 2."""
    celled, y = LennardJones.lattice(
        LJ_SIDE, density=LJ_DENSITY, temperature=1.0, key=jax.random.key(0), dtype=jnp.float32
    )
    system = LennardJones(box=celled.box)  # all pairs
    n = y.q.shape[0]
    q = y.q + 0.02 * jax.random.normal(jax.random.key(1), y.q.shape, jnp.float32)
    cot = jax.random.normal(jax.random.key(2), q.shape, jnp.float32)
    kernel = jax.jit(lambda q: system.acceleration(0.0, q, None))
    xla = jax.jit(lambda q: _xla_lj(system, q))
    grad = jax.jit(jax.grad(lambda q: jnp.vdot(cot, system.acceleration(0.0, q, None))))
    xla_grad = jax.jit(jax.grad(lambda q: jnp.vdot(cot, _xla_lj(system, q))))
    err = float(jnp.max(jnp.abs(kernel(q) - xla(q))) / jnp.max(jnp.abs(xla(q))))
    cells = jax.jit(lambda q: celled.acceleration(0.0, q, None))
    fns = {"kernel": lambda: kernel(q), "xla": lambda: xla(q), "cells": lambda: cells(q)}
    fns.update(grad=lambda: grad(q), xla_grad=lambda: xla_grad(q))
    t = _interleaved(fns, rounds)
    print(f"  LJ all pairs N={n}: kernel {n * (n - 1) / t['kernel']:.2e} pairs/s, XLA "
          f"{n * (n - 1) / t['xla']:.2e} (x{t['xla'] / t['kernel']:.1f}); gradient x"
          f"{t['xla_grad'] / t['grad']:.1f}, VJP/fwd {t['grad'] / t['kernel']:.2f}; "
          f"max rel diff {err:.1e}; per evaluation {t['kernel'] * 1e3:.1f} ms, cell list "
          f"(XLA) {t['cells'] * 1e3:.1f} ms", flush=True)  # fmt: skip

    listed = system.with_neighbour_list(y.q, skin=LJ_SKIN)
    cells, k = listed.neighbours.cells, listed.neighbours.max_neighbours
    ours = diffsim_lj_runner(celled, cells, k, LJ_STEPS)
    before = diffsim_lj_runner(_XLALennardJones(box=celled.box), cells, k, LJ_STEPS)
    diff = float(jnp.max(jnp.abs(ours(y).q - before(y).q)))
    force = jax.jit(lambda q: listed.acceleration(0.0, q, None))
    xla_force = jax.jit(lambda q: _xla_lj(listed, q, listed.neighbours.idx))
    t = _interleaved({"kernel": lambda: force(q), "xla": lambda: xla_force(q)}, rounds)
    print(f"  LJ Verlet-list forces (k = {k}): kernel {t['kernel'] * 1e3:.2f} ms, XLA "
          f"{t['xla'] * 1e3:.2f} ms (x{t['xla'] / t['kernel']:.1f})", flush=True)  # fmt: skip
    t = _interleaved({"kernel": lambda: ours(y), "xla": lambda: before(y)}, max(3, rounds // 2))
    print(f"  LJ Verlet list, {LJ_STEPS} Leapfrog steps: kernel {LJ_STEPS / t['kernel']:.1f} "
          f"steps/s, XLA {LJ_STEPS / t['xla']:.1f} (x{t['xla'] / t['kernel']:.2f}); max |q diff| "
          f"{diff:.1e}", flush=True)  # fmt: skip


def kernels_main(rounds: int, sizes) -> None:
    print("Pairwise kernel, all-pairs softened gravity (float32):", flush=True)
    rows = bench_kernel_forces(rounds, sizes)
    bench_kernel_rollout(max(3, rounds // 2))
    print("Lennard-Jones on the kernel (float32):", flush=True)
    bench_kernel_lj(rounds)
    big = [row for row in rows if row["n"] >= 4096]
    rate = min(row["rate"]["kernel"] for row in big)
    ratio = max(row["grad_ratio"] for row in big)
    share = [row["rate"]["kernel"] / row["rate"]["numba"] for row in big if "numba" in row["rate"]]
    print(f"Targets (N >= 4096): >= 3.5e9/s: {rate:.2e} {'PASS' if rate >= 3.5e9 else 'FAIL'}; "
          f">= 50% of Numba: {min(share) if share else float('nan'):.2f} "
          f"{'PASS' if share and min(share) >= 0.5 else 'FAIL or n/a'}; fwd+VJP <= 3x fwd: "
          f"{ratio:.2f} {'PASS' if ratio <= 3 else 'FAIL'}")  # fmt: skip
    bad = any(row["err"] > 1e-4 for row in rows)
    raise SystemExit(1 if bad else 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, N <= 4096")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--device", action="store_true", help="accelerator: N = 4096 ... 65536 against plain JAX"
    )
    parser.add_argument("--kernels", action="store_true", help="the pairwise kernel (issue 20)")
    args = parser.parse_args()
    if jax.config.jax_enable_x64 or os.environ.get("JAX_ENABLE_X64"):
        raise SystemExit("Run the benchmark in float32 (unset JAX_ENABLE_X64).")
    rounds = args.rounds or (3 if args.quick else 9)
    sizes = NBODY_SIZES[:-1] if args.quick else NBODY_SIZES
    print(f"# diffsim systems benchmark, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, jax {jax.__version__} on {jax.devices()[0].platform}")  # fmt: skip
    if args.kernels:
        kernels_main(rounds, (1024, 4096) if args.quick else (1024, 4096, 16384))
    if args.device:
        print("N-body all-pairs accelerations on the accelerator (float32):", flush=True)
        bench_nbody_device(rounds, (4096, 16384, 65536))
        print("Fused ensemble step (float32):", flush=True)
        bench_fused_device(rounds)
        return
    print("N-body all-pairs accelerations (float32):", flush=True)
    nbody = bench_nbody(rounds, sizes)
    print("Lennard-Jones velocity Verlet, N = 4096 (float32):", flush=True)
    lj = bench_lj(rounds)
    worst = min(row["speedup"] for row in nbody)
    print(f"Targets: N-body >= {NBODY_TARGET}x NumPy: NBody worst x{worst:.1f} "
          f"{'PASS' if worst >= NBODY_TARGET else 'FAIL'}")  # fmt: skip
    if lj is not None:
        print(f"         LJ within {LJ_TARGET}x of jax-md: {lj['ratio']:.2f} "
              f"{'PASS' if lj['ratio'] <= LJ_TARGET else 'FAIL'}")  # fmt: skip
    bad = any(row["err"] > 1e-3 for row in nbody) or (lj is not None and lj["force_diff"] > 1e-3)
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
