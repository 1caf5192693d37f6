"""The loss curve as a small PNG, embedded in markdown as a data URI (the Dagster UI renders it)."""

import base64
import io


def loss_curve_png(history: list[dict[str, float]]) -> bytes:
    """Loss (left axis) and learning rate (right axis) against optimiser step; ~15 KB."""
    import matplotlib

    matplotlib.use("Agg")  # no display on the workers; must precede pyplot
    from matplotlib import pyplot as plt

    steps = [p["step"] for p in history]
    figure, loss_axis = plt.subplots(figsize=(6, 3), dpi=80)
    loss_axis.plot(steps, [p["loss"] for p in history], marker="o", markersize=3, color="tab:blue")
    loss_axis.set_xlabel("optimiser step")
    loss_axis.set_ylabel("train loss (nats/token)", color="tab:blue")
    rate_axis = loss_axis.twinx()
    rate_axis.plot(steps, [p["learning_rate"] for p in history], color="tab:gray", linestyle="--")
    rate_axis.set_ylabel("learning rate", color="tab:gray")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def loss_curve_markdown(history: list[dict[str, float]]) -> str:
    if not history:
        return "no loss logged (the run was shorter than one logging interval)"
    data = base64.b64encode(loss_curve_png(history)).decode("ascii")
    return f"![loss curve](data:image/png;base64,{data})"
