"""Coefficients of the polynomial GELU kernels in `tensor/src/gelu_poly.rs`.

GELU(x) = x * Phi(x) and its derivative Phi(x) + x * phi(x) are both 0.5 * x + x^2 * h(x^2)
and 0.5 + x * k(x^2) for smooth even parts

    h(u) = erf(sqrt(u / 2)) / (2 sqrt(u)),    k(u) = h(u) + exp(-u / 2) / sqrt(2 pi),

so one polynomial in u = x^2 each covers both signs. They are fitted on |x| <= R as Chebyshev
least squares at Chebyshev nodes of t = 2 u / R^2 - 1 (in [-1, 1]) and printed as monomial
coefficients in t, lowest degree first, which keeps Horner's rule in f32 well conditioned.
The script also evaluates the printed coefficients the way the kernel does (f32, fused
multiply-adds) and prints the worst error on a fine grid of |x| <= R.

Run: python3 tensor/scripts/fit_gelu.py   (numpy only)
"""

import math

import numpy as np

R = 6.0
DEGREE_H = 16
DEGREE_K = 18
NODES = 6000

SQRT_2PI = math.sqrt(2.0 * math.pi)


def h(u):
    x = np.sqrt(u)
    out = np.full_like(u, 1.0 / SQRT_2PI)  # the limit at u = 0
    nz = x > 1e-8
    out[nz] = np.array([math.erf(v / math.sqrt(2.0)) for v in x[nz]]) / (2.0 * x[nz])
    return out


def k(u):
    return h(u) + np.exp(-u / 2.0) / SQRT_2PI


def fit(f, degree):
    t = np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES)
    u = (t + 1.0) * R * R / 2.0
    cheb = np.polynomial.chebyshev.chebfit(t, f(u), degree)
    return np.polynomial.chebyshev.cheb2poly(cheb).astype(np.float32)


def horner_f32(coef, t):
    # f64 multiply-add rounded once to f32: a fused multiply-add.
    acc = np.full_like(t, coef[-1])
    for c in coef[-2::-1]:
        acc = (acc.astype(np.float64) * t + np.float64(c)).astype(np.float32)
    return acc


def worst_error(coef, f):
    x = np.linspace(-R, R, 400001).astype(np.float32)
    u = (x.astype(np.float64) * x).astype(np.float32)
    t = (u.astype(np.float64) * np.float32(2.0 / (R * R)) + np.float32(-1.0)).astype(np.float32)
    got = horner_f32(coef, t.astype(np.float64))
    return np.max(np.abs(x.astype(np.float64) * (got - f(u.astype(np.float64)))))


for name, f, degree in [("H", h, DEGREE_H), ("K", k, DEGREE_K)]:
    coef = fit(f, degree)
    print(f"// {name}: degree {degree}, worst |x * error| on |x| <= {R}: {worst_error(coef, f):.2e}")
    print(f"const {name}: [f32; {degree + 1}] = [")
    for c in coef:
        print(f"    {np.float32(c)!r},".replace("np.float32(", "").replace(")", ""))
    print("];")
