"""The benchmark's pure parts: word stamps, word accounting and percentiles."""

from __future__ import annotations

import math

import pytest

from benchmarks.stamps import WordStream, account_words, parse_word, percentile, stamp_word


class TestStamps:
    def test_a_stamped_word_parses_back(self) -> None:
        word = stamp_word(17, 1_712_345_678_901_234)
        assert word.endswith(" ")
        assert parse_word(word.strip()) == (17, 1_712_345_678_901_234)

    @pytest.mark.parametrize("token", ["", "w", "w17", "w17@", "x17@abc", "w1x@abc", "w17@zz"])
    def test_garbled_tokens_are_refused(self, token: str) -> None:
        assert parse_word(token) is None


class TestWordStream:
    def test_words_cut_between_chunks_are_joined_and_timed_at_their_completion(self) -> None:
        text = stamp_word(0, 1_000) + stamp_word(1, 2_000) + stamp_word(2, 3_000)
        stream = WordStream()
        cut = text.index("@", len(stamp_word(0, 1_000)))  # inside word 1
        stream.feed(text[:cut], 5_000)
        stream.feed(text[cut:], 9_000)
        stream.close()
        assert stream.indices == [0, 1, 2]
        assert stream.delays_ms == [4.0, 7.0, 6.0]
        assert stream.garbled == 0

    def test_a_word_without_its_space_at_the_end_is_garbled(self) -> None:
        stream = WordStream()
        stream.feed(stamp_word(0, 1) + "w1@2", 10)
        stream.close()
        assert stream.indices == [0]
        assert stream.garbled == 1

    def test_foreign_text_counts_as_garbled(self) -> None:
        stream = WordStream()
        stream.feed("hello " + stamp_word(0, 1), 10)
        assert (stream.indices, stream.garbled) == ([0], 1)


class TestAccounting:
    def test_a_clean_reply(self) -> None:
        account = account_words([0, 1, 2, 3], 4)
        assert account.clean
        assert (account.lost, account.duplicated, account.reordered) == (0, 0, 0)

    def test_a_duplicated_word_is_detected(self) -> None:
        account = account_words([0, 1, 1, 2, 3], 4)
        assert (account.lost, account.duplicated, account.reordered) == (0, 1, 0)
        assert not account.clean

    def test_a_missing_word_is_detected(self) -> None:
        account = account_words([0, 1, 3], 4)
        assert (account.lost, account.duplicated, account.reordered) == (1, 0, 0)

    def test_a_reordered_word_is_detected(self) -> None:
        account = account_words([0, 2, 1, 3], 4)
        assert (account.lost, account.duplicated, account.reordered) == (0, 0, 1)

    def test_words_beyond_the_reply_do_not_hide_a_loss(self) -> None:
        account = account_words([0, 1, 2, 7], 4)
        assert account.lost == 1

    def test_nothing_received(self) -> None:
        assert account_words([], 3).lost == 3


class TestPercentile:
    def test_interpolates_like_numpy(self) -> None:
        values = [1.0, 2.0, 3.0, 4.0]
        assert percentile(values, 50) == 2.5
        assert percentile(values, 0) == 1.0
        assert percentile(values, 100) == 4.0
        assert percentile(values, 99) == pytest.approx(3.97)

    def test_order_of_input_does_not_matter(self) -> None:
        assert percentile([5.0, 1.0, 3.0], 50) == 3.0

    def test_no_values(self) -> None:
        assert math.isnan(percentile([], 50))

    def test_out_of_range(self) -> None:
        with pytest.raises(ValueError, match="out of range"):
            percentile([1.0], 101)
