"""Pretrained backbones (Keras's keras.applications): ImageNet-trained networks built from hubel
layers, their weights, preprocessing and class names, and the transfer-learning calls.

    base = hubel.applications.MobileNetV2(input_shape=(160, 160, 3), include_top=False)
    features, labels = hubel.applications.extract_features(base, train)    # once, cached on disk
    head = hubel.applications.classifier_head((1280,), num_classes=2)

`hubel.applications` is this package.
"""

from hubel.models.applications import efficientnet_lite, mobilenet_v2
from hubel.models.applications.backbones import BACKBONES, Backbone, WeightsMissingError, list_backbones
from hubel.models.applications.efficientnet_lite import EfficientNetLite0
from hubel.models.applications.imagenet import decode_predictions
from hubel.models.applications.mobilenet_v2 import MobileNetV2
from hubel.models.applications.transfer import (
    attach_head,
    classifier_head,
    extract_features,
    feature_extractor,
    transfer_learn,
    unfreeze_top,
)

__all__ = [
    "BACKBONES",
    "Backbone",
    "EfficientNetLite0",
    "MobileNetV2",
    "WeightsMissingError",
    "attach_head",
    "classifier_head",
    "decode_predictions",
    "efficientnet_lite",
    "extract_features",
    "feature_extractor",
    "list_backbones",
    "mobilenet_v2",
    "transfer_learn",
    "unfreeze_top",
]
