"""Backbones: shapes, weight loading (file / offline / key mapping), freezing, text pooling, configs.

Nothing here touches a network. The ``slow`` tests check the real offline weights
(``exil data fetch mobilenet_v2_imagenet efficientnet_lite0_imagenet minilm_l6``) and are skipped
when those are not in ``data/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from torch import nn

from exil.common.backbones import build_backbone
from exil.common.backbones.factory import parameterised_layers
from exil.common.backbones.weights import map_state_dict_by_order
from exil.common.errors import ConfigError, DataMissing

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
DATA = ROOT / "data"
SHAPES = [(1, 8, 8), (1, 28, 28)]
TINY_BERT = dict(
    model_type="bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100
)


def _same_params(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- exil nets


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "name, kwargs",
    [("mlp", {"hidden": [50, 30]}), ("mlp", {"hidden": [], "dropout": 0.5}), ("small_cnn", {}),
     ("small_cnn", {"pool": "flatten", "channels": [8, 16, 32]}), ("tiny_cnn", {})],
)
def test_exil_nets_give_pooled_features(name, kwargs, shape):
    net = build_backbone("exil", name, input_shape=shape, **kwargs)
    out = net(torch.randn(5, *shape))
    assert out.shape == (5, net.out_features)


@pytest.mark.parametrize("shape, spatial", [((1, 8, 8), 4), ((1, 28, 28), 14)])
def test_small_cnn_feature_map_is_the_last_conv_activation(shape, spatial):
    net = build_backbone("exil", "small_cnn", input_shape=shape, channels=[32, 64])
    x = torch.randn(3, *shape)
    fmap = net.feature_map(x)
    assert fmap.shape == (3, 64, spatial, spatial)
    assert (fmap >= 0).all()  # after the ReLU
    torch.testing.assert_close(net(x), fmap.mean(dim=(2, 3)))
    flat = build_backbone("exil", "small_cnn", input_shape=shape, channels=[32, 64], pool="flatten")
    assert flat.out_features == 64 * spatial * spatial


def test_mlp_50_30_matches_ross_et_al():
    net = build_backbone("exil", "mlp", input_shape=(1, 28, 28), hidden=[50, 30])
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 50), (50, 30)]
    assert net.out_features == 30


def test_exil_nets_need_input_shape():
    with pytest.raises(ConfigError, match="input_shape"):
        build_backbone("exil", "small_cnn")


# --------------------------------------------------------------------------- weights


def test_file_weights_round_trip_relative_to_data_dir(tmp_path):
    net = build_backbone("exil", "small_cnn", input_shape=(1, 8, 8))
    torch.save(net.state_dict(), tmp_path / "cnn.pt")
    loaded = build_backbone("exil", "small_cnn", "file:cnn.pt", input_shape=(1, 8, 8), data_dir=tmp_path)
    assert _same_params(net, loaded)
    with pytest.raises(ConfigError, match="missing|unexpected|wrong shape"):
        build_backbone("exil", "small_cnn", "file:cnn.pt", input_shape=(1, 8, 8), data_dir=tmp_path, channels=[8])


def test_torchvision_file_weights_library_or_backbone_format(tmp_path):
    import torchvision

    full = torchvision.models.mobilenet_v2()  # the library's own state dict, head included
    torch.save(full.state_dict(), tmp_path / "mnv2.pth")
    bb = build_backbone("torchvision", "mobilenet_v2", f"file:{tmp_path / 'mnv2.pth'}")
    torch.testing.assert_close(bb.model.features[0][0].weight, full.features[0][0].weight)
    torch.save(bb.state_dict(), tmp_path / "bb.pt")  # an exil backbone's state dict
    again = build_backbone("torchvision", "mobilenet_v2", f"file:{tmp_path / 'bb.pt'}")
    assert _same_params(bb, again)
    x = torch.randn(2, 3, 64, 64)
    assert bb.eval()(x).shape == (2, 1280) and bb.feature_map(x).shape == (2, 1280, 2, 2)


def test_timm_file_weights_round_trip(tmp_path):
    bb = build_backbone("timm", "tf_efficientnet_lite0")
    torch.save(bb.state_dict(), tmp_path / "lite0.pt")
    again = build_backbone("timm", "tf_efficientnet_lite0", "file:lite0.pt", data_dir=tmp_path)
    assert _same_params(bb, again)
    x = torch.randn(2, 1, 64, 64)  # greyscale: repeated to RGB
    grey = build_backbone("timm", "tf_efficientnet_lite0", input_shape=(1, 64, 64)).eval()
    assert grey(x).shape == (2, 1280) and grey.feature_map(x).shape == (2, 1280, 2, 2)


def test_map_state_dict_by_order_renames_and_checks_shapes():
    ref = {"conv_stem.weight": torch.zeros(4, 3, 3, 3), "bn1.weight": torch.zeros(4), "classifier.weight": torch.zeros(2, 4)}
    src = {"_conv_stem.weight": torch.randn(4, 3, 3, 3), "_bn0.weight": torch.randn(4), "_fc.weight": torch.randn(2, 4)}
    out = map_state_dict_by_order(src, ref)
    assert list(out) == list(ref)
    assert all(torch.equal(out[k], v) for k, v in zip(ref, src.values()))
    swapped = dict(reversed(list(src.items())))
    with pytest.raises(ConfigError, match="tensor 0 is _fc.weight"):
        map_state_dict_by_order(swapped, ref)
    with pytest.raises(ConfigError, match="2 tensors given, the model has 3"):
        map_state_dict_by_order(dict(list(src.items())[:2]), ref)


def test_offline_efficientnet_lite0_maps_package_keys(tmp_path):
    """A random-init lite0 saved under EfficientNet-PyTorch-style names loads through ``offline:``."""
    import timm

    ref = timm.create_model("tf_efficientnet_lite0").state_dict()
    package = {f"_pkg{i}.{k.rsplit('.', 1)[-1]}": torch.randn_like(v.float()).to(v.dtype) for i, (k, v) in enumerate(ref.items())}
    folder = tmp_path / "efficientnet_lite0_imagenet"
    folder.mkdir()
    torch.save(package, folder / "efficientnet-lite0-57934424.pth")
    bb = build_backbone("timm", "tf_efficientnet_lite0", "offline:efficientnet_lite0_imagenet", data_dir=tmp_path)
    got = bb.model.state_dict()
    for (k, _), v in zip(ref.items(), package.values()):
        if not k.startswith("classifier."):  # the head is dropped
            assert torch.equal(got[k], v), k


def test_offline_without_data_says_how_to_fetch(tmp_path):
    with pytest.raises(DataMissing, match="exil data fetch mobilenet_v2_imagenet"):
        build_backbone("torchvision", "mobilenet_v2", "offline:mobilenet_v2_imagenet", data_dir=tmp_path)


def test_offline_weights_must_fit_the_model(tmp_path):
    with pytest.raises(ConfigError, match="fit torchvision mobilenet_v2"):
        build_backbone("timm", "tf_efficientnet_lite0", "offline:mobilenet_v2_imagenet", data_dir=tmp_path)
    with pytest.raises(ConfigError, match="minilm_l6"):
        build_backbone("torchvision", "mobilenet_v2", "offline:nope", data_dir=tmp_path)


@pytest.mark.parametrize("weights", ["imagenet", "file:", "offline:", "hub:x", "none:x"])
def test_bad_weights_spec(weights):
    with pytest.raises(ConfigError, match="none, hub, file:<path> or offline:<source>"):
        build_backbone("exil", "mlp", weights, input_shape=(4,))


def test_exil_nets_have_no_hub_weights():
    with pytest.raises(ConfigError, match="trained from scratch"):
        build_backbone("exil", "mlp", "hub", input_shape=(4,))


# --------------------------------------------------------------------------- choices


def test_unknown_source_and_names_list_the_valid_choices():
    with pytest.raises(ConfigError, match="exil, torchvision, timm, transformers"):
        build_backbone("keras", "mlp")
    with pytest.raises(ConfigError, match="mlp, pairwise_equal, small_cnn, tiny_cnn"):
        build_backbone("exil", "big_cnn", input_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="valid: .*mobilenet_v2, mobilenet_v3_large"):
        build_backbone("torchvision", "mobilenetv2")
    with pytest.raises(ConfigError, match="closest: .*tf_efficientnet_lite0"):
        build_backbone("timm", "tf_efficientnet_lite_0")


# --------------------------------------------------------------------------- freezing


def test_freeze_layers_freezes_exactly_the_first_n():
    bb = build_backbone("torchvision", "mobilenet_v2", freeze_layers=50)
    layers = parameterised_layers(bb)
    assert len(layers) == 104  # 52 conv + 52 batch norm in MobileNetV2's features
    frozen = [not any(p.requires_grad for p in m.parameters(recurse=False)) for m in layers]
    assert frozen == [True] * 50 + [False] * 54
    bb.train()
    bns = [m for m in layers if isinstance(m, nn.BatchNorm2d)]
    assert [m.training for m in bns] == [not f for m, f in zip(layers, frozen) if isinstance(m, nn.BatchNorm2d)]
    with pytest.raises(ConfigError, match="has 104 parameterised layers"):
        build_backbone("torchvision", "mobilenet_v2", freeze_layers=105)


def test_freeze_layers_on_an_mlp():
    net = build_backbone("exil", "mlp", input_shape=(1, 8, 8), hidden=[16, 8], freeze_layers=1)
    assert [p.requires_grad for p in net.parameters()] == [False, False, True, True]


# --------------------------------------------------------------------------- text


def _tiny_batch():
    ids = torch.tensor([[2, 5, 7, 9, 3], [2, 6, 3, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "token_type_ids": torch.zeros_like(ids)}


def test_transformers_tiny_bert_mean_and_cls_pooling():
    torch.manual_seed(0)
    bb = build_backbone("transformers", "tiny-bert", config=TINY_BERT).eval()
    assert bb.out_features == 32
    batch = _tiny_batch()
    with torch.no_grad():
        out = bb(batch)
        alone = bb({k: v[1:, :3] for k, v in batch.items()})  # the second text without its padding
    assert out.shape == (2, 32)
    torch.testing.assert_close(out[1:], alone)  # padding does not enter the mean
    cls = build_backbone("transformers", "tiny-bert", config=TINY_BERT, pooling="cls")
    cls.load_state_dict(bb.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(cls.eval()(batch), bb.model(**batch).last_hidden_state[:, 0])


def test_transformers_file_weights_from_a_folder_or_a_state_dict(tmp_path):
    bb = build_backbone("transformers", "tiny-bert", config=TINY_BERT)
    bb.model.save_pretrained(tmp_path / "hf")
    from_folder = build_backbone("transformers", "tiny-bert", "file:hf", data_dir=tmp_path)
    assert _same_params(bb, from_folder) and from_folder.name_or_path == str(tmp_path / "hf")
    torch.save(bb.state_dict(), tmp_path / "bb.pt")
    from_file = build_backbone("transformers", "tiny-bert", "file:bb.pt", data_dir=tmp_path, config=TINY_BERT)
    assert _same_params(bb, from_file)


def test_a_pretrained_text_encoder_is_fine_tuned_with_its_dropout_on(tmp_path):
    """from_pretrained returns a model in eval mode and Lightning keeps submodules' modes through fit: the encoder
    must come back in train mode, and two forward passes of one batch then differ (dropout draws)."""
    import lightning.pytorch as pl

    config = {**TINY_BERT, "hidden_dropout_prob": 0.5}
    build_backbone("transformers", "tiny-bert", config=config).model.save_pretrained(tmp_path / "hf")
    bb = build_backbone("transformers", "tiny-bert", "file:hf", data_dir=tmp_path)
    dropouts = [m for m in bb.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(m.training for m in dropouts)
    batch = {"input_ids": torch.tensor([[1, 5, 7, 2]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    assert not torch.allclose(bb(batch), bb(batch))
    seen = []

    class Probe(pl.LightningModule):  # what a round's fit sees
        def __init__(self):
            super().__init__()
            self.bb = bb

        def training_step(self, b, i):
            seen.append(all(m.training for m in dropouts))
            return self.bb(batch).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(Probe(), torch.utils.data.DataLoader([0], batch_size=1))
    assert seen == [True]


# --------------------------------------------------------------------------- configs

#: encoder-decoders (exil.common.backbones.seq2seq.build_seq2seq, for XAL): checked in tests/unit/test_xal_module.py
SEQ2SEQ_YAMLS = {"minilm_bert2bert", "flan_t5_large", "flan_t5_base", "t5_small"}
BACKBONE_YAMLS = sorted(p.stem for p in (CONF / "backbone").glob("*.yaml") if p.stem not in SEQ2SEQ_YAMLS)
BUILDABLE = {"mlp", "pairwise_equal", "small_cnn", "tiny_cnn"}  # the others need fetched files or a network


def _compose(name: str, data_dir: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(overrides=[f"+backbone={name}", f"+paths.data_dir={data_dir}"])


def test_every_backbone_yaml_is_listed():
    assert set(BACKBONE_YAMLS) == BUILDABLE | {"mobilenet_v2", "efficientnet_lite0", "inception_v3", "minilm",
                                               "mobilenet_v2_stride16", "inception_v3_mixed6e",
                                               "bert_scratch"}  # text: built by tests/unit/test_own_text.py


@pytest.mark.parametrize("name", BACKBONE_YAMLS)
def test_backbone_yaml_composes(name, tmp_path):
    cfg = _compose(name, tmp_path).backbone
    assert cfg._target_ == "exil.common.backbones.build_backbone"
    assert cfg.source in ("exil", "torchvision", "timm", "transformers")
    assert cfg.input_shape is None and cfg.data_dir == str(tmp_path)
    # only configs for weights that cannot be had offline
    assert cfg.weights != "hub" or name in ("inception_v3", "inception_v3_mixed6e")
    if name in BUILDABLE:
        for shape in SHAPES:
            cfg.input_shape = list(shape)
            net = instantiate(cfg)
            assert net(torch.randn(2, *shape)).shape == (2, net.out_features)


def test_inception_v3_yaml_builds_with_random_weights(tmp_path):
    """The code path of ALICE's backbone, without its (hub-only) weights."""
    cfg = _compose("inception_v3", tmp_path).backbone
    cfg.weights, cfg.input_shape = "none", [3, 75, 75]
    net = instantiate(cfg).eval()
    x = torch.randn(2, 3, 75, 75)
    with torch.no_grad():
        assert net(x).shape == (2, 2048) and net.feature_map(x).shape[:2] == (2, 2048)


