"""One module per CLI command, each with ``run(args: argparse.Namespace) -> int``."""
