"""labkit.text on a tiny BERT (hidden size 32, two layers) and a small hand-made vocabulary:
dynamic padding, pooling, masked-word guesses and word vectors, in seconds on a CPU."""

import re
import string

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from transformers import (BertConfig, BertForMaskedLM, BertTokenizerFast, DistilBertConfig,
                          DistilBertModel)

from labkit.data import load_sentiment
from labkit.text import (DynamicPadding, SentenceEncoder, TextClassificationDataset, cls_pool,
                         fill_mask, input_names, load_sst2, load_text_csv, mean_pool, word_vector)

WORDS = ["the", "a", "bank", "river", "money", "film", "was", "good", "bad", "we", "sat", "by",
         "paid", "into", "account", "and", ".", ","]


@pytest.fixture(scope="module")
def tokenizer():
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + list(string.ascii_lowercase)
             + ["##" + c for c in string.ascii_lowercase])
    return BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64)
    return BertForMaskedLM(config).eval()


def test_dataset_keeps_sentences_unpadded_and_the_labels(tokenizer):
    data = TextClassificationDataset(["the film was good", "bad"], [1, 0], tokenizer)
    assert len(data) == 2
    assert data[0]["input_ids"][0] == tokenizer.cls_token_id
    assert data[0]["input_ids"][-1] == tokenizer.sep_token_id
    assert len(data[0]["input_ids"]) == 6 and len(data[1]["input_ids"]) == 3  # no padding yet
    assert data[1]["labels"] == 0 and set(data[0]) == {"input_ids", "attention_mask",
                                                       "token_type_ids", "labels"}
    with pytest.raises(ValueError, match="one label per text"):
        TextClassificationDataset(["a"], [0, 1], tokenizer)


def test_dataset_truncates_long_texts_to_max_length_with_a_warning(tokenizer):
    texts = ["bad", "the film " * 50, "the film was good", "the film " * 7]  # 16 tokens: not cut
    with pytest.warns(UserWarning, match=r"1 of 4 texts are longer than max_length=16 tokens and "
                                         r"were cut.*text 1.*Fix: .*larger max_length"):
        data = TextClassificationDataset(texts, [0, 1, 1, 0], tokenizer, max_length=16)
    assert len(data[1]["input_ids"]) == 16 and data[1]["input_ids"][-1] == tokenizer.sep_token_id
    assert len(data[3]["input_ids"]) == 16 and data.truncated == [1]


def test_dataset_of_short_texts_warns_nothing(tokenizer, recwarn):
    data = TextClassificationDataset(["the film " * 7], [0], tokenizer, max_length=16)
    assert data.truncated == [] and not recwarn.list


@pytest.mark.parametrize("texts, shown", [
    (["good", "", "bad"], "text 1 (empty)"), (["good", "   \n", "bad"], "text 1 (empty)"),
    (["good", float("nan"), "bad"], "text 1 (float nan)"), (["good", None, "bad"], "text 1 (NoneType")])
def test_dataset_refuses_empty_and_non_string_texts_naming_them(tokenizer, texts, shown):
    with pytest.raises(ValueError, match=rf"1 of 3 texts are empty or not strings: {re.escape(shown)}"
                                         r".*Fix: drop them"):
        TextClassificationDataset(texts, [0, 1, 0], tokenizer)


def test_dataset_refuses_labels_that_are_not_numbers(tokenizer):
    with pytest.raises(ValueError, match="'positive'"):  # int()'s own message names the label
        TextClassificationDataset(["good", "bad"], [0, "positive"], tokenizer)
    data = TextClassificationDataset(["good", "bad"], [np.int64(0), torch.tensor(1)], tokenizer)
    assert data.labels == [0, 1]


# --- a learner's own CSV ------------------------------------------------------------------------

