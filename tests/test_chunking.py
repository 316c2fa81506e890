from copilot.chunking import MAX_CHUNK_CHARS, chunk_markdown

DOC = """# Disk Full

Use when a volume fills.

## Symptoms
- `df -h` shows 100%

## Diagnosis
1. Run `du -sh /var/*`

```bash
# not a heading inside a fence
du -sh /var/log
```

### Deep dive
Look at journald.

## Symptoms
- a second section with the same name
"""


def test_sections_know_file_heading_path_and_span():
    chunks = chunk_markdown("disk.md", DOC)
    assert [c.heading for c in chunks] == [
        "Disk Full",
        "Disk Full > Symptoms",
        "Disk Full > Diagnosis",
        "Disk Full > Diagnosis > Deep dive",
        "Disk Full > Symptoms",
    ]
    for c in chunks:
        assert DOC[c.start : c.end] == c.text
        assert c.source == "disk.md"
        assert len(c.content_hash) == 64


def test_fenced_comment_is_not_a_heading_and_ids_are_unique():
    chunks = chunk_markdown("disk.md", DOC)
    diagnosis = chunks[2]
    assert "# not a heading inside a fence" in diagnosis.text
    ids = [c.chunk_id for c in chunks]
    assert len(set(ids)) == len(ids)
    assert "disk.md#symptoms" in ids and "disk.md#symptoms-2" in ids


def test_same_text_same_hash_and_changed_text_new_hash():
    a = chunk_markdown("a.md", DOC)
    b = chunk_markdown("a.md", DOC.replace("journald", "the journal"))
    assert a[1].content_hash == b[1].content_hash
    assert a[3].content_hash != b[3].content_hash


def test_long_section_splits_at_paragraphs_with_exact_spans():
    para = "word " * 60
    doc = "# Big\n\n## Steps\n" + "\n\n".join(f"{i} {para}" for i in range(12))
    chunks = chunk_markdown("big.md", doc)
    steps = [c for c in chunks if c.heading == "Big > Steps"]
    assert len(steps) > 1
    assert all(len(c.text) <= MAX_CHUNK_CHARS * 1.7 for c in steps)
    for c in steps:
        assert doc[c.start : c.end] == c.text


def test_document_without_headings_is_one_preamble_chunk():
    chunks = chunk_markdown("notes.md", "Just a paragraph of notes.\n")
    assert [c.chunk_id for c in chunks] == ["notes.md#preamble"]
    assert chunks[0].headings == ()
