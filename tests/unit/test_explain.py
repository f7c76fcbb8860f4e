"""Word occlusion: the word that drives the score comes first, with its exact character span."""

from __future__ import annotations

import numpy as np
import pytest

from contract.normalization import normalize_chat
from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway.errors import BackendTimeout
from gateway.explain import position_map, word_spans
from gateway.text_encoder import TextEncoder
from gateway.text_scoring import ScoringOptions, score_texts
from tests.unit.test_grpc_servicer import CLEAN, FakeClassifier, model_repo, start_gateway  # noqa: F401 (fixtures)
from tests.unit.test_windows import LABELS, harmless, keyed_infer

OPTIONS = ScoringOptions(explain_max_words=16, explain_min_weight=0.05, explain_max_spans=3)


@pytest.fixture(scope="module")
def encoder(minilm_dir):
    return TextEncoder(minilm_dir, 32)


@pytest.fixture(scope="module")
def chat_encoder(minilm_dir):
    return TextEncoder(minilm_dir, 32, normalize=normalize_chat)


@pytest.fixture(scope="module")
def idiot(encoder):
    token_id = encoder.tokenizer.convert_tokens_to_ids("idiot")
    assert encoder.tokenize(["idiot"])[0].ids == [token_id]
    return token_id


def spans_of(text):
    return [text[s:e] for s, e in word_spans(text)]


def test_words_lose_edge_punctuation_and_punctuation_only_words_are_skipped():
    assert spans_of("you idiot!!  gg, (wp) ... a$$") == ["you", "idiot", "gg", "wp", "a$$"]
    assert word_spans("  ?!  ") == []


def test_position_map_follows_a_normalisation_that_changes_length():
    text = "sooooo bad 1d10t"
    normalized = normalize_chat(text)
    mapping = position_map(text, normalized)
    start = text.index("1d10t")
    assert normalized[mapping[start] : mapping[start + 5]] == "idiot"
    assert position_map("abc", "abc") == [0, 1, 2, 3]


def test_the_word_that_drives_the_score_comes_first_with_its_exact_span(encoder, idiot):
    text = "well played, but you are an idiot! gg"
    calls = []
    scored = score_texts([text], encoder, LABELS, keyed_infer(idiot, calls), OPTIONS, explain=True)
    assert len(calls) == 1  # the original row and every occluded copy in one model call
    assert scored.rows == 1 + len(word_spans(text))
    spans = scored.evidence[0]
    assert [(s.start, s.end) for s in spans] == [(text.index("idiot"), text.index("idiot") + 5)]
    assert spans[0].category == "insult_harassment" and spans[0].weight == pytest.approx(0.8)
    assert scored.scores[0, 1] == pytest.approx(0.9)  # explaining does not change the scores


def test_spans_point_into_the_text_as_sent_when_normalisation_changes_it(chat_encoder, idiot):
    text = "woooooow you are a 1d10t!!!! gg"
    scored = score_texts([text], chat_encoder, LABELS, keyed_infer(idiot, []), OPTIONS, explain=True)
    span = scored.evidence[0][0]
    assert text[span.start : span.end] == "1d10t"


def test_a_long_text_explains_its_worst_window(encoder, idiot):
    text = harmless(200) + " you idiot " + harmless(10)
    calls = []
    options = ScoringOptions(explain_max_words=30)  # a 32-token window holds 30 words
    scored = score_texts([text], encoder, LABELS, keyed_infer(idiot, calls), options, explain=True)
    assert len(calls) == 2  # scoring the windows, then occluding the worst one
    assert len(calls[1][0]) == 1 + 30
    span = scored.evidence[0][0]
    assert (span.start, span.end) == (text.index("idiot"), text.index("idiot") + 5)


def test_past_max_words_adjacent_words_are_occluded_in_groups(encoder, idiot):
    text = "one two three four five six seven idiot"
    options = ScoringOptions(explain_max_words=4, explain_min_weight=0.05)
    scored = score_texts([text], encoder, LABELS, keyed_infer(idiot, []), options, explain=True)
    assert scored.rows == 1 + 4
    span = scored.evidence[0][0]
    assert text[span.start : span.end] == "seven idiot"


def test_without_explain_nothing_extra_is_computed(encoder, idiot):
    calls = []
    scored = score_texts(["you are an idiot"], encoder, LABELS, keyed_infer(idiot, calls), OPTIONS)
    assert scored.rows == 1 and scored.evidence == [[]]


def test_a_clean_text_has_no_evidence(encoder, idiot):
    calls = []
    scored = score_texts(["good game all"], encoder, LABELS, keyed_infer(idiot, calls), OPTIONS, explain=True)
    assert scored.evidence == [[]] and len(calls) == 1  # not topped as toxic: no pairs either
    assert np.allclose(scored.scores[0], [0.9, 0.1])


def two_cue_infer(idiot: int, trash: int, calls: list, bonus: float = 0.0, fail_after: int = 0):
    """Either word alone keeps the insult score at 0.9 (else 0.1); "idiot" adds `bonus`."""
    def infer(ids, mask):
        calls.append(ids.copy())
        if fail_after and len(calls) > fail_after:
            raise BackendTimeout("model call timed out")
        has = [{int(t) for t in row[m == 1]} for row, m in zip(ids, mask)]
        insult = np.array([0.1 + 0.8 * bool({idiot, trash} & h) + bonus * (idiot in h) for h in has], np.float32)
        return np.stack([1 - insult, insult], axis=1)
    return infer


