"""ALICE's morphing: groups, super-classes, the latent-query attention, the hierarchical decision, crops."""

from __future__ import annotations

import pytest
import torch

from exil.alice.model import AliceClassifier, LatentQueryAttention
from exil.alice.morph import merge_groups, super_classes
from exil.common.backbones import build_backbone
from exil.common.data.parts import crop_to_boxes


def test_pairs_merge_transitively_into_m_ary_groups_whatever_their_order():
    assert merge_groups([], [(2, 6)]) == [[2, 6]]
    assert merge_groups([], [(2, 6), (4, 6)]) == [[2, 4, 6]]  # overlap in one round
    assert merge_groups([[2, 6]], [(0, 9), (4, 2)]) == [[0, 9], [2, 4, 6]]  # with an earlier group
    assert merge_groups([[0, 9]], [(4, 2), (2, 6)]) == merge_groups([[0, 9]], [(6, 2), (2, 4)])
    assert merge_groups([[1, 3], [5, 7]], [(3, 5)]) == [[1, 3, 5, 7]]  # a pair joins two groups


def test_super_classes_count_down_by_one_per_disjoint_pair():
    super_of, members = super_classes(6, [[1, 4], [2, 5]])
    assert members == [[0], [1, 4], [2, 5], [3]]  # C − b = 6 − 2 super-classes, numbered by smallest member
    assert super_of == [0, 1, 2, 3, 1, 2]


def test_latent_query_attention_is_a_softmax_weighted_sum_over_positions():
    att = LatentQueryAttention(channels=2, queries=1)
    with torch.no_grad():
        att.queries.weight.copy_(torch.tensor([[[[1.0]], [[0.0]]]]))  # query scores = channel 0
        att.queries.bias.zero_()
    fmap = torch.tensor([[[[0.0, 1.0]], [[3.0, 5.0]]]])  # (1, d=2, H=1, W=2)
    w = torch.softmax(torch.tensor([0.0, 1.0]), 0)
    expected = torch.stack([w @ torch.tensor([0.0, 1.0]), w @ torch.tensor([3.0, 5.0])])
    assert torch.allclose(att(fmap), expected.view(1, 2))
    assert torch.allclose(att.maps(fmap).sum(-1), torch.ones(1, 1))


def _model(hierarchy: bool = True) -> AliceClassifier:
    torch.manual_seed(0)
    backbone = build_backbone("exil", "small_cnn", input_shape=(1, 16, 16), channels=[4, 8])
    return AliceClassifier(backbone, num_classes=5, queries=3, hierarchy=hierarchy)


def test_morph_resets_the_global_head_adds_local_heads_and_keeps_fine_probabilities_normalised():
    m = _model()
    x = torch.rand(7, 1, 16, 16)
    m.morph([(1, 3)])
    m.morph([(3, 4)])
    assert m.groups == [[1, 3, 4]] and m.num_super == 3 and m.head.out_features == 3
    assert list(m.local) == ["g1_3_4"] and m.local["g1_3_4"].in_features == 3 * 8
    m.eval()
    logp = m(x)
    assert torch.allclose(logp.logsumexp(-1), torch.zeros(7), atol=1e-5)
    # hierarchical decision by hand: the global head's super-class, then the group's local head inside it
    g, z = m.parts(x)
    s = g.argmax(-1)
    local = m.local["g1_3_4"](z).argmax(-1)
    expected = torch.where(s == 1, torch.tensor([1, 3, 4])[local], torch.tensor([0, 1, 2])[s] * 0 + torch.tensor([0, 0, 2])[s])
    assert torch.equal(m.predict(x), expected)


def test_a_fresh_module_rebuilt_from_the_spec_loads_the_morphed_weights():
    m = _model()
    m.morph([(0, 2)])
    spec, state = m.architecture_spec(), m.state_dict()
    assert spec == {"asked": [[0, 2]], "groups": [[0, 2]], "queries": 3}
    fresh = _model()
    fresh.apply_architecture_spec(spec)
    fresh.load_state_dict(state)
    x = torch.rand(3, 1, 16, 16)
    m.eval(), fresh.eval()
    assert torch.allclose(fresh(x), m(x)) and fresh.asked == [[0, 2]]


def test_without_hierarchy_pairs_are_recorded_but_the_classifier_stays_flat():
    m = _model(hierarchy=False)
    m.morph([(0, 2)])
    assert m.groups == [] and m.head.out_features == 5 and m.architecture_spec()["asked"] == [[0, 2]]


def test_crops_train_only_the_local_classifier_of_their_group():
    m = _model()
    m.morph([(1, 3)])
    batch = {"x": torch.rand(2, 1, 16, 16), "y": torch.tensor([1, 3]), "crop": torch.tensor([True, True]),
             "box": torch.tensor([[0.0, 0.0, 8.0, 8.0], [4.0, 4.0, 12.0, 12.0]])}
    m.loss(batch).backward()
    assert m.head.weight.grad is None or m.head.weight.grad.abs().sum() == 0
    assert m.local["g1_3"].weight.grad.abs().sum() > 0


def test_crop_to_boxes_cuts_and_resizes_on_the_batch():
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, :, :4] = 1.0  # left half bright
    full = crop_to_boxes(x, torch.tensor([[0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 8.0, 8.0]]))
    assert torch.allclose(full, x, atol=1e-6)
    halves = crop_to_boxes(x, torch.tensor([[0.0, 0.0, 3.0, 8.0], [5.0, 0.0, 8.0, 8.0]]))  # inside each half
    assert torch.allclose(halves[0], torch.ones(1, 8, 8)) and torch.allclose(halves[1], torch.zeros(1, 8, 8))


def test_a_backbone_without_an_activation_map_is_refused():
    with pytest.raises(Exception, match="feature_map"):
        AliceClassifier(build_backbone("exil", "mlp", input_shape=(1, 4, 4), hidden=[8]), num_classes=3)
