"""One way to end a script on a problem the user can fix: one sentence, exit status 2, no traceback."""
import os
import sys


class UserError(Exception):
    """A problem with the user's input (a file, a flag, a dataset), worded so that they can fix it.

    `rank`: the process of a multi-process run that met it alone (printed as a [rank N] prefix)."""

    def __init__(self, message, rank=None):
        super().__init__(message)
        self.rank = rank


INTERRUPTED = ("stopped by Ctrl-C; completed checkpoints are kept (continue a training run with --resume auto); "
               "an unfinished evaluation or test writes nothing.")


def run_cli(main, parser, argv=None, interrupted=INTERRUPTED):
    """Parse argv and call main(args); turn UserError and Ctrl-C into a one-line message and an exit code.
    `interrupted`: what a Ctrl-C leaves behind, in the words of the tool.

    Set CGNET_DEBUG=1 to get the full traceback instead.
    """
    debug = os.environ.get("CGNET_DEBUG", "") not in ("", "0")
    if not debug:
        parser.error = _one_line_error  # argparse's own errors: the sentence without the long usage text
    args = parser.parse_args(argv)
    try:
        return main(args)
    except UserError as e:
        if debug:
            raise
        if int(os.environ.get("WORLD_SIZE", 1)) > 1:  # one of torchrun's processes
            from utils.dist import report_error  # utils.dist imports this module
            report_error(user_message(e))
        else:
            print(f"{'' if e.rank is None else f'[rank {e.rank}] '}error: {user_message(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if debug:
            raise
        if os.environ.get("RANK", "0") == "0":  # every process of the run gets the Ctrl-C: say it once
            print(f"interrupted: {interrupted}", file=sys.stderr)
        sys.exit(130)
    except Exception:
        if not debug and int(os.environ.get("WORLD_SIZE", 1)) > 1:
            from utils.dist import exit_if_another_rank_stopped
            exit_if_another_rank_stopped()  # a collective broken by a rank that stopped on an error
        raise


def user_message(error):
    """The one sentence of a UserError, also when torch re-raised it from a DataLoader worker: there its
    text is 'Caught UserError in DataLoader worker process 0.\nOriginal Traceback ...\n...UserError: <sentence>'."""
    text = str(error)
    if "Original Traceback" in text and "UserError: " in text:
        text = text.rsplit("UserError: ", 1)[1]
    return text.strip()


def _one_line_error(message):
    print(f"error: {message}; see --help.", file=sys.stderr)
    sys.exit(2)