@pytest.fixture(scope="module")
def trash(encoder):
    return encoder.tokenizer.convert_tokens_to_ids("trash")


TWO_CUES = "well, you idiot, that was trash"


def test_two_cues_that_each_suffice_are_found_together_in_one_more_call(encoder, idiot, trash):
    calls = []
    scored = score_texts([TWO_CUES], encoder, LABELS, two_cue_infer(idiot, trash, calls), OPTIONS, explain=True)
    assert len(calls) == 2 and len(calls[1]) == 1 + 15  # the row again, then every pair of its 6 words
    assert [(TWO_CUES[s.start : s.end], s.category) for s in scored.evidence[0]] == [
        ("idiot", "insult_harassment"), ("trash", "insult_harassment")]
    assert [s.weight for s in scored.evidence[0]] == pytest.approx([0.8, 0.8])  # the pair's drop
    assert scored.scores[0, 1] == pytest.approx(0.9)


def test_two_words_that_merely_add_up_are_not_a_pair(encoder, idiot, trash):
    def infer(ids, mask):  # 0.04 and 0.02 apart: neither alone nor together past 0.05 each
        has = [{int(t) for t in row[m == 1]} for row, m in zip(ids, mask)]
        insult = np.array([0.5 + 0.04 * (idiot in h) + 0.02 * (trash in h) for h in has], np.float32)
        return np.stack([1 - insult, insult], axis=1)

    assert score_texts([TWO_CUES], encoder, LABELS, infer, OPTIONS, explain=True).evidence == [[]]


def test_pairs_in_a_batch_and_in_the_worst_window_of_a_long_text(encoder, idiot, trash):
    calls = []
    texts = ["you are an idiot", TWO_CUES, "good game all"]
    scored = score_texts(texts, encoder, LABELS, two_cue_infer(idiot, trash, calls), OPTIONS, explain=True)
    assert len(calls) == 2 and len(calls[1]) == 1 + 15  # only the two-cue text needs pairs
    assert [[texts[i][s.start : s.end] for s in spans] for i, spans in enumerate(scored.evidence)] == [
        ["idiot"], ["idiot", "trash"], []]
    calls = []
    text = harmless(200) + " " + TWO_CUES + " " + harmless(10)
    options = ScoringOptions(explain_max_words=30)
    scored = score_texts([text], encoder, LABELS, two_cue_infer(idiot, trash, calls, bonus=0.02), options,
                         explain=True)
    assert len(calls) == 3 and len(calls[2]) == 64  # windows, single words, then the 63 strongest pairs
    assert [text[s.start : s.end] for s in scored.evidence[0]] == ["idiot", "trash"]
    assert scored.evidence[0][0].start > len(harmless(200))


def test_a_failed_pair_call_leaves_the_scores_and_no_spans(encoder, idiot, trash):
    calls = []
    scored = score_texts([TWO_CUES], encoder, LABELS, two_cue_infer(idiot, trash, calls, fail_after=1), OPTIONS,
                         explain=True)
    assert len(calls) == 2 and scored.evidence == [[]] and scored.scores[0, 1] == pytest.approx(0.9)


class KeyedFake(FakeClassifier):
    """The servicer tests' fake, but insult_harassment scores 0.9 exactly when token_id is in a row."""

    def __init__(self, token_id: int):
        super().__init__()
        self.token_id = token_id

    def infer(self, input_ids, attention_mask, *, version, timeout_s):
        self.calls.append({"ids": input_ids, "mask": attention_mask, "version": version, "timeout_s": timeout_s})
        hit = np.array([(row[m == 1] == self.token_id).any() for row, m in zip(input_ids, attention_mask)])
        return np.array([[0.05, 0.0, 0.9, 0.05, 0.0] if h else CLEAN for h in hit], dtype=np.float32)


def test_the_servicer_returns_evidence_only_when_asked(start_gateway, idiot):  # noqa: F811
    _, fake, channel = start_gateway(KeyedFake(idiot))
    stub = moderation_pb2_grpc.ModerationStub(channel)
    text = "gg, you are an idiot"
    verdict = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text, explain=True), timeout=5)
    model_spans = _model_evidence(verdict)  # "gg" also comes back, as an allowlist match
    assert [(e.start, e.end, e.category, e.source) for e in model_spans] == [
        (text.index("idiot"), len(text), "insult_harassment", "model")]
    assert model_spans[0].weight == pytest.approx(0.9 - CLEAN[2])
    assert len(fake.calls) == 1 and len(fake.calls[0]["ids"]) == 1 + 5
    plain = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text), timeout=5)
    assert not _model_evidence(plain) and len(fake.calls[1]["ids"]) == 1
    batch = stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=[text, "nice"], explain=True), timeout=5)
    assert [len(_model_evidence(v)) for v in batch.verdicts] == [1, 0]


def _model_evidence(verdict) -> list:
    return [e for e in verdict.evidence if e.source == "model"]