def write_csv(tmp_path, text, name="reviews.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_load_text_csv_reads_label_names_and_numbers(tmp_path):
    path = write_csv(tmp_path, 'text,label\n"Great, really",positive\nDull.,negative\nOk,positive\n')
    assert load_text_csv(path) == (["Great, really", "Dull.", "Ok"], [1, 0, 1],
                                   ["negative", "positive"])
    texts, labels, names = load_text_csv(path, label_names=["positive", "negative"])
    assert labels == [0, 1, 0] and names == ["positive", "negative"]
    numbers = write_csv(tmp_path, "review\tstars\na\t10\nb\t2\nc\t2\n", "stars.tsv")
    assert load_text_csv(numbers, text_column="review", label_column="stars", delimiter="\t") == (
        ["a", "b", "c"], [1, 0, 0], ["2", "10"])  # numbers sort as numbers


def test_load_text_csv_from_excel_with_a_byte_order_mark(tmp_path):
    path = write_csv(tmp_path, "text,label\nCaf\u00e9 au lait,pos\nTea,neg\n", encoding="utf-8-sig")
    assert load_text_csv(path)[0] == ["Caf\u00e9 au lait", "Tea"]


def test_non_utf8_file_names_the_line_and_the_fix(tmp_path):
    path = write_csv(tmp_path, "text,label\nGood,pos\nCaf\u00e9 au lait,pos\nBad,neg\n",
                     encoding="cp1252")
    with pytest.raises(ValueError, match=r"reviews.csv is not utf-8 text: byte 0xe9 on line 3.*"
                                         r"Fix: save it again as UTF-8.*encoding=\"cp1252\""):
        load_text_csv(path)
    assert load_text_csv(path, encoding="cp1252")[0][1] == "Caf\u00e9 au lait"
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "dev.tsv").write_bytes("sentence\tlabel\nna\u00efve\t1\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"dev.tsv is not utf-8 text: byte 0xef on line 2"):
        load_sst2(tmp_path, "dev")


def test_missing_label_column_lists_the_columns_and_a_close_match(tmp_path):
    path = write_csv(tmp_path, "text,labels\na,x\nb,y\n")
    with pytest.raises(ValueError, match=r"no column 'label'; its columns are \['text', 'labels'\]"
                                         r"\. Did you mean 'labels'\?.*Fix: pass label_column="):
        load_text_csv(path)
    semicolons = write_csv(tmp_path, "text;label\na;x\nb;y\n", "excel.csv")
    with pytest.raises(ValueError, match=r"separated by ';': pass delimiter=';'"):
        load_text_csv(semicolons)


def test_unexpected_labels_empty_texts_and_a_single_label_name_the_lines(tmp_path):
    path = write_csv(tmp_path, "text,label\na,positive\nb,Positive\nc,negative\nd,\ne,Positive\n")
    with pytest.raises(ValueError, match=r"values that are not in label_names \['negative', "
                                         r"'positive'\]: 'Positive' on lines 3, 6; '' on lines 5\."):
        load_text_csv(path, label_names=["negative", "positive"])
    empty = write_csv(tmp_path, "text,label\na,x\n,y\n  ,x\n", "empty.csv")
    with pytest.raises(ValueError, match=r"2 rows have an empty 'text': lines 3, 4\. Fix:"):
        load_text_csv(empty)
    single = write_csv(tmp_path, "text,label\na,x\nb,x\n", "single.csv")
    with pytest.raises(ValueError, match=r"every row has the label 'x'.*at least two"):
        load_text_csv(single)


def test_dynamic_padding_pads_to_the_longest_sentence_of_each_batch(tokenizer):
    features = [{"input_ids": [2, 7, 3], "attention_mask": [1, 1, 1],
                 "token_type_ids": [0, 0, 0], "labels": 1},
                {"input_ids": [2, 7, 8, 9, 3], "attention_mask": [1] * 5,
                 "token_type_ids": [0] * 5, "labels": 0}]
    batch = DynamicPadding(pad_token_id=0)(features)
    assert batch["input_ids"].tolist() == [[2, 7, 3, 0, 0], [2, 7, 8, 9, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1] * 5]
    assert batch["token_type_ids"].tolist() == [[0] * 5, [0] * 5]
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long


def test_dynamic_padding_batches_are_no_longer_than_their_longest_sentence(tokenizer):
    """The lesson 09 claim, on the course's sentiment sentences."""
    train = load_sentiment("train")
    data = TextClassificationDataset(train.texts, train.labels, tokenizer)
    loader = DataLoader(data, batch_size=16, shuffle=True, collate_fn=DynamicPadding(0),
                        generator=torch.Generator().manual_seed(0))
    longest_overall = max(len(item["input_ids"]) for item in data)
    lengths = []
    for batch in loader:
        real = batch["attention_mask"].sum(dim=1)              # (B,) real tokens per sentence
        assert batch["input_ids"].shape[1] == int(real.max())  # exactly the longest, no more
        assert (batch["input_ids"][batch["attention_mask"] == 0] == 0).all()
        lengths.append(batch["input_ids"].shape[1])
    assert max(lengths) == longest_overall and min(lengths) < longest_overall


def test_mean_pool_leaves_padding_out_and_cls_pool_takes_position_zero():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float).reshape(2, 3, 2)  # (B, L, H)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 3.0], [6.0, 7.0]]
    assert cls_pool(hidden).tolist() == [[0.0, 1.0], [6.0, 7.0]]
    assert mean_pool(hidden, torch.zeros(2, 3)).abs().sum() == 0  # no division by zero


