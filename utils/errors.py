"""One way to end a script on a problem the user can fix: one sentence, exit status 2, no traceback."""
import os
import sys


class UserError(Exception):
    """A problem with the user's input (a file, a flag, a dataset), worded so that they can fix it."""


def run_cli(main, parser, argv=None):
    """Parse argv and call main(args); turn UserError and Ctrl-C into a one-line message and an exit code.

    Set CGNET_DEBUG=1 to get the full traceback instead.
    """
    args = parser.parse_args(argv)
    debug = os.environ.get("CGNET_DEBUG", "") not in ("", "0")
    try:
        return main(args)
    except UserError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted: stopped by Ctrl-C; completed checkpoints and outputs are kept.", file=sys.stderr)
        sys.exit(130)