# --------------------------------------------------------------------------- real weights (slow)


def _chelsea(mean, std) -> torch.Tensor:
    import skimage.data

    img = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1).float() / 255
    img = F.interpolate(img[None], size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (img - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def _needs(name: str) -> None:
    from exil.common.acquire import is_present

    if not is_present(name, DATA):
        pytest.skip(f"{name} is not fetched into {DATA} (run: exil data fetch {name})")


CATS = {281, 282, 283, 284, 285, 286, 287}  # ImageNet tabby, tiger cat, Persian, Siamese, Egyptian cat, cougar, lynx


@pytest.mark.slow
@pytest.mark.parametrize(
    "source, name, weights, file, head, mean, std",
    [
        ("torchvision", "mobilenet_v2", "mobilenet_v2_imagenet", "mobilenet_v2-b0353104.pth", "classifier.1",
         (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ("timm", "tf_efficientnet_lite0", "efficientnet_lite0_imagenet", "efficientnet-lite0-57934424.pth", "_fc",
         (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ],
)
def test_offline_imagenet_weights_see_a_cat(source, name, weights, file, head, mean, std):
    """Backbone features + the file's own ImageNet head put a cat class first for skimage's chelsea."""
    from exil.common.backbones.weights import read_state_dict

    _needs(weights)
    bb = build_backbone(source, name, f"offline:{weights}", data_dir=DATA).eval()
    sd = read_state_dict(DATA / weights / file)
    with torch.no_grad():
        logits = F.linear(bb(_chelsea(mean, std)), sd[f"{head}.weight"], sd[f"{head}.bias"])
    top5 = logits[0].topk(5).indices.tolist()
    assert top5[0] in CATS and len(CATS.intersection(top5)) >= 3, top5


@pytest.mark.slow
def test_offline_minilm_embeds_similar_sentences_closer(monkeypatch):
    from transformers import AutoTokenizer

    _needs("minilm_l6")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bb = build_backbone("transformers", "sentence-transformers/all-MiniLM-L6-v2", "offline:minilm_l6", data_dir=DATA)
    tok = AutoTokenizer.from_pretrained(bb.name_or_path)
    texts = ["A man is playing a guitar.", "Someone is strumming a guitar on stage.", "The stock market fell sharply today."]
    with torch.no_grad():
        e = F.normalize(bb.eval()(tok(texts, padding=True, return_tensors="pt")), dim=-1)
    sim = e @ e.T
    assert bb.out_features == 384
    assert sim[0, 1] > 0.5 and sim[0, 2] < 0.2 and sim[1, 2] < 0.2, sim


def test_feature_layer_cuts_the_trunk_at_a_named_module():
    net = build_backbone("timm", "inception_v3", weights="none", feature_layer="Mixed_6e")
    assert net.out_features == 768 and net.feature_map(torch.zeros(1, 3, 160, 160)).shape[1:] == (768, 8, 8)
    mob = build_backbone("torchvision", "mobilenet_v2", weights="none", input_shape=(1, 64, 64),
                         feature_layer="features.13")
    assert mob.out_features == 96 and mob(torch.zeros(2, 1, 64, 64)).shape == (2, 96)
    with pytest.raises(ConfigError, match="valid: 0, 1, 10"):
        build_backbone("torchvision", "mobilenet_v2", weights="none", feature_layer="features.99")
    with pytest.raises(ConfigError, match="feature_layer applies"):
        build_backbone("exil", "mlp", input_shape=(1, 4, 4), feature_layer="x")


def test_a_cut_trunk_holds_only_its_own_layers_and_keeps_frozen_batch_norms_in_eval():
    full = build_backbone("torchvision", "mobilenet_v2", weights="none", input_shape=(1, 28, 28))
    cut = build_backbone("torchvision", "mobilenet_v2", weights="none", input_shape=(1, 28, 28),
                         feature_layer="features.13", freeze_layers=6)
    assert sum(p.numel() for p in cut.parameters()) < sum(p.numel() for p in full.parameters()) / 2
    cut.train()
    norms = [m for m in cut.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [m.training for m in norms[:4]] == [False, False, False, True]  # 6 layers = 3 conv + 3 batch norms
    assert cut(torch.rand(2, 1, 28, 28)).shape == (2, 96)
