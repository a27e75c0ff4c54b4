"""The three-way merge of non-tensor structure: one-sided changes win, both-sided take ours unless
they decide which tensors exist."""

from git_theta.merges.layout import merge_layouts

NAMES = {"a", "b", "c", "d"}


def zip_layout(archive: str, keys: list[str]) -> dict:
    return {"container": "zip", "archive": archive, "tree": {"odict_of_tensors": keys}}


def test_archive_renamed_on_both_sides_takes_ours():
    m = merge_layouts(
        zip_layout("model", ["a", "b"]),
        zip_layout("step500", ["a", "b"]),
        zip_layout("ckpt", ["a", "b"]),
        NAMES,
    )
    assert m.layout == zip_layout("step500", ["a", "b"]) and m.took_ours == ["/archive"] and m.conflicts == []


def test_one_sided_changes_combine_and_added_keys_all_stay():
    base = zip_layout("model", ["a", "b"])
    ours = zip_layout("model", ["a", "b", "c"])  # ours added c
    theirs = zip_layout("ckpt", ["b", "d"])  # theirs renamed the archive, dropped a, added d
    m = merge_layouts(base, ours, theirs, NAMES)
    assert m.layout == zip_layout("ckpt", ["b", "c", "d"]) and m.conflicts == [] and m.took_ours == []


def test_both_changing_which_tensors_exist_differently_is_a_conflict():
    base = zip_layout("model", ["a"])
    ours = {
        "container": "zip",
        "archive": "model",
        "tree": {"dict": [["state_dict", {"odict_of_tensors": ["a"]}]]},
    }
    theirs = {
        "container": "zip",
        "archive": "model",
        "tree": {"dict": [["model", {"odict_of_tensors": ["a"]}]]},
    }
    m = merge_layouts(base, ours, theirs, NAMES)
    assert m.conflicts == ["/tree/dict"] and m.layout == ours


def test_without_an_ancestor_equal_pieces_merge_and_differing_scalars_take_ours():
    m = merge_layouts(None, {"metadata": {"step": "5"}, "x": 1}, {"metadata": {"step": "7"}, "x": 1}, NAMES)
    assert m.layout == {"metadata": {"step": "5"}, "x": 1} and m.took_ours == ["/metadata/step"]
