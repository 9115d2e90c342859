"""Sparse regression (STLSQ): known expressions are recovered exactly from noiseless
samples and within their uncertainties from noisy ones; a law the library cannot express
is reported as not found; the result is a JAX module that jits, differentiates, vmaps and
refits inside a hybrid system."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import diffsim as ds

FRICTION_TERMS = {
    "tanh(v/0.05)": lambda x: jnp.tanh(x[0] / 0.05),
    "tanh(v/0.5)": lambda x: jnp.tanh(x[0] / 0.5),
    "v|v|": lambda x: x[0] * jnp.abs(x[0]),
    "sign(v)": lambda x: jnp.sign(x[0]),
}


def _interaction(n=200, seed=0):
    xy = np.random.default_rng(seed).uniform(0.5, 2.0, (n, 2))
    xy_product = xy[:, 0] * xy[:, 1]
    return xy, np.stack([-0.9 * xy_product, 0.8 * xy_product], axis=1)


def _friction():
    v = np.linspace(-2.0, 2.0, 401)[:, None]
    law = 0.3 * np.tanh(v[:, 0] / 0.05) + 0.08 * v[:, 0] * np.abs(v[:, 0])
    library = ds.Library.polynomial(["v"], degree=3) + ds.Library.terms(FRICTION_TERMS)
    return library, v, law


def test_polynomial_library_names_and_values():
    lib = ds.Library.polynomial(["x", "y"], degree=3)
    assert lib.names == ("1", "x", "y", "x^2", "x*y", "y^2", "x^3", "x^2*y", "x*y^2", "y^3")
    x = jnp.array([2.0, 3.0])
    np.testing.assert_allclose(lib(x), [1, 2, 3, 4, 6, 9, 8, 12, 18, 27])
    assert lib.evaluate(jnp.ones((7, 2))).shape == (7, 10)
    # Equal polynomial libraries are equal (static, so no recompilation).
    assert lib == ds.Library.polynomial(["x", "y"], degree=3)
    both = ds.Library.polynomial(["v"], 1, bias=False) + ds.Library.terms(FRICTION_TERMS)
    assert both.names == ("v", *FRICTION_TERMS)


def test_noiseless_recovery_is_exact():
    xy, target = _interaction()
    lib = ds.Library.polynomial(["x", "y"], degree=3)
    model = ds.sparse_regression(lib, xy, target, output_names=["dx", "dy"])
    assert model.found, model.reason
    assert model.active == ((4, 0), (4, 1))  # x*y in both outputs, nothing else
    np.testing.assert_allclose(model.coefficients, [-0.9, 0.8], rtol=0, atol=1e-8)
    assert model.terms()["dx"].keys() == {"x*y"}
    assert min(model.r2) > 1 - 1e-12
    assert str(model).splitlines()[0].startswith("dx = (-0.9 ± ")
    np.testing.assert_allclose(jax.vmap(model)(jnp.asarray(xy)), target, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("noise", [0.01, 0.02])
def test_noisy_recovery_within_uncertainties(noise):
    xy, target = _interaction()
    rms = np.sqrt(np.mean(target**2, axis=0))
    noisy = target + noise * rms * np.random.default_rng(1).standard_normal(target.shape)
    lib = ds.Library.polynomial(["x", "y"], degree=3)
    model = ds.sparse_regression(lib, xy, noisy)
    assert model.found, model.reason
    assert model.active == ((4, 0), (4, 1))
    coefficients, stderr = np.asarray(model.coefficients), np.asarray(model.stderr)
    truth = np.array([-0.9, 0.8])
    assert np.all(np.abs(coefficients - truth) < 3 * stderr), (coefficients, stderr)
    np.testing.assert_allclose(coefficients, truth, rtol=0.05)
    # A dense least-squares fit keeps every term; cross-validation keeps one per output.
    dense = ds.sparse_regression(lib, xy, noisy, threshold=0.0, max_terms=10)
    assert len(dense.active) == 20 and len(model.active) == 2


def test_friction_law_from_polynomials_and_saturating_terms():
    library, v, law = _friction()
    noisy = law + 0.005 * np.random.default_rng(2).standard_normal(law.shape)
    model = ds.sparse_regression(library, v, noisy)
    assert model.found, model.reason
    assert set(model.terms()["f"]) == {"tanh(v/0.05)", "v|v|"}
    coef = {name: c for name, (c, _) in model.terms()["f"].items()}
    np.testing.assert_allclose([coef["tanh(v/0.05)"], coef["v|v|"]], [0.3, 0.08], rtol=0.02)
    assert model.scalar_output and model(jnp.array([0.5])).shape == ()


def test_fixed_threshold_is_used_as_given():
    library, v, law = _friction()
    model = ds.sparse_regression(library, v, law, threshold=0.1)
    assert model.threshold == 0.1 and model.found
    assert set(model.terms()["f"]) == {"tanh(v/0.05)", "v|v|"}
    # Above the v|v| term's contribution (about 0.4 of the target's rms), it is dropped
    # and the remaining law no longer explains the data.
    too_high = ds.sparse_regression(library, v, law, threshold=0.6)
    assert "v|v|" not in too_high.terms()["f"]


def test_no_sparse_model_is_reported_and_refuses_to_run():
    x = np.linspace(-1.0, 1.0, 200)[:, None]
    y = np.sin(6 * x[:, 0]) * np.exp(x[:, 0])
    model = ds.sparse_regression(ds.Library.polynomial(["x"], degree=2), x, y)
    assert not model.found
    assert "R^2" in model.reason and "widen the library" in model.reason.lower()
    assert str(model).startswith("no sparse model found: ")
    with pytest.raises(ValueError, match="no sparse model found"):
        model(jnp.array([0.1]))
    with pytest.raises(ValueError, match="no sparse model found"):
        eqx.filter_jit(model)(jnp.array([0.1]))


def test_too_many_terms_is_not_a_sparse_model():
    x = np.linspace(-1.0, 1.0, 100)[:, None]
    y = 1.0 + x[:, 0] + x[:, 0] ** 2 + x[:, 0] ** 3  # needs 4 of 4 terms
    model = ds.sparse_regression(ds.Library.polynomial(["x"], degree=3), x, y)
    assert not model.found and "4 of 4 terms" in model.reason
    assert ds.sparse_regression(ds.Library.polynomial(["x"], 3), x, y, max_terms=4).found


def test_jit_grad_vmap_through_a_sparse_model():
    library, v, law = _friction()
    model = ds.sparse_regression(library, v, law)

    def f(m, v):
        return m(jnp.stack([v]))

    x = jnp.asarray(0.7)
    expected = 0.3 / 0.05 / np.cosh(0.7 / 0.05) ** 2 + 0.08 * 2 * 0.7
    np.testing.assert_allclose(jax.jit(jax.grad(f, argnums=1))(model, x), expected, rtol=1e-8)
    grads = eqx.filter_grad(f)(model, x)
    np.testing.assert_allclose(grads.coefficients, [np.tanh(0.7 / 0.05), 0.7 * 0.7], rtol=1e-12)
    batch = jax.vmap(eqx.filter_jit(model))(jnp.asarray(v))
    np.testing.assert_allclose(batch, law, atol=1e-12)


def _lotka_volterra():
    def linear(t, y, p):
        return jnp.stack([p[0] * y[0], -p[1] * y[1]])

    physics = ds.ODESystem(linear, jnp.array([1.1, 0.4]))
    xy, target = _interaction(n=60)
    sparse = ds.sparse_regression(ds.Library.polynomial(["x", "y"], 2), xy, target)
    net = eqx.nn.MLP(2, 2, 4, 1, key=jax.random.key(0))
    hybrid = ds.systems.HybridODE(physics, net)
    return eqx.tree_at(lambda m: m.correction, hybrid, sparse), sparse


def test_refit_of_a_hybrid_system_recovers_perturbed_coefficients():
    truth, sparse = _lotka_volterra()
    y0 = jnp.array([1.0, 0.5])

    def observe(m):
        return ds.simulate(m, y0, t1=3.0, dt=0.05).ys

    data = observe(truth)
    start = eqx.tree_at(lambda m: m.correction.coefficients, truth, sparse.coefficients * 1.2)
    res = ds.fit(observe, start, data, where=lambda m: m.correction.coefficients)
    np.testing.assert_allclose(res.params.correction.coefficients, [-0.9, 0.8], atol=1e-6)
    assert res.params.correction.library is sparse.library  # static fields survive


def test_float32():
    xy, target = _interaction()
    with jax.enable_x64(False):
        xy32, target32 = xy.astype(np.float32), target.astype(np.float32)
        lib = ds.Library.polynomial(["x", "y"], degree=3)
        model = ds.sparse_regression(lib, xy32, target32)
        assert model.found and model.active == ((4, 0), (4, 1))
        assert model.coefficients.dtype == jnp.float32
        np.testing.assert_allclose(model.coefficients, [-0.9, 0.8], rtol=1e-5)
        out = eqx.filter_jit(model)(jnp.array([1.0, 2.0], jnp.float32))
        assert out.dtype == jnp.float32
        np.testing.assert_allclose(out, [-1.8, 1.6], rtol=1e-5)


def test_the_threshold_path_holds_each_distinct_model_once_sparsest_first():
    xy, target = _interaction()
    noisy = target + 0.02 * np.random.default_rng(3).standard_normal(target.shape)
    lib = ds.Library.polynomial(["x", "y"], degree=2)
    path = ds.sparse_path(lib, xy, noisy, output_names=["dx", "dy"], max_terms=6)
    sizes = [len(m.active) for m in path]
    assert sizes == sorted(sizes) and len({m.active for m in path}) == len(path)
    assert path[0].active == ((4, 0), (4, 1))  # the true law is the sparsest found
    assert all(m.found for m in path) and len(path) >= 2
    # A scalar feature is taken as a vector of one (as by a "scalar" network).
    library, v, law = _friction()
    model = ds.sparse_regression(library, v, law)
    assert float(model(jnp.asarray(0.5))) == pytest.approx(float(model(jnp.asarray([0.5]))))
    with pytest.raises(ValueError, match="thresholds"):
        ds.sparse_path(lib, xy, noisy, thresholds=[-1.0])


def test_a_briefly_trained_hybrid_yields_the_missing_term():
    """A pendulum with quadratic drag the model is not told: 300 Adam steps of a hybrid
    (gravity known, drag a small network of v), then the sparsest law on the threshold
    path of the network's outputs is the drag term alone, its coefficient within 5%."""

    def true_acceleration(t, q, v, p):
        return -9.81 * jnp.sin(q) - 0.3 * v * jnp.abs(v)

    def rollout(system, y0):
        saveat = ds.SaveAt(every=1)
        return ds.simulate(system, y0, n_steps=40, dt=0.05, saveat=saveat, adjoint=ds.Direct()).ys

    y0s = ds.PhaseState(q=jnp.array([0.5, 1.0, 1.5, 2.0]), v=jnp.zeros(4))
    data = jax.vmap(lambda y0: rollout(ds.MechanicalSystem(true_acceleration, {}), y0))(y0s)
    net = eqx.nn.MLP("scalar", "scalar", 16, 1, activation=jax.nn.tanh, key=jax.random.key(0))
    model = ds.systems.HybridSystem(ds.systems.Pendulum(length=1.0), net, lambda t, q, v: v)

    def loss_fn(model, y0s, data):
        ys = jax.vmap(lambda y0: rollout(model, y0))(y0s)
        return jnp.mean((ys.q - data.q) ** 2) + 0.01 * jnp.mean((ys.v - data.v) ** 2)

    schedule = optax.cosine_decay_schedule(3e-2, 300, 0.05)
    train = ds.make_train_step(loss_fn, optax.adam(schedule), clip_norm=10.0)
    opt_state = train.init(model)
    for _ in range(300):
        model, opt_state, loss = train.step(model, opt_state, y0s, data)
    assert float(loss) < 1e-3
    v = data.v.ravel()[:, None]
    learned = jax.vmap(model.correction)(v[:, 0])
    library = ds.Library.polynomial(["v"], degree=3, bias=False) + ds.Library.terms(
        {"v|v|": lambda x: x[0] * jnp.abs(x[0]), "sign(v)": lambda x: jnp.sign(x[0])}
    )
    sparsest = ds.sparse_path(library, v, learned)[0]
    assert [library.names[j] for j, _ in sparsest.active] == ["v|v|"]
    np.testing.assert_allclose(sparsest.coefficients, [-0.3], rtol=0.05)


def test_stacked_models_keep_each_law_and_refuse_what_cannot_stack():
    xy, target = _interaction()
    lib = ds.Library.polynomial(["x", "y"], degree=2)
    dx = ds.sparse_regression(lib, xy, target[:, 0], output_names=["dx"])
    dy = ds.sparse_regression(lib, xy, target[:, 1], output_names=["dy"])
    both = ds.SparseModel.stack([dx, dy])
    joint = ds.sparse_regression(lib, xy, target, output_names=["dx", "dy"])
    assert both.active == joint.active and both.output_names == ("dx", "dy")
    np.testing.assert_allclose(both.coefficients, joint.coefficients, rtol=1e-10)
    np.testing.assert_allclose(jax.vmap(both)(jnp.asarray(xy)), target, rtol=1e-10)
    nothing = ds.sparse_regression(lib, xy, np.sin(6 * xy[:, 0]) * np.exp(xy[:, 0]))
    with pytest.raises(ValueError, match="not found"):
        ds.SparseModel.stack([dx, nothing])
    other = ds.sparse_regression(ds.Library.polynomial(["x", "y"], 3), xy, target[:, 1])
    with pytest.raises(ValueError, match="same `library`"):
        ds.SparseModel.stack([dx, other])
