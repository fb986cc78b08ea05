"""Text models: lexicon baselines, TF-IDF + LR, batching with dynamic padding, the MLP head and
the MiniLM fine-tuning model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emofuse.errors import ConfigError
from emofuse.models import build_model
from emofuse.models.text import (LengthBucketSampler, LexiconRule, MiniLMClassifier,
                                 array_loader, class_weights, collate_tokens, predict_module,
                                 token_loader, tokenize)

HAPPY = ["what a happy wonderful day", "I love this so much", "great joy and fun today",
         "so glad and happy for you", "this is delightful and lovely", "happy happy joy"]
SAD = ["I feel so sad and alone", "this is a terrible loss", "crying all night again",
       "so lonely and miserable", "grief and sorrow today", "sad sad tears"]


def test_tfidf_lr_single_and_multi_label():
    texts, y = HAPPY + SAD, np.array([0] * 6 + [1] * 6)
    m = build_model("tfidf_lr", C=10.0, min_df=1).fit(texts, y)
    p = m.predict_proba(["happy joy", "sad tears"])
    assert p.shape == (2, 2) and np.allclose(p.sum(1), 1)
    assert p[0, 0] > 0.5 and p[1, 1] > 0.5
    Y = np.zeros((12, 3), int)
    Y[:6, 0] = 1
    Y[6:, 1] = 1
    Y[::3, 2] = 1
    mm = build_model("tfidf_lr", C=10.0, min_df=1).fit(texts, Y, multilabel=True)
    pm = mm.predict_proba(["happy joy"])
    assert pm.shape == (1, 3) and pm[0, 0] > pm[0, 1]


def test_tfidf_lr_keeps_a_column_for_classes_absent_from_training():
    m = build_model("tfidf_lr", min_df=1).fit(HAPPY + SAD, np.array([0] * 6 + [2] * 6))
    assert m.predict_proba(["happy"]).shape == (1, 3)


def test_lexicon_rule_maps_nrc_emotions_to_classes():
    rule = LexiconRule(classes=["neutral", "happy", "sad", "angry"]).fit(
        HAPPY, np.zeros(6, int))
    p = rule.predict_proba(["I hate you, you disgusting liar", "we met at noon",
                            "what a happy day"])
    assert p.argmax(1).tolist() == [3, 0, 1]
    assert np.allclose(p.sum(1), 1)
    names = LexiconRule(classes=["anger", "joy", "sadness"]).predict_proba(["a joyful party"])
    assert names.argmax() == 1


def test_lexicon_lr():
    m = build_model("lexicon_lr", C=1.0).fit(HAPPY + SAD, np.array([0] * 6 + [1] * 6))
    assert m.predict_proba(["a wonderful happy day"])[0, 0] > 0.5


def test_class_weights_balanced():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    assert w[1] > w[0] and w[2] == 1.0


def test_bucket_sampler_covers_every_item_once():
    lengths = np.random.default_rng(0).integers(3, 60, 500)
    s = LengthBucketSampler(lengths, batch_size=32, seed=1)
    batches = list(s)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500)) and len(batches) == len(s)
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.5 * np.ptp(lengths)          # similar lengths per batch
    assert list(s) != batches                      # next epoch: new order


def test_collate_pads_dynamically_with_token_types():
    b = collate_tokens([([101, 5, 6, 102, 7, 102], 1), ([101, 5, 102], 0)])
    assert b["input_ids"].shape == (2, 6)
    assert b["attention_mask"].sum(1).tolist() == [6, 3]
    assert b["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1]
    assert b["token_type_ids"][1].sum() == 0
    assert b["y"].dtype == torch.long


def test_tokenize_with_context_keeps_the_target():
    ids = tokenize(["I am fine"], contexts=["Ross: how are you doing today " * 20],
                   max_len=24)[0]
    plain = tokenize(["I am fine"], max_len=24)[0]
    assert ids[:len(plain)] == plain and len(ids) == 24 and ids[-1] == plain[-1]
    assert tokenize(["I am fine"], contexts=[""], max_len=24)[0] == plain
    long = tokenize(["word " * 100], max_len=16)[0]
    assert len(long) == 16


def test_predict_module_restores_dataset_order():
    torch.manual_seed(0)
    model = MiniLMClassifier(n_classes=3, pretrained=False)
    ids = tokenize(["a", "a much longer sentence than the others here", "mid length one"],
                   max_len=32)
    bucketed = predict_module(model, token_loader(ids, batch_size=2))
    one_by_one = np.concatenate([predict_module(model, token_loader([i], batch_size=1))
                                 for i in ids])
    assert np.allclose(bucketed, one_by_one, atol=1e-5)


def test_minilm_classifier_freezing_and_multilabel():
    m = MiniLMClassifier(n_classes=4, pretrained=False, freeze_embeddings=True, train_layers=2,
                         multilabel=True)
    trainable = {n.split(".")[2] for n, p in m.encoder.named_parameters()
                 if p.requires_grad and n.startswith("encoder.layer")}
    assert trainable == {"4", "5"}
    assert not any(p.requires_grad for p in m.encoder.embeddings.parameters())
    batch = collate_tokens([(tokenize(["hi there"], max_len=8)[0], np.array([1, 0, 0, 1]))])
    logits = m(batch)
    assert logits.shape == (1, 4) and m.loss(logits, batch["y"]).ndim == 0
    with pytest.raises(ConfigError, match="train_layers"):
        MiniLMClassifier(n_classes=2, pretrained=False, train_layers=9)


def test_embedding_mlp_learns_a_toy_problem(tmp_path):
    from emofuse.train import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    m = build_model("minilm_mlp", in_dim=16, n_classes=2, hidden=16, lr=0.01)
    fit(m, array_loader(x[:160], y[:160], batch_size=32, shuffle=True),
        array_loader(x[160:], y[160:]), max_epochs=15, patience=5, out_dir=tmp_path, seed=0,
        progress=False, num_threads=1)
    acc = (predict_module(m, array_loader(x[160:])).argmax(1) == y[160:]).mean()
    assert acc > 0.85


def test_bf16_autocast_matches_float32():
    torch.manual_seed(0)
    m = MiniLMClassifier(n_classes=3, pretrained=False).eval()
    batch = collate_tokens([(tokenize(["a fairly ordinary sentence"], max_len=16)[0], 0)])
    with torch.no_grad():
        ref = m(batch)
        m.hparams.bf16 = True
        low = m(batch)
    assert low.dtype == torch.float32
    assert torch.allclose(ref, low, atol=0.05)