def test_sentence_encoder_gives_a_sentence_the_same_vector_alone_and_padded(model, tokenizer):
    encoder = SentenceEncoder(model.base_model, pooling="mean").eval()
    texts = ["the film was good .", "bad"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    alone = tokenizer(texts[1], return_tensors="pt")
    with torch.no_grad():
        together, single = encoder(**batch), encoder(**alone)
        cls = SentenceEncoder(model.base_model, pooling="cls")(**batch)
    assert together.shape == cls.shape == (2, 32)
    torch.testing.assert_close(together[1], single[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="'mean' or 'cls'"):
        SentenceEncoder(model.base_model, pooling="max")


def test_fill_mask_returns_probabilities_of_known_tokens(model, tokenizer):
    guesses = fill_mask(model, tokenizer, "we sat by the [MASK] .", top_k=4)
    assert len(guesses) == 4
    probabilities = [p for _, p in guesses]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1
    assert all(token in tokenizer.get_vocab() for token, _ in guesses)
    with pytest.raises(ValueError, match="exactly one"):
        fill_mask(model, tokenizer, "no mask here")


def test_fill_mask_only_proposes_tokens_the_tokenizer_can_spell(tokenizer):
    # A stand-in model keeps the checkpoint's 30,522 outputs; the course's tokenizer has fewer.
    torch.manual_seed(0)
    big = BertForMaskedLM(BertConfig(vocab_size=500, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64)).eval()
    guesses = fill_mask(big, tokenizer, "the [MASK] .", top_k=len(tokenizer))
    assert len(guesses) == len(tokenizer)
    assert sum(p for _, p in guesses) == pytest.approx(1.0, abs=1e-5)


def test_word_vector_static_is_context_free_and_contextual_is_not(model, tokenizer):
    encoder = model.base_model
    money = word_vector(encoder, tokenizer, "we paid money into the bank account .", "bank")
    river = word_vector(encoder, tokenizer, "we sat by the river bank .", "bank")
    cos = torch.nn.functional.cosine_similarity
    assert torch.equal(money[1], river[1])  # the same row of the embedding table
    # Even a random network mixes some context in: the vectors differ, if only slightly.
    assert (money[0] - river[0]).abs().max() > 1e-4
    assert cos(money[0], river[0], dim=0).item() < 1 - 1e-7
    split = word_vector(encoder, tokenizer, "the bankx was good", "bankx")  # several pieces
    assert split[0].shape == (32,)
    with pytest.raises(ValueError, match="does not appear"):
        word_vector(encoder, tokenizer, "the film", "river")


def test_input_names_follow_the_models_forward(model):
    assert input_names(model) == ("input_ids", "attention_mask", "token_type_ids")
    distil = DistilBertModel(DistilBertConfig(vocab_size=50, dim=32, n_layers=1, n_heads=2,
                                              hidden_dim=64))
    assert input_names(distil) == ("input_ids", "attention_mask")


def test_load_sst2_reads_the_glue_layout(tmp_path):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "dev.tsv").write_text('sentence\tlabel\nit \'s a "charming" film \t1\ndull .\t0\n',
                                    encoding="utf-8")
    texts, labels = load_sst2(tmp_path, "dev")
    assert texts == ['it \'s a "charming" film', "dull ."] and labels == [1, 0]
    with pytest.raises(FileNotFoundError, match="assets fetch sst2"):
        load_sst2(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="'train' and 'dev'"):
        load_sst2(tmp_path, "test")
