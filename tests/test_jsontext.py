"""The fast metadata JSON writer gives exactly json.dumps's bytes, so stored files never change."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from git_theta.jsontext import dumps_indent1

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_same_text_as_json_dumps(doc):
    assert dumps_indent1(doc) == json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False)


def test_real_metadata_and_odd_keys():
    doc = {"parameters": {"ü/ä\\n": {"shape": [1, 2], "x": 1.5e-300}}, "e": {}, "l": [], 1: "int key"}
    fixed = {str(k) if isinstance(k, int) else k: v for k, v in doc.items()}
    assert dumps_indent1(fixed) == json.dumps(fixed, indent=1, sort_keys=True, ensure_ascii=False)
