"""utils/files.py touches only what it made: live staging folders and temporary files survive another run's
cleanup, a killed run's are removed, and the background writer bounds its queue by bytes."""
import os
import threading
import time

import numpy as np

from utils.files import TEMP_PREFIX, BackgroundWriter, atomic_write, remove_stale, staged_folder


def test_a_live_staging_folder_survives_a_second_run_into_the_same_folder(tmp_path):
    out = tmp_path / "out"
    with staged_folder(str(out), log=print) as first:
        open(os.path.join(first, "a.png"), "w").write("a")
        with staged_folder(str(out), log=print) as second:  # its cleanup must not touch `first`
            open(os.path.join(second, "b.png"), "w").write("b")
        assert os.path.exists(os.path.join(first, "a.png"))
    assert sorted(os.listdir(out)) == ["a.png", "b.png"]


def test_only_a_dead_writer_s_temporary_file_is_removed(tmp_path):
    (tmp_path / f"{TEMP_PREFIX}dead.pth").write_bytes(b"half")  # no process holds its lock
    (tmp_path / ".tmp-users-own").write_bytes(b"kept")
    seen = []

    def write(tmp):  # while atomic_write holds its temporary file, a cleanup runs
        open(tmp, "wb").write(b"x")
        remove_stale(str(tmp_path), log=seen.append)
        seen.append(os.path.exists(tmp))
    atomic_write(str(tmp_path / "model.pth"), write)
    assert seen[-1] is True and any("dead.pth" in line for line in seen[:-1])
    assert sorted(os.listdir(tmp_path)) == [".tmp-users-own", "model.pth"]


def test_the_background_writer_bounds_what_waits_by_bytes():
    writer = BackgroundWriter(1, max_bytes=3 * 2 ** 20)
    release, peak = threading.Event(), []

    def slow(array):
        release.wait(5)
        time.sleep(0.01)

    threading.Timer(0.2, release.set).start()
    for _ in range(10):
        writer.submit(slow, np.zeros(2 ** 20, np.uint8))  # 1 MB each
        peak.append(writer.queued)
    writer.close()
    assert max(peak) <= 3 * 2 ** 20
