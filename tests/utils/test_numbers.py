import math

import numpy as np

from thgs.utils.numbers import fmt_number


def test_fmt_number_rounds_and_marks_missing_values():
    assert fmt_number(31.2468, 2) == "31.25"
    assert fmt_number(np.float32(0.5), 3) == "0.500"
    assert fmt_number(7, 1) == "7.0"
    assert fmt_number(math.inf, 2) == "inf"
    for missing in (None, math.nan, "n/a", [1.0], True):
        assert fmt_number(missing, 2) == "-"
