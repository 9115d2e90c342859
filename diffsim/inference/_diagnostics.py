r"""MCMC convergence diagnostics of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021),
"Rank-normalization, folding, and localization: an improved R-hat for assessing
convergence of MCMC", the ones Stan, ArviZ and posterior report.

Every function takes the draws of one scalar, `x` of shape `(M, D)` (`M` chains of `D`
draws), and returns a scalar. All are pure `jax.numpy`: they jit, vmap over parameters
and keep the input's float dtype (float32 or float64); the public ones are `jax.jit`-ed, so
that an eager call compiles once per shape rather than dispatching op by op.

**Split chains.** Each chain is cut into halves, giving `2M` chains of `N = D // 2` draws;
with an odd `D` the middle draw is dropped, as Stan does. `S = 2MN` draws remain.

**Rank-normalisation.** With `r` the rank of a draw among all `S` split draws (ties
get the average rank), $z = \Phi^{-1}((r - 3/8) / (S + 1/4))$.

**Split R-hat** of chains $y_{mn}$ (`m` over the split chains): with chain means
$\bar y_m$, within-chain variance $W = \frac1{2M}\sum_m s_m^2$ ($s_m^2$ with ddof 1),
between-chain variance $B = N\,\mathrm{var}_m(\bar y_m)$ (ddof 1),
$\widehat{\mathrm{var}}^+ = \frac{N-1}{N} W + \frac{B}{N}$ and
$\hat R = \sqrt{\widehat{\mathrm{var}}^+ / W}$.
The rank-normalised R-hat is $\max(\hat R_\text{bulk}, \hat R_\text{tail})$: the split
R-hat of the rank-normalised split draws, and of the rank-normalised split *folded* draws
$|x - \mathrm{median}(x)|$ (which catches chains that differ in scale, not location). The
median, like the tail-ESS quantiles below, is over all `MD` draws, as in posterior (ArviZ
takes it over the split draws: the two differ only for an odd `D`).

**ESS** of split chains (Geyer's initial monotone positive sequence on the multi-chain
autocorrelation, as in Stan): with $c_{m,t}$ the biased autocovariance of chain `m` at lag
`t` (FFT), $\hat\rho_t = 1 - (W - \frac1{2M}\sum_m c_{m,t}) / \widehat{\mathrm{var}}^+$,
$\hat\rho_0 = 1$. The pair sums $P_k = \hat\rho_{2k} + \hat\rho_{2k+1}$ are kept up to the
first $k_f$ with $P_{k_f} \le 0$ (or the last pair computed), made non-increasing
($\tilde P_k = \min_{j \le k} P_j$), and
$\hat\tau = -1 + 2\sum_{k<k_f} \tilde P_k + \hat\rho_{2k_f}^+$ (the last even
autocorrelation, if positive: Stan's "improved estimate" for antithetic chains);
$\mathrm{ESS} = S / \max(\hat\tau, 1/\log_{10} S)$.
*Bulk* ESS is the ESS of the rank-normalised split draws; *tail* ESS the smaller ESS of
the indicators $I(x \le q_{0.05})$ and $I(x \le q_{0.95})$ (quantiles of all draws).

**Degenerate input.** Draws that are all equal have no variance: R-hat is NaN (0/0; as
in posterior and ArviZ) and every ESS is `S`, the number of split draws (as ArviZ).
A NaN anywhere in `x` makes every diagnostic NaN.
"""

import math

import jax
import jax.numpy as jnp
from blackjax.diagnostics import potential_scale_reduction
from jax.scipy.special import ndtri
from jaxtyping import Array, ArrayLike, Float

__all__ = ["ess", "ess_bulk", "ess_tail", "mcse_mean", "split_rhat"]


def _split(x: Float[Array, "M D"]) -> Float[Array, "K N"]:
    """Halve each chain; with an odd number of draws the middle one is dropped (Stan)."""
    half = x.shape[1] // 2
    return jnp.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _average_ranks(v: Float[Array, " S"]) -> Float[Array, " S"]:
    """1-based ranks of `v`, tied values sharing the mean of their ranks (scipy's
    `rankdata(method="average")`): the rank of `v_i` is `(#{v < v_i} + #{v <= v_i} + 1) / 2`.
    Written out because `jax.scipy.stats.rankdata` is slow to compile."""
    s = jnp.sort(v)
    below = jnp.searchsorted(s, v, side="left")
    up_to = jnp.searchsorted(s, v, side="right")
    return ((below + up_to + 1) / 2).astype(v.dtype)


def _z_scale(y: Float[Array, "K N"]) -> Float[Array, "K N"]:
    r"""Rank-normalise: $\Phi^{-1}((r - 3/8) / (S + 1/4))$ with pooled average ranks `r`."""
    ranks = _average_ranks(y.ravel()).reshape(y.shape)
    return ndtri((ranks - 0.375) / (y.size + 0.25))


