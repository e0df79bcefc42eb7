"""The RAG prompt: numbered passages with titles before the question, fitted to data.max_length with every cut or
dropped passage counted."""

from tunesmith.data.example import Example
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.retrieval.chunking import Passage
from tunesmith.retrieval.prompts import MIN_PASSAGE_TOKENS, fit_passages, with_passages

TEMPLATE = "Passages:\n{passages}\n\nQuestion: {question}"


def _passage(number: int, words: int) -> Passage:
    return Passage(f"d{number}", f"Title {number}", " ".join(["word"] * words), 0, 0, words)


def _question() -> Example:
    return Example(messages=({"role": "user", "content": "What is {this}?"}, {"role": "assistant", "content": "x"}),
                   location="q.jsonl:1")


def test_passages_are_numbered_with_titles_when_they_fit(tiny_tokenizer):
    example, fit = with_passages(_question(), [_passage(1, 5), _passage(2, 5)], TEMPLATE, tiny_tokenizer, 512, 8)
    prompt = example.messages[0]["content"]
    assert prompt.startswith("Passages:\n[1] Title 1\nword word")
    assert "\n\n[2] Title 2\n" in prompt and prompt.endswith("Question: What is {this}?")  # braces left alone
    assert (fit.passages_shown, fit.passages_cut, fit.passages_dropped, fit.rows_short) == (2, 0, 0, 0)
    assert example.reference == "x" and example.location == "q.jsonl:1"


def _tokens(tokenizer, text):
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_what_does_not_fit_is_cut_then_dropped_and_counted(tiny_tokenizer):
    passages = [_passage(1, 10), _passage(2, 200), _passage(3, 10)]
    first = _tokens(tiny_tokenizer, "[1] Title 1\n") + _tokens(tiny_tokenizer, passages[0].text)
    second_heading = _tokens(tiny_tokenizer, "\n\n[2] Title 2\n")
    block, fit = fit_passages(passages, first + second_heading + MIN_PASSAGE_TOKENS + 5, tiny_tokenizer)
    assert (fit.passages_shown, fit.passages_cut, fit.passages_dropped, fit.rows_short) == (2, 1, 1, 1)
    assert "[2] Title 2\nword" in block and "[3]" not in block
    assert "1 of 1 prompts lost context" in fit.describe()

    max_length, answer_tokens = 160, 8
    example, fit = with_passages(_question(), passages, TEMPLATE, tiny_tokenizer, max_length, answer_tokens)
    assert fit.rows_short == 1 and fit.passages_cut + fit.passages_dropped >= 2
    used = len(prompt_token_ids(tiny_tokenizer, example.prompt_messages))
    assert used + answer_tokens <= max_length + 2  # pieces are counted one by one; joins may merge a token or two


def test_a_fragment_too_short_to_read_is_left_out_instead(tiny_tokenizer):
    passages = [_passage(1, 10), _passage(2, 100)]
    first = _tokens(tiny_tokenizer, "[1] Title 1\n") + _tokens(tiny_tokenizer, passages[0].text)
    block, fit = fit_passages(passages, first + MIN_PASSAGE_TOKENS // 2, tiny_tokenizer)
    assert "[2]" not in block and (fit.passages_shown, fit.passages_cut, fit.passages_dropped) == (1, 0, 1)
