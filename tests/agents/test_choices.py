"""Questions that name their candidates: the executor's answer is mapped onto them (an option, or yes / no),
years decide earlier / later comparisons, and the model is asked once more with the candidates spelled out."""

from __future__ import annotations

import pytest

from miaflow.agents import Executor, ExecutorConfig
from miaflow.agents.choices import compare_by_year, match_option, question_options
from miaflow.testing import FakeChatModel
from miaflow.tools.index import SearchHit

DOCS = {
    "atz": ("George Atzerodt", "George Andreas Atzerodt (June 12, 1835 - July 7, 1865) was a conspirator."),
    "aj": ("Andrew Johnson", "Andrew Johnson (December 29, 1808 - July 31, 1875) was the 17th president."),
    "gf": ("GameFan", "GameFan was a magazine published by Metropolis Publications."),
}


class _Index:
    def search(self, query, k):
        return [SearchHit(doc_id=d, title=t, text=x, score=1.0) for d, (t, x) in DOCS.items()][:k]


def _executor(*replies, **cfg):
    it = iter(replies)
    model = FakeChatModel(lambda messages, c: next(it))
    return model, Executor(model, _Index(), ExecutorConfig(search_k=3, **cfg))


def _answer_prompts(model):
    return [c[0][-1]["content"] for c in model.calls if "Documents:" in c[0][-1]["content"]]


@pytest.mark.parametrize("question,options", [
    ("Who was older, George Atzerodt or Andrew Johnson?", ("George Atzerodt", "Andrew Johnson")),
    ("Was Pepper Keenan or Rob Parissi born first?", ("Pepper Keenan", "Rob Parissi")),
    ("Which mall, Wilton Mall or Viaport Rotterdam, has had more owners?", ("Wilton Mall", "Viaport Rotterdam")),
    ("Is rice or wheat a grass?", ()),  # lowercase options with no clause: not parsed, treated as no options
    ("Who directed the film?", ()),
    ("Did he sing or dance or act?", ()),
])
def test_question_options(question, options):
    assert question_options(question) == options


def test_match_option_and_year_comparison():
    assert match_option("I think Andrew Johnson", ("George Atzerodt", "Andrew Johnson")) == "Andrew Johnson"
    assert match_option("Yes.", ("yes", "no")) == "yes" and match_option("maybe", ("yes", "no")) is None
    shown = [(d, t, x) for d, (t, x) in DOCS.items()]
    opts = ("George Atzerodt", "Andrew Johnson")
    assert compare_by_year("Who was older, George Atzerodt or Andrew Johnson?", opts, shown) == "Andrew Johnson"
    assert compare_by_year("Who was younger, George Atzerodt or Andrew Johnson?", opts, shown) == "George Atzerodt"
    assert compare_by_year("Who had more films, George Atzerodt or Andrew Johnson?", opts, shown) is None
    assert compare_by_year("Who was older, George Atzerodt or Nobody Known?", ("George Atzerodt", "Nobody Known"),
                           shown) is None  # a passage is missing: no guess from one year


def test_comparison_answer_outside_the_options_is_decided_by_the_years():
    model, ex = _executor("1835 [atz]")
    run = ex.run("Who was older, George Atzerodt or Andrew Johnson?", ["Search for George Atzerodt"])
    assert run.answer == "Andrew Johnson" and run.citations == ("aj",)
    assert run.answer_source == "compared" and run.answer_fallbacks == 1 and len(_answer_prompts(model)) == 1


def test_choice_without_years_asks_again_with_the_options_then_defaults():
    q = "Which is a magazine, GameFan or Andrew Johnson?"
    model, ex = _executor("Metropolis [gf]", "It is GameFan [gf]")
    run = ex.run(q, ["Search for GameFan"])
    prompts = _answer_prompts(model)
    assert run.answer == "GameFan" and run.answer_source == "choice" and len(prompts) == 2
    assert prompts[1].endswith("Answer with exactly one of: GameFan / Andrew Johnson.")
    model, ex = _executor("Metropolis [gf]", "Metropolis [gf]")
    run = ex.run(q, ["Search for GameFan"])
    assert run.answer == "GameFan" and run.answer_source == "default"


def test_model_answer_naming_an_option_is_kept_and_yes_no_is_enforced():
    model, ex = _executor("GameFan [gf]")
    run = ex.run("Which is a magazine, GameFan or Andrew Johnson?", ["Search for GameFan"])
    assert run.answer == "GameFan" and run.answer_fallbacks == 0 and run.answer_check == ""
    model, ex = _executor("Metropolis Publications [gf]", "no [gf]")
    run = ex.run("Was GameFan published by Metropolis?", ["Search for GameFan"])
    assert run.answer == "no" and run.answer_source == "choice"


def test_mapping_is_off_with_checking_off():
    model, ex = _executor("1835 [atz]", check_answers=False)
    run = ex.run("Who was older, George Atzerodt or Andrew Johnson?", ["Search for George Atzerodt"])
    assert run.answer == "1835"
    model, ex = _executor("1835 [atz]", map_choices=False)
    assert ex.run("Who was older, George Atzerodt or Andrew Johnson?", ["x"]).answer_source != "compared"
