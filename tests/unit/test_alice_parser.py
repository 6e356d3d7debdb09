"""ALICE's semantic parser on the paper's examples and on what an expert might type."""

from exil.alice.parser import GARMENT_PARTS, SemanticParser


def test_the_papers_examples():
    p = SemanticParser()
    assert p.parse("Ring-billed gull has a bill with a black ring near the tip while California gull has a "
                   "red spot near the tip of lower mandible") == {"bill"}
    assert p.parse("Arctic Tern has a red bill, red legs and feet, while Least Tern has a yellow bill, "
                   "orange legs and feet") == {"bill", "leg", "foot"}


def test_synonyms_phrases_and_unknown_words():
    p = SemanticParser()
    assert p.parse("The BEAK is longer; its wing bars are white and the tail feathers forked.") == {"bill", "wing", "tail"}
    assert p.parse("back of the neck is grey") == {"nape"}  # the longest phrase wins over "back"
    assert p.parse("no idea, they look the same to me") == set()
    assert p.parse("") == set() and p.parse(None) == set()


def test_garment_lexicon():
    p = SemanticParser(GARMENT_PARTS)
    assert p.parse("A shirt has a collar and buttons down the front opening; a pullover has neither") == {
        "collar", "placket"}
    assert p.parse("sneakers have laces and a flat sole, ankle boots a heel and a shaft") == {
        "upper", "sole", "heel", "shaft"}
