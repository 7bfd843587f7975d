"""Cross-check of our ES-MDA / EnKF analysis step against third-party implementations.

Two independent libraries, fed identical inputs and identical observation perturbations:

* Equinor's ``iterative-ensemble-smoother`` (``iterative_ensemble_smoother.ESMDA``: SVD-based
  subspace inversion of ``C_DD + alpha C_D``, or of its whitened form for a full ``C_D``);
* ``pyesmda`` (``pyesmda.ESMDA``: its own forecast / perturb / analyse loop, with the exact
  ``"cholesky"`` solve of ``C_DD + alpha C_D`` and the default ``"subspace_rescaled"``
  inversion).

Our side is :func:`repro_enkf.assimilation.analysis_update` (an ``Ne x Ne`` solve in ensemble
space), driven by :func:`repro_enkf.ensemble.ensemble_forward` as the forward model for the
multi-step runs, with :func:`repro_enkf.assimilation.inflation_schedule` for the alphas.

What "identical perturbations" means here: our update takes standard-normal draws ``z``
(``noise``) and forms ``d_j = d_obs + sqrt(alpha) C_D^(1/2) z_j`` itself. The libraries either
take ``C_D^(1/2) z`` explicitly (``iterative-ensemble-smoother``'s ``observation_perturbations``)
or draw ``z`` from the generator they are given; in that case we draw the same ``z`` from a
twin generator with the same seed, and ``test_library_perturbations_are_reproduced`` checks
that the twin draws are the library's perturbations, so a failure there points at the draws and
not at the update.

Our API takes a diagonal ``C_D`` only (``obs_var``). A full ``C_D = L L^T`` is checked through
the whitening identity: the update is unchanged when observations and predictions are mapped
by ``L^-1`` (then ``C_D = I``), so our update on whitened data must equal the libraries' update
with the full matrix.

Tolerance ``TOL = 1e-10`` (absolute, on the ensemble increment, whose entries are O(0.1-1)):
everything is float64 and the three codes compute the same expression by different exact
factorisations (our ``Ne x Ne`` solve, a truncation-free SVD, a Cholesky solve of the
``Nd x Nd`` system), so they differ by round-off only: measured <= 3e-14 for one step on the
problems below, <= 3e-12 for any step of the multi-step runs (ours carries a few times more
round-off than the libraries' SVD, as it forms ``I + dD^T (alpha C_D)^-1 dD``). ``1e-10``
leaves room for other BLAS / LAPACK builds, while the modelling slips one could make (an
inflation factor off by 1%, ``1/Ne`` instead of ``1/(Ne - 1)`` in the covariances, a wrong
perturbation scale) move the result by far more than that (``test_wrong_inflation_is_detected``).
Both libraries' default SVD truncation (0.99) is an approximation, so ``truncation=1.0`` is
passed: that is the exact update, the one we implement.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

ies = pytest.importorskip(
    "iterative_ensemble_smoother",
    reason="iterative-ensemble-smoother is not installed (it is in the root dev dependency group: "
    "`uv sync` installs it); the reference cross-check needs it",
)
pyesmda = pytest.importorskip(
    "pyesmda",
    reason="pyesmda is not installed (it is in the root dev dependency group: `uv sync` installs "
    "it); the reference cross-check needs it",
)
covmats = pytest.importorskip("covmats", reason="covmats (a dependency of pyesmda) is not installed")
scipy_linalg = pytest.importorskip("scipy.linalg", reason="scipy (a dependency of both libraries) is not installed")

from repro_enkf.assimilation import analysis_update, inflation_schedule  # noqa: E402
from repro_enkf.ensemble import ensemble_forward, init_ensemble, num_params  # noqa: E402

TOL = 1e-10  # one analysis step from identical inputs (see the module docstring)
# A whole multi-step run compares two trajectories of a non-linear map: each step's round-off
# (<= 3e-12 here) is fed through the network into the next update and grows ~2-3x per step
# (measured: up to 2e-10 after 8 steps, against either library). The per-step check is the
# tight one; 1e-8 covers these runs with a margin of 50.
TOL_TRAJECTORY = 1e-8
SEED = 20101002  # fixed: arXiv 2010.02626

# (Ne, Nd, Nm): Nd > Ne, Nd < Ne - 1, Nd == Ne, Nm < Ne with many observations, a tiny ensemble.
SHAPES = [(10, 50, 30), (40, 8, 25), (16, 16, 16), (50, 200, 5), (3, 2, 4)]
# (N_a, kind): plain ES (one step, alpha = 1), Emerick & Reynolds' constant alpha, a geometric one.
SCHEDULES = [(1, "constant"), (4, "constant"), (5, "geometric")]
PYESMDA_INVERSIONS = ["cholesky", "subspace_rescaled"]


# ----------------------------------------------------------------------------- helpers


def _increment_diff(ours: np.ndarray, lib: np.ndarray, prior: np.ndarray) -> float:
    """Max |ours - lib| after checking the update is non-trivial (so agreement means something)."""
    assert ours.shape == lib.shape == prior.shape
    moved = np.abs(lib - prior).max()
    assert moved > 1e-3, f"the library barely moved the ensemble (max |increment| = {moved:.2e})"
    return float(np.abs(ours - lib).max())


def _assert_agree(ours: np.ndarray, lib: np.ndarray, prior: np.ndarray, what: str) -> None:
    diff = _increment_diff(ours, lib, prior)
    assert diff <= TOL, f"{what}: max |ours - library| = {diff:.3e} > {TOL:.0e}"


def _ours(theta, pred, obs, var, alpha, z) -> np.ndarray:
    """Our analysis step on numpy arrays in our row layout (theta (Ne, Nm), pred/z (Ne, Nd))."""
    t = torch.from_numpy
    out = analysis_update(t(theta), t(pred), t(obs), t(np.asarray(var, dtype=np.float64)), alpha, t(z))
    assert out.dtype == torch.float64
    return out.numpy()


def _single_step_problem(ne: int, nd: int, nm: int, seed: int):
    """Prior (Ne, Nm), a fixed non-linear forward model, observations, diagonal C_D, draws z."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((ne, nm))
    a = rng.standard_normal((nm, nd)) / math.sqrt(nm)
    b = rng.standard_normal((nm, nd)) / math.sqrt(nm)

    def g(m: np.ndarray) -> np.ndarray:  # library layout: (Nm, Ne) -> (Nd, Ne)
        return (np.tanh(m.T @ a) + 0.3 * (m.T @ b) ** 2).T

    obs = rng.standard_normal(nd)
    var = 0.05 + rng.random(nd)
    z = rng.standard_normal((ne, nd))
    return theta, g, obs, var, z


