"""Allocation helpers: huge-page-backed arrays, buffers carved from one area, pre-faulting."""

import numpy as np
import pytest

from git_theta import memory


@pytest.mark.parametrize("shape", [(0,), (3, 0), (7,), (5, 3), (40 << 20,), (1024, 4096)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int64])
def test_empty_is_a_writeable_array_of_the_shape(shape, dtype):
    a = memory.empty(shape, dtype)
    assert a.shape == shape and a.dtype == np.dtype(dtype) and a.flags.writeable and a.flags.c_contiguous
    a.reshape(-1)[:] = 3
    assert (a == 3).all()


def test_empty_takes_a_plain_count():
    assert memory.empty(10 << 20, np.uint8).shape == (10 << 20,)


def test_carved_buffers_are_disjoint_aligned_and_outlive_the_list():
    sizes = [0, 1, 63, 64, 65, 9 << 20, 3]
    bufs = memory.carve(sizes)
    assert [b.nbytes for b in bufs] == sizes
    for i, b in enumerate(bufs):
        b[:] = i
        assert b.ctypes.data % 64 == 0
    assert all((b == i).all() for i, b in enumerate(bufs))  # nothing overwrote another
    last = bufs[-2]
    del bufs
    last[:] = 7  # the area lives as long as one of its buffers does
    assert (last == 7).all()


def test_touch_faults_fresh_buffers_in():
    import resource

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    (buf,) = memory.carve([6 << 20])  # heap pages (under the huge-page size): one fault per page
    memory.touch([buf])
    start = faults()
    buf[:] = 1  # filling it faults nothing more in
    assert faults() - start < 16


@pytest.fixture
def recycling():
    memory.recycle(64 << 20)
    yield
    memory.recycle(0)


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_a_freed_large_array_gives_its_pages_to_the_next(recycling):
    a = memory.empty((3 << 20,), np.float32)  # 12 MiB: a huge-page area
    where = _address(a)
    del a
    b = memory.empty((2 << 20,), np.float32)  # smaller: fits the kept area
    assert _address(b) == where
    b[:] = 7
    assert (b == 7).all()


def test_an_area_comes_back_only_when_no_view_can_reach_it(recycling):
    a = memory.empty((3 << 20,), np.float32)
    view = memoryview(a.reshape(-1).view(np.uint8)[100:])
    a[:] = 1
    where = _address(a)
    del a
    b = memory.empty((3 << 20,), np.float32)
    assert _address(b) != where  # the view still holds the first area
    b[:] = 2
    assert bytes(view[:4]) == np.float32(1).tobytes()  # untouched by the second array
    second = _address(b)
    del view, b
    x, y = memory.empty((3 << 20,), np.float32), memory.empty((3 << 20,), np.float32)
    assert {_address(x), _address(y)} == {where, second}  # both areas are back, and reused


def test_kept_pages_stay_under_the_limit():
    memory.recycle(16 << 20)
    try:
        arrays = [memory.empty((12 << 20,), np.uint8) for _ in range(3)]
        del arrays
        assert memory._recycled.held <= 16 << 20
        memory.recycle(0)
        assert memory._recycled.held == 0
    finally:
        memory.recycle(0)


def test_without_recycling_nothing_is_kept():
    memory.recycle(0)
    a = memory.empty((12 << 20,), np.uint8)
    del a
    assert memory._recycled.held == 0 and not memory._recycled.free
