"""Optuna's side of `cargo bench -p weft-tune --bench samplers` (benches/samplers.rs runs it).

Runs Optuna's samplers, with their defaults, on Branin and Hartmann6 for the seeds and budgets
given, one trial at a time (`study.optimize`), and prints one JSON object on stdout:

    {"optuna": VERSION, "torch": VERSION or null, "gp_error": null or why GPSampler was not run,
     "runs": [{"function", "sampler", "seed", "values": [objective per trial, in order],
               "seconds": wall time of the run}],
     "overhead": [{"sampler", "function", "history", "asks", "seconds_per_trial"}]}

`overhead` is the time of one ask + tell (the sampler's work for one trial, Optuna's in-memory
storage included) with `history` trials already in the study: for TPE and CMA-ES the study is
run to `history` trials by the sampler itself and the next asks are timed; for GPSampler
(cubic in the history) `history` random trials are added with `study.add_trials` first, and
at most 2 asks are timed.

Arguments: --seeds S --budget-branin N --budget-hartmann6 N (the GP sampler's:
           --budget-gp-branin N --budget-gp-hartmann6 N) --samplers tpe,mtpe,gp,cmaes
           --functions branin,hartmann6 --overhead-history H (0: none) --overhead-asks K
"""

import argparse
import json
import math
import os
import sys
import time

# One thread, as the Rust side: the machine is small and shared, and the comparison is per trial.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import optuna  # noqa: E402

import warnings  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

try:
    import torch  # noqa: E402

    torch.set_num_threads(1)
    TORCH = torch.__version__
    GP_ERROR = None
except Exception as e:  # GPSampler needs torch
    TORCH = None
    GP_ERROR = f"torch not importable: {e}"


def branin(x, y):
    b = 5.1 / (4.0 * math.pi**2)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    return (y - b * x * x + c * x - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x) + 10.0


HART_ALPHA = [1.0, 1.2, 3.0, 3.2]
HART_A = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
]
HART_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def hartmann6(x):
    total = 0.0
    for i in range(4):
        inner = sum(HART_A[i][j] * (x[j] - HART_P[i][j]) ** 2 for j in range(6))
        total -= HART_ALPHA[i] * math.exp(-inner)
    return total


FUNCTIONS = {
    "branin": (
        {
            "x": optuna.distributions.FloatDistribution(-5.0, 10.0),
            "y": optuna.distributions.FloatDistribution(0.0, 15.0),
        },
        lambda p: branin(p["x"], p["y"]),
    ),
    "hartmann6": (
        {f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(6)},
        lambda p: hartmann6([p[f"x{i}"] for i in range(6)]),
    ),
}


def sampler(name, seed):
    s = optuna.samplers
    if name == "tpe":
        return s.TPESampler(seed=seed)
    if name == "mtpe":
        return s.TPESampler(seed=seed, multivariate=True)
    if name == "gp":
        return s.GPSampler(seed=seed)
    if name == "cmaes":
        return s.CmaEsSampler(seed=seed)
    if name == "random":
        return s.RandomSampler(seed=seed)
    raise SystemExit(f"unknown sampler {name}")


def objective_of(function):
    dists, f = FUNCTIONS[function]

    def objective(trial):
        return f({n: trial.suggest_float(n, d.low, d.high) for n, d in dists.items()})

    return objective


def run(function, name, seed, budget):
    study = optuna.create_study(sampler=sampler(name, seed), direction="minimize")
    t = time.perf_counter()
    study.optimize(objective_of(function), n_trials=budget)
    seconds = time.perf_counter() - t
    return {
        "function": function,
        "sampler": name,
        "seed": seed,
        "values": [tr.value for tr in study.trials],
        "seconds": seconds,
    }


def overhead(function, name, history, asks):
    dists, f = FUNCTIONS[function]
    study = optuna.create_study(sampler=sampler(name, 0), direction="minimize")
    if name == "gp":
        rng = np.random.default_rng(0)
        trials = []
        for _ in range(history):
            params = {n: float(rng.uniform(d.low, d.high)) for n, d in dists.items()}
            trials.append(
                optuna.trial.create_trial(params=params, distributions=dists, value=f(params))
            )
        study.add_trials(trials)
    else:
        study.optimize(objective_of(function), n_trials=history)
    times = []
    for _ in range(min(asks, 2) if name == "gp" else asks):
        t0 = time.perf_counter()
        tr = study.ask(dists)
        study.tell(tr, f(tr.params))
        times.append(time.perf_counter() - t0)
    return {
        "sampler": name,
        "function": function,
        "history": history,
        "asks": len(times),
        "seconds_per_trial": sum(times) / len(times),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget-branin", type=int, default=100)
    ap.add_argument("--budget-hartmann6", type=int, default=200)
    ap.add_argument("--budget-gp-branin", type=int, default=50)
    ap.add_argument("--budget-gp-hartmann6", type=int, default=100)
    ap.add_argument("--samplers", default="tpe,gp,cmaes")
    ap.add_argument("--functions", default="branin,hartmann6")
    ap.add_argument("--overhead-history", type=int, default=1000)
    ap.add_argument("--overhead-asks", type=int, default=10)
    ap.add_argument("--overhead-samplers", default="tpe,cmaes,gp")
    a = ap.parse_args()
    budgets = {"branin": a.budget_branin, "hartmann6": a.budget_hartmann6}
    gp_budgets = {"branin": a.budget_gp_branin, "hartmann6": a.budget_gp_hartmann6}
    samplers = [s for s in a.samplers.split(",") if s]
    if GP_ERROR and "gp" in samplers:
        samplers.remove("gp")
    runs = []
    for function in [f for f in a.functions.split(",") if f]:
        for name in samplers:
            t = time.perf_counter()
            for seed in range(a.seeds):
                budget = (gp_budgets if name == "gp" else budgets)[function]
                runs.append(run(function, name, seed, budget))
            print(
                f"optuna {name} on {function}: {a.seeds} seeds in {time.perf_counter() - t:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    over = []
    if a.overhead_history > 0:
        for name in [s for s in a.overhead_samplers.split(",") if s]:
            if name == "gp" and GP_ERROR:
                continue
            over.append(overhead("hartmann6", name, a.overhead_history, a.overhead_asks))
            print(f"optuna {name} overhead measured", file=sys.stderr, flush=True)
    json.dump(
        {
            "optuna": optuna.__version__,
            "torch": TORCH,
            "gp_error": GP_ERROR,
            "runs": runs,
            "overhead": over,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
