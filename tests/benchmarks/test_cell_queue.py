"""
How the Ray executor's driver hands out cells (:class:`CellQueue`) and sizes its pool of workers (:func:`slot_count`):
pure scheduling logic, so it runs without Ray; the executor itself is tested on a real cluster in
``test_ray_executor.py``.
"""

import pytest

from art_asr_ext.benchmark.grid import Cell
from art_asr_ext.benchmark.executors.ray import CellQueue, ExecutorError, slot_count


def _cell(system: str, attack: str, eps: float = 0.01, source: str = "") -> Cell:
    return Cell(system, system, source or system, attack, eps, False)


#: Made-up costs: an attack's iterations.
COST = {"clean": 1, "fgsm": 2, "pgd": 7, "imperceptible": 50}


def _queue(*cells: Cell, sources=()) -> CellQueue:
    queue = CellQueue(lambda cell: COST[cell.attack])
    queue.sources = set(sources)
    for cell in cells:
        queue.add(cell)
    return queue


def test_a_worker_keeps_to_its_system_and_takes_the_costliest_cell_first():
    queue = _queue(_cell("A", "clean"), _cell("A", "pgd"), _cell("A", "fgsm"), _cell("B", "imperceptible"))
    taken = [queue.take("A", ["B"], {"A", "B"}).attack for _ in range(3)]
    assert taken == ["pgd", "fgsm", "clean"]
    assert queue.take("A", ["B"], {"A", "B"}) is None  # B has one cell left, held by the other worker: not shared
    assert queue.take("B", ["A"], {"A", "B"}).attack == "imperceptible"
    assert len(queue) == 0


def test_a_new_worker_takes_the_free_system_with_the_most_work_left():
    queue = _queue(_cell("A", "pgd"), _cell("B", "imperceptible"), _cell("C", "pgd"), _cell("C", "fgsm"))
    assert queue.take(None, [], {"A", "B", "C"}).system == "B"
    assert queue.take(None, ["B"], {"A", "B", "C"}).system == "C"  # C (9 left) before A (7)
    assert queue.take(None, ["B", "C"], {"A", "B", "C"}).system == "A"


def test_a_worker_with_nothing_free_shares_a_held_system_from_its_cheap_end():
    queue = _queue(_cell("A", "imperceptible"), _cell("A", "pgd"), _cell("A", "clean"))
    assert queue.take(None, ["A"], {"A"}).attack == "clean"
    assert queue.take("A", [], {"A"}).attack == "imperceptible"


def test_transfer_sources_go_first_and_a_worker_runs_only_its_pool():
    source = _cell("A", "fgsm")
    queue = _queue(_cell("A", "imperceptible"), source, _cell("B", "pgd"), sources=[source.key])
    assert queue.take("A", [], {"A", "B"}) == source
    assert queue.take(None, [], {"B"}).system == "B"
    assert queue.take(None, [], {"B"}) is None  # A's cell is left for a worker of A's resources
    assert queue.waiting_systems() == ["A"]


def test_slot_count_fits_the_cluster_and_names_what_does_not_fit():
    assert slot_count({"CPU": 2.0}, 1.0, 0.0, cells=40) == 2
    assert slot_count({"CPU": 2.0}, 1.0, 0.0, cells=1) == 1
    assert slot_count({"CPU": 16.0, "GPU": 8.0}, 1.0, 0.25, cells=100) == 16  # CPUs bound before 32 quarter GPUs
    assert slot_count({"CPU": 64.0, "GPU": 8.0}, 2.0, 1.0, cells=100) == 8
    with pytest.raises(ExecutorError, match=r"has 16 CPUs and 0 GPUs; a cell asks for 1 CPUs and 1 GPUs"):
        slot_count({"CPU": 16.0}, 1.0, 1.0, cells=3)
