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
