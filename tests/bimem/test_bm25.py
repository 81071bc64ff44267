"""The BM25 index's terms: stemmed so that plurals and verb forms of a word match each other."""

from miaflow.memory.bimem._bm25 import new_index, stem


def test_stem_joins_word_forms():
    assert stem("hikes") == stem("hiking") == stem("hiked") == stem("hike")
    assert stem("paintings") == stem("painting") == stem("paint")
    assert stem("running") == stem("run")
    assert stem("class") == stem("classes")
    assert stem("bus") == "bus" and stem("is") == "is"


def test_plural_query_matches_singular_document():
    bm = new_index()
    bm.add("a", "Caroline went hiking with her kids")
    bm.add("b", "Melanie bought new shoes")
    bm.add("c", "They talked about the weather")
    assert set(bm.scores("hikes")) == {"a"}