def _as_float(x: ArrayLike) -> Array:
    """`x` as an array of a float dtype (float32 and float64 kept; ints, bools promoted)."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _nan_if_missing(x: Array, value: Array) -> Array:
    """`value`, or NaN when a draw is NaN (ranks, quantiles and the ESS truncation
    otherwise turn missing draws into plausible-looking numbers)."""
    return jnp.where(jnp.any(jnp.isnan(x)), jnp.nan, value)


def _ess_of_chains(y: Float[Array, "K N"]) -> Float[Array, ""]:
    r"""ESS of the chains `y` as given (already split and transformed): Geyer's initial
    monotone positive sequence, see the module docstring.

    Implemented here rather than with `blackjax.diagnostics.effective_sample_size`, which
    differs from Stan / posterior / ArviZ in three ways: it returns 0, not `S`, for
    constant draws; its monotone step also rewrites the final (truncating) pair, which
    changes $\hat\tau$ whenever $\hat\rho_{2k_f}$ exceeds the previous pair sum; and it
    scans lags up to `N` instead of Stan's `N - 3`.
    """
    k, n = y.shape
    total = k * n
    centred = y - y.mean(axis=1, keepdims=True)
    nfft = 1 << (2 * n - 1).bit_length()  # zero-padded: no circular wrap-around
    f = jnp.fft.rfft(centred, n=nfft, axis=1)
    acov = jnp.fft.irfft(f * jnp.conj(f), n=nfft, axis=1)[:, :n] / n
    mean_acov = acov.mean(axis=0)
    within = mean_acov[0] * n / (n - 1)
    var_plus = mean_acov[0] + jnp.var(y.mean(axis=1), ddof=1)
    rho = (1.0 - (within - mean_acov) / var_plus).at[0].set(1.0)

    # Pairs computed by Stan's loop: pair 0, then pair j while 2j < n - 2.
    num_pairs = max(1, (n - 1) // 2)
    even, odd = rho[0 : 2 * num_pairs : 2], rho[1 : 2 * num_pairs : 2]
    pairs = even + odd
    stop = (~(pairs > 0)).at[num_pairs - 1].set(True)
    k_f = jnp.argmax(stop)  # the first pair that is not positive, or the last one
    monotone = jax.lax.cummin(pairs)
    kept = jnp.sum(jnp.where(jnp.arange(num_pairs) < k_f, monotone, 0.0))
    last = jnp.where((pairs[k_f] >= 0) | (even[k_f] > 0), even[k_f], 0.0)
    tau = jnp.maximum(-1.0 + 2.0 * kept + last, 1.0 / math.log10(total))
    constant = jnp.all(y == y[0, 0])
    return jnp.where(constant, jnp.asarray(total, tau.dtype), total / tau)


def _rhat_of_chains(y: Float[Array, "K N"]) -> Float[Array, ""]:
    r"""Classic split R-hat $\sqrt{\widehat{\mathrm{var}}^+ / W}$ of the chains `y` as
    given: `blackjax.diagnostics.potential_scale_reduction` computes exactly
    $\sqrt{(B/W + N - 1)/N}$, the same quantity; NaN when `W = B = 0`."""
    return potential_scale_reduction(y, chain_axis=0, sample_axis=1)


@jax.jit
def split_rhat(x: ArrayLike) -> Float[Array, ""]:
    r"""Rank-normalised split R-hat of draws `x` `(chains, draws)`, at least 4 draws:
    $\max(\hat R(z(\mathrm{split}(x))),\ \hat R(z(\mathrm{split}(|x - \mathrm{median}(x)|))))$
    with `z` the rank-normalisation. Near 1 for converged chains (1.01 is the usual
    threshold); NaN for constant draws."""
    x = _as_float(x)
    both = jnp.stack([x, jnp.abs(x - jnp.median(x))])  # one vmapped pass: half the code
    bulk, tail = jax.vmap(lambda v: _rhat_of_chains(_z_scale(_split(v))))(both)
    return _nan_if_missing(x, jnp.maximum(bulk, tail))


@jax.jit
def ess(x: ArrayLike) -> Float[Array, ""]:
    r"""Basic effective sample size of draws `x` `(chains, draws)`: the ESS of the split
    chains, $S / \hat\tau$ (module docstring). For the mean of `x` itself, not rank-based."""
    x = _as_float(x)
    return _nan_if_missing(x, _ess_of_chains(_split(x)))


@jax.jit
def ess_bulk(x: ArrayLike) -> Float[Array, ""]:
    r"""Bulk effective sample size: $\mathrm{ESS}(z(\mathrm{split}(x)))$, the ESS of the
    rank-normalised split chains (well defined for heavy tails too)."""
    x = _as_float(x)
    return _nan_if_missing(x, _ess_of_chains(_z_scale(_split(x))))


@jax.jit
def ess_tail(x: ArrayLike) -> Float[Array, ""]:
    r"""Tail effective sample size: $\min_{p \in \{0.05, 0.95\}}
    \mathrm{ESS}(\mathrm{split}(I(x \le q_p)))$, `q_p` the `p` quantile of all draws."""
    x = _as_float(x)
    q = jnp.quantile(x, jnp.asarray([0.05, 0.95], x.dtype))
    indicators = (x <= q[:, None, None]).astype(x.dtype)
    both = jax.vmap(lambda v: _ess_of_chains(_split(v)))(indicators)
    return _nan_if_missing(x, jnp.min(both))


@jax.jit
def mcse_mean(x: ArrayLike) -> Float[Array, ""]:
    r"""Monte Carlo standard error of the mean of `x` `(chains, draws)`:
    $\sqrt{\mathrm{var}(x) / \mathrm{ESS}(x)}$, the variance over all draws (ddof 1) and
    the basic split-chain ESS. 0 for constant draws."""
    x = _as_float(x)
    return jnp.sqrt(jnp.var(x, ddof=1) / ess(x))
