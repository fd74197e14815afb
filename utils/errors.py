"""One way to end a script on a problem the user can fix: one sentence, exit status 2, no traceback. In a run
of several processes (torchrun, or utils.dist.spawn) the others stop with the one that met it: the ranks tell
each other through the run's key-value store (report_error, watch_for_stops)."""
import atexit
import os
import sys
import threading
import time
from datetime import timedelta

import torch.distributed as dist

from utils.log import rank

STOP_AFTER_S = 3  # children still running this long after SIGTERM are killed
AGREE_S = 1.0     # how long a rank stopping on an error waits to learn whether every rank stops on it
_stopping = threading.Lock()  # held by the first thread of this process that stops it on an error


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


def report_error(message):
    """Print a UserError of one process of a multi-process run (run_cli calls this), and make the others stop.

    A message every rank stops on alike (a bad flag, a NaN loss found by an all-reduce) is printed once,
    plainly. One that a rank meets alone (a broken image in its share of the data) is printed by it,
    prefixed [rank N]; the other ranks, perhaps blocked in a collective waiting for it, then stop with one
    line pointing to it (watch_for_stops). The ranks tell each other through the run's key-value store.
    """
    if not _stopping.acquire(blocking=False):
        return  # this process is already stopping because another rank did
    me, world = rank(), int(os.environ.get("WORLD_SIZE", 1))
    line = f"[rank {me}] error: {message}"
    store = _run_store()
    try:
        if store is not None:
            key = "error:" + message
            if store.add(key, 1) > 1:  # the first rank to stop on this message says it
                line = None
            else:
                deadline = time.monotonic() + AGREE_S
                while store.add(key, 0) < world and time.monotonic() < deadline:
                    time.sleep(0.05)
                if store.add(key, 0) >= world:
                    line = f"error: {message}"
    except dist.DistError:  # the store went away with the process that hosted it
        store = None
    if line:
        print(line, file=sys.stderr, flush=True)
    try:
        if store is not None:
            if line and line.startswith("["):  # met alone: the others' watchers stop them, pointing here
                store.compare_set("first", "", str(me))
            # Exit once they have said why they stop: torchrun terminates the rest as soon as one has exited.
            store.add("stopped", 1)
            deadline = time.monotonic() + STOP_AFTER_S
            while store.add("stopped", 0) < world and time.monotonic() < deadline:
                time.sleep(0.05)
    except dist.DistError:
        pass


def watch_for_stops():
    """A thread that stops this process, with one line pointing to the culprit, when another rank has
    stopped on an error it met alone (report_error). It works wherever the main thread waits, in a gloo
    or NCCL collective included, which would otherwise end only by torchrun's SIGTERM or a timeout."""
    store, me = _run_store(), rank()
    if store is None:
        return

    done = threading.Event()

    def watch():
        try:
            while not store.check(["first"]):
                if done.wait(0.2):
                    return
            first = int(store.get("first"))
        except dist.DistError:
            return
        if first != me:
            exit_pointing_to(first, store)
    thread = threading.Thread(target=watch, name="watch_for_stops", daemon=True)
    thread.start()
    # Stopped before the interpreter tears down: a thread still inside a store call while the process exits
    # can abort it ("terminate called without an active exception", seen once at the end of a torchrun run).
    atexit.register(lambda: (done.set(), thread.join(timeout=1.0)))


def exit_if_another_rank_stopped():
    """Called by run_cli on an unexpected exception of a multi-process run: when another rank stopped on
    an error, this one is the broken collective it left behind; say so in one line and exit."""
    store = _run_store()
    try:
        first = int(store.get("first")) if store is not None and store.check(["first"]) else None
    except dist.DistError:
        return
    if first is not None and first != rank():
        exit_pointing_to(first, store)


def exit_pointing_to(first, store):
    if _stopping.acquire(blocking=False):
        print(f"[rank {rank()}] stopped: rank {first} stopped on the error it printed (the line "
              f"'[rank {first}] error: ...').", file=sys.stderr, flush=True)
        try:
            store.add("stopped", 1)
        except dist.DistError:
            pass
    # Let the rank that failed exit first, so that torchrun names it as the root cause and terminates this
    # process (or the other thread of this process says it); exit at the latest when it should have.
    time.sleep(2 * STOP_AFTER_S)
    os._exit(2)  # from any thread, also while the main thread is blocked in C++ code


def _run_store():
    """A client of this run's key-value store (torchrun's agent, spawn() or rank 0 hosts it at
    MASTER_ADDR:MASTER_PORT), with keys of this attempt (torchrun may restart a run); None if unreachable."""
    try:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                              timeout=timedelta(seconds=5), wait_for_workers=False)
    except (KeyError, ValueError, dist.DistError):
        return None
    return dist.PrefixStore(f"cgnet/stop/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/", store)
