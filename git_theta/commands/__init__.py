"""One module per `git theta` subcommand; each exposes a plain function returning an exit code."""
