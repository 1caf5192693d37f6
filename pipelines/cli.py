"""The `loraline` command: `serve` (an OpenAI-compatible server over the adapter registry) and
`generate` (one answer from a domain's adapter, through the same generation function)."""

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from resources.registry import REGISTRY_VARIABLE, registry_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loraline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve every registered adapter on one base (OpenAI-compatible HTTP)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--window-ms", type=float, default=10.0, help="how long the batcher collects requests into one batch")
    serve.add_argument("--max-batch", type=int, default=32, help="requests per forward pass at most")
    serve.add_argument("--reload-seconds", type=float, default=2.0, help="how often the registry is re-read when idle")
    generate = commands.add_parser("generate", help="answer one prompt with a domain's adapter (or the base)")
    generate.add_argument("prompt")
    generate.add_argument("--domain", required=True, help="a registered domain, or 'base' for the bare base")
    generate.add_argument("--max-tokens", type=int, default=128)
    generate.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument("--raw", action="store_true", help="complete the text as is, without the chat template")
    for command in (serve, generate):
        command.add_argument("--registry", default="", help=f"registry folder (default: ${REGISTRY_VARIABLE}, else data/registry)")
        command.add_argument("--precision", choices=("4bit", "full"), default="4bit", help="base weights: 4-bit NF4 (default) or full precision")
        command.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto", help="compute dtype ('auto': bf16 where native)")
        command.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # weight-loading bars are noise in a server log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    registry = registry_root(args.registry)
    try:
        return _serve(args, registry) if args.command == "serve" else _generate(args, registry)
    except FileNotFoundError as error:
        print(f"loraline {args.command}: {error}", file=sys.stderr)
        return 2


def _engine(args: argparse.Namespace, registry: Path):
    from assets.serving.generation import Engine

    return Engine(registry, args.precision, args.dtype, args.device)


def _serve(args: argparse.Namespace, registry: Path) -> int:
    import uvicorn

    from assets.serving.server import Batcher, create_app

    engine = _engine(args, registry)
    batcher = Batcher(engine, args.window_ms, args.max_batch, args.reload_seconds)
    logging.getLogger("loraline.serving").info(
        f"serving {engine.models()} from {registry} on http://{args.host}:{args.port} ({args.precision}, {engine.dtype}, {engine.device})")
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler that was
    # in place before it ran: with these no-op handlers a requested stop ends the command with status 0.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: None)
    try:
        uvicorn.run(create_app(engine, batcher), host=args.host, port=args.port, log_level="info")
    finally:
        batcher.close()
    return 0


def _generate(args: argparse.Namespace, registry: Path) -> int:
    from assets.serving.generation import BASE, GenerationRequest

    engine = _engine(args, registry)
    if args.domain != BASE and args.domain not in engine.adapters:
        print(f"loraline generate: no domain {args.domain!r} in {registry}; served: {', '.join(engine.models())}", file=sys.stderr)
        return 2
    ids = engine.text_prompt(args.prompt) if args.raw else engine.chat_prompt([{"role": "user", "content": args.prompt}])
    result = engine.complete([GenerationRequest(args.domain, ids, args.max_tokens, args.temperature, args.seed)])[0]
    print(result.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
