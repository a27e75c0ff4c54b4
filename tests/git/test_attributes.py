"""`.gitattributes` editing: one line per pattern, spaces escaped, removal."""

from git_theta.git import attributes


def test_add_is_idempotent_and_keeps_other_lines(tmp_path):
    path = str(tmp_path / ".gitattributes")
    with open(path, "w") as f:
        f.write("*.txt text\n")
    assert attributes.add_pattern(path, "model.pt")
    assert not attributes.add_pattern(path, "model.pt")
    lines = open(path).read().splitlines()
    assert lines == ["*.txt text", "model.pt filter=theta diff=theta merge=theta -text"]
    assert attributes.remove_pattern(path, "model.pt")
    assert open(path).read().splitlines() == ["*.txt text"]


def test_existing_line_for_pattern_is_replaced(tmp_path):
    path = str(tmp_path / ".gitattributes")
    with open(path, "w") as f:
        f.write("model.pt filter=lfs diff=lfs merge=lfs -text\nmodel.pt filter=lfs\n")
    attributes.add_pattern(path, "model.pt")
    assert open(path).read().splitlines() == ["model.pt filter=theta diff=theta merge=theta -text"]


def test_spaces_are_escaped():
    assert attributes.escape_pattern("my model.pt") == "my[[:space:]]model.pt"