def _full_covariance(var: np.ndarray, seed: int) -> np.ndarray:
    """An SPD, clearly non-diagonal C_D whose diagonal is about ``var`` plus a correlated part."""
    rng = np.random.default_rng(seed)
    nd = var.shape[0]
    f = rng.standard_normal((nd, max(1, nd // 2))) * 0.3
    return f @ f.T + np.diag(var)


def _whiten(chol: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``L^-1 v`` for each row of ``v`` (or for a vector ``v``), ``L`` lower triangular."""
    return scipy_linalg.solve_triangular(chol, v.T, lower=True).T


def _ies_step(theta, pred, obs, cov, schedule, eps) -> np.ndarray:
    """First step of iterative-ensemble-smoother's ES-MDA with explicit perturbations ``eps`` ~ N(0, C_D)."""
    smoother = ies.ESMDA(cov, obs, alpha=np.asarray(schedule, dtype=np.float64), seed=0)
    smoother.prepare_assimilation(Y=pred.T.copy(), truncation=1.0, observation_perturbations=eps.T.copy())
    return smoother.assimilate_batch(X=theta.T.copy()).T


def _mlp_problem(sizes: list[int], n_obs: int, ne: int, seed: int):
    """A 1-D or 2-D regression with an MLP ensemble as the forward model, as in the paper."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n_obs, sizes[0], generator=gen, dtype=torch.float64) * 6 - 3
    y = torch.sin(x).sum(dim=1, keepdim=True) + 0.05 * torch.randn(n_obs, 1, generator=gen, dtype=torch.float64)
    theta = init_ensemble(sizes, ne, gen).to(torch.float64)
    assert theta.shape == (ne, num_params(sizes))
    return x, y.reshape(-1).numpy(), theta.numpy()


def _mlp_forward(x: torch.Tensor, sizes: list[int]):
    """Our batched ensemble forward, in the libraries' layout (Nm, Ne) -> (Nd, Ne)."""

    def g(m: np.ndarray) -> np.ndarray:
        theta = torch.from_numpy(np.ascontiguousarray(m.T))
        return ensemble_forward(theta, x, sizes).reshape(theta.shape[0], -1).numpy().T

    return g


# ----------------------------------------------------------------------------- perturbations


def test_library_perturbations_are_reproduced() -> None:
    """The twin-generator draws used below are exactly the perturbations the libraries add."""
    ne, nd, alpha = 7, 5, 3.0
    rng = np.random.default_rng(0)
    obs = rng.standard_normal(nd)
    var = 0.1 + rng.random(nd)
    cov = _full_covariance(var, seed=1)
    chol = np.linalg.cholesky(cov)

    # iterative-ensemble-smoother, diagonal C_D: z ~ standard_normal((Nd, Ne)),
    # D = d_obs + sqrt(alpha) sqrt(C_D) z. (With a full C_D its own draws are U z for the *upper*
    # Cholesky factor U, covariance U U^T != C_D = U^T U, in 1.2.0 and 1.3.0; the full-C_D tests
    # therefore hand it explicit perturbations L z through ``observation_perturbations``.)
    d = ies.ESMDA(var, obs, alpha=4, seed=SEED).perturb_observations(ensemble_size=ne, alpha=alpha)
    z = np.random.default_rng(SEED).standard_normal((nd, ne))
    np.testing.assert_allclose(d, obs[:, None] + math.sqrt(alpha) * np.sqrt(var)[:, None] * z, rtol=0, atol=1e-13)

    # pyesmda (covmats): z ~ standard_normal((Ne, Nd)), row j perturbed by C_D^(1/2) z_j.
    for c_d, root in ((covmats.CovViaDiagonal(var), np.diag(np.sqrt(var))), (covmats.CovViaCholesky(chol, cov), chol)):
        eps = c_d.sample_mvnormal((ne,), np.random.default_rng(SEED))
        z = np.random.default_rng(SEED).standard_normal((ne, nd))
        np.testing.assert_allclose(eps, z @ root.T, rtol=0, atol=1e-13)


def test_inflation_schedules_agree() -> None:
    """Our alphas survive iterative-ensemble-smoother's renormalisation to Σ 1/α = 1 (pyesmda takes them as given)."""
    obs, var = np.zeros(3), np.ones(3)
    for n_a, kind in SCHEDULES + [(32, "constant"), (8, "geometric")]:
        ours = np.asarray(inflation_schedule(n_a, kind))
        np.testing.assert_allclose(np.sum(1 / ours), 1.0, rtol=1e-14)
        lib = ies.ESMDA(var, obs, alpha=ours.copy()).alpha
        np.testing.assert_allclose(lib, ours, rtol=1e-14, atol=0)
        if kind == "constant":  # the library's own constant default: alpha = N_a, N_a times
            np.testing.assert_array_equal(ies.ESMDA(var, obs, alpha=n_a).alpha, ours)


# ----------------------------------------------------------------------------- one analysis step


@pytest.mark.parametrize("ne,nd,nm", SHAPES)
@pytest.mark.parametrize("n_a,kind", SCHEDULES)
def test_single_step_matches_iterative_ensemble_smoother(ne, nd, nm, n_a, kind) -> None:
    theta, g, obs, var, z = _single_step_problem(ne, nd, nm, seed=SEED + ne * 1000 + nd)
    pred = g(theta.T).T
    schedule = inflation_schedule(n_a, kind)
    ours = _ours(theta, pred, obs, var, schedule[0], z)
    lib = _ies_step(theta, pred, obs, var, schedule, eps=z * np.sqrt(var))
    _assert_agree(ours, lib, theta, f"ES-MDA step, alpha={schedule[0]:.4g}, diagonal C_D")


@pytest.mark.parametrize("ne,nd,nm", SHAPES)
@pytest.mark.parametrize("n_a,kind", SCHEDULES)
def test_single_step_full_covariance_matches_iterative_ensemble_smoother(ne, nd, nm, n_a, kind) -> None:
    theta, g, obs, var, z = _single_step_problem(ne, nd, nm, seed=SEED + ne * 1000 + nd)
    pred = g(theta.T).T
    cov = _full_covariance(var, seed=SEED + nd)
    chol = np.linalg.cholesky(cov)
    schedule = inflation_schedule(n_a, kind)
    lib = _ies_step(theta, pred, obs, cov, schedule, eps=z @ chol.T)  # rows C_D^(1/2) z_j
    # Ours on whitened data: L^-1 d_obs, L^-1 D_j, C_D = I, the same z.
    ours = _ours(theta, _whiten(chol, pred), _whiten(chol, obs), np.ones(nd), schedule[0], z)
    _assert_agree(ours, lib, theta, f"ES-MDA step, alpha={schedule[0]:.4g}, full C_D (whitened)")


@pytest.mark.parametrize("ne,nd,nm", SHAPES)
@pytest.mark.parametrize("n_a,kind", SCHEDULES)
@pytest.mark.parametrize("inversion", PYESMDA_INVERSIONS)
@pytest.mark.parametrize("full_cov", [False, True], ids=["diag", "full"])
def test_single_step_matches_pyesmda(ne, nd, nm, n_a, kind, inversion, full_cov) -> None:
    theta, g, obs, var, _ = _single_step_problem(ne, nd, nm, seed=SEED + ne * 1000 + nd)
    pred = g(theta.T).T
    alpha = inflation_schedule(n_a, kind)[0]
    # pyesmda draws its perturbations itself: z ~ standard_normal((Ne, Nd)) from this generator.
    z = np.random.default_rng(SEED).standard_normal((ne, nd))
    if full_cov:
        cov = _full_covariance(var, seed=SEED + nd)
        chol = np.linalg.cholesky(cov)
        c_d = covmats.CovViaCholesky(chol, cov)
        ours = _ours(theta, _whiten(chol, pred), _whiten(chol, obs), np.ones(nd), alpha, z)
    else:
        c_d = covmats.CovViaDiagonal(var)
        ours = _ours(theta, pred, obs, var, alpha, z)
    solver = pyesmda.ESMDA(
        obs=obs.copy(), m_init=theta.T.copy(), cov_obs=c_d, forward_model=g, n_assimilations=1,
        cov_obs_inflation_factors=[alpha], inversion_type=inversion, truncation=1.0,
        random_state=np.random.default_rng(SEED), is_forecast_for_last_assimilation=False,
    )
    solver.solve()
    _assert_agree(ours, solver.m_posterior.T, theta,
                  f"pyesmda {inversion}, alpha={alpha:.4g}, {'full' if full_cov else 'diagonal'} C_D")


# ----------------------------------------------------------------------------- the full ES-MDA schedule

# (layer sizes, observations, Ne): Nd < Ne with P < Ne (the smoke setting), Nd > Ne with P ~ Ne.
MLP_PROBLEMS = [([1, 10, 1], 40, 50), ([2, 5, 1], 30, 20)]
MULTI_SCHEDULES = [(4, "constant"), (8, "constant"), (5, "geometric")]


def _check_trajectory(states: list[np.ndarray], step, what: str) -> None:
    """``states``: the library's ensembles (Ne, Nm), prior first; ``step(i, theta)``: our step i.

    Each of our steps started from the library's own ensemble must land on the library's next
    one to ``TOL``. Our independent run over the whole schedule must end on the library's
    posterior to ``TOL_TRAJECTORY``.
    """
    for i in range(len(states) - 1):
        _assert_agree(step(i, states[i]), states[i + 1], states[i], f"{what}, step {i + 1} of {len(states) - 1}")
    theta = states[0]
    for i in range(len(states) - 1):
        theta = step(i, theta)
    diff = _increment_diff(theta, states[-1], states[0])
    assert diff <= TOL_TRAJECTORY, f"{what}, whole run: max |ours - library| = {diff:.3e} > {TOL_TRAJECTORY:.0e}"


@pytest.mark.parametrize("sizes,n_obs,ne", MLP_PROBLEMS)
@pytest.mark.parametrize("n_a,kind", MULTI_SCHEDULES)
def test_esmda_schedule_matches_iterative_ensemble_smoother(sizes, n_obs, ne, n_a, kind) -> None:
    """All N_a steps, the forward model re-run between steps, the library drawing its own noise."""
    x, y, theta0 = _mlp_problem(sizes, n_obs, ne, seed=SEED + n_a)
    g = _mlp_forward(x, sizes)
    var = np.full(n_obs, 0.05**2)
    schedule = inflation_schedule(n_a, kind)

    smoother = ies.ESMDA(var, y, alpha=np.asarray(schedule), seed=SEED)
    states = [theta0]
    for _ in range(smoother.num_assimilations()):
        smoother.prepare_assimilation(Y=g(states[-1].T), truncation=1.0)
        states.append(smoother.assimilate_batch(X=states[-1].T.copy()).T)

    twin = np.random.default_rng(SEED)  # the library draws standard_normal((Nd, Ne)) per step
    draws = [twin.standard_normal((n_obs, ne)).T for _ in schedule]
    _check_trajectory(states, lambda i, th: _ours(th, g(th.T).T, y, var, schedule[i], draws[i]),
                      f"ES-MDA, {n_a} x {kind} alpha, {sizes} MLP")


@pytest.mark.parametrize("sizes,n_obs,ne", MLP_PROBLEMS)
@pytest.mark.parametrize("n_a,kind", MULTI_SCHEDULES)
@pytest.mark.parametrize("inversion", PYESMDA_INVERSIONS)
def test_esmda_schedule_matches_pyesmda(sizes, n_obs, ne, n_a, kind, inversion) -> None:
    """pyesmda's own solve() loop (forecast, perturb, analyse) against ours."""
    x, y, theta0 = _mlp_problem(sizes, n_obs, ne, seed=SEED + n_a)
    g = _mlp_forward(x, sizes)
    var = np.full(n_obs, 0.05**2)
    schedule = inflation_schedule(n_a, kind)

    solver = pyesmda.ESMDA(
        obs=y.copy(), m_init=theta0.T.copy(), cov_obs=covmats.CovViaDiagonal(var), forward_model=g,
        n_assimilations=n_a, cov_obs_inflation_factors=schedule, inversion_type=inversion, truncation=1.0,
        random_state=np.random.default_rng(SEED), is_forecast_for_last_assimilation=False,
        save_ensembles_history=True,
    )
    solver.solve()
    states = [m.T for m in solver.m_history]
    assert len(states) == n_a + 1 and np.array_equal(states[-1], solver.m_posterior.T)

    twin = np.random.default_rng(SEED)  # pyesmda draws standard_normal((Ne, Nd)) per step
    draws = [twin.standard_normal((ne, n_obs)) for _ in schedule]
    _check_trajectory(states, lambda i, th: _ours(th, g(th.T).T, y, var, schedule[i], draws[i]),
                      f"pyesmda {inversion}, {n_a} x {kind} alpha, {sizes} MLP")


# ----------------------------------------------------------------------------- EnKF = sequential ES


@pytest.mark.parametrize("library", ["iterative-ensemble-smoother", "pyesmda"])
@pytest.mark.parametrize("n_passes,batch_size", [(1, 60), (1, 20), (3, 20), (2, 7)])
def test_enkf_matches_sequential_es(library, n_passes, batch_size) -> None:
    """Our online EnKF against the library's single-step ES, one smoother per mini-batch.

    The EnKF is run as in ``methods.fit_enkf``: a new permutation of the observations per pass,
    mini-batches in that order, alpha = number of passes. One pass with one batch is the plain
    ES (alpha = 1); mini-batches are ES steps in sequence, each on its own observations.
    """
    sizes, n_obs, ne = [1, 10, 1], 60, 40
    seed = SEED + 7 * n_passes + batch_size
    x, y, theta0 = _mlp_problem(sizes, n_obs, ne, seed=seed)
    var, alpha = 0.05**2, float(n_passes)
    gen = torch.Generator().manual_seed(seed)
    batches = [order[j:j + batch_size] for order in (torch.randperm(n_obs, generator=gen) for _ in range(n_passes))
               for j in range(0, n_obs, batch_size)]
    forwards = [_mlp_forward(x[idx], sizes) for idx in batches]
    obs = [y[idx.numpy()] for idx in batches]
    draws_rng = np.random.default_rng(seed)  # one z ~ standard_normal((Ne, nb)) per mini-batch
    draws = [draws_rng.standard_normal((ne, len(idx))) for idx in batches]

    states, lib_rng = [theta0], np.random.default_rng(seed)
    for g, yb, z in zip(forwards, obs, draws):
        var_b = np.full(len(yb), var)
        if library == "iterative-ensemble-smoother":
            smoother = ies.ESMDA(var_b, yb, alpha=n_passes, seed=0)  # its first alpha is n_passes (1: ES)
            smoother.prepare_assimilation(Y=g(states[-1].T), truncation=1.0,
                                          observation_perturbations=(z * math.sqrt(var)).T.copy())
            states.append(smoother.assimilate_batch(X=states[-1].T.copy()).T)
        else:  # pyesmda draws z itself from lib_rng, shared across the per-batch solvers
            solver = pyesmda.ESMDA(
                obs=yb.copy(), m_init=states[-1].T.copy(), cov_obs=covmats.CovViaDiagonal(var_b), forward_model=g,
                n_assimilations=1, cov_obs_inflation_factors=[alpha], inversion_type="cholesky", truncation=1.0,
                random_state=lib_rng, is_forecast_for_last_assimilation=False,
            )
            solver.solve()
            states.append(solver.m_posterior.T)

    def ours(i: int, theta: np.ndarray) -> np.ndarray:
        return _ours(theta, forwards[i](theta.T).T, obs[i], np.full(len(obs[i]), var), alpha, draws[i])

    _check_trajectory(states, ours, f"EnKF, {n_passes} pass(es), batches of {batch_size}, vs {library}")


# ----------------------------------------------------------------------------- the check can fail


def test_wrong_inflation_is_detected() -> None:
    """Negative control: the same comparison with a slightly wrong update misses TOL by orders of magnitude."""
    ne = 16
    theta, g, obs, var, z = _single_step_problem(ne, 16, 16, seed=SEED)
    pred = g(theta.T).T
    alpha = inflation_schedule(4, "constant")[0]
    lib = _ies_step(theta, pred, obs, var, [alpha] * 4, eps=z * np.sqrt(var))
    assert _increment_diff(_ours(theta, pred, obs, var, alpha, z), lib, theta) <= TOL
    wrong = {
        "alpha off by 1%": (alpha * 1.01, z),
        "alpha = N_a + 1": (alpha + 1, z),
        "alpha = 1 (plain ES step)": (1.0, z),
        # 1/Ne instead of 1/(Ne - 1) in both covariances is the same as alpha * Ne / (Ne - 1).
        "covariances normalised by 1/Ne": (alpha * ne / (ne - 1), z),
        "perturbations without sqrt(alpha)": (alpha, z / math.sqrt(alpha)),
    }
    for what, (a, zz) in wrong.items():
        diff = _increment_diff(_ours(theta, pred, obs, var, a, zz), lib, theta)
        assert diff > 1e4 * TOL, f"{what}: only {diff:.2e} away from the library"
