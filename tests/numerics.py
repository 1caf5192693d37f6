"""How far apart two bfloat16 computations of the same quantity may land (tests `import numerics`).

bfloat16 keeps 8 significant bits (7 stored, 1 implicit). Rounding to nearest misses a value by at
most the unit roundoff u = 2^-8 ≈ 3.9e-3 of it; one ulp, the gap between neighbouring bf16 numbers,
is 2u of the value (up to 2x less just above a power of two).

Two computations that are equal in exact arithmetic but run in another order (a batch of another
shape makes the CPU's GEMM block its fp32 accumulation differently; a merged weight is rounded once
where the unmerged path rounds two products) are a hair apart before each rounding to bf16. Where a
hair straddles a rounding boundary, the two results land one ulp apart. Such a flip is bounded by
the value it happens to, and later layers carry it forward about unchanged (residual stream, no
blow-up in these tiny models), so each rounding step that can flip adds at most ~2u of the largest
value compared. Hence: tolerance = roundings × u × max|value|, with `roundings` argued at each use,
and a control per test showing the mistake it guards against lands far above it.

float32 (u = 2^-24 ≈ 6e-8) tests keep their own, much tighter bounds.
"""

BF16_UNIT_ROUNDOFF = 2.0**-8


def bf16_tolerance(scale: float, roundings: float) -> float:
    """Largest difference allowed between two bf16 computations of values whose largest |value| is `scale`."""
    return roundings * BF16_UNIT_ROUNDOFF * scale
