"""Row ids: short, unique across threads and forked processes, in the order they were made."""

from __future__ import annotations

import os
import re
import threading

from branchwork.ids import new_id

ID = re.compile(r"[0-9a-v]{20}")


def test_ids_are_20_base32_characters_and_sort_in_the_order_they_were_made() -> None:
    made = [new_id() for _ in range(3000)]  # past the counter's 1 024 and 2 048 boundaries

    assert all(ID.fullmatch(one) for one in made)
    assert made == sorted(made) and len(set(made)) == len(made)
    assert len({one[:12] for one in made}) == 1  # one prefix per process


def test_ids_made_by_many_threads_at_once_are_unique() -> None:
    made: list[list[str]] = [[] for _ in range(8)]

    def make(into: list[str]) -> None:
        into.extend(new_id() for _ in range(5000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    every = [one for into in made for one in into]
    assert len(every) == 40_000 and len(set(every)) == 40_000
    assert all(ID.fullmatch(one) for one in every)


def test_a_forked_child_draws_a_prefix_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its id and leave without running the parent's cleanup
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    try:
        child = os.read(read, 64).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)

    assert ID.fullmatch(child)
    assert child[:12] != new_id()[:12]
