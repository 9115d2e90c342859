"""Checks every system in the catalogue passes: jit + vmap over a batch of parameters, and
float32 / float64 rollouts that agree with each other."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import diffsim as ds


def _cast(tree, dtype):
    """Every floating leaf (array or Python float) of `tree` as `dtype`; others unchanged."""

    def cast(x):
        if isinstance(x, float) or (eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating)):
            return jnp.asarray(x, dtype)
        return x

    return jax.tree.map(cast, tree)


def check_vmap_matches_loop(make, params, y0, *, rtol=1e-10, **simulate_kwargs):
    """`jit(vmap(simulate))` over a batch of parameters equals one rollout per member.

    `make(p)` builds a system from one member `p` of the batch `params` (a pytree whose
    leaves have a leading batch axis)."""

    def final(p):
        return ds.simulate(make(p), y0, **simulate_kwargs).ys

    batched = jax.jit(jax.vmap(final))(params)
    n = jax.tree.leaves(params)[0].shape[0]
    for i in range(n):
        member = jax.tree.map(lambda x, i=i: x[i], params)
        single = final(member)
        for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(a[i], b, rtol=rtol, atol=1e-12)


def check_precisions(make, params, y0, *, rtol=1e-4, atol=1e-6, **simulate_kwargs):
    """The rollout runs in float32 and float64, keeps the dtype, and the two agree to
    float32 accuracy (`rtol` covers round-off amplified over the rollout)."""
    out = {}
    for dtype in (jnp.float32, jnp.float64):
        system, y = _cast(make(_cast(params, dtype)), dtype), _cast(y0, dtype)
        ys = ds.simulate(system, y, **simulate_kwargs).ys
        for leaf in jax.tree.leaves(ys):
            assert leaf.dtype == dtype, (leaf.dtype, dtype)
            assert np.isfinite(np.asarray(leaf)).all()
        out[dtype] = ys
    for a, b in zip(
        jax.tree.leaves(out[jnp.float32]), jax.tree.leaves(out[jnp.float64]), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=rtol, atol=atol)
